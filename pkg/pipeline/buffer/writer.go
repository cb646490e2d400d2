package buffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Operations a WriteError names.
const (
	OpAppend = "append" // writing a batch of records to the active segment
	OpCommit = "commit" // its fdatasync (a direct write that syncs itself fails as an append)
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

type pendingBatch struct {
	buf  []byte
	ends []int  // end offsets inside buf
	seal uint32 // the seal its frames were encoded with: the active segment's at its first append
	done chan struct{}
	err  error
	// direct: the committer wrote it around the page cache.
	direct bool
}

// Append makes recs durable and returns once they are (or with an error,
// in which case none of them may be acknowledged to a sender; some may
// still reach Elasticsearch, which their deterministic ids make harmless).
// It returns ErrFull when there is no room within FullWait.
func (b *Buffer) Append(ctx context.Context, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	// Records that share tag, ingest time and Raw (a forward request's
	// events) go in group frames, as many as maxGroupPayload takes: one
	// header and checksum per frame instead of per record, and 17 bytes
	// per record instead of 40 and the tag. For 1,000 events of 200
	// bytes that is 218 bytes an event instead of 252, framed in 20 µs
	// instead of 46 (BenchmarkEncode).
	group := groupable(recs)
	n := 0
	if group {
		n = groupedLen(recs, b.opts.MaxRecordBytes)
	} else {
		for i := range recs {
			n += encodedLen(&recs[i])
		}
	}
	if int64(n) > b.opts.MaxBytes/2 {
		return fmt.Errorf("%w: %d bytes in one append", ErrTooLarge, n)
	}
	// Check every field before taking the lock: encoding below (into the
	// pending batch, without an intermediate copy) cannot fail.
	for i := range recs {
		r := &recs[i]
		size := encodedLen(r) - frameHeaderLen
		if group {
			size = groupHeaderLen + len(r.Tag) + groupEntrySize(r)
		}
		if len(r.ID) > MaxIDLen || len(r.Tag) > MaxTagLen || size > b.opts.MaxRecordBytes {
			return fmt.Errorf("%w: record of %d bytes, id %d bytes, tag %d bytes (max %d, %d, %d)", ErrTooLarge,
				size+frameHeaderLen, len(r.ID), len(r.Tag), b.opts.MaxRecordBytes, MaxIDLen, MaxTagLen)
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
	if len(p.ends) == 0 {
		p.seal = b.segs[len(b.segs)-1].seal
	}
	if cap(p.buf)-len(p.buf) < n {
		nb := make([]byte, len(p.buf), 2*cap(p.buf)+n)
		copy(nb, p.buf)
		p.buf = nb
	}
	if group {
		for rest := recs; len(rest) > 0; {
			k, plen := nextGroup(rest, b.opts.MaxRecordBytes)
			p.buf = appendGroup(p.buf, rest[:k], plen, p.seal)
			for range k {
				p.ends = append(p.ends, len(p.buf))
			}
			rest = rest[k:]
		}
	} else {
		for i := range recs {
			p.buf, _ = appendRecord(p.buf, &recs[i], p.seal)
			p.ends = append(p.ends, len(p.buf))
		}
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

// commit is one group commit, in steps that alternate between bookkeeping
// under b.mu and I/O without it (the locking rule in doc.go):
//
//  1. takeBatchLocked: the pending batch becomes this commit's, and appends
//     gather in a fresh one meanwhile;
//  2. activeSegmentLocked: the segment to write it to, after removing what
//     a failed write left and rotating when the batch does not fit; when
//     there is none, refuseLocked fails the batch;
//  3. writeBatch, unlocked: one write and one fdatasync, timed for
//     OnCommit;
//  4. settleLocked: publish the records, or undo the write, and wake
//     waiters;
//  5. answer: OnWriteError, then the batch's appenders.
func (b *Buffer) commit() {
	b.mu.Lock()
	p := b.takeBatchLocked()
	if p == nil {
		b.mu.Unlock()
		return
	}
	seg, err := b.activeSegmentLocked(int64(len(p.buf)))
	if err != nil {
		b.refuseLocked(p, err)
		b.mu.Unlock()
		b.answer(p, err, true)
		return
	}
	start := seg.size
	b.mu.Unlock()

	if seg.seal != p.seal {
		// Encoded while the segment before was active: the batch is the
		// one that rotated (or arrived during the rotation).
		reseal(p.buf, p.ends, seg.seal)
		p.seal = seg.seal
	}
	t0 := time.Now()
	err = b.writeBatch(p, seg, start)
	took := time.Since(t0)
	if err == nil && b.opts.OnCommit != nil {
		b.opts.OnCommit(took, len(p.buf))
	}

	b.mu.Lock()
	recovered := b.settleLocked(p, seg, start, err)
	b.mu.Unlock()
	b.answer(p, err, err != nil || recovered)
}

// takeBatchLocked returns the pending batch and puts an empty one in its
// place, or returns nil when nothing is pending. Double buffering: the
// next batch gathers in the buffer the previous commit wrote, while this
// one is written.
func (b *Buffer) takeBatchLocked() *pendingBatch {
	p := b.cur
	if len(p.ends) == 0 {
		return nil
	}
	b.cur = &pendingBatch{done: make(chan struct{}), buf: b.freeBuf, ends: b.freeEnds}
	b.freeBuf, b.freeEnds = nil, nil
	return p
}

// activeSegmentLocked returns the segment a batch of n bytes is written to:
// the active one, once the bytes of a failed write whose undo failed are
// truncated away, or the next one when the batch would take the active one
// past SegmentBytes or past what u32 offsets address. b.mu is held on
// entry and on return; rotating drops it meanwhile.
func (b *Buffer) activeSegmentLocked(n int64) (*segment, *WriteError) {
	seg := b.segs[len(b.segs)-1]
	if b.dirty {
		if err := seg.st.Truncate(seg.size); err != nil {
			return nil, &WriteError{Op: OpAppend, Path: seg.path, Err: fmt.Errorf("removing a failed write: %w", err)}
		}
		b.dirty = false
	}
	if seg.size > int64(len(segmentMagic)) && seg.size+n > b.opts.SegmentBytes ||
		seg.size+n > 1<<32-1 {
		return b.rotateLocked(seg)
	}
	return seg, nil
}

// refuseLocked fails a batch that had no segment to go to: none of its
// records was written.
func (b *Buffer) refuseLocked(p *pendingBatch, err *WriteError) {
	b.reserved -= int64(len(p.buf))
	p.err = err
	b.stats.WriteErrors++
	b.writeFailing = true
}

// writeBatch writes buf at the end of seg (offset start) and makes it
// durable. It runs without b.mu: only the committer writes segments, and
// past every committed record.
//
// Within the file's blocks (allocEnd) the write goes on with zeros past a
// frame header's worth to the next page boundary. In a reused file those
// zeros are the terminator recovery stops at: past them lies the earlier
// segment's leftover, which the next commit overwrites from end on.
//
// There the write goes around the page cache (O_DIRECT), from the start
// of the block the segment's data ends in: its committed bytes
// (lastPage), the batch and the zeros, copied into one aligned buffer.
// Through the page cache, the write copies the batch into pages that
// fdatasync then writes back; directly, the disk has the bytes when the
// write returns and fdatasync only flushes its cache (and journals blocks
// that fallocate reserved). On this machine's ext4 a 230 KB commit then
// took 0.16-0.24 ms instead of 0.37-0.39 ms in a standalone test, and
// with two senders the pipeline acked 1.95-2.14M events/s (1.03-1.15 of
// Fluent Bit's rate in the same runs) where it acked 1.54-1.76M (0.75-0.86)
// before, with 32 senders 2.96-3.67M where 1.74-3.08M (bench/pipeline.sh);
// on a slower stretch of the disk, alternating the two builds, 9% more
// at two senders (commits 0.44-0.47 ms against 0.53-0.60). The direct
// write also makes itself durable (RWF_DSYNC, fileStorage.writeDirect),
// so no fdatasync follows it; when that flush fails, the WriteError says
// OpAppend, as the write does.
// Elsewhere (past allocEnd, a plain segment, a filesystem that refuses
// O_DIRECT) the write goes through the page cache: a write
// that ends inside a page the cache does not hold would make the
// filesystem read that block first, which the zeros to the page boundary
// avoid. The two never overlap in time, and the page cache stays
// coherent with direct writes (doc.go, Reading).
func (b *Buffer) writeBatch(p *pendingBatch, seg *segment, start int64) *WriteError {
	buf := p.buf
	end := start + int64(len(buf))
	padEnd := min(alignUp(end+frameHeaderLen, pageSize), seg.allocEnd)
	direct, synced, err := b.writeDirect(seg, start, buf, padEnd)
	if err == nil && !direct {
		err = writeBuffered(seg.st, start, buf, padEnd)
	}
	if err != nil {
		seg.allocEnd = 0
		return &WriteError{Op: OpAppend, Path: seg.path, Err: err}
	}
	if !synced {
		if err := seg.st.Sync(); err != nil {
			seg.allocEnd = 0
			return &WriteError{Op: OpCommit, Path: seg.path, Err: err}
		}
	}
	p.direct = direct
	if seg.lastPage != nil {
		seg.lastPage = lastPageAfter(seg.lastPage, buf, end)
	}
	return nil
}

// writeDirect is writeBatch's write around the page cache, when seg's
// storage and blocks allow it: direct is false when it did not write
// (the caller writes through the page cache), synced true when the write
// was also made durable (the caller skips its fdatasync), and err set
// when it failed. Only the committer uses b.directBuf.
func (b *Buffer) writeDirect(seg *segment, start int64, buf []byte, padEnd int64) (direct, synced bool, err error) {
	da, ok := seg.st.(directAppender)
	if !ok || padEnd%directBlock != 0 || padEnd <= start+int64(len(buf)) ||
		seg.lastPage == nil || int64(len(seg.lastPage)) != start%directBlock {
		return false, false, nil
	}
	off := start - int64(len(seg.lastPage))
	w := alignedBuf(b.directBuf, int(padEnd-off))
	n := copy(w, seg.lastPage)
	n += copy(w[n:], buf)
	clear(w[n:])
	synced, err = da.writeDirect(w, off, true)
	// Kept for the next commit, as the batch buffers are, unless a burst
	// made it large.
	if cap(w) <= maxKeptBuf {
		b.directBuf = w[:0]
	} else {
		b.directBuf = nil
	}
	if errors.Is(err, errNoDirect) {
		return false, false, nil
	}
	return err == nil, synced && err == nil, err
}

// writeBuffered writes buf at start through the page cache, with zeros
// after it up to padEnd.
func writeBuffered(st storage, start int64, buf []byte, padEnd int64) error {
	if err := st.SeekTo(start); err != nil {
		return err
	}
	if pad := padEnd - start - int64(len(buf)); pad > 0 {
		buf = append(buf, make([]byte, pad)...)
	}
	return writeFull(st, buf)
}

// lastPageAfter is a segment's lastPage once buf, written where the
// committed bytes in last end, is committed up to end.
func lastPageAfter(last, buf []byte, end int64) []byte {
	r := int(end % directBlock)
	if r > len(buf) {
		return append(last, buf...) // still in the same block
	}
	return append(last[:0], buf[len(buf)-r:]...)
}

// maxKeptBuf: a batch or direct-write buffer larger than this (a burst
// made it so) goes back to the GC instead of serving the next commit.
const maxKeptBuf = 64 << 20

// pageSize is the page cache's unit on the platforms logdoctor runs on.
const pageSize = 4096

func alignUp(n, to int64) int64 { return (n + to - 1) / to * to }

// settleLocked ends a batch written at offset start of seg: when err is
// nil its records are published, else the write is undone. It reports
// whether this commit is the first to succeed after failures.
func (b *Buffer) settleLocked(p *pendingBatch, seg *segment, start int64, err *WriteError) (recovered bool) {
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
		b.publishLocked(p, seg, start)
	}
	recovered = err == nil && b.writeFailing
	if recovered {
		b.writeFailing = false
	}
	if cap(p.buf) <= maxKeptBuf {
		b.freeBuf = p.buf[:0]
		// Its ends come with it: 8 bytes a record, and every record
		// takes 16 bytes of buf at least, so they are bounded with it.
		b.freeEnds = p.ends[:0]
	}
	p.buf, p.ends = nil, nil
	b.broadcastLocked()
	return recovered
}

// publishLocked makes a durable batch's records visible to Next and counts
// them.
func (b *Buffer) publishLocked(p *pendingBatch, seg *segment, start int64) {
	for _, e := range p.ends {
		seg.ends = append(seg.ends, uint32(start+int64(e)))
	}
	seg.size += int64(len(p.buf))
	b.bytes += int64(len(p.buf))
	if len(b.reusable) > 0 {
		b.trimReusableLocked()
	}
	// Prepare the next segment once this one is a quarter full: short
	// runs never pay for a preallocation they do not use.
	if !b.spareOut && seg.size > b.opts.SegmentBytes/4 {
		b.startSpareLocked()
	}
	b.stats.Appended += uint64(len(p.ends))
	b.stats.AppendedBytes += uint64(len(p.buf))
	b.stats.Records += int64(len(p.ends))
	b.stats.Commits++
	if p.direct {
		b.stats.DirectCommits++
	}
}

// answer ends a commit. OnWriteError hears first, when the batch failed or
// is the first to succeed after failures, so what it logs comes before
// whatever the batch's appenders do with their answer.
func (b *Buffer) answer(p *pendingBatch, err *WriteError, tell bool) {
	if tell && b.opts.OnWriteError != nil {
		b.opts.OnWriteError(err)
	}
	close(p.done)
}

// Rotation: moving to the spare segment, or to a plain one.

type spareResult struct {
	seg *segment
	err error
}

// startSpareLocked reserves the next id and prepares that segment in the
// background.
func (b *Buffer) startSpareLocked() {
	id := b.nextID
	b.nextID++
	b.spareOut = true
	go func() {
		var seg *segment
		var err error
		if st := b.takeReusable(); st != nil {
			seg, err = b.reuseSegment(st, id)
		}
		if seg == nil {
			seg, err = b.createSegment(id, true)
		}
		b.spare <- spareResult{seg, err}
	}()
}

// rotateLocked seals seg, the active segment, and makes the next one
// active. Only the committer adds segments, so ids stay in order. b.mu is
// held on entry and on return, and dropped while the next segment is
// taken or created.
func (b *Buffer) rotateLocked(seg *segment) (*segment, *WriteError) {
	spareOut := b.spareOut && !b.spareDiscard
	b.mu.Unlock()
	if da, ok := seg.st.(directAppender); ok {
		// Still the committer's: nothing removes it before it is sealed.
		da.closeDirect()
	}
	next, err := b.nextSegment(spareOut)
	b.mu.Lock()
	if err != nil {
		var we *WriteError
		if !errors.As(err, &we) {
			we = &WriteError{Op: OpRotate, Path: b.opts.Dir, Err: err}
		}
		return nil, we
	}
	// The next segment holds about as many records as this one: its
	// table of ends is made that size once, not grown by copying on the
	// commits that outgrow it (page faults on fresh memory, under b.mu).
	if next.ends == nil {
		next.ends = make([]uint32, 0, len(seg.ends)+len(seg.ends)/8)
	}
	b.countNewLocked(next)
	b.addSegment(next)
	seg.sealed = true
	if seg.done() {
		b.removeLocked(seg)
	}
	return b.segs[len(b.segs)-1], nil
}

// nextSegment returns the segment to rotate to: the spare, prepared in the
// background since the active segment was a quarter full, when one is on
// its way (spareOut) and ready; else a plain segment above the spare's id
// (no spare, one not ready yet, or a preallocation that failed, on a full
// disk say). It runs without b.mu.
func (b *Buffer) nextSegment(spareOut bool) (*segment, error) {
	if spareOut {
		if seg := b.takeSpare(); seg != nil {
			return seg, nil
		}
	}
	b.mu.Lock()
	id := b.nextID
	b.nextID++
	b.mu.Unlock()
	return b.createSegment(id, false)
}

// takeSpare returns the spare segment if it is ready; nil if it is not, or
// if preparing it failed. A spare that is not ready (a slow disk) is not
// waited for, which would make every appender wait: it is removed when it
// arrives (its id is below the plain segment taken instead, so it can no
// longer be used), and the next one is prepared after that. It runs
// without b.mu.
func (b *Buffer) takeSpare() *segment {
	select {
	case r := <-b.spare:
		b.mu.Lock()
		b.spareOut = false
		b.mu.Unlock()
		return r.seg
	default:
	}
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
	return nil
}
