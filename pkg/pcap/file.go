package pcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrNotPcap is returned for input that is neither pcap nor pcapng.
var ErrNotPcap = errors.New("not a pcap or pcapng file")

// Meta describes one captured packet.
type Meta struct {
	TimeNS  int64 // capture time, Unix nanoseconds
	CapLen  int   // bytes captured
	OrigLen int   // bytes on the wire
	Link    uint32
}

// Corruption is a pcap record that could not be read and was skipped.
type Corruption struct {
	Offset int64  `json:"offset"`
	Reason string `json:"reason"`
}

// maxCorruptionsKept bounds the list in the report; Corrupt counts them all.
const maxCorruptionsKept = 32

// FileStats says what the reader saw in the file.
type FileStats struct {
	Format      string       `json:"format"` // pcap or pcapng
	LinkType    uint32       `json:"link_type"`
	Snaplen     uint32       `json:"snaplen"`
	Records     uint64       `json:"records"`
	Corrupt     uint64       `json:"corrupt_records"`
	SkipBytes   int64        `json:"skipped_bytes"`
	Corruptions []Corruption `json:"corruptions,omitempty"`
}

func (s *FileStats) corrupt(off int64, reason string) {
	s.Corrupt++
	if len(s.Corruptions) < maxCorruptionsKept {
		s.Corruptions = append(s.Corruptions, Corruption{Offset: off, Reason: reason})
	}
}

// FileReader streams packets from a pcap or pcapng file without holding it:
// memory stays bounded by one read buffer whatever the file size. Corrupt
// or truncated records are counted, with their offsets, and skipped.
type FileReader struct {
	Stats FileStats

	br      *bufio.Reader
	png     *pcapng
	order   binary.ByteOrder
	nanos   bool
	maxRec  uint32
	pos     int64
	lastSec int64
	haveTS  bool
	done    bool
}

// recordLimit is the largest record length accepted (tcpdump's
// MAXIMUM_SNAPLEN); anything above is taken for corruption, which also caps
// what is read off the disk per record.
const recordLimit = 262144

// NewFileReader reads the file header. A file that is neither pcap nor
// pcapng gives an error wrapping ErrNotPcap that names what was found.
func NewFileReader(r io.Reader) (*FileReader, error) {
	br := bufio.NewReaderSize(r, recordLimit+64)
	magic, err := br.Peek(4)
	if err != nil {
		if len(magic) == 0 {
			return nil, fmt.Errorf("%w: the input is empty", ErrNotPcap)
		}
		return nil, fmt.Errorf("%w: only %d bytes", ErrNotPcap, len(magic))
	}
	fr := &FileReader{br: br, maxRec: recordLimit}
	switch {
	case magic[0] == 0x0a && magic[1] == 0x0d && magic[2] == 0x0d && magic[3] == 0x0a:
		if err := fr.openNg(); err != nil {
			return nil, err
		}
		return fr, nil
	case magic[0] == 0x1f && magic[1] == 0x8b:
		return nil, fmt.Errorf("%w: it is gzip-compressed; decompress it first (zcat FILE | logdoctor udp-frag --read -)", ErrNotPcap)
	}
	hdr, err := br.Peek(24)
	if err != nil {
		return nil, fmt.Errorf("%w: file header cut short (%d bytes)", ErrNotPcap, len(hdr))
	}
	switch binary.LittleEndian.Uint32(hdr) {
	case 0xa1b2c3d4:
		fr.order = binary.LittleEndian
	case 0xd4c3b2a1:
		fr.order = binary.BigEndian
	case 0xa1b23c4d:
		fr.order, fr.nanos = binary.LittleEndian, true
	case 0x4d3cb2a1:
		fr.order, fr.nanos = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%w: unknown magic 0x%08x", ErrNotPcap, binary.BigEndian.Uint32(hdr))
	}
	fr.Stats.Format = "pcap"
	fr.Stats.Snaplen = fr.order.Uint32(hdr[16:])
	fr.Stats.LinkType = fr.order.Uint32(hdr[20:]) & 0xffff
	_, _ = br.Discard(24)
	fr.pos = 24
	return fr, nil
}

// Next returns the next packet. The data is valid until the following call.
// It returns io.EOF at the end of the input.
func (fr *FileReader) Next() ([]byte, Meta, error) {
	if fr.done {
		return nil, Meta{}, io.EOF
	}
	if fr.png != nil {
		data, m, err := fr.png.next()
		if err != nil {
			fr.done = true
		}
		return data, m, err
	}
	for {
		h, err := fr.br.Peek(16)
		if err != nil {
			fr.done = true
			if len(h) > 0 {
				fr.Stats.corrupt(fr.pos, fmt.Sprintf("truncated record header: %d of 16 bytes", len(h)))
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF || len(h) > 0 {
				return nil, Meta{}, io.EOF
			}
			return nil, Meta{}, fmt.Errorf("read pcap at offset %d: %w", fr.pos, err)
		}
		sec, frac, capLen, origLen := fr.order.Uint32(h), fr.order.Uint32(h[4:]), fr.order.Uint32(h[8:]), fr.order.Uint32(h[12:])
		if reason := fr.check(sec, frac, capLen, origLen); reason != "" {
			fr.Stats.corrupt(fr.pos, reason)
			if !fr.resync() {
				fr.done = true
				return nil, Meta{}, io.EOF
			}
			continue
		}
		rec, err := fr.br.Peek(16 + int(capLen))
		if err != nil {
			fr.done = true
			fr.Stats.corrupt(fr.pos, fmt.Sprintf("truncated record: header says %d bytes, the file ends after %d", capLen, len(rec)-16))
			return nil, Meta{}, io.EOF
		}
		ns := int64(frac)
		if !fr.nanos {
			ns *= 1000
		}
		m := Meta{TimeNS: int64(sec)*1e9 + ns, CapLen: int(capLen), OrigLen: int(origLen), Link: fr.Stats.LinkType}
		fr.lastSec, fr.haveTS = int64(sec), true
		_, _ = fr.br.Discard(16 + int(capLen))
		fr.pos += 16 + int64(capLen)
		fr.Stats.Records++
		return rec[16:], m, nil
	}
}

// check validates a record header and says what is wrong with it.
func (fr *FileReader) check(sec, frac, capLen, origLen uint32) string {
	limit := uint32(1e6)
	if fr.nanos {
		limit = 1e9
	}
	switch {
	case capLen > fr.maxRec:
		return fmt.Sprintf("record length %d exceeds %d", capLen, fr.maxRec)
	case capLen > origLen:
		return fmt.Sprintf("captured length %d exceeds original length %d", capLen, origLen)
	case origLen > 1<<20:
		return fmt.Sprintf("original length %d is implausible", origLen)
	case frac >= limit:
		return fmt.Sprintf("timestamp fraction %d out of range", frac)
	}
	return ""
}

// plausible reports whether a record header at the start of b looks real,
// for resynchronising after corruption: valid fields, a timestamp near the
// last good one, and a valid header (or the end of file) right after it.
func (fr *FileReader) plausible(b []byte, atEOF bool) bool {
	if len(b) < 16 {
		return false
	}
	sec, frac, capLen, origLen := fr.order.Uint32(b), fr.order.Uint32(b[4:]), fr.order.Uint32(b[8:]), fr.order.Uint32(b[12:])
	if fr.check(sec, frac, capLen, origLen) != "" {
		return false
	}
	if fr.haveTS && (int64(sec) < fr.lastSec-3600 || int64(sec) > fr.lastSec+86400) {
		return false
	}
	next := 16 + int(capLen)
	if len(b) == next && atEOF {
		return true
	}
	if len(b) < next+16 {
		return false
	}
	n := b[next:]
	return fr.check(fr.order.Uint32(n), fr.order.Uint32(n[4:]), fr.order.Uint32(n[8:]), fr.order.Uint32(n[12:])) == ""
}

// resync skips bytes until a plausible record header; false at end of file.
func (fr *FileReader) resync() bool {
	for {
		if _, err := fr.br.Discard(1); err != nil {
			return false
		}
		fr.pos++
		fr.Stats.SkipBytes++
		h, err := fr.br.Peek(16)
		if err != nil {
			fr.Stats.SkipBytes += int64(len(h))
			return false
		}
		capLen := fr.order.Uint32(h[8:])
		if capLen > fr.maxRec {
			continue
		}
		b, err := fr.br.Peek(16 + int(capLen) + 16)
		if fr.plausible(b, err != nil) {
			return true
		}
	}
}
