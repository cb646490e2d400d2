package buffer

import (
	"bytes"
	"encoding/binary"
	"io"
)

// segScan is what scanning one segment file found: its intact records,
// and the damaged bytes between and after them.
type segScan struct {
	format  int            // formatV1, formatV2 or formatV3; 0 when nothing was recognised
	seal    uint32         // sealOf(the segment's id), for LDBUF3 headers
	reused  bool           // an LDBUF3 segment in a file that held another before: leftover follows its data
	magicOK bool           // the file starts with a known magic
	ends    []uint32       // end offset of each intact record
	starts  map[int]uint32 // start of each record that does not begin where the previous one ended
	damaged []damage       // in file order, adjacent runs merged
	end     int64          // end of the last intact record, or of the magic
	nonZero int64          // end of the last non-zero byte of the file
	size    int64
	// tornOK says the damage after the last intact record can be a write
	// cut short by a crash: a frame whose header or payload stops at the
	// last non-zero byte. Only then may it be cut off silently.
	tornOK bool
	// v1Budget bounds the bytes checksummed while searching a V1 segment
	// for the next intact record: without a marker every offset is a
	// candidate, and payloads crafted to look like headers could make the
	// search quadratic. Past it the rest of the segment counts as damage.
	v1Budget int64
}

// damage is a run of bytes that is not an intact record (trailing zeros,
// the preallocated part of a segment, are not damage).
type damage struct {
	from, to int64
	// records is how many records the bytes held, as far as they tell:
	// one for a frame under an intact header, else one for the frame
	// expected at from plus one per sync marker after it (V1 has none, so
	// recovery also estimates from the size).
	records int
	exact   bool // exactly one frame under an intact header
}

func (s *segScan) hasData() bool { return len(s.ends) > 0 || len(s.damaged) > 0 }

// tail is the damage after the last intact record, if any.
func (s *segScan) tail() *damage {
	if n := len(s.damaged); n > 0 && s.damaged[n-1].from >= s.end {
		return &s.damaged[n-1]
	}
	return nil
}

// start is the offset of the frame holding record i.
func (s *segScan) start(i int) int64 { return frameStart(s.ends, s.starts, i) }

const scanChunk = 1 << 20

// window reads a file through a reused buffer. A slice it returns is valid
// until the next call.
type window struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
}

// get returns the bytes [off, off+n), fewer at the end of the file.
func (w *window) get(off int64, n int) ([]byte, error) {
	end := min(off+int64(n), w.size)
	if end <= off {
		return nil, nil
	}
	if off >= w.off && end <= w.off+int64(len(w.buf)) {
		return w.buf[off-w.off : end-w.off], nil
	}
	rd := int(min(max(end-off, scanChunk), w.size-off))
	if cap(w.buf) < rd {
		w.buf = make([]byte, rd)
	}
	w.buf = w.buf[:rd]
	m, err := w.r.ReadAt(w.buf, off)
	w.buf, w.off = w.buf[:m], off
	if int64(m) < end-off {
		if err != nil && err != io.EOF {
			return nil, err
		}
		return w.buf, nil
	}
	return w.buf[:end-off], nil
}

// lastNonZero returns the end of the last non-zero byte in [from, size).
func (w *window) lastNonZero(from int64) (int64, error) {
	for hi := w.size; hi > from; {
		lo := max(from, hi-scanChunk)
		b, err := w.get(lo, int(hi-lo))
		if err != nil {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return lo + int64(i) + 1, nil
			}
		}
		hi = lo
	}
	return from, nil
}

// scanSegmentData reads segment id and sorts its bytes into intact
// records and damage. Only I/O errors are errors.
func scanSegmentData(r io.ReaderAt, size int64, maxRecord int, id uint64) (*segScan, error) {
	w := &window{r: r, size: size}
	seal := sealOf(id)
	s := &segScan{size: size, seal: seal, end: min(int64(len(segmentMagic)), size), v1Budget: 64*size + 64<<20}
	nz, err := w.lastNonZero(0)
	if err != nil {
		return nil, err
	}
	s.nonZero = nz
	magic, err := w.get(0, len(segmentMagic))
	if err != nil {
		return nil, err
	}
	switch {
	case bytes.Equal(magic, segmentMagic):
		s.format, s.magicOK = formatV3, true
	case bytes.Equal(magic, segmentMagicReused):
		s.format, s.magicOK, s.reused = formatV3, true, true
	case bytes.Equal(magic, segmentMagicV2):
		s.format, s.magicOK = formatV2, true
	case bytes.Equal(magic, segmentMagicV1):
		s.format, s.magicOK = formatV1, true
	case nz <= int64(len(segmentMagic)) && (bytes.HasPrefix(segmentMagic, magic[:nz]) || bytes.HasPrefix(segmentMagicV2, magic[:nz]) || bytes.HasPrefix(segmentMagicV1, magic[:nz])):
		// Empty, or cut short while its header was written: no data.
		s.end = nz
		return s, nil
	}
	if !s.magicOK {
		// A damaged magic: read the rest as whichever format finds records.
		s.damaged = append(s.damaged, damage{from: 0, to: int64(len(segmentMagic))})
		for _, f := range []int{formatV3, formatV2, formatV1} {
			t := &segScan{format: f, seal: seal, size: size, nonZero: nz, end: int64(len(segmentMagic)), v1Budget: s.v1Budget,
				damaged: []damage{{from: 0, to: int64(len(segmentMagic))}}}
			if err := t.scanFrames(w, maxRecord); err != nil {
				return nil, err
			}
			if len(t.ends) > 0 {
				return t.finish(w, maxRecord)
			}
		}
		// Nothing recognisable: the whole file is damage.
		s.format = 0
		s.damaged = []damage{{from: 0, to: nz, records: 1}}
		return s, nil
	}
	if err := s.scanFrames(w, maxRecord); err != nil {
		return nil, err
	}
	if len(s.damaged) > 0 {
		// The magic may be the damage even when it reads as a valid one:
		// its sixth byte is the version, and one flipped bit turns
		// LDBUF3 into LDBUF2 or LDBUF1, under which not one record of the
		// segment reads. Read it as the other versions too and believe
		// whichever finds more intact records.
		best := s
		for _, other := range []int{formatV3, formatV2, formatV1} {
			if other == s.format {
				continue
			}
			t := &segScan{format: other, seal: seal, size: size, nonZero: nz, end: int64(len(segmentMagic)), v1Budget: s.v1Budget,
				damaged: []damage{{from: 0, to: int64(len(segmentMagic))}}}
			if err := t.scanFrames(w, maxRecord); err != nil {
				return nil, err
			}
			if len(t.ends) > len(best.ends) {
				best = t
			}
		}
		return best.finish(w, maxRecord)
	}
	return s.finish(w, maxRecord)
}

// addFrame records an intact frame of n records over [from, to).
func (s *segScan) addFrame(from, to int64, n int) {
	if from != s.end || (len(s.ends) == 0 && from != int64(len(segmentMagic))) {
		if s.starts == nil {
			s.starts = map[int]uint32{}
		}
		s.starts[len(s.ends)] = uint32(from)
	}
	for range n {
		s.ends = append(s.ends, uint32(to))
	}
	s.end = to
}

func (s *segScan) addDamage(d damage) {
	if n := len(s.damaged); n > 0 && s.damaged[n-1].to == d.from {
		p := &s.damaged[n-1]
		p.to, p.records, p.exact = d.to, p.records+d.records, false
		return
	}
	s.damaged = append(s.damaged, d)
}

// scanFrames walks the frames after the magic.
func (s *segScan) scanFrames(w *window, maxRecord int) error {
	if s.reused {
		return s.scanReused(w, maxRecord)
	}
	hdrLen := frameHeaderLen
	if s.format == formatV1 {
		hdrLen = frameHeaderLenV1
	}
	off := int64(len(segmentMagic))
	for off < s.nonZero {
		next, hdrOK, intact, records, err := s.frameAt(w, off, hdrLen, maxRecord)
		if err != nil {
			return err
		}
		if intact {
			s.addFrame(off, next, records)
			off = next
			continue
		}
		if hdrOK {
			// A damaged payload. Under an intact header (a checksum
			// vouches for it in V2 and V3, the next record in V1) it is
			// one frame: skip exactly that.
			trusted := s.format != formatV1
			if !trusted && next < s.nonZero {
				trusted, err = s.validAt(w, next, maxRecord)
				if err != nil {
					return err
				}
			}
			if trusted && next <= s.nonZero {
				s.addDamage(s.frameDamage(w, off, next))
				off = next
				continue
			}
		}
		// A damaged header (or a frame running past the end): resynchronise
		// on the next intact frame.
		q, err := s.resync(w, off+1, maxRecord)
		if err != nil {
			return err
		}
		if q < 0 {
			s.addDamage(damage{from: off, to: s.nonZero, records: 1 + s.markersIn(w, off, s.nonZero)})
			return nil
		}
		s.addDamage(damage{from: off, to: q, records: 1 + s.markersIn(w, off, q)})
		off = q
	}
	return nil
}

// frameDamage is the damage of the frame over [from, to), whose header is
// intact and payload is not: one record, or when the payload still reads
// as a group, the count it declares (an estimate: the count may be
// among the damaged bytes, so recovery also estimates from the size).
func (s *segScan) frameDamage(w *window, from, to int64) damage {
	d := damage{from: from, to: to, records: 1, exact: true}
	if s.format != formatV3 {
		return d
	}
	p, err := w.get(from+frameHeaderLen, int(min(to-from-frameHeaderLen, groupHeaderLen+MaxTagLen)))
	if err != nil || len(p) == 0 || p[0] != recordVersionGroup {
		return d
	}
	d.exact = false
	if _, _, _, n, _, err := groupHeader(p); err == nil && n >= 1 && n <= int(to-from)/groupEntryLen {
		d.records = n
	}
	return d
}

// frameAt looks at the frame starting at off: where it ends, when its
// header is intact and it fits in the file (hdrOK), whether all of it is
// (intact), and then how many records it holds.
func (s *segScan) frameAt(w *window, off int64, hdrLen, maxRecord int) (next int64, hdrOK, intact bool, records int, err error) {
	hdr, err := w.get(off, hdrLen+fixedPayloadLen)
	if err != nil {
		return 0, false, false, 0, err
	}
	plen, ok := s.header(hdr, maxRecord)
	next = off + int64(hdrLen+plen)
	if !ok || next > s.size || next > 1<<32-1 {
		return next, false, false, 0, nil
	}
	fb, err := w.get(off, hdrLen+plen)
	if err != nil {
		return 0, false, false, 0, err
	}
	records, _, err = frameRecordCount(s.format, s.seal, fb, maxRecord)
	return next, true, err == nil, records, nil
}

// header checks a frame header and returns the payload length it declares.
func (s *segScan) header(b []byte, maxRecord int) (int, bool) {
	if s.format != formatV1 {
		plen, err := frameHeader(b, s.format, s.seal, maxRecord)
		return plen, err == nil
	}
	if len(b) < frameHeaderLenV1+fixedPayloadLen {
		return 0, false
	}
	plen := int(binary.LittleEndian.Uint32(b))
	if plen < fixedPayloadLen || plen > maxRecord {
		return 0, false
	}
	// Cheap checks before a checksum over the payload: the version, and
	// an id and tag that fit.
	p := b[frameHeaderLenV1:]
	if p[0] != recordVersion || 2+int(p[1])+2 > plen {
		return 0, false
	}
	return plen, true
}

// validAt reports whether an intact frame starts at off.
func (s *segScan) validAt(w *window, off int64, maxRecord int) (bool, error) {
	hdrLen := frameHeaderLen
	if s.format == formatV1 {
		hdrLen = frameHeaderLenV1
	}
	hdr, err := w.get(off, hdrLen+fixedPayloadLen)
	if err != nil {
		return false, err
	}
	plen, ok := s.header(hdr, maxRecord)
	if !ok || off+int64(hdrLen+plen) > s.size {
		return false, nil
	}
	if s.format != formatV1 {
		return true, nil // the header checksum vouches for it
	}
	if s.v1Budget -= int64(plen); s.v1Budget < 0 {
		return false, nil
	}
	fb, err := w.get(off, hdrLen+plen)
	if err != nil {
		return false, err
	}
	_, _, err = frameRecordCount(s.format, s.seal, fb, maxRecord)
	return err == nil, nil
}

// resync finds the first intact frame at or after from, or -1. In V2 only
// positions holding the sync marker are tried; V1 has no marker, so every
// offset is, with the cheap header checks first.
func (s *segScan) resync(w *window, from int64, maxRecord int) (int64, error) {
	if s.format == formatV1 {
		for pos := from; pos < s.nonZero && s.v1Budget > 0; pos++ {
			ok, err := s.validAt(w, pos, maxRecord)
			if err != nil || ok {
				return pos, err
			}
		}
		return -1, nil
	}
	var chunk []byte // a copy: checking a candidate moves the window
	// The next frame is usually close: look at a little first, then more.
	n := 4096
	for pos := from; pos < s.nonZero; n = min(2*n, scanChunk) {
		b, err := w.get(pos, n)
		if err != nil {
			return 0, err
		}
		if len(b) < len(syncMarker) {
			return -1, nil
		}
		chunk = append(chunk[:0], b...)
		for i := 0; ; {
			j := bytes.Index(chunk[i:], syncMarker)
			if j < 0 {
				break
			}
			cand := pos + int64(i+j)
			ok, err := s.validAt(w, cand, maxRecord)
			if err != nil || ok {
				return cand, err
			}
			i += j + 1
		}
		// A marker across the end of the chunk is found in the next one.
		pos += int64(len(chunk) - len(syncMarker) + 1)
	}
	return -1, nil
}

// markersIn counts sync markers in [from, to) after its first byte: the
// damaged headers of frames that followed the first.
func (s *segScan) markersIn(w *window, from, to int64) int {
	if s.format == formatV1 {
		return 0
	}
	n := 0
	for pos := from + 1; pos < to; {
		b, err := w.get(pos, int(min(to-pos, scanChunk)))
		if err != nil || len(b) == 0 {
			return n
		}
		n += bytes.Count(b, syncMarker)
		if len(b) < len(syncMarker) {
			break
		}
		pos += int64(len(b) - len(syncMarker) + 1)
		// A marker across the chunk boundary is counted once: it starts
		// in the overlap only if it did not fit in b.
	}
	return n
}

// finish decides whether the damage at the end can be a torn write
// (scanReused decided it for a reused segment).
func (s *segScan) finish(w *window, maxRecord int) (*segScan, error) {
	t := s.tail()
	if t == nil || s.reused {
		return s, nil
	}
	hdrLen := frameHeaderLen
	if s.format == formatV1 {
		hdrLen = frameHeaderLenV1
	}
	if t.to-t.from < int64(hdrLen) {
		s.tornOK = true // a header cut short
		return s, nil
	}
	hdr, err := w.get(t.from, hdrLen+fixedPayloadLen)
	if err != nil {
		return nil, err
	}
	var plen int
	var ok bool
	if s.format == formatV1 {
		// A cut V1 frame can end before its payload's fields; only the
		// length is worth checking.
		plen = int(binary.LittleEndian.Uint32(hdr))
		ok = plen >= fixedPayloadLen && plen <= maxRecord
	} else {
		plen, ok = s.header(hdr, maxRecord)
	}
	// A write cut short leaves a frame whose bytes stop before its declared
	// end (zeros or the end of the file after them). A complete frame that
	// fails its checksum, or a damaged header with bytes after it, was
	// damaged after it was written.
	s.tornOK = ok && t.from+int64(hdrLen+plen) > s.nonZero
	return s, nil
}

// scanReused walks the frames of a segment whose file held an earlier
// segment: its data ends at the first terminator (zeros where the next
// frame would start: every commit writes them after its frames), or at
// the end of the file, and what lies past that is the earlier segment's
// leftover. Those frames were sealed with another id, so they never read
// as intact here and are not searched for.
//
// Damage between intact frames is corruption, as in a fresh segment.
// After the last intact frame, bytes that are not a terminator are the
// commit a crash cut short, whose frames run into leftover rather than
// zeros: a torn tail, cut off. One exception is kept from the fresh rule:
// a frame under an intact header, complete and followed by a terminator,
// was written whole and damaged afterwards, so it is corruption. A
// damaged header there cannot be told from a torn one and is cut as torn.
func (s *segScan) scanReused(w *window, maxRecord int) error {
	off := int64(len(segmentMagic))
	for off < s.size {
		end, err := s.terminatorAt(w, off)
		if err != nil || end {
			s.nonZero = off
			return err
		}
		next, ok, intact, records, err := s.frameAt(w, off, frameHeaderLen, maxRecord)
		if err != nil {
			return err
		}
		if intact {
			s.addFrame(off, next, records)
			off = next
			continue
		}
		q, err := s.resync(w, off+1, maxRecord)
		if err != nil {
			return err
		}
		if q >= 0 {
			if ok && next <= q {
				s.addDamage(s.frameDamage(w, off, next))
				if next < q {
					s.addDamage(damage{from: next, to: q, records: 1 + s.markersIn(w, next, q)})
				}
			} else {
				s.addDamage(damage{from: off, to: q, records: 1 + s.markersIn(w, off, q)})
			}
			off = q
			continue
		}
		// The tail.
		if ok {
			whole, err := s.terminatorAt(w, next)
			if err != nil {
				return err
			}
			s.addDamage(s.frameDamage(w, off, next))
			s.nonZero, s.tornOK = next, !whole
			return nil
		}
		to := min(off+frameHeaderLen, s.size)
		s.addDamage(damage{from: off, to: to, records: 1})
		s.nonZero, s.tornOK = to, true
		return nil
	}
	s.nonZero = s.size
	return nil
}

// terminatorAt reports whether a reused segment's data ends at off: a
// frame header's worth of zeros there, or fewer bytes than a header, all
// zeros, before the end of the file.
func (s *segScan) terminatorAt(w *window, off int64) (bool, error) {
	b, err := w.get(off, frameHeaderLen)
	if err != nil {
		return false, err
	}
	for _, c := range b {
		if c != 0 {
			return false, nil
		}
	}
	return len(b) == frameHeaderLen || off+int64(len(b)) == s.size, nil
}
