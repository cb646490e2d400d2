package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record framing: the LDBUF3, LDBUF2 and LDBUF1 layouts are described in
// doc.go.
const (
	frameHeaderLen   = 16
	frameHeaderLenV1 = 8
	recordVersion    = 1
	// recordVersionRaw: the same layout, with Doc holding the event's
	// record as the shipper sent it (Record.Raw).
	recordVersionRaw = 2
	// recordVersionGroup: several records of one append that share tag,
	// ingest time and Raw, in one frame (doc.go).
	recordVersionGroup = 3
	fixedPayloadLen    = 1 + 1 + 2 + 8 + 4 + 8
	// groupHeaderLen and groupEntryLen are a group payload's fixed bytes
	// (before the tag, after it) and each record's (besides id and doc).
	groupHeaderLen = 1 + 1 + 2 + 8 + 4
	groupEntryLen  = 1 + 8 + 4 + 4
	// groupFlagRaw marks a group of Raw records.
	groupFlagRaw = 1
	// maxGroupPayload bounds a group frame: one damaged frame loses every
	// record in it, so a large append becomes several frames.
	maxGroupPayload = 256 << 10

	// MaxIDLen and MaxTagLen bound the variable-length fields.
	MaxIDLen  = 255
	MaxTagLen = 65535
)

// segmentMagic starts every segment file so that a stray file in the
// buffer directory is never mistaken for one; its sixth byte is the
// framing version.
//
// An LDBUF3 segment's eighth byte says whether its file held another
// segment before (magicReused): then what follows its data is that
// segment's leftover, not zeros.
var (
	segmentMagic       = []byte("LDBUF3\n\x00")
	segmentMagicReused = []byte("LDBUF3\n\x01")
	segmentMagicV2     = []byte("LDBUF2\n\x00")
	segmentMagicV1     = []byte("LDBUF1\n\x00")
	syncMarker         = []byte{0xff, 'L', 'D', 0xfe}
)

// Segment framing versions.
const (
	formatV1 = 1
	formatV2 = 2
	formatV3 = 3
)

// sealOf is the CRC-32C state an LDBUF3 segment's frame headers are
// checksummed from: that of its id, so a frame is intact only in the
// segment it was written to, and the frames a reused file still holds
// from its earlier segment read as nothing.
func sealOf(id uint64) uint32 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], id)
	return crc32.Checksum(b[:], castagnoli)
}

// headerSum is the checksum of a frame header's first 12 bytes: plain in
// LDBUF2, from the segment's seal in LDBUF3.
func headerSum(format int, seal uint32, hdr []byte) uint32 {
	if format == formatV3 {
		return crc32.Update(seal, castagnoli, hdr[:12])
	}
	return crc32.Checksum(hdr[:12], castagnoli)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one event in the buffer.
type Record struct {
	ID     string // deterministic Elasticsearch _id
	Tag    string
	Sec    int64  // event time, seconds since the epoch
	Nsec   uint32 // event time, nanoseconds
	Ingest int64  // when the event entered the pipeline, unix nanoseconds
	Doc    []byte // the JSON document, or with Raw the record as sent
	// Raw: Doc is the record as the shipper sent it (a msgpack map) and ID
	// is empty; whoever delivers it makes the document and the id from
	// these durable bytes, so intake does not spend that time before its
	// ack.
	Raw     bool
	Pos     Pos   // set by Next: where the record lives, for Ack
	Corrupt error // set by Next when the stored record failed its checksum
}

// Pos names one record in the buffer.
type Pos struct {
	Seg uint64 // segment number
	Idx uint32 // record index inside the segment
}

// Errors reported while decoding a record.
var (
	ErrShort    = errors.New("buffer: truncated record")
	ErrChecksum = errors.New("buffer: record checksum mismatch")
	ErrTooLarge = errors.New("buffer: record too large")
	ErrBadField = errors.New("buffer: malformed record")
	// ErrBadHeader: a frame header without its sync marker or failing its
	// checksum.
	ErrBadHeader = errors.New("buffer: damaged record header")
)

// encodedLen is the framed size of r.
func encodedLen(r *Record) int {
	return frameHeaderLen + fixedPayloadLen + len(r.ID) + len(r.Tag) + len(r.Doc)
}

// appendRecord frames r onto dst for an LDBUF3 segment sealed with seal.
func appendRecord(dst []byte, r *Record, seal uint32) ([]byte, error) {
	return appendRecordFormat(dst, r, formatV3, seal)
}

// appendRecordFormat frames r for a segment of the given format (LDBUF2 or
// LDBUF3; tests write LDBUF2 to check that it is still read).
func appendRecordFormat(dst []byte, r *Record, format int, seal uint32) ([]byte, error) {
	if len(r.ID) > MaxIDLen {
		return dst, fmt.Errorf("%w: id is %d bytes (max %d)", ErrTooLarge, len(r.ID), MaxIDLen)
	}
	if len(r.Tag) > MaxTagLen {
		return dst, fmt.Errorf("%w: tag is %d bytes (max %d)", ErrTooLarge, len(r.Tag), MaxTagLen)
	}
	start := len(dst)
	plen := fixedPayloadLen + len(r.ID) + len(r.Tag) + len(r.Doc)
	dst = append(dst, syncMarker...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(plen))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // checksums, filled below
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	version := byte(recordVersion)
	if r.Raw {
		version = recordVersionRaw
	}
	dst = append(dst, version, byte(len(r.ID)))
	dst = append(dst, r.ID...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r.Tag)))
	dst = append(dst, r.Tag...)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Sec))
	dst = binary.LittleEndian.AppendUint32(dst, r.Nsec)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Ingest))
	dst = append(dst, r.Doc...)
	sum := crc32.Checksum(dst[start+frameHeaderLen:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start+8:], sum)
	binary.LittleEndian.PutUint32(dst[start+12:], headerSum(format, seal, dst[start:]))
	return dst, nil
}

// reseal rewrites the header checksums of the frames in buf (ending at
// ends, one per record: the records of a group share their frame's) for
// an LDBUF3 segment sealed with seal: a batch encoded while one segment
// was active goes to the next one when it rotates.
func reseal(buf []byte, ends []int, seal uint32) {
	start := 0
	for _, e := range ends {
		if e == start {
			continue // the next record of the same group
		}
		binary.LittleEndian.PutUint32(buf[start+12:], headerSum(formatV3, seal, buf[start:]))
		start = e
	}
}

// groupable reports whether recs may be framed as groups: more than one
// record, all with the tag, ingest time and Raw of the first (the events
// of one forward request).
func groupable(recs []Record) bool {
	if len(recs) < 2 {
		return false
	}
	r0 := &recs[0]
	for i := range recs[1:] {
		r := &recs[i+1]
		if r.Tag != r0.Tag || r.Ingest != r0.Ingest || r.Raw != r0.Raw {
			return false
		}
	}
	return true
}

// groupEntrySize is what r adds to a group payload.
func groupEntrySize(r *Record) int { return groupEntryLen + len(r.ID) + len(r.Doc) }

// nextGroup returns how many records from the start of recs (groupable,
// fields checked) the next group frame takes: as many as fit in
// maxPayload (at most maxGroupPayload), at least one, and its payload
// length.
func nextGroup(recs []Record, maxPayload int) (n, plen int) {
	maxPayload = min(maxPayload, maxGroupPayload)
	plen = groupHeaderLen + len(recs[0].Tag)
	for n < len(recs) {
		e := groupEntrySize(&recs[n])
		if n > 0 && plen+e > maxPayload {
			break
		}
		plen += e
		n++
	}
	return n, plen
}

// groupedLen is the framed size of groupable recs.
func groupedLen(recs []Record, maxPayload int) int {
	total := 0
	for len(recs) > 0 {
		n, plen := nextGroup(recs, maxPayload)
		total += frameHeaderLen + plen
		recs = recs[n:]
	}
	return total
}

// appendGroup frames recs[:n] (from nextGroup, with its plen) as one
// group onto dst for an LDBUF3 segment sealed with seal.
func appendGroup(dst []byte, recs []Record, plen int, seal uint32) []byte {
	start := len(dst)
	r0 := &recs[0]
	dst = append(dst, syncMarker...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(plen))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // checksums, filled below
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	flags := byte(0)
	if r0.Raw {
		flags |= groupFlagRaw
	}
	dst = append(dst, recordVersionGroup, flags)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(r0.Tag)))
	dst = append(dst, r0.Tag...)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r0.Ingest))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(recs)))
	for i := range recs {
		r := &recs[i]
		dst = append(dst, byte(len(r.ID)))
		dst = append(dst, r.ID...)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Sec))
		dst = binary.LittleEndian.AppendUint32(dst, r.Nsec)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(r.Doc)))
		dst = append(dst, r.Doc...)
	}
	sum := crc32.Checksum(dst[start+frameHeaderLen:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start+8:], sum)
	binary.LittleEndian.PutUint32(dst[start+12:], headerSum(formatV3, seal, dst[start:]))
	return dst
}

// groupHeader reads the header of group payload p (which may be cut
// short after it): the tag, ingest time, Raw, the count it declares and
// the bytes after it.
func groupHeader(p []byte) (tag []byte, ingest int64, raw bool, count int, rest []byte, err error) {
	if len(p) < groupHeaderLen || p[0] != recordVersionGroup || p[1]&^groupFlagRaw != 0 {
		return nil, 0, false, 0, nil, fmt.Errorf("%w: group header", ErrBadField)
	}
	tagLen := int(binary.LittleEndian.Uint16(p[2:]))
	if len(p) < groupHeaderLen+tagLen {
		return nil, 0, false, 0, nil, fmt.Errorf("%w: tag length %d", ErrBadField, tagLen)
	}
	q := p[4+tagLen:]
	return p[4 : 4+tagLen], int64(binary.LittleEndian.Uint64(q)), p[1]&groupFlagRaw != 0,
		int(binary.LittleEndian.Uint32(q[8:])), q[12:], nil
}

// groupEntries walks a group payload's records, calling fn (when not nil)
// with each one's id, time and doc; it returns the tag, ingest time, Raw
// and the number of records, or ErrBadField when the payload is not one
// well-formed group.
func groupEntries(p []byte, fn func(id []byte, sec int64, nsec uint32, doc []byte)) (tag []byte, ingest int64, raw bool, n int, err error) {
	tag, ingest, raw, count, q, err := groupHeader(p)
	if err != nil {
		return nil, 0, false, 0, err
	}
	if count < 1 || count > len(q)/groupEntryLen {
		return nil, 0, false, 0, fmt.Errorf("%w: %d records in %d bytes", ErrBadField, count, len(q))
	}
	for i := 0; i < count; i++ {
		if len(q) < groupEntryLen {
			return nil, 0, false, 0, fmt.Errorf("%w: record %d of %d cut short", ErrBadField, i, count)
		}
		idLen := int(q[0])
		if len(q) < groupEntryLen+idLen {
			return nil, 0, false, 0, fmt.Errorf("%w: record %d id length %d", ErrBadField, i, idLen)
		}
		id := q[1 : 1+idLen]
		q = q[1+idLen:]
		sec := int64(binary.LittleEndian.Uint64(q))
		nsec := binary.LittleEndian.Uint32(q[8:])
		docLen := int(binary.LittleEndian.Uint32(q[12:]))
		q = q[16:]
		if docLen > len(q) {
			return nil, 0, false, 0, fmt.Errorf("%w: record %d doc length %d", ErrBadField, i, docLen)
		}
		if fn != nil {
			fn(id, sec, nsec, q[:docLen:docLen])
		}
		q = q[docLen:]
	}
	if len(q) != 0 {
		return nil, 0, false, 0, fmt.Errorf("%w: %d bytes after %d records", ErrBadField, len(q), count)
	}
	return tag, ingest, raw, count, nil
}

// nextRecord reads the frame at the start of b (LDBUF2 or LDBUF3). It
// returns the record, the number of bytes the frame takes, and an error
// when b does not start with a complete, intact frame. maxPayload caps the
// declared length so a corrupt header cannot make the caller wait for
// gigabytes.
func nextRecord(b []byte, format int, seal uint32, maxPayload int) (Record, int, error) {
	p, size, err := checkedPayload(b, format, seal, maxPayload)
	if err != nil {
		return Record{}, 0, err
	}
	r, err := decodePayload(p)
	return r, size, err
}

// frameHeader checks the header at the start of b and returns the payload
// length it declares. ErrShort means b is shorter than a header;
// ErrBadHeader that the header is not intact, so its length cannot be
// trusted.
func frameHeader(b []byte, format int, seal uint32, maxPayload int) (int, error) {
	if len(b) < frameHeaderLen {
		return 0, ErrShort
	}
	if string(b[:4]) != string(syncMarker) || headerSum(format, seal, b) != binary.LittleEndian.Uint32(b[12:]) {
		return 0, ErrBadHeader
	}
	plen := int(binary.LittleEndian.Uint32(b[4:]))
	if plen < fixedPayloadLen || plen > maxPayload {
		return 0, fmt.Errorf("%w: declared payload %d bytes", ErrBadField, plen)
	}
	return plen, nil
}

// nextRecordV1 is nextRecord for segments in the first framing.
func nextRecordV1(b []byte, maxPayload int) (Record, int, error) {
	if len(b) < frameHeaderLenV1 {
		return Record{}, 0, ErrShort
	}
	plen := int(binary.LittleEndian.Uint32(b))
	if plen < fixedPayloadLen || plen > maxPayload {
		return Record{}, 0, fmt.Errorf("%w: declared payload %d bytes", ErrBadField, plen)
	}
	if len(b) < frameHeaderLenV1+plen {
		return Record{}, 0, ErrShort
	}
	p := b[frameHeaderLenV1 : frameHeaderLenV1+plen]
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return Record{}, 0, ErrChecksum
	}
	r, err := decodePayload(p)
	return r, frameHeaderLenV1 + plen, err
}

// decodeFrame reads one frame of the given segment format (seal matters
// in LDBUF3 only) that holds one record.
func decodeFrame(format int, seal uint32, b []byte, maxPayload int) (Record, int, error) {
	if format == formatV1 {
		return nextRecordV1(b, maxPayload)
	}
	return nextRecord(b, format, seal, maxPayload)
}

// checkedPayload returns the payload of the intact LDBUF2 or LDBUF3 frame
// at the start of b, and the frame's length.
func checkedPayload(b []byte, format int, seal uint32, maxPayload int) ([]byte, int, error) {
	plen, err := frameHeader(b, format, seal, maxPayload)
	if err != nil {
		return nil, 0, err
	}
	if len(b) < frameHeaderLen+plen {
		return nil, 0, ErrShort
	}
	p := b[frameHeaderLen : frameHeaderLen+plen]
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(b[8:]) {
		return nil, 0, ErrChecksum
	}
	return p, frameHeaderLen + plen, nil
}

// frameRecordCount checks the frame at the start of b as decodeFrame
// does, for a frame of one record or a group (LDBUF3 only), and returns
// how many records it holds and its length.
func frameRecordCount(format int, seal uint32, b []byte, maxPayload int) (int, int, error) {
	if format == formatV3 {
		p, size, err := checkedPayload(b, format, seal, maxPayload)
		if err != nil {
			return 0, 0, err
		}
		if p[0] == recordVersionGroup {
			_, _, _, n, err := groupEntries(p, nil)
			return n, size, err
		}
		_, err = decodePayload(p)
		return 1, size, err
	}
	_, size, err := decodeFrame(format, seal, b, maxPayload)
	return 1, size, err
}

// appendFrameRecords decodes the frame at the start of b onto dst: its
// record, or a group's records from the skip-th on (the ones before were
// handed out already). It returns the frame's length.
func appendFrameRecords(dst []Record, format int, seal uint32, b []byte, maxPayload, skip int) ([]Record, int, error) {
	if format == formatV3 {
		p, size, err := checkedPayload(b, format, seal, maxPayload)
		if err != nil {
			return dst, 0, err
		}
		if p[0] == recordVersionGroup {
			return appendGroupRecords(dst, p, skip, size)
		}
		r, err := decodePayload(p)
		if err != nil {
			return dst, 0, err
		}
		return append(dst, r), size, nil
	}
	r, size, err := decodeFrame(format, seal, b, maxPayload)
	if err != nil {
		return dst, 0, err
	}
	return append(dst, r), size, nil
}

// appendGroupRecords decodes group payload p onto dst from its skip-th
// record on. The records share one tag string; their docs point into p.
func appendGroupRecords(dst []Record, p []byte, skip, size int) ([]Record, int, error) {
	base, i := len(dst), 0
	tb, ingest, raw, n, err := groupEntries(p, func(id []byte, sec int64, nsec uint32, doc []byte) {
		if i >= skip {
			dst = append(dst, Record{ID: string(id), Sec: sec, Nsec: nsec, Doc: doc})
		}
		i++
	})
	if err == nil && skip >= n {
		err = fmt.Errorf("%w: record %d of a group of %d", ErrBadField, skip, n)
	}
	if err != nil {
		return dst[:base], 0, err
	}
	tag := string(tb)
	for j := base; j < len(dst); j++ {
		dst[j].Tag, dst[j].Ingest, dst[j].Raw = tag, ingest, raw
	}
	return dst, size, nil
}

func decodePayload(p []byte) (Record, error) {
	var r Record
	if p[0] != recordVersion && p[0] != recordVersionRaw {
		return r, fmt.Errorf("%w: version %d", ErrBadField, p[0])
	}
	r.Raw = p[0] == recordVersionRaw
	idLen := int(p[1])
	p = p[2:]
	if len(p) < idLen+2 {
		return r, fmt.Errorf("%w: id length %d", ErrBadField, idLen)
	}
	r.ID = string(p[:idLen])
	p = p[idLen:]
	tagLen := int(binary.LittleEndian.Uint16(p))
	p = p[2:]
	if len(p) < tagLen+20 {
		return r, fmt.Errorf("%w: tag length %d", ErrBadField, tagLen)
	}
	r.Tag = string(p[:tagLen])
	p = p[tagLen:]
	r.Sec = int64(binary.LittleEndian.Uint64(p))
	r.Nsec = binary.LittleEndian.Uint32(p[8:])
	r.Ingest = int64(binary.LittleEndian.Uint64(p[12:]))
	r.Doc = p[20:]
	return r, nil
}
