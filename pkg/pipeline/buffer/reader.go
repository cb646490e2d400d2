package buffer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"
)

// Next hands out up to maxCount records (at most maxBytes of documents,
// but always at least one) not yet handed out. It blocks until at least
// one is available; when fewer than maxCount are, it waits up to linger for
// more. Records handed out are not handed out again in this process: the
// caller must Ack each one (after Elasticsearch has it, or after giving up
// on it). Unacknowledged records are replayed after a restart.
func (b *Buffer) Next(ctx context.Context, maxCount, maxBytes int, linger time.Duration) ([]Record, error) {
	return b.NextInto(ctx, nil, maxCount, maxBytes, linger)
}

// Scratch is memory NextInto reuses for the records it hands out and the
// bytes their documents point into. The zero value is ready; one per
// reading goroutine.
type Scratch struct {
	data []byte
	recs []Record
}

// NextInto is Next handing out records in sc's memory (nil: new memory):
// they and their documents are valid until sc is passed to NextInto
// again. A delivery loop that is done with a batch before it takes the
// next then reads without allocating: catching up a backlog, a batch's
// bytes and records were half of what the output allocated, and the
// collector ran for them.
func (b *Buffer) NextInto(ctx context.Context, sc *Scratch, maxCount, maxBytes int, linger time.Duration) ([]Record, error) {
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
			return b.takeLocked(seg, from, to, sc)
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
				return b.takeLocked(seg, from, to, sc)
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

// takeLocked reserves [from, to) of seg, unlocks, and reads them, into
// sc's memory when sc is not nil.
func (b *Buffer) takeLocked(seg *segment, from, to int, sc *Scratch) ([]Record, error) {
	b.readIdx = to
	// A group's records share a frame: reading from the middle of one
	// (the call before stopped there) reads it from its start.
	firstIdx := frameFirst(seg.ends, from)
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

	data := sc.bytes(int(end - start))
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
	recs := sc.records(to - from)
	var bad []Corruption
	off := 0
	// skip: records of the first frame (a group) handed out before.
	skip := from - firstIdx
	for i := 0; i < len(ends); {
		if starts != nil {
			off = int(starts[i] - start)
		}
		e := ends[i]
		end := int(int64(e) - start)
		// The frame's records in [from, to): a group's share its end.
		k := 1
		for i+k < len(ends) && ends[i+k] == e {
			k++
		}
		n := len(recs)
		var err error
		recs, _, err = appendFrameRecords(recs, seg.format, seg.seal, data[off:end], b.opts.MaxRecordBytes, skip)
		if err == nil && len(recs)-n < k {
			err = fmt.Errorf("%w: %d records in the frame, %d committed", ErrBadField, len(recs)-n+skip, k+skip)
		}
		if err != nil {
			// Damaged after it was written (recovery or the commit found it
			// intact): this frame's records are lost, the ones around it
			// are not.
			recs = recs[:n]
			for j := range k {
				recs = append(recs, Record{Corrupt: fmt.Errorf("segment %d record %d: %w", seg.id, from+i+j, err)})
			}
			bad = append(bad, Corruption{Segment: segName(seg.id), From: start + int64(off), To: int64(e),
				Bytes: int64(end - off), Records: k, Found: "read"})
		}
		// Records of the group past to are handed out by a later call.
		recs = recs[:n+k]
		for j := range k {
			recs[n+j].Pos = Pos{Seg: seg.id, Idx: uint32(from + i + j)}
		}
		skip = 0
		i += k
		off = end
	}
	if len(bad) > 0 {
		b.readCorrupt(bad, data, start)
	}
	if sc != nil {
		sc.recs = recs
	}
	return recs, nil
}

// bytes returns n bytes of sc's memory, or new ones.
func (sc *Scratch) bytes(n int) []byte {
	if sc == nil {
		return make([]byte, n)
	}
	if cap(sc.data) < n || cap(sc.data) > maxKeptBuf {
		sc.data = make([]byte, n)
	}
	sc.data = sc.data[:n]
	return sc.data
}

// records returns an empty record slice of capacity n at least, in sc's
// memory when it has room. The records of the batch before are
// overwritten as this one's are appended.
func (sc *Scratch) records(n int) []Record {
	if sc == nil || cap(sc.recs) < n {
		return make([]Record, 0, n)
	}
	return sc.recs[:0]
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
