package buffer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Recovery tells what Open found on disk.
type Recovery struct {
	Segments       int   `json:"segments"`        // segment files kept
	Records        int   `json:"records"`         // intact records in them
	Replay         int   `json:"replay"`          // records not acknowledged before: delivered again
	TruncatedBytes int64 `json:"truncated_bytes"` // torn tail bytes cut off (a write a crash interrupted)
	Removed        int   `json:"removed"`         // fully acknowledged segment files deleted
	KeptForReuse   int   `json:"kept_for_reuse"`  // fully acknowledged or empty segment files kept for new segments
	CorruptRegions int   `json:"corrupt_regions"` // runs of damaged bytes (see Buffer.Corruptions)
	CorruptRecords int   `json:"corrupt_records"` // estimated records lost with them
}

// Corruption is one run of damaged bytes in a segment: bytes that were
// written as records and no longer read as intact ones. Their records
// are lost; the bytes themselves are kept in the quarantine file.
type Corruption struct {
	Segment string `json:"segment"` // file name, e.g. seg-0000000000000001.log
	From    int64  `json:"from"`    // offset of the first damaged byte
	To      int64  `json:"to"`      // offset after the last one
	Bytes   int64  `json:"bytes"`
	// Records estimates the records lost with these bytes: exact when a
	// record's header survived, else from the sync markers and the
	// average record size. Zero for damage to records already delivered.
	Records int `json:"records_lost"`
	// Quarantine is the copy of the bytes under <dir>/corrupt; empty when
	// it could not be written (QuarantineError says why, and the segment
	// is then kept on disk instead of being deleted).
	Quarantine      string `json:"quarantine"`
	QuarantineError string `json:"quarantine_error,omitempty"`
	// Found is "recovery" (Open) or "read" (a record failed its checksum
	// when Next read it).
	Found string `json:"found"`
}

// CorruptDir is the directory under the buffer directory that receives
// copies of damaged bytes.
const CorruptDir = "corrupt"

// scanned is a segment file read by recovery, not yet accepted.
type scanned struct {
	id   uint64
	path string
	st   storage
	sc   *segScan
}

func (b *Buffer) recover() error {
	ck := readCheckpoint(b.opts.Dir)
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

	// Scan every segment before deciding anything: damage at the end of a
	// segment can be a torn write only if no later segment holds data.
	var found []scanned
	closeAll := func() {
		for _, f := range found {
			f.st.Close()
		}
	}
	var frameBytes int64
	var frameCount int
	var retired []storage // open files of acknowledged or empty segments
	var below []string    // files of segments below the checkpoint's
	for _, id := range ids {
		path := filepath.Join(b.opts.Dir, segName(id))
		b.nextID = id + 1
		if id < ck.Segment {
			// Fully acknowledged: kept for reuse, or its deletion was lost.
			below = append(below, path)
			continue
		}
		st, err := b.opts.fs.Open(path)
		if err != nil {
			closeAll()
			return fmt.Errorf("buffer: %w", err)
		}
		size, err := st.Size()
		var sc *segScan
		if err == nil {
			sc, err = scanSegmentData(st, size, b.opts.MaxRecordBytes, id)
		}
		if err != nil {
			st.Close()
			closeAll()
			return fmt.Errorf("buffer: scanning %s: %w", path, err)
		}
		// Bytes per record, for the records damaged bytes held: a
		// group's records share their frame's bytes.
		for i, e := range sc.ends {
			if i+1 == len(sc.ends) || sc.ends[i+1] != e {
				frameBytes += int64(e) - sc.start(i)
			}
		}
		frameCount += len(sc.ends)
		found = append(found, scanned{id: id, path: path, st: st, sc: sc})
	}
	newest := -1
	for i, f := range found {
		if f.sc.hasData() {
			newest = i
		}
	}
	avgFrame := int64(0)
	if frameCount > 0 {
		avgFrame = frameBytes / int64(frameCount)
	}
	for i, f := range found {
		done, err := b.recoverSegment(f, &ck, i == newest, avgFrame)
		if err != nil {
			for _, g := range found[i:] {
				g.st.Close()
			}
			for _, st := range retired {
				st.Close()
			}
			return err
		}
		if done {
			retired = append(retired, f.st)
		}
	}
	// Now that the bytes held are known: keep what fits for new segments.
	// Files below the checkpoint are opened only while there is room (a
	// directory could hold more of them than descriptors allow).
	for _, path := range below {
		if b.roomForReuse(len(retired) + 1) {
			if st, err := b.opts.fs.Open(path); err == nil {
				retired = append(retired, st)
				continue
			}
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("buffer: %w", err)
		}
		b.recovery.Removed++
	}
	for _, st := range retired {
		if b.keepForReuse(st) {
			b.recovery.KeptForReuse++
			continue
		}
		if err := st.Remove(); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("buffer: %w", err)
		}
		b.recovery.Removed++
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

// recoverSegment turns a scanned file into a sealed segment: a torn tail
// (only possible at the end of the newest data) is cut off as before;
// any other damage is corruption, copied to the quarantine directory and
// reported, and every intact record around it is kept. A segment with
// nothing left to deliver is not kept: when it has no damage it reports
// done, and the caller reuses or removes its file; else it is removed.
func (b *Buffer) recoverSegment(f scanned, ck *checkpoint, newest bool, avgFrame int64) (done bool, err error) {
	sc := f.sc
	name := segName(f.id)
	seg := &segment{id: f.id, st: f.st, path: f.path, format: sc.format, seal: sealOf(f.id), ends: sc.ends, starts: sc.starts, sealed: true}
	ackedTo := int64(0) // everything before this offset was acknowledged
	if f.id == ck.Segment {
		n := 0
		if ck.Offset > 0 {
			for n < len(seg.ends) && int64(seg.ends[n]) <= ck.Offset {
				n++
			}
			ackedTo = ck.Offset
		} else {
			n = min(ck.Index, len(seg.ends))
			if n > 0 {
				ackedTo = int64(seg.ends[n-1])
			}
		}
		for i := 0; i < n; i++ {
			seg.setAcked(i)
		}
		seg.prefix = n
	}

	var corrupt []Corruption
	var torn int64
	for j, d := range sc.damaged {
		if j == len(sc.damaged)-1 && d.from >= sc.end && newest && sc.tornOK {
			torn = d.to - d.from
			continue
		}
		c := Corruption{Segment: name, From: d.from, To: d.to, Bytes: d.to - d.from, Records: d.records, Found: "recovery"}
		if !d.exact && avgFrame > 0 && d.records > 0 {
			c.Records = max(c.Records, int((d.to-d.from)/avgFrame))
		}
		if d.to <= ackedTo {
			c.Records = 0 // delivered before the damage was found
		}
		corrupt = append(corrupt, c)
	}

	// Copy damaged bytes out before anything can delete them.
	for i := range corrupt {
		c := &corrupt[i]
		if err := b.quarantine(f.st, 0, c); err != nil {
			c.QuarantineError = err.Error()
			seg.pinned = true
		}
	}

	// A torn tail is cut off: nothing in it was ever acknowledged to a
	// sender. Otherwise only the unused preallocation goes; damaged bytes
	// stay where they are until the segment is retired.
	cut := max(sc.end, sc.nonZero)
	if torn > 0 {
		cut = sc.end
	}
	// A segment with nothing to deliver keeps its blocks for reuse.
	retire := len(corrupt) == 0 && seg.nAcked == len(seg.ends)
	if cut < sc.size && sc.hasData() && !retire {
		if err := f.st.Truncate(cut); err != nil {
			f.st.Close()
			return false, fmt.Errorf("buffer: truncating %s: %w", f.path, err)
		}
		if err := f.st.Sync(); err != nil {
			f.st.Close()
			return false, fmt.Errorf("buffer: %w", err)
		}
	}
	b.recovery.TruncatedBytes += torn
	seg.size = min(cut, sc.size)
	for _, c := range corrupt {
		b.recordCorruptionLocked(c)
	}
	b.recovery.CorruptRegions += len(corrupt)
	for _, c := range corrupt {
		b.recovery.CorruptRecords += c.Records
	}

	if seg.done() && !seg.pinned {
		if retire {
			return true, nil
		}
		// Damaged bytes, quarantined: not worth keeping, or the next
		// start would find them again.
		if err := f.st.Remove(); err != nil && !os.IsNotExist(err) {
			return false, fmt.Errorf("buffer: %w", err)
		}
		b.recovery.Removed++
		return false, nil
	}
	b.recovery.Segments++
	b.recovery.Records += len(seg.ends)
	b.recovery.Replay += len(seg.ends) - seg.nAcked
	b.stats.Records += int64(len(seg.ends) - seg.nAcked)
	b.segs = append(b.segs, seg)
	b.bytes += seg.size
	return false, nil
}

// quarantine copies c's bytes (read from r, which starts at segment offset
// base) to <dir>/corrupt/<segment>.<from>-<to>, durably, and sets
// c.Quarantine. A copy made by an earlier start (the
// damage is found again until its segment is retired) is kept.
func (b *Buffer) quarantine(r io.ReaderAt, base int64, c *Corruption) error {
	dir := filepath.Join(b.opts.Dir, CorruptDir)
	path := filepath.Join(dir, fmt.Sprintf("%s.%d-%d", c.Segment, c.From, c.To))
	if fi, err := os.Stat(path); err == nil && fi.Size() == c.Bytes {
		c.Quarantine = path
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".quarantine-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, io.NewSectionReader(r, c.From-base, c.Bytes))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = b.opts.fs.SyncDir(dir)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("quarantining %s [%d, %d): %w", c.Segment, c.From, c.To, err)
	}
	c.Quarantine = path
	return nil
}

// recordCorruptionLocked keeps c for Corruptions and Stats. The caller
// holds b.mu, or is Open.
func (b *Buffer) recordCorruptionLocked(c Corruption) {
	b.corrupt = append(b.corrupt, c)
	b.stats.CorruptRecords += uint64(c.Records)
}
