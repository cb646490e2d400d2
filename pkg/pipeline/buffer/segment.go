package buffer

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"syscall"
)

type segment struct {
	id      uint64
	st      storage
	path    string   // the file ("" in memory mode)
	format  int      // framing: formatV3, or the older formatV2 or formatV1
	seal    uint32   // sealOf(id): what LDBUF3 frame headers are checksummed from
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
	reused bool // made of a fully acknowledged segment's file (reuseSegment)
	// allocEnd is the end of the blocks the file holds past size: zeros
	// it was preallocated with or, in a reused file, the leftover of the
	// segment it held before (0 when there are none: writes extend the
	// file). Only the committer uses it.
	allocEnd int64
	// lastPage holds the committed bytes of the block the data ends in,
	// [size rounded down to directBlock, size): a direct write starts at
	// that block and writes them again (writeBatch). Set when the segment
	// is made (its magic), nil in a recovered one, which is never written,
	// and in memory, which has no direct writes;
	// only the committer uses it after that.
	lastPage []byte
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

// offsetOf is where the frame holding record i starts.
func (s *segment) offsetOf(i int) int64 { return frameStart(s.ends, s.starts, i) }

// frameFirst is the index of the first record in the frame holding
// record i: the records of a group share their frame's end.
func frameFirst(ends []uint32, i int) int {
	if i > 0 && ends[i-1] == ends[i] {
		e := ends[i]
		return sort.Search(i, func(j int) bool { return ends[j] >= e })
	}
	return i
}

// frameStart is where the frame holding record i starts, given each
// record's end and the starts of frames that do not begin where the one
// before ended (damage between them), keyed by their first record.
func frameStart(ends []uint32, starts map[int]uint32, i int) int64 {
	i = frameFirst(ends, i)
	if st, ok := starts[i]; ok {
		return int64(st)
	}
	if i == 0 {
		return int64(len(segmentMagic))
	}
	return int64(ends[i-1])
}

// newSegment creates the first active segment at Open, made of a kept
// file or preallocated, like the spares that follow it: in a plain file
// every commit extends the file, and its fdatasync then writes the new
// size and blocks too, which made commits of the first 32 MiB of every
// run take 5-36 ms instead of 0.3-0.6 (the 32-sender ack tail). A plain
// one when preallocating fails (a full disk), as at a rotation.
func (b *Buffer) newSegment() error {
	var seg *segment
	err := errors.New("no file kept for reuse")
	if st := b.takeReusable(); st != nil {
		seg, err = b.reuseSegment(st, b.nextID)
	}
	if err != nil {
		seg, err = b.createSegment(b.nextID, true)
	}
	if err != nil {
		seg, err = b.createSegment(b.nextID, false)
	}
	if err != nil {
		return err
	}
	b.countNewLocked(seg)
	b.addSegment(seg)
	return nil
}

// countNewLocked counts a segment about to become active: in
// Stats.ReusedSegments when it is made of a kept file, in
// Stats.PlainSegments when it is a file without preallocated blocks
// (memory has none to have).
func (b *Buffer) countNewLocked(seg *segment) {
	switch {
	case seg.reused:
		b.stats.ReusedSegments++
	case seg.allocEnd == 0 && !b.opts.Memory:
		b.stats.PlainSegments++
	}
}

// createSegment makes a segment's storage; for files that is I/O (create,
// header, fsync of file and directory), done without holding b.mu. A
// failure leaves no file behind and is a WriteError (OpRotate).
func (b *Buffer) createSegment(id uint64, prealloc bool) (*segment, error) {
	seg := &segment{id: id, format: formatV3, seal: sealOf(id), lastPage: startPage(segmentMagic)}
	if b.opts.Memory {
		// Memory has no direct writes, so no block to write again.
		seg.lastPage = nil
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
		if err := preallocate(st, int64(len(segmentMagic)), b.opts.SegmentBytes); err != nil {
			return fail(fmt.Errorf("preallocating: %w", err))
		}
		if err := st.SeekTo(int64(len(segmentMagic))); err != nil {
			return fail(err)
		}
		seg.allocEnd = b.opts.SegmentBytes
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

// preallocate makes [from, to) of st read as zeros on blocks the
// filesystem has already given the file, so that commits overwrite
// blocks and their fdatasync has no file size to journal. A file asks
// the filesystem to reserve them (allocator: fallocate): nothing is
// written. Writing the zeros instead doubled what the disk writes under
// a flood, and every commit meanwhile also flushed the zeros written
// since the one before. With 32 senders at full rate the pipeline acked
// 1.87-2.39M events/s over reserved blocks against 1.26-1.88M over
// written zeros, with 2 the same, and at 750k events/s commits over 3.2
// ms fell from 79-102 to 18-38 per 3M events (alternating runs). An
// fdatasync after the first write into reserved blocks also journals
// them as written: 0.1 ms more for a 250 KB commit in a standalone test,
// not seen in the pipeline's mean commit (0.48-0.52 ms against
// 0.62-0.67 in those runs). Where the filesystem cannot reserve blocks,
// the zeros are written, around the page cache where it allows
// (directWriter); other storage, or what is left, goes through Write. A
// full disk is an error either way.
func preallocate(st storage, from, to int64) error {
	if a, ok := st.(allocator); ok {
		err := a.allocate(from, to)
		if err == nil || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return err
		}
	}
	if dw, ok := st.(directWriter); ok {
		from += dw.writeZerosDirect(from, to)
		if err := st.SeekTo(from); err != nil {
			return err
		}
	}
	if from >= to {
		return nil
	}
	// After the direct writes only an unaligned tail is left: a buffer
	// its size, not a MiB.
	zero := make([]byte, min(1<<20, to-from))
	for n := from; n < to; {
		k := min(int64(len(zero)), to-n)
		if err := writeFull(st, zero[:k]); err != nil {
			return err
		}
		n += k
		// Sync as we go (every 4 MiB): a large pile of dirty zeros would
		// have to be written out before the next journal commit, which
		// an appender's fdatasync may be waiting for.
		if (n-from)%(4<<20) == 0 {
			st.Sync()
		}
	}
	return nil
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
		if !b.keepForReuse(seg.st) {
			seg.st.Remove()
		}
	}()
}

// keepForReuse keeps the file of a fully acknowledged segment for a later
// spare instead of unlinking it, when it is at least a segment long (its
// blocks are all there) and the files kept fit in MaxBytes beside the
// bytes held, so that disk use stays within MaxBytes plus the spare and
// the active segment's overshoot (trimReusableLocked gives them back as
// the bytes held grow). On this machine's ext4 an fdatasync of 250 KB
// written over blocks the file already held took 0.21 ms at the median
// against 0.42 ms into blocks reserved with fallocate (which also writes
// the extent tree), and unlinking ten 32 MiB segments while commits ran
// raised their mean from 0.38-0.47 ms to 0.66-0.76 ms, with 10-13 ms
// stalls (the freed blocks are discarded). Writing zeros over a new file
// instead costs the disk as much as the conversion saves: 0.35-0.46 ms
// commits with a zeroing writer beside them. It runs without b.mu (an
// fstat).
func (b *Buffer) keepForReuse(st storage) bool {
	if b.opts.Memory {
		return false
	}
	size, err := st.Size()
	if err != nil || size < b.opts.SegmentBytes {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || !b.roomForReuseLocked(1) {
		return false
	}
	b.reusable = append(b.reusable, st)
	return true
}

// roomForReuseLocked reports whether n more files kept for reuse fit in
// MaxBytes beside the bytes held and those already kept.
func (b *Buffer) roomForReuseLocked(n int) bool {
	return b.bytes+b.reserved+int64(len(b.reusable)+n)*b.opts.SegmentBytes <= b.opts.MaxBytes
}

// roomForReuse is roomForReuseLocked under the lock.
func (b *Buffer) roomForReuse(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.roomForReuseLocked(n)
}

// trimReusableLocked removes files kept for reuse that no longer fit in
// MaxBytes beside the bytes held.
func (b *Buffer) trimReusableLocked() {
	for n := len(b.reusable); n > 0 && !b.roomForReuseLocked(0); n-- {
		st := b.reusable[n-1]
		b.reusable = b.reusable[:n-1]
		b.removeWG.Add(1)
		go func() {
			defer b.removeWG.Done()
			st.Remove()
		}()
	}
}

// emptySegment makes a kept file read as an empty segment, durably: the
// reused magic, then a terminator; what followed stays, sealed with the
// old id.
func emptySegment(st storage) error {
	head := append(append([]byte(nil), segmentMagicReused...), make([]byte, frameHeaderLen)...)
	if err := st.SeekTo(0); err != nil {
		return err
	}
	if err := writeFull(st, head); err != nil {
		return err
	}
	return st.Sync()
}

// takeReusable returns a file kept for reuse, or nil.
func (b *Buffer) takeReusable() storage {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.reusable)
	if n == 0 {
		return nil
	}
	st := b.reusable[n-1]
	b.reusable = b.reusable[:n-1]
	return st
}

// reuseSegment makes segment id of a file kept for reuse: its magic
// becomes the reused one, followed by a terminator, durably and under its
// old name first, so that after a crash at any step the file holds either
// its old, acknowledged segment or an empty one; then it takes the new
// name, and the directory is synced before records go into it. Past the
// terminator the old frames stay, sealed with the old id: nothing to
// recovery. On failure the file is removed and the error returned.
func (b *Buffer) reuseSegment(st storage, id uint64) (*segment, error) {
	path := filepath.Join(b.opts.Dir, segName(id))
	fail := func(err error) (*segment, error) {
		st.Remove()
		return nil, &WriteError{Op: OpRotate, Path: path, Err: err}
	}
	size, err := st.Size()
	if err != nil {
		return fail(err)
	}
	if err := emptySegment(st); err != nil {
		return fail(err)
	}
	if err := st.Rename(path); err != nil {
		return fail(err)
	}
	if err := b.opts.fs.SyncDir(b.opts.Dir); err != nil {
		return fail(err)
	}
	if err := st.SeekTo(int64(len(segmentMagic))); err != nil {
		return fail(err)
	}
	return &segment{id: id, st: st, path: path, format: formatV3, seal: sealOf(id),
		size: int64(len(segmentMagic)), allocEnd: size, reused: true, lastPage: startPage(segmentMagicReused)}, nil
}

// startPage is a new segment's lastPage: its magic, with room for the
// rest of the block.
func startPage(magic []byte) []byte {
	return append(make([]byte, 0, directBlock), magic...)
}

func segName(id uint64) string { return fmt.Sprintf("seg-%016d.log", id) }
