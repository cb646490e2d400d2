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

type pendingBatch struct {
	buf  []byte
	ends []int // end offsets inside buf
	done chan struct{}
	err  error
}

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
		seg, err := b.createSegment(id, true)
		b.spare <- spareResult{seg, err}
	}()
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
