// Package buffer is the pipeline's durable on-disk queue: append-only
// segment files of checksummed records, group commit (one fdatasync covers
// every append that arrived while the previous one ran, and Append returns
// only once its records are on disk), recovery that truncates a torn tail
// and replays what Elasticsearch has not acknowledged, a size limit that
// pushes back instead of growing, and deletion of a segment once every
// record in it is acknowledged.
//
// A memory-only mode keeps the same format in memory; it loses everything
// on a crash and exists for benchmarks.
package buffer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors returned by Append and Next.
var (
	ErrFull   = errors.New("buffer: full")
	ErrClosed = errors.New("buffer: closed")
)

// Options configure a Buffer.
type Options struct {
	// Dir holds the segment files and the checkpoint. Ignored in memory mode.
	Dir string
	// Memory keeps everything in memory: no fsync, nothing survives a crash.
	Memory bool
	// MaxBytes caps the bytes held (segments on disk plus appends waiting to
	// be written). Default 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size at which the active segment is sealed and a
	// new one started. Default 32 MiB, and at most MaxBytes/8 so that
	// deleting acknowledged segments can always make room.
	SegmentBytes int64
	// MaxRecordBytes caps one record (and what recovery believes a header).
	// Default 16 MiB.
	MaxRecordBytes int
	// FullWait is how long Append waits for space before returning ErrFull.
	// While it waits the caller is not reading its connection, which is the
	// backpressure. Default 0: fail at once.
	FullWait time.Duration
	// CheckpointInterval is how often the acknowledged prefix is persisted.
	// Default 1s.
	CheckpointInterval time.Duration
}

func (o *Options) defaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 32 << 20
	}
	if lim := o.MaxBytes / 8; o.SegmentBytes > lim {
		o.SegmentBytes = max(lim, 4096)
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = 16 << 20
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Second
	}
}

// Recovery tells what Open found on disk.
type Recovery struct {
	Segments       int   // segment files kept
	Records        int   // intact records in them
	Replay         int   // records not acknowledged before: delivered again
	TruncatedBytes int64 // torn or corrupt tail bytes cut off
	Removed        int   // fully acknowledged segment files deleted
}

// Stats is a snapshot of the buffer.
type Stats struct {
	Bytes       int64  // bytes held, segments plus pending appends
	Segments    int    // live segments
	Records     int64  // records appended and not yet acknowledged
	Appended    uint64 // records made durable since Open
	Acked       uint64 // records acknowledged since Open
	Commits     uint64 // fsyncs (group commits) since Open
	Full        uint64 // appends refused for lack of space
	Undelivered int64  // records durable but not yet handed out by Next
}

type segment struct {
	id      uint64
	st      storage
	size    int64    // committed (durable) bytes
	ends    []uint32 // end offset of each committed record
	sealed  bool
	acked   []uint64 // bitmap by record index
	nAcked  int
	prefix  int // leading records all acknowledged
	removed bool
}

func (s *segment) isAcked(i int) bool {
	return i/64 < len(s.acked) && s.acked[i/64]&(1<<(uint(i)%64)) != 0
}

func (s *segment) setAcked(i int) bool {
	for len(s.acked) <= i/64 {
		s.acked = append(s.acked, 0)
	}
	w, bit := i/64, uint64(1)<<(uint(i)%64)
	if s.acked[w]&bit != 0 {
		return false
	}
	s.acked[w] |= bit
	s.nAcked++
	return true
}

func (s *segment) done() bool { return s.sealed && s.nAcked == len(s.ends) }

func (s *segment) offsetOf(i int) int64 {
	if i == 0 {
		return int64(len(segmentMagic))
	}
	return int64(s.ends[i-1])
}

type pendingBatch struct {
	buf  []byte
	ends []int // end offsets inside buf
	done chan struct{}
	err  error
}

// Buffer is the durable queue. Append, Next and Ack are safe for concurrent
// use.
type Buffer struct {
	opts Options

	mu       sync.Mutex
	segs     []*segment // ordered by id; the last one is active
	nextID   uint64
	bytes    int64 // committed segment bytes
	reserved int64 // bytes in pending batches
	cur      *pendingBatch
	kick     chan struct{}
	notify   chan struct{} // closed and replaced on every commit and ack
	readSeg  int           // index into segs of the reader
	readIdx  int           // next record index in segs[readSeg]
	closed   bool
	broken   error // a write failed and could not be undone
	stats    Stats
	ckDirty  bool
	ckLast   string
	recovery Recovery

	wg        sync.WaitGroup
	stop      chan struct{}
	closeOnce sync.Once

	// The next segment is created and zero-filled ahead of time, so that
	// a rotation costs no I/O and fdatasync on a preallocated file has no
	// file size to journal.
	spare    chan spareResult
	spareOut bool // a spare is being prepared or waits in spare

	removeWG sync.WaitGroup // segment files being deleted
	freeBuf  []byte         // a written batch's buffer, for the next batch
}

type spareResult struct {
	seg *segment
	err error
}

// Open opens (or creates) the buffer, recovering what is on disk.
func Open(opts Options) (*Buffer, error) {
	opts.defaults()
	b := &Buffer{
		opts:   opts,
		kick:   make(chan struct{}, 1),
		notify: make(chan struct{}),
		stop:   make(chan struct{}),
		cur:    &pendingBatch{done: make(chan struct{})},
		nextID: 1,
		spare:  make(chan spareResult, 1),
	}
	if !opts.Memory {
		if opts.Dir == "" {
			return nil, errors.New("buffer: no directory given")
		}
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("buffer: %w", err)
		}
		if err := b.recover(); err != nil {
			b.closeSegments()
			return nil, err
		}
	}
	if len(b.segs) == 0 || b.segs[len(b.segs)-1].sealed {
		if err := b.newSegment(); err != nil {
			b.closeSegments()
			return nil, err
		}
	}
	b.mu.Lock()
	b.startSpareLocked()
	b.mu.Unlock()
	b.wg.Add(2)
	go b.committer()
	go b.checkpointer()
	return b, nil
}

// Recovery reports what Open found.
func (b *Buffer) Recovery() Recovery { return b.recovery }

// Dir is the buffer directory ("" in memory mode).
func (b *Buffer) Dir() string {
	if b.opts.Memory {
		return ""
	}
	return b.opts.Dir
}

type checkpoint struct {
	Segment uint64 `json:"segment"`
	Index   int    `json:"index"`
}

func segName(id uint64) string { return fmt.Sprintf("seg-%016d.log", id) }

func (b *Buffer) recover() error {
	var ck checkpoint
	if data, err := os.ReadFile(filepath.Join(b.opts.Dir, "checkpoint")); err == nil {
		// A checkpoint that does not parse only costs replays (409s).
		_ = json.Unmarshal(data, &ck)
	}
	ents, err := os.ReadDir(b.opts.Dir)
	if err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	var ids []uint64
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "seg-") || !strings.HasSuffix(n, ".log") {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, "seg-"), ".log"), 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		path := filepath.Join(b.opts.Dir, segName(id))
		b.nextID = id + 1
		if id < ck.Segment {
			// Fully acknowledged before the crash; only its deletion was lost.
			os.Remove(path)
			b.recovery.Removed++
			continue
		}
		seg, cut, err := b.scanSegment(id, path)
		if err != nil {
			return err
		}
		b.recovery.TruncatedBytes += cut
		seg.sealed = true
		if id == ck.Segment && ck.Index > 0 {
			n := min(ck.Index, len(seg.ends))
			for i := 0; i < n; i++ {
				seg.setAcked(i)
			}
			seg.prefix = n
		}
		if seg.done() {
			seg.st.Remove()
			b.recovery.Removed++
			continue
		}
		b.recovery.Segments++
		b.recovery.Records += len(seg.ends)
		b.recovery.Replay += len(seg.ends) - seg.nAcked
		b.stats.Records += int64(len(seg.ends) - seg.nAcked)
		b.segs = append(b.segs, seg)
		b.bytes += seg.size
	}
	if len(b.segs) > 0 {
		b.readIdx = b.segs[0].prefix
	}
	// New segments must number above the checkpoint's, or the next
	// recovery would take them for acknowledged ones and delete them (the
	// checkpoint's segment may be gone: removed, or deleted by hand).
	if b.nextID <= ck.Segment {
		b.nextID = ck.Segment + 1
	}
	return nil
}

// scanSegment validates a segment file record by record and truncates it
// after the last intact record: a torn write at a crash leaves a short or
// mismatching tail, and nothing after it was ever acknowledged to a sender.
func (b *Buffer) scanSegment(id uint64, path string) (*segment, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("buffer: %w", err)
	}
	seg := &segment{id: id, st: &fileStorage{f: f, path: path}}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("buffer: %w", err)
	}
	size := fi.Size()
	good, ends, err := scan(f, size, b.opts.MaxRecordBytes)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("buffer: scanning %s: %w", path, err)
	}
	// What follows the intact records: zeros left of the preallocation,
	// and before them possibly a torn write. Only the latter is reported.
	torn := nonZeroPrefix(f, good, size)
	if good < size {
		if good < int64(len(segmentMagic)) {
			// Not even the header survived: rewrite it.
			if err := f.Truncate(0); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("buffer: %w", err)
			}
			if _, err := f.WriteAt(segmentMagic, 0); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("buffer: %w", err)
			}
			good = int64(len(segmentMagic))
		} else if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("buffer: truncating %s: %w", path, err)
		}
		if err := seg.st.Sync(); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("buffer: %w", err)
	}
	seg.size = good
	seg.ends = ends
	return seg, torn, nil
}

// nonZeroPrefix returns how many bytes of [from, to) come before the
// trailing run of zeros.
func nonZeroPrefix(r io.ReaderAt, from, to int64) int64 {
	buf := make([]byte, 1<<20)
	last := from // end of the last non-zero byte seen
	for off := from; off < to; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
		for i := n - 1; i >= 0; i-- {
			if buf[i] != 0 {
				last = off + int64(i) + 1
				break
			}
		}
		off += int64(n)
		if err != nil || n == 0 {
			break
		}
	}
	return last - from
}

// scan reads a segment and returns the length of its intact prefix and the
// end offset of every intact record in it. Only I/O errors are errors; bad
// data ends the prefix.
func scan(r io.ReaderAt, size int64, maxRecord int) (int64, []uint32, error) {
	hdr := make([]byte, len(segmentMagic))
	if n, err := r.ReadAt(hdr, 0); n < len(hdr) || string(hdr) != string(segmentMagic) {
		if err != nil && err != io.EOF {
			return 0, nil, err
		}
		return 0, nil, nil
	}
	var ends []uint32
	off := int64(len(segmentMagic))
	const chunk = 1 << 20
	buf := make([]byte, 0, chunk)
	bufOff := off // file offset of buf[0]
	for off < size {
		// Make sure buf holds from off onwards, at least one header.
		if off-bufOff > 0 {
			buf = append(buf[:0], buf[off-bufOff:]...)
			bufOff = off
		}
		need := recordHeaderLen
		if len(buf) >= recordHeaderLen {
			if _, n, err := nextRecord(buf, maxRecord); err == nil {
				off += int64(n)
				if off > 1<<32-1 {
					return off - int64(n), ends, nil
				}
				ends = append(ends, uint32(off))
				continue
			} else if !errors.Is(err, ErrShort) {
				return off, ends, nil
			}
			need = recordHeaderLen + int(uint32(buf[0])|uint32(buf[1])<<8|uint32(buf[2])<<16|uint32(buf[3])<<24)
		}
		avail := size - bufOff
		if int64(len(buf)) >= avail || int64(need) > avail {
			return off, ends, nil // torn tail
		}
		want := max(need, chunk)
		if int64(want) > avail {
			want = int(avail)
		}
		if cap(buf) < want {
			nb := make([]byte, len(buf), want)
			copy(nb, buf)
			buf = nb
		}
		have := len(buf)
		buf = buf[:want]
		n, err := r.ReadAt(buf[have:], bufOff+int64(have))
		buf = buf[:have+n]
		if n == 0 && err != nil {
			if err == io.EOF {
				return off, ends, nil
			}
			return off, ends, err
		}
	}
	return off, ends, nil
}

// startSpareLocked reserves the next id and prepares that segment in the
// background.
func (b *Buffer) startSpareLocked() {
	id := b.nextID
	b.nextID++
	b.spareOut = true
	go func() {
		seg, err := b.createSegment(id, true)
		b.spare <- spareResult{seg, err}
	}()
}

func (b *Buffer) newSegment() error {
	seg, err := b.createSegment(b.nextID, false)
	if err != nil {
		return err
	}
	b.addSegment(seg)
	return nil
}

// createSegment makes a segment's storage; for files that is I/O (create,
// header, fsync of file and directory), done without holding b.mu.
func (b *Buffer) createSegment(id uint64, prealloc bool) (*segment, error) {
	seg := &segment{id: id}
	if b.opts.Memory {
		m := &memStorage{}
		m.Write(segmentMagic)
		seg.st = m
	} else {
		path := filepath.Join(b.opts.Dir, segName(id))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("buffer: %w", err)
		}
		seg.st = &fileStorage{f: f, path: path}
		if _, err := f.Write(segmentMagic); err != nil {
			f.Close()
			return nil, fmt.Errorf("buffer: %w", err)
		}
		if prealloc {
			// Zeros end a segment for recovery (a zero length is invalid).
			zero := make([]byte, 1<<20)
			for n := int64(len(segmentMagic)); n < b.opts.SegmentBytes; n += int64(len(zero)) {
				if _, err := f.Write(zero[:min(int64(len(zero)), b.opts.SegmentBytes-n)]); err != nil {
					f.Close()
					os.Remove(path)
					return nil, fmt.Errorf("buffer: preallocating %s: %w", path, err)
				}
			}
			if _, err := f.Seek(int64(len(segmentMagic)), io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("buffer: %w", err)
			}
		}
		if err := seg.st.Sync(); err != nil {
			f.Close()
			return nil, err
		}
		// The new file's directory entry must be durable before records in
		// it are acknowledged to senders.
		if err := syncDir(b.opts.Dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	seg.size = int64(len(segmentMagic))
	return seg, nil
}

func (b *Buffer) addSegment(seg *segment) {
	if seg.id >= b.nextID {
		b.nextID = seg.id + 1
	}
	b.bytes += seg.size
	b.segs = append(b.segs, seg)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("buffer: fsync %s: %w", dir, err)
	}
	return nil
}

// Append makes recs durable and returns once they are (or with an error,
// in which case none of them may be acknowledged to a sender; some may
// still reach Elasticsearch, which their deterministic ids make harmless).
// It returns ErrFull when there is no room within FullWait.
func (b *Buffer) Append(ctx context.Context, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	n := 0
	for i := range recs {
		n += encodedLen(&recs[i])
	}
	if int64(n) > b.opts.MaxBytes/2 {
		return fmt.Errorf("%w: %d bytes in one append", ErrTooLarge, n)
	}
	// Check every field before taking the lock: encoding below (into the
	// pending batch, without an intermediate copy) cannot fail.
	for i := range recs {
		r := &recs[i]
		if len(r.ID) > MaxIDLen || len(r.Tag) > MaxTagLen || encodedLen(r)-recordHeaderLen > b.opts.MaxRecordBytes {
			return fmt.Errorf("%w: record of %d bytes, id %d bytes, tag %d bytes (max %d, %d, %d)", ErrTooLarge,
				encodedLen(r), len(r.ID), len(r.Tag), b.opts.MaxRecordBytes, MaxIDLen, MaxTagLen)
		}
	}

	b.mu.Lock()
	var deadline <-chan time.Time
	for {
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
		if b.broken != nil {
			err := b.broken
			b.mu.Unlock()
			return err
		}
		if b.bytes+b.reserved+int64(n) <= b.opts.MaxBytes {
			break
		}
		if b.opts.FullWait <= 0 {
			b.stats.Full++
			b.mu.Unlock()
			return ErrFull
		}
		if deadline == nil {
			t := time.NewTimer(b.opts.FullWait)
			defer t.Stop()
			deadline = t.C
		}
		ch := b.notify
		b.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			b.mu.Lock()
			b.stats.Full++
			b.mu.Unlock()
			return ErrFull
		case <-ctx.Done():
			return ctx.Err()
		}
		b.mu.Lock()
	}
	p := b.cur
	if cap(p.buf)-len(p.buf) < n {
		nb := make([]byte, len(p.buf), 2*cap(p.buf)+n)
		copy(nb, p.buf)
		p.buf = nb
	}
	for i := range recs {
		p.buf, _ = appendRecord(p.buf, &recs[i])
		p.ends = append(p.ends, len(p.buf))
	}
	b.reserved += int64(n)
	b.mu.Unlock()

	select {
	case b.kick <- struct{}{}:
	default:
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// committer writes and syncs pending batches one after the other; while
// one fsync runs, new appends gather in the next batch.
func (b *Buffer) committer() {
	defer b.wg.Done()
	for {
		select {
		case <-b.kick:
			b.commit()
		case <-b.stop:
			b.commit()
			return
		}
	}
}

// checkpointer persists the acknowledged prefix every CheckpointInterval,
// off the committer's path so that group commits never wait for it.
func (b *Buffer) checkpointer() {
	defer b.wg.Done()
	tick := time.NewTicker(b.opts.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			b.writeCheckpoint()
		case <-b.stop:
			b.writeCheckpoint()
			return
		}
	}
}

func (b *Buffer) commit() {
	b.mu.Lock()
	p := b.cur
	if len(p.ends) == 0 {
		b.mu.Unlock()
		return
	}
	// Double buffering: the next batch gathers in the buffer the previous
	// commit wrote, while this one is written.
	b.cur = &pendingBatch{done: make(chan struct{}), buf: b.freeBuf}
	b.freeBuf = nil
	if b.broken != nil {
		b.reserved -= int64(len(p.buf))
		p.err = b.broken
		b.mu.Unlock()
		close(p.done)
		return
	}
	seg := b.segs[len(b.segs)-1]
	if seg.size > int64(len(segmentMagic)) && seg.size+int64(len(p.buf)) > b.opts.SegmentBytes ||
		seg.size+int64(len(p.buf)) > 1<<32-1 {
		// Take the spare prepared in the background (normally ready long
		// before the active segment fills). Only the committer adds
		// segments, so ids stay in order.
		b.mu.Unlock()
		r := <-b.spare
		next, err := r.seg, r.err
		if err != nil {
			// Preallocation failed (a full disk, say): a plain segment
			// above the spare's id.
			b.mu.Lock()
			id := b.nextID
			b.nextID++
			b.mu.Unlock()
			next, err = b.createSegment(id, false)
		}
		b.mu.Lock()
		b.spareOut = false
		if err == nil {
			b.startSpareLocked()
		}
		if err != nil {
			b.reserved -= int64(len(p.buf))
			p.err = err
			b.mu.Unlock()
			close(p.done)
			return
		}
		b.addSegment(next)
		seg.sealed = true
		if seg.done() {
			b.removeLocked(seg)
		}
		seg = b.segs[len(b.segs)-1]
	}
	start := seg.size
	b.mu.Unlock()

	_, err := seg.st.Write(p.buf)
	if err == nil {
		err = seg.st.Sync()
	}

	b.mu.Lock()
	b.reserved -= int64(len(p.buf))
	if err != nil {
		// Undo the partial write so the segment stays a clean sequence of
		// records; if that fails too, refuse further appends.
		if terr := seg.st.Truncate(start); terr != nil {
			b.broken = fmt.Errorf("buffer: write failed (%v) and could not be undone: %w", err, terr)
		}
		p.err = fmt.Errorf("buffer: %w", err)
	} else {
		for _, e := range p.ends {
			seg.ends = append(seg.ends, uint32(start+int64(e)))
		}
		seg.size += int64(len(p.buf))
		b.bytes += int64(len(p.buf))
		b.stats.Appended += uint64(len(p.ends))
		b.stats.Records += int64(len(p.ends))
		b.stats.Commits++
	}
	if cap(p.buf) <= 64<<20 {
		b.freeBuf = p.buf[:0]
	}
	p.buf = nil
	b.broadcastLocked()
	b.mu.Unlock()
	close(p.done)
}

func (b *Buffer) broadcastLocked() {
	close(b.notify)
	b.notify = make(chan struct{})
}

// Next hands out up to maxCount records (at most maxBytes of documents,
// but always at least one) not yet handed out. It blocks until at least
// one is available; when fewer than maxCount are, it waits up to linger for
// more. Records handed out are not handed out again in this process: the
// caller must Ack each one (after Elasticsearch has it, or after giving up
// on it). Unacknowledged records are replayed after a restart.
func (b *Buffer) Next(ctx context.Context, maxCount, maxBytes int, linger time.Duration) ([]Record, error) {
	if maxCount <= 0 {
		maxCount = 1
	}
	b.mu.Lock()
	var lingerC <-chan time.Time
	for {
		if b.closed {
			b.mu.Unlock()
			return nil, ErrClosed
		}
		seg, from, to := b.availableLocked(maxCount, maxBytes)
		// Take at once when the batch cannot grow: full by count, stopped
		// by the byte limit, or at the end of a sealed segment.
		if seg != nil && (linger <= 0 || to-from >= maxCount || to < len(seg.ends) || seg.sealed) {
			return b.takeLocked(seg, from, to)
		}
		if seg != nil && lingerC == nil {
			t := time.NewTimer(linger)
			defer t.Stop()
			lingerC = t.C
		}
		ch := b.notify
		b.mu.Unlock()
		select {
		case <-ch:
		case <-lingerC:
			b.mu.Lock()
			if seg, from, to := b.availableLocked(maxCount, maxBytes); seg != nil {
				return b.takeLocked(seg, from, to)
			}
			lingerC = nil
			b.mu.Unlock()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		b.mu.Lock()
	}
}

// availableLocked finds the next deliverable range, moving the reader past
// exhausted sealed segments.
func (b *Buffer) availableLocked(maxCount, maxBytes int) (*segment, int, int) {
	for b.readSeg < len(b.segs) {
		seg := b.segs[b.readSeg]
		if b.readIdx < len(seg.ends) {
			from := b.readIdx
			to := from + 1
			base := seg.offsetOf(from)
			for to < len(seg.ends) && to-from < maxCount && int64(seg.ends[to])-base <= int64(maxBytes) {
				to++
			}
			return seg, from, to
		}
		if !seg.sealed || b.readSeg == len(b.segs)-1 {
			return nil, 0, 0
		}
		b.readSeg++
		b.readIdx = 0
	}
	return nil, 0, 0
}

// takeLocked reserves [from, to) of seg, unlocks, and reads them.
func (b *Buffer) takeLocked(seg *segment, from, to int) ([]Record, error) {
	b.readIdx = to
	start, end := seg.offsetOf(from), int64(seg.ends[to-1])
	ends := seg.ends[from:to:to]
	b.mu.Unlock()

	data := make([]byte, end-start)
	if n, err := seg.st.ReadAt(data, start); n < len(data) {
		// The range is committed; failing to read it is an I/O error. Hand
		// the records out as corrupt so the caller can account for them.
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		recs := make([]Record, to-from)
		for i := range recs {
			recs[i].Pos = Pos{Seg: seg.id, Idx: uint32(from + i)}
			recs[i].Corrupt = fmt.Errorf("buffer: reading segment %d: %w", seg.id, err)
		}
		return recs, nil
	}
	recs := make([]Record, 0, to-from)
	off := 0
	for i, e := range ends {
		end := int(int64(e) - start)
		r, _, err := nextRecord(data[off:end], b.opts.MaxRecordBytes)
		if err != nil {
			r = Record{Corrupt: fmt.Errorf("segment %d record %d: %w", seg.id, from+i, err)}
		}
		r.Pos = Pos{Seg: seg.id, Idx: uint32(from + i)}
		recs = append(recs, r)
		off = end
	}
	return recs, nil
}

// Ack marks records as acknowledged by Elasticsearch (or given up on).
// Acknowledging a record twice is harmless.
func (b *Buffer) Ack(pos ...Pos) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var seg *segment
	freed := false
	for _, p := range pos {
		if seg == nil || seg.id != p.Seg {
			seg = b.findLocked(p.Seg)
		}
		if seg == nil || int(p.Idx) >= len(seg.ends) {
			continue
		}
		if !seg.setAcked(int(p.Idx)) {
			continue
		}
		b.stats.Acked++
		b.stats.Records--
		b.ckDirty = true
		for seg.prefix < len(seg.ends) && seg.isAcked(seg.prefix) {
			seg.prefix++
		}
		if seg.done() {
			b.removeLocked(seg)
			seg = nil
			freed = true
		}
	}
	// Wake appenders waiting for space and Wait callers.
	if freed || b.stats.Records == 0 {
		b.broadcastLocked()
	}
}

func (b *Buffer) findLocked(id uint64) *segment {
	i := sort.Search(len(b.segs), func(i int) bool { return b.segs[i].id >= id })
	if i < len(b.segs) && b.segs[i].id == id {
		return b.segs[i]
	}
	return nil
}

// removeLocked deletes a fully acknowledged, sealed segment.
func (b *Buffer) removeLocked(seg *segment) {
	i := sort.Search(len(b.segs), func(i int) bool { return b.segs[i].id >= seg.id })
	if i >= len(b.segs) || b.segs[i] != seg || i == len(b.segs)-1 {
		return // never remove the active segment
	}
	b.segs = append(b.segs[:i], b.segs[i+1:]...)
	if b.readSeg > i {
		b.readSeg--
	} else if b.readSeg == i {
		b.readIdx = 0
	}
	b.bytes -= seg.size
	seg.removed = true
	b.ckDirty = true
	// Unlinking a large file can take a while; appenders should not wait
	// on it. Every record in seg is acknowledged, so nothing reads it.
	b.removeWG.Add(1)
	go func() {
		defer b.removeWG.Done()
		seg.st.Remove()
	}()
}

// writeCheckpoint persists the acknowledged prefix of the oldest live
// segment so a restart does not replay what Elasticsearch already has.
// Losing it only means more replays, answered with 409.
func (b *Buffer) writeCheckpoint() {
	if b.opts.Memory {
		return
	}
	b.mu.Lock()
	if !b.ckDirty || len(b.segs) == 0 {
		b.mu.Unlock()
		return
	}
	b.ckDirty = false
	ck := checkpoint{Segment: b.segs[0].id, Index: b.segs[0].prefix}
	b.mu.Unlock()
	data, _ := json.Marshal(ck)
	if string(data) == b.ckLast {
		return
	}
	tmp := filepath.Join(b.opts.Dir, "checkpoint.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return
	}
	if err := os.Rename(tmp, filepath.Join(b.opts.Dir, "checkpoint")); err != nil {
		return
	}
	b.ckLast = string(data)
}

// Wait returns when every record appended so far is acknowledged, or when
// ctx ends.
func (b *Buffer) Wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		if b.stats.Records == 0 && b.reserved == 0 {
			b.mu.Unlock()
			return nil
		}
		ch := b.notify
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns a snapshot.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.Bytes = b.bytes + b.reserved
	s.Segments = len(b.segs)
	var undelivered int64
	for i := b.readSeg; i < len(b.segs); i++ {
		n := len(b.segs[i].ends)
		if i == b.readSeg {
			n -= b.readIdx
		}
		undelivered += int64(n)
	}
	s.Undelivered = undelivered
	return s
}

// Close flushes pending appends, persists the checkpoint and closes the
// files. Unacknowledged records stay on disk for the next Open.
func (b *Buffer) Close() error {
	b.closeOnce.Do(b.close)
	return nil
}

func (b *Buffer) close() {
	close(b.stop)
	b.wg.Wait()
	b.mu.Lock()
	b.closed = true
	// An append that slipped in after the committer's last round.
	if p := b.cur; len(p.ends) > 0 {
		b.reserved -= int64(len(p.buf))
		p.err = ErrClosed
		b.cur = &pendingBatch{done: make(chan struct{})}
		close(p.done)
	}
	b.broadcastLocked()
	spareOut := b.spareOut
	b.spareOut = false
	b.mu.Unlock()
	if spareOut {
		// An unused spare holds no records: remove it rather than leave a
		// zero-filled file for recovery to clear.
		if r := <-b.spare; r.seg != nil {
			r.seg.st.Remove()
		}
	}
	b.removeWG.Wait()
	b.closeSegments()
}

func (b *Buffer) closeSegments() {
	for _, s := range b.segs {
		s.st.Close()
	}
}
