package forward

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
	"unsafe"

	"github.com/logdoctor/logdoctor/pkg/inflight"
)

const (
	// baseBufSize is the read buffer every connection keeps between
	// requests; it is not taken from the in-flight budget (MaxConns bounds
	// it). What a request needs beyond it is.
	baseBufSize = 16 << 10
	// baseEntries is the event slice kept between requests.
	baseEntries = 256
	entrySize   = int64(unsafe.Sizeof(Entry{}))
	// firstBlock and maxBlock size the blocks a compressed stream is
	// inflated into: small for small chunks, larger for large ones.
	firstBlock = 32 << 10
	maxBlock   = 1 << 20
	// jsonExpansion is what decoding one JSON record into Go values costs
	// per byte of JSON at most (an array of one-digit numbers: an
	// interface and a json.Number per two bytes), taken from the budget
	// while the record is re-encoded.
	jsonExpansion = 24
)

// Decoder reads forward requests from a stream. It is not safe for
// concurrent use; one per connection.
//
// With a budget (UseBudget) every byte a request makes the decoder hold
// beyond its small per-connection buffers (the request's wire bytes, the
// inflated stream, the event slice, and what the handler reserves through
// Request.Reserve) is taken from the budget before it is allocated, and
// given back when the decoder moves to the next request.
type Decoder struct {
	r          io.Reader
	lim        Limits
	buf        []byte
	base       []byte // the per-connection buffer buf returns to
	start, end int    // buffered, unconsumed bytes are buf[start:end]
	frameLen   int    // length of the frame returned last, consumed on the next call
	sc         scanner
	js         jsonScanner
	sawJSON    bool
	req        Request
	gz         *gzip.Reader
	pools      *pools   // a server's, shared by its connections; nil: none
	blocks     [][]byte // inflate blocks the current request's records use
	zsrc       bytes.Reader
	tag        string
	seq        int

	ctx     context.Context
	lease   *inflight.Lease
	onWait  func(time.Duration)
	charged int64 // held by lease for this decoder's current request
}

// NewDecoder reads requests from r within lim (zero fields: DefaultLimits).
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	lim = lim.withDefaults()
	return &Decoder{r: r, lim: lim, sc: scanner{lim: lim}, ctx: context.Background()}
}

// UseBudget makes the decoder take each request's memory from l, waiting
// under ctx while the budget is spent; onWait (may be nil) is told how
// long each wait took, so a caller can move its read deadline: the time
// the decoder chose not to read is not the peer's.
func (d *Decoder) UseBudget(ctx context.Context, l *inflight.Lease, onWait func(time.Duration)) {
	d.ctx, d.lease, d.onWait = ctx, l, onWait
}

// grow takes n more bytes from the budget before they are allocated.
func (d *Decoder) grow(n int64) error {
	if d.lease == nil || n <= 0 {
		return nil
	}
	waited, err := d.lease.Grow(d.ctx, n)
	if waited > 0 && d.onWait != nil {
		d.onWait(waited)
	}
	if err != nil {
		if errors.Is(err, inflight.ErrExceeded) {
			return fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return err
	}
	d.charged += n
	return nil
}

// shrink gives back n bytes taken by grow for something already freed.
func (d *Decoder) shrink(n int64) {
	if d.lease == nil || n <= 0 {
		return
	}
	n = min(n, d.charged)
	d.lease.Shrink(n)
	d.charged -= n
}

// Close drops every buffer and gives the budget back, whatever state the
// stream was left in (a server calls it when a connection ends, after an
// error too). The decoder is not used afterwards.
func (d *Decoder) Close() {
	if cap(d.buf) > baseBufSize {
		d.pools.putBuf(d.buf)
	}
	d.buf, d.base, d.start, d.end, d.frameLen = nil, nil, 0, 0, 0
	if cap(d.req.Entries) > baseEntries {
		d.pools.putEvents(d.req.Entries)
	}
	d.req.Entries = nil
	d.recycleBlocks()
	d.lease.Release()
	d.charged = 0
}

// Release gives back what the current request holds: buffers beyond the
// per-connection ones are dropped and their bytes returned to the budget.
// Next and Wait call it before reading; a server calls it when a
// connection ends.
func (d *Decoder) Release() {
	d.start += d.frameLen
	d.frameLen = 0
	keep := int64(0)
	if cap(d.buf) > baseBufSize {
		if d.end == d.start {
			d.pools.putBuf(d.buf)
			d.buf, d.start, d.end = d.base, 0, 0
		} else {
			// The next request is already arriving: keep the buffer,
			// and its share of the budget, while requests stream.
			keep = charge(cap(d.buf), baseBufSize)
		}
	}
	if cap(d.req.Entries) > baseEntries {
		d.pools.putEvents(d.req.Entries)
		d.req.Entries = nil
	}
	clear(d.req.Entries[:cap(d.req.Entries)]) // drop references into freed buffers
	d.req.Entries = d.req.Entries[:0]
	d.recycleBlocks()
	if d.charged > keep {
		d.lease.Shrink(d.charged - keep)
		d.charged = keep
	}
	if d.lease != nil && d.charged == 0 {
		d.lease.Release() // also clears a preemption for the next request
	}
}

// Buffered reports how many bytes were read but not yet consumed.
func (d *Decoder) Buffered() int { return d.end - d.start - d.frameLen }

// Wait blocks until a byte of the next request is buffered: servers use it
// to tell a connection idle between requests (which in_forward keeps
// forever) from one trickling a request (slowloris). It first releases
// the previous request's memory (Release). At a clean end of stream it
// returns io.EOF.
func (d *Decoder) Wait() error {
	d.Release()
	for d.start == d.end {
		if err := d.fill(0); err != nil {
			return err
		}
	}
	return nil
}

// Next reads and decodes the next request. The returned Request, and the
// Record bytes inside it, are reused by the following call. At a clean end
// of stream (between requests) it returns io.EOF; a stream ending inside a
// request gives an error wrapping io.ErrUnexpectedEOF.
func (d *Decoder) Next() (*Request, error) {
	frame, isJSON, err := d.NextFrame()
	for err == nil && len(frame) == 1 && frame[0] == 0xc0 {
		// msgpack nil: in_forward's reserved "TCP heartbeat request"; skip.
		frame, isJSON, err = d.NextFrame()
	}
	if err != nil {
		return nil, err
	}
	req := &d.req
	entries := req.Entries[:0]
	*req = Request{Entries: entries, Bytes: len(frame), JSON: isJSON, dec: d}
	if isJSON {
		err = d.parseJSON(frame, req)
	} else {
		err = d.parseMsgpack(frame, req)
	}
	if err != nil {
		return nil, err
	}
	d.seq++
	req.Seq = d.seq
	return req, nil
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// NextFrame returns the raw bytes of the next msgpack value (or JSON value,
// when the stream switched to JSON), validated against the limits. The bytes
// are valid until the next call, which releases them (see Release).
func (d *Decoder) NextFrame() (frame []byte, isJSON bool, err error) {
	d.Release()
	d.sc.reset(d.lim, d.lim.MaxRequestBytes)
	d.js.reset(d.lim)
	kind := 0 // 0 unknown, 1 msgpack, 2 json
	for {
		if kind == 0 && d.sawJSON {
			for d.start < d.end && isJSONSpace(d.buf[d.start]) {
				d.start++
			}
		}
		want := 0
		if d.start < d.end {
			if kind == 0 {
				kind = 1
				if c := d.buf[d.start]; c == '[' || c == '{' {
					kind = 2
					d.sawJSON = true
				}
			}
			var n int
			if kind == 2 {
				n, err = d.js.scan(d.buf[d.start:d.end])
			} else {
				n, err = d.sc.scan(d.buf[d.start:d.end])
				want = d.sc.want
			}
			if err != nil {
				return nil, false, err
			}
			if n > 0 {
				d.frameLen = n
				return d.buf[d.start : d.start+n], kind == 2, nil
			}
			if int64(d.end-d.start) >= d.lim.MaxRequestBytes {
				return nil, false, fmt.Errorf("%w: request larger than %d bytes", ErrTooLarge, d.lim.MaxRequestBytes)
			}
		}
		if err := d.fill(want); err != nil {
			if errors.Is(err, io.EOF) {
				if d.start == d.end {
					return nil, false, io.EOF
				}
				return nil, false, fmt.Errorf("%w: stream ended inside a request after %d bytes: %w", ErrMalformed, d.end-d.start, io.ErrUnexpectedEOF)
			}
			return nil, false, err
		}
	}
}

// fill reads more bytes. When the buffer is full it compacts it or grows
// it: to want bytes when the scanner knows how long the frame is at least
// (a PackedForward's bin header declares it), else to twice its size;
// never beyond MaxRequestBytes plus one read's worth. Growth beyond the
// base buffer is taken from the budget first.
func (d *Decoder) fill(want int) error {
	if d.buf == nil {
		if d.base == nil {
			d.base = make([]byte, baseBufSize)
		}
		d.buf = d.base
	}
	if d.end == len(d.buf) {
		if d.start > 0 {
			d.end = copy(d.buf, d.buf[d.start:d.end])
			d.start = 0
		}
		if d.end == len(d.buf) || want > len(d.buf) {
			n := max(2*len(d.buf), baseBufSize)
			if want+512 > n {
				// Room for the declared payload and the option map
				// that usually follows it.
				n = want + 512
			}
			n = d.pools.bufSize(n)
			if lim := int(d.lim.MaxRequestBytes) + 1; n > lim {
				n = max(lim, len(d.buf)+1)
			}
			if err := d.grow(charge(n, baseBufSize) - charge(len(d.buf), baseBufSize)); err != nil {
				return err
			}
			nb := d.pools.buf(n)
			d.end = copy(nb, d.buf[d.start:d.end])
			d.start = 0
			if cap(d.buf) > baseBufSize {
				d.pools.putBuf(d.buf) // nothing points into a frame not yet returned
			}
			d.buf = nb
		}
	}
	n, err := d.r.Read(d.buf[d.end:])
	d.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// charge is the part of a size beyond what is kept without the budget.
func charge(size, base int) int64 { return int64(max(0, size-base)) }

// addEntry appends to req.Entries, taking a grown slice from the budget.
func (d *Decoder) addEntry(req *Request, e Entry) error {
	if len(req.Entries) == cap(req.Entries) {
		n := max(2*cap(req.Entries), baseEntries)
		if err := d.grow(entrySize * (charge(n, baseEntries) - charge(cap(req.Entries), baseEntries))); err != nil {
			return err
		}
		ne := d.pools.events(n)[:len(req.Entries)]
		copy(ne, req.Entries)
		if cap(req.Entries) > baseEntries {
			d.pools.putEvents(req.Entries)
		}
		req.Entries = ne
	}
	req.Entries = append(req.Entries, e)
	return nil
}

func (d *Decoder) internTag(b []byte) string {
	if string(b) != d.tag {
		d.tag = string(b)
	}
	return d.tag
}

func (d *Decoder) parseMsgpack(frame []byte, req *Request) error {
	r := mp{b: frame, sc: &d.sc}
	if !isArrayCode(frame[0]) {
		return fmt.Errorf("%w: msgpack value with code 0x%02x", ErrNotRequest, frame[0])
	}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	if n < 2 || n > 4 {
		return fmt.Errorf("%w: request is an array of %d elements, want 2 to 4", ErrMalformed, n)
	}
	tag, err := r.bytesVal()
	if err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	if len(tag) == 0 {
		return fmt.Errorf("%w: empty tag", ErrMalformed)
	}
	req.Tag = d.internTag(tag)
	c, err := r.peek()
	if err != nil {
		return err
	}
	var compressed string
	switch {
	case isArrayCode(c):
		if n > 3 {
			return fmt.Errorf("%w: Forward mode request with %d elements", ErrMalformed, n)
		}
		req.Mode = ModeForward
		m, err := r.arrayLen()
		if err != nil {
			return err
		}
		for i := 0; i < m; i++ {
			if err := d.entry(&r, req); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
		}
		// The option's `compressed` is ignored here, as Fluentd's
		// in_forward does: it describes a packed stream, and entries
		// sent as an array are never compressed.
		if n == 3 {
			if _, err = d.option(&r, req); err != nil {
				return err
			}
		}
	case isStrCode(c) || isBinCode(c):
		if n > 3 {
			return fmt.Errorf("%w: PackedForward request with %d elements", ErrMalformed, n)
		}
		req.Mode = ModePacked
		stream, err := r.bytesVal()
		if err != nil {
			return err
		}
		if n == 3 {
			if compressed, err = d.option(&r, req); err != nil {
				return err
			}
		}
		// Fluentd's out_forward sends "text" with every uncompressed
		// request and its in_forward decompresses only "gzip", treating any
		// other value as plain. We accept the values the shippers send and
		// refuse the rest rather than decode compressed bytes as msgpack.
		switch compressed {
		case "", "text":
			sr := mp{b: stream, sc: &d.sc}
			for i := 0; sr.p < len(sr.b); i++ {
				if err := d.entry(&sr, req); err != nil {
					return fmt.Errorf("packed entry %d: %w", i, err)
				}
			}
		case "gzip":
			req.Mode = ModeCompressed
			if err := d.inflate(stream, req); err != nil {
				return err
			}
		default:
			return &CompressionError{Codec: compressed}
		}
	default:
		if n < 3 {
			return fmt.Errorf("%w: Message mode request with %d elements", ErrMalformed, n)
		}
		req.Mode = ModeMessage
		t, err := r.eventTime()
		if err != nil {
			return err
		}
		rec, err := r.record()
		if err != nil {
			return err
		}
		if err := d.addEntry(req, Entry{Time: t, Record: rec}); err != nil {
			return err
		}
		if n == 4 {
			if _, err = d.option(&r, req); err != nil {
				return err
			}
		}
	}
	if r.p != len(r.b) {
		return fmt.Errorf("%w: %d trailing bytes in request", ErrMalformed, len(r.b)-r.p)
	}
	return nil
}

// entryTime reads an entry's head: one more event than the request may
// hold is refused, then [time, record] must be a pair and the time valid.
func (d *Decoder) entryTime(r *mp, req *Request) (EventTime, error) {
	if len(req.Entries) >= d.lim.MaxArrayLen {
		return EventTime{}, fmt.Errorf("%w: more than %d events in one request", ErrTooLarge, d.lim.MaxArrayLen)
	}
	n, err := r.arrayLen()
	if err != nil {
		return EventTime{}, err
	}
	if n != 2 {
		return EventTime{}, fmt.Errorf("%w: entry is an array of %d elements, want [time, record]", ErrMalformed, n)
	}
	return r.eventTime()
}

func (d *Decoder) entry(r *mp, req *Request) error {
	t, err := d.entryTime(r, req)
	if err != nil {
		return err
	}
	rec, err := r.record()
	if err != nil {
		return err
	}
	return d.addEntry(req, Entry{Time: t, Record: rec})
}

// scannedEntry decodes an entry the scanner found whole and within the
// limits: after its time, the rest of it is the record.
func (d *Decoder) scannedEntry(b []byte, req *Request) error {
	r := mp{b: b, sc: &d.sc}
	t, err := d.entryTime(&r, req)
	if err != nil {
		return err
	}
	if c, _ := r.peek(); !isMapCode(c) {
		return r.errf("record is not a map (code 0x%02x)", c)
	}
	return d.addEntry(req, Entry{Time: t, Record: b[r.p:]})
}

// option reads the option map: chunk, size, compressed; other keys are
// skipped as Fluentd does.
func (d *Decoder) option(r *mp, req *Request) (compressed string, err error) {
	c, err := r.peek()
	if err != nil {
		return "", err
	}
	if c == 0xc0 { // nil option
		r.p++
		return "", nil
	}
	n, err := r.mapLen()
	if err != nil {
		return "", fmt.Errorf("option: %w", err)
	}
	for i := 0; i < n; i++ {
		k, err := r.bytesVal()
		if err != nil {
			return "", fmt.Errorf("option key: %w", err)
		}
		switch string(k) {
		case "chunk":
			v, err := r.bytesVal()
			if err != nil {
				return "", fmt.Errorf("option chunk: %w", err)
			}
			req.Chunk = string(v)
		case "size":
			v, err := r.intVal()
			if err != nil {
				return "", fmt.Errorf("option size: %w", err)
			}
			req.Size = int(v)
		case "compressed":
			v, err := r.bytesVal()
			if err != nil {
				return "", fmt.Errorf("option compressed: %w", err)
			}
			compressed = string(v)
		default:
			if _, err := r.skip(); err != nil {
				return "", fmt.Errorf("option %q: %w", k, err)
			}
		}
	}
	return compressed, nil
}

// inflate decompresses every concatenated gzip member of src and decodes
// the entries as they come out, so a stream that is not a run of
// [time, record] entries fails at its first bad byte, and one larger than
// MaxDecompressedBytes fails when it gets there, whatever it claims. The
// output goes into blocks taken from the budget one at a time; records
// alias them. An entry cut by a block's end moves to the next block,
// which is made large enough for it once its size is known.
func (d *Decoder) inflate(src []byte, req *Request) error {
	if len(src) == 0 {
		return nil
	}
	zr, err := d.gzipReader(src)
	if err != nil {
		return fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	defer d.putGzipReader(zr)
	limit := d.lim.MaxDecompressedBytes
	var (
		total   int64  // bytes inflated
		blk     []byte // current block; blk[at:] is the entry being read
		at      int
		entries int
		next    = firstBlock
	)
	d.sc.reset(d.lim, limit)
	for {
		if len(blk) == cap(blk) {
			part := len(blk) - at
			need := part + 1
			if want := d.sc.want; want > part {
				need = want // the whole entry, once its size is known
			}
			size := roundBlock(max(next, need))
			// No more room than the limit leaves, plus a byte to notice
			// a stream over it.
			size = int(min(int64(size), int64(part)+limit-total+1))
			if err := d.grow(int64(size)); err != nil {
				return err
			}
			nb := d.pools.block(size)[:part]
			copy(nb, blk[at:])
			if blk != nil && at == 0 {
				// No record points into the old block: recycle it now.
				d.blocks = d.blocks[:len(d.blocks)-1]
				d.pools.putBlock(blk)
				d.shrink(int64(cap(blk)))
			}
			d.blocks = append(d.blocks, nb)
			blk, at = nb, 0
			next = min(2*next, maxBlock)
		}
		n, rerr := zr.Read(blk[len(blk):cap(blk)])
		blk = blk[:len(blk)+n]
		total += int64(n)
		if total > limit {
			return fmt.Errorf("%w: decompressed stream larger than %d bytes", ErrTooLarge, limit)
		}
		for at < len(blk) {
			k, err := d.sc.scan(blk[at:])
			if err != nil {
				return fmt.Errorf("packed entry %d: %w", entries, err)
			}
			if k == 0 {
				break
			}
			if err := d.scannedEntry(blk[at:at+k:at+k], req); err != nil {
				return fmt.Errorf("packed entry %d: %w", entries, err)
			}
			entries++
			at += k
			d.sc.reset(d.lim, limit)
		}
		if rerr == io.EOF {
			if at < len(blk) {
				return fmt.Errorf("%w: packed entry %d: truncated after %d bytes", ErrMalformed, entries, len(blk)-at)
			}
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("%w: gzip: %w", ErrMalformed, rerr)
		}
	}
}

// gzipReader returns a reader over src: the server's pooled ones, or
// this decoder's own.
func (d *Decoder) gzipReader(src []byte) (*gzip.Reader, error) {
	d.zsrc.Reset(src)
	zr := d.gz
	if d.pools != nil {
		zr = d.pools.gzipReader()
	}
	if zr == nil {
		return gzip.NewReader(&d.zsrc)
	}
	return zr, zr.Reset(&d.zsrc)
}

func (d *Decoder) putGzipReader(zr *gzip.Reader) {
	if d.pools != nil {
		d.pools.putGzipReader(zr)
		return
	}
	d.gz = zr
}

// recycleBlocks hands the request's inflate blocks back, once no record
// points into them.
func (d *Decoder) recycleBlocks() {
	for i, b := range d.blocks {
		d.pools.putBlock(b)
		d.blocks[i] = nil
	}
	d.blocks = d.blocks[:0]
}
