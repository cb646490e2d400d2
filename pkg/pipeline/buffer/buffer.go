// Package buffer is the pipeline's durable on-disk queue: append-only
// segment files of checksummed records, group commit (one fdatasync covers
// every append that arrived while the previous one ran, and Append returns
// only once its records are on disk), recovery that truncates a torn tail,
// skips damaged records (keeping a copy of their bytes) without losing the
// intact ones around them, and replays what Elasticsearch has not
// acknowledged, a size limit that pushes back instead of growing, and
// deletion of a segment once every record in it is acknowledged.
//
// A memory-only mode keeps the same format in memory; it loses everything
// on a crash and exists for benchmarks.
package buffer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Errors returned by Append and Next.
var (
	ErrFull   = errors.New("buffer: full")
	ErrClosed = errors.New("buffer: closed")
)

// Operations a WriteError names.
const (
	OpAppend = "append" // writing a batch of records to the active segment
	OpCommit = "commit" // its fdatasync
	OpRotate = "rotate" // creating the next segment
)

// WriteError is an append that failed on the disk: writing the batch, its
// fdatasync, or creating the next segment. None of the batch's records
// may be acknowledged to a sender. The buffer undoes the partial write
// and tries again with the next append, so it works again once the fault
// clears.
type WriteError struct {
	Op   string // OpAppend, OpCommit or OpRotate
	Path string // the segment file
	Err  error
}

func (e *WriteError) Error() string {
	cause := e.Err.Error()
	var pe *os.PathError
	if errors.As(e.Err, &pe) && pe.Path == e.Path {
		cause = pe.Op + ": " + pe.Err.Error() // the path once is enough
	}
	if e.DiskFull() {
		return fmt.Sprintf("buffer: %s %s: disk full (%s)", e.Op, e.Path, cause)
	}
	return fmt.Sprintf("buffer: %s %s: %s", e.Op, e.Path, cause)
}

func (e *WriteError) Unwrap() error { return e.Err }

// DiskFull reports whether the filesystem ran out of space (or quota).
func (e *WriteError) DiskFull() bool {
	return errors.Is(e.Err, syscall.ENOSPC) || errors.Is(e.Err, syscall.EDQUOT)
}

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
	// OnCorrupt, when set, is told about each run of damaged bytes: during
	// Open for what recovery found, and from Next when a record fails its
	// checksum as it is read. It must not call back into the Buffer.
	OnCorrupt func(Corruption)
	// OnWriteError, when set, is called for every group commit that failed
	// on the disk (before its appenders get the error), and with nil for
	// the first commit that succeeds after one. It runs on the committer:
	// it must be quick and must not call back into the Buffer.
	OnWriteError func(*WriteError)

	fs fileSystem // segment files; tests inject faults here
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
	if o.fs == nil {
		o.fs = osFS{}
	}
}

// Recovery tells what Open found on disk.
type Recovery struct {
	Segments       int   `json:"segments"`        // segment files kept
	Records        int   `json:"records"`         // intact records in them
	Replay         int   `json:"replay"`          // records not acknowledged before: delivered again
	TruncatedBytes int64 `json:"truncated_bytes"` // torn tail bytes cut off (a write a crash interrupted)
	Removed        int   `json:"removed"`         // fully acknowledged segment files deleted
	CorruptRegions int   `json:"corrupt_regions"` // runs of damaged bytes (see Buffer.Corruptions)
	CorruptRecords int   `json:"corrupt_records"` // estimated records lost with them
}

// Stats is a snapshot of the buffer.
type Stats struct {
	Bytes          int64  // bytes held, segments plus pending appends
	Segments       int    // live segments
	Records        int64  // records appended and not yet acknowledged
	Appended       uint64 // records made durable since Open
	Acked          uint64 // records acknowledged since Open
	Commits        uint64 // fsyncs (group commits) since Open
	Full           uint64 // appends refused for lack of space
	Undelivered    int64  // records durable but not yet handed out by Next
	CorruptRecords uint64 // records lost to damaged bytes (estimated), at recovery or when read
	WriteErrors    uint64 // group commits that failed (a WriteError to each of their appenders)
}

type segment struct {
	id      uint64
	st      storage
	path    string   // the file ("" in memory mode)
	format  int      // framing: formatV2, or formatV1 for segments written before it
	size    int64    // committed (durable) bytes
	ends    []uint32 // end offset of each committed record
	sealed  bool
	acked   []uint64 // bitmap by record index
	nAcked  int
	prefix  int // leading records all acknowledged
	removed bool
	// starts holds the start of each record that does not begin where the
	// previous one ended: damaged bytes lie between them. Nil for a
	// segment without damage; never changed after recovery.
	starts map[int]uint32
	// pinned keeps the file on disk after its records are acknowledged:
	// it holds damaged bytes that could not be copied to the quarantine.
	pinned bool
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
	if st, ok := s.starts[i]; ok {
		return int64(st)
	}
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
	// dirty: a failed write left bytes past the active segment's committed
	// size and truncating them failed too; the next commit retries that
	// before writing.
	dirty        bool
	writeFailing bool // the last commit failed
	stats        Stats
	ckDirty      bool
	ckLast       string
	recovery     Recovery
	corrupt      []Corruption

	wg        sync.WaitGroup
	stop      chan struct{}
	closeOnce sync.Once

	// The next segment is created and zero-filled ahead of time, so that
	// a rotation costs no I/O and fdatasync on a preallocated file has no
	// file size to journal.
	spare        chan spareResult
	spareOut     bool // a spare is being prepared or waits in spare
	spareDiscard bool // ... and will be removed when it arrives

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
		if opts.OnCorrupt != nil {
			for _, c := range b.corrupt {
				opts.OnCorrupt(c)
			}
		}
	}
	if len(b.segs) == 0 || b.segs[len(b.segs)-1].sealed {
		if err := b.newSegment(); err != nil {
			b.closeSegments()
			return nil, err
		}
	}
	b.wg.Add(2)
	go b.committer()
	go b.checkpointer()
	return b, nil
}

// Recovery reports what Open found.
func (b *Buffer) Recovery() Recovery { return b.recovery }

// Corruptions lists the damaged bytes found since Open: by recovery, and
// in records that failed their checksum when read.
func (b *Buffer) Corruptions() []Corruption {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Corruption(nil), b.corrupt...)
}

// Dir is the buffer directory ("" in memory mode).
func (b *Buffer) Dir() string {
	if b.opts.Memory {
		return ""
	}
	return b.opts.Dir
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
// header, fsync of file and directory), done without holding b.mu. A
// failure leaves no file behind and is a WriteError (OpRotate).
func (b *Buffer) createSegment(id uint64, prealloc bool) (*segment, error) {
	seg := &segment{id: id, format: formatV2}
	if b.opts.Memory {
		m := &memStorage{}
		m.Write(segmentMagic)
		seg.st = m
		seg.size = int64(len(segmentMagic))
		return seg, nil
	}
	path := filepath.Join(b.opts.Dir, segName(id))
	seg.path = path
	fail := func(err error) (*segment, error) {
		if seg.st != nil {
			seg.st.Remove()
		}
		return nil, &WriteError{Op: OpRotate, Path: path, Err: err}
	}
	st, err := b.opts.fs.Create(path)
	if err != nil {
		return fail(err)
	}
	seg.st = st
	if err := writeFull(st, segmentMagic); err != nil {
		return fail(err)
	}
	if prealloc {
		// Zeros end a segment for recovery (no sync marker there).
		zero := make([]byte, 1<<20)
		for n := int64(len(segmentMagic)); n < b.opts.SegmentBytes; n += int64(len(zero)) {
			if err := writeFull(st, zero[:min(int64(len(zero)), b.opts.SegmentBytes-n)]); err != nil {
				return fail(fmt.Errorf("preallocating: %w", err))
			}
			// Sync as we go: a large pile of dirty zeros would have to
			// be written out before the next journal commit, which an
			// appender's fdatasync may be waiting for.
			if (n/int64(len(zero)))%4 == 3 {
				st.Sync()
			}
		}
		if err := st.SeekTo(int64(len(segmentMagic))); err != nil {
			return fail(err)
		}
	}
	if err := st.Sync(); err != nil {
		return fail(err)
	}
	// The new file's directory entry must be durable before records in
	// it are acknowledged to senders.
	if err := b.opts.fs.SyncDir(b.opts.Dir); err != nil {
		return fail(err)
	}
	seg.size = int64(len(segmentMagic))
	return seg, nil
}

// writeFull writes all of p; a short write without an error is one.
func writeFull(st storage, p []byte) error {
	n, err := st.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return err
}

func (b *Buffer) addSegment(seg *segment) {
	if seg.id >= b.nextID {
		b.nextID = seg.id + 1
	}
	b.bytes += seg.size
	b.segs = append(b.segs, seg)
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
		if len(r.ID) > MaxIDLen || len(r.Tag) > MaxTagLen || encodedLen(r)-frameHeaderLen > b.opts.MaxRecordBytes {
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
	// fail refuses the batch; b.mu is held.
	fail := func(err *WriteError) {
		b.reserved -= int64(len(p.buf))
		p.err = err
		b.stats.WriteErrors++
		b.writeFailing = true
		b.mu.Unlock()
		b.notifyWrite(err)
		close(p.done)
	}
	seg := b.segs[len(b.segs)-1]
	if b.dirty {
		if err := seg.st.Truncate(seg.size); err != nil {
			fail(&WriteError{Op: OpAppend, Path: seg.path, Err: fmt.Errorf("removing a failed write: %w", err)})
			return
		}
		b.dirty = false
	}
	if seg.size > int64(len(segmentMagic)) && seg.size+int64(len(p.buf)) > b.opts.SegmentBytes ||
		seg.size+int64(len(p.buf)) > 1<<32-1 {
		// Take the spare prepared in the background since the active
		// segment was a quarter full. Only the committer adds segments, so ids
		// stay in order.
		spareOut := b.spareOut && !b.spareDiscard
		b.mu.Unlock()
		var next *segment
		err := errors.New("no spare segment")
		if spareOut {
			select {
			case r := <-b.spare:
				next, err = r.seg, r.err
				b.mu.Lock()
				b.spareOut = false
				b.mu.Unlock()
			default:
				// Not ready (a slow disk): do not make every appender wait
				// for it. A plain segment now; the spare is removed when
				// it arrives (its id is lower, so it can no longer be
				// used), and the next one is prepared after that.
				b.mu.Lock()
				b.spareDiscard = true
				b.mu.Unlock()
				b.removeWG.Add(1)
				go func() {
					defer b.removeWG.Done()
					if r := <-b.spare; r.seg != nil {
						r.seg.st.Remove()
					}
					b.mu.Lock()
					b.spareOut, b.spareDiscard = false, false
					b.mu.Unlock()
				}()
			}
		}
		if err != nil {
			// No spare, or preallocation failed (a full disk, say): a
			// plain segment above the spare's id.
			b.mu.Lock()
			id := b.nextID
			b.nextID++
			b.mu.Unlock()
			next, err = b.createSegment(id, false)
		}
		b.mu.Lock()
		if err != nil {
			var we *WriteError
			if !errors.As(err, &we) {
				we = &WriteError{Op: OpRotate, Path: b.opts.Dir, Err: err}
			}
			fail(we)
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

	var err *WriteError
	if werr := writeFull(seg.st, p.buf); werr != nil {
		err = &WriteError{Op: OpAppend, Path: seg.path, Err: werr}
	} else if serr := seg.st.Sync(); serr != nil {
		err = &WriteError{Op: OpCommit, Path: seg.path, Err: serr}
	}

	b.mu.Lock()
	b.reserved -= int64(len(p.buf))
	if err != nil {
		// Undo the partial write so the segment stays a clean sequence of
		// records (after a failed fdatasync the kernel may have dropped
		// the pages, so the batch is written again, never trusted). If
		// that fails too, the next commit tries again before writing.
		if terr := seg.st.Truncate(start); terr != nil {
			b.dirty = true
		}
		p.err = err
		b.stats.WriteErrors++
		b.writeFailing = true
	} else {
		for _, e := range p.ends {
			seg.ends = append(seg.ends, uint32(start+int64(e)))
		}
		seg.size += int64(len(p.buf))
		b.bytes += int64(len(p.buf))
		// Prepare the next segment once this one is a quarter full: short
		// runs never pay for a preallocation they do not use.
		if !b.spareOut && seg.size > b.opts.SegmentBytes/4 {
			b.startSpareLocked()
		}
		b.stats.Appended += uint64(len(p.ends))
		b.stats.Records += int64(len(p.ends))
		b.stats.Commits++
	}
	recovered := err == nil && b.writeFailing
	if recovered {
		b.writeFailing = false
	}
	if cap(p.buf) <= 64<<20 {
		b.freeBuf = p.buf[:0]
	}
	p.buf = nil
	b.broadcastLocked()
	b.mu.Unlock()
	if err != nil || recovered {
		b.notifyWrite(err)
	}
	close(p.done)
}

// notifyWrite tells OnWriteError, before the batch's appenders learn the
// outcome, so what it logs comes first.
func (b *Buffer) notifyWrite(err *WriteError) {
	if b.opts.OnWriteError != nil {
		b.opts.OnWriteError(err)
	}
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
	var starts []int64 // only where damaged bytes lie between records
	if seg.starts != nil {
		starts = make([]int64, to-from)
		for i := range starts {
			starts[i] = seg.offsetOf(from + i)
		}
	}
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
	var bad []Corruption
	off := 0
	for i, e := range ends {
		if starts != nil {
			off = int(starts[i] - start)
		}
		end := int(int64(e) - start)
		r, _, err := decodeFrame(seg.format, data[off:end], b.opts.MaxRecordBytes)
		if err != nil {
			// Damaged after it was written (recovery or the commit found it
			// intact): this record is lost, the ones around it are not.
			r = Record{Corrupt: fmt.Errorf("segment %d record %d: %w", seg.id, from+i, err)}
			bad = append(bad, Corruption{Segment: segName(seg.id), From: start + int64(off), To: int64(e),
				Bytes: int64(end - off), Records: 1, Found: "read"})
		}
		r.Pos = Pos{Seg: seg.id, Idx: uint32(from + i)}
		recs = append(recs, r)
		off = end
	}
	if len(bad) > 0 {
		b.readCorrupt(bad, data, start)
	}
	return recs, nil
}

// readCorrupt keeps a copy of records that failed their checksum when read
// (data holds the segment's bytes from offset base) and reports them.
func (b *Buffer) readCorrupt(bad []Corruption, data []byte, base int64) {
	for i := range bad {
		c := &bad[i]
		if b.opts.Memory {
			c.QuarantineError = "memory buffer: nowhere to keep a copy"
		} else if err := b.quarantine(bytes.NewReader(data), base, c); err != nil {
			c.QuarantineError = err.Error()
		}
	}
	b.mu.Lock()
	for _, c := range bad {
		b.recordCorruptionLocked(c)
	}
	b.mu.Unlock()
	if b.opts.OnCorrupt != nil {
		for _, c := range bad {
			b.opts.OnCorrupt(c)
		}
	}
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
	if i >= len(b.segs) || b.segs[i] != seg || i == len(b.segs)-1 || seg.pinned {
		return // never remove the active segment, nor unquarantined damage
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
	if ck.Index > 0 {
		ck.Offset = int64(b.segs[0].ends[ck.Index-1])
	}
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
	spareOut := b.spareOut && !b.spareDiscard
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
