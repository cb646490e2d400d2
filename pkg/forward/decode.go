package forward

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// Decoder reads forward requests from a stream. It is not safe for
// concurrent use; one per connection.
type Decoder struct {
	r          io.Reader
	lim        Limits
	buf        []byte
	start, end int // buffered, unconsumed bytes are buf[start:end]
	frameLen   int // length of the frame returned last, consumed on the next call
	sc         scanner
	js         jsonScanner
	sawJSON    bool
	req        Request
	gz         *gzip.Reader
	zbuf       bytes.Buffer
	zsrc       bytes.Reader
	tag        string
	seq        int
}

// NewDecoder reads requests from r within lim (zero fields: DefaultLimits).
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	lim = lim.withDefaults()
	return &Decoder{r: r, lim: lim, sc: scanner{lim: lim}}
}

// Buffered reports how many bytes were read but not yet consumed.
func (d *Decoder) Buffered() int { return d.end - d.start - d.frameLen }

// Wait blocks until a byte of the next request is buffered: servers use it
// to tell a connection idle between requests (which in_forward keeps
// forever) from one trickling a request (slowloris). At a clean end of
// stream it returns io.EOF.
func (d *Decoder) Wait() error {
	d.start += d.frameLen
	d.frameLen = 0
	for d.start == d.end {
		if err := d.fill(); err != nil {
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
	*req = Request{Entries: entries, Bytes: len(frame), JSON: isJSON}
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
// are valid until the next call.
func (d *Decoder) NextFrame() (frame []byte, isJSON bool, err error) {
	d.start += d.frameLen
	d.frameLen = 0
	d.sc.reset(d.lim, d.lim.MaxRequestBytes)
	d.js.reset(d.lim)
	kind := 0 // 0 unknown, 1 msgpack, 2 json
	for {
		if kind == 0 && d.sawJSON {
			for d.start < d.end && isJSONSpace(d.buf[d.start]) {
				d.start++
			}
		}
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
		if err := d.fill(); err != nil {
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

// fill reads more bytes, compacting or growing the buffer (never beyond
// MaxRequestBytes plus one read's worth).
func (d *Decoder) fill() error {
	if d.end == len(d.buf) {
		if d.start > 0 {
			d.end = copy(d.buf, d.buf[d.start:d.end])
			d.start = 0
		} else {
			n := 2 * len(d.buf)
			if n < 64<<10 {
				n = 64 << 10
			}
			if max := int(d.lim.MaxRequestBytes) + 1; n > max && len(d.buf) < max {
				n = max
			}
			nb := make([]byte, n)
			d.end = copy(nb, d.buf[d.start:d.end])
			d.start = 0
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
		case "gzip":
			req.Mode = ModeCompressed
			if stream, err = d.gunzip(stream); err != nil {
				return err
			}
		default:
			return &CompressionError{Codec: compressed}
		}
		sr := mp{b: stream, sc: &d.sc}
		for i := 0; sr.p < len(sr.b); i++ {
			if err := d.entry(&sr, req); err != nil {
				return fmt.Errorf("packed entry %d: %w", i, err)
			}
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
		req.Entries = append(req.Entries, Entry{Time: t, Record: rec})
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

func (d *Decoder) entry(r *mp, req *Request) error {
	if len(req.Entries) >= d.lim.MaxArrayLen {
		return fmt.Errorf("%w: more than %d events in one request", ErrTooLarge, d.lim.MaxArrayLen)
	}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("%w: entry is an array of %d elements, want [time, record]", ErrMalformed, n)
	}
	t, err := r.eventTime()
	if err != nil {
		return err
	}
	rec, err := r.record()
	if err != nil {
		return err
	}
	req.Entries = append(req.Entries, Entry{Time: t, Record: rec})
	return nil
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

// gunzip inflates every concatenated gzip member of b into a reused buffer,
// stopping at MaxDecompressedBytes so a small bomb cannot take the memory.
func (d *Decoder) gunzip(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d.zsrc.Reset(b)
	var err error
	if d.gz == nil {
		d.gz, err = gzip.NewReader(&d.zsrc)
	} else {
		err = d.gz.Reset(&d.zsrc)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	d.zbuf.Reset()
	max := d.lim.MaxDecompressedBytes
	n, err := d.zbuf.ReadFrom(io.LimitReader(d.gz, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	if n > max {
		return nil, fmt.Errorf("%w: decompressed stream larger than %d bytes", ErrTooLarge, max)
	}
	return d.zbuf.Bytes(), nil
}
