package forward

import (
	"encoding/binary"
	"fmt"
	"math"
)

// scanner walks one msgpack object in a buffer that may still be growing.
// It keeps its place between calls, so a request arriving a byte at a time
// is walked once, and it checks each declared length against the limits
// when it reads the header, before the caller waits for (or allocates) the
// bytes behind it.
type scanner struct {
	lim   Limits
	max   int64 // bytes the object may span in total
	pos   int   // offset of the next header to read
	stack []int // elements still expected at each open container
	open  bool
	// want is, after scan asked for more bytes, how many the object needs
	// at least when a declared payload is what is missing (0 otherwise).
	want int
}

func (s *scanner) reset(lim Limits, max int64) {
	s.lim, s.max, s.pos, s.stack, s.open, s.want = lim, max, 0, s.stack[:0], false, 0
}

// scan continues over b (which holds every byte given so far, b[0] being
// the start of the object). It returns the object's length once complete,
// 0 with nil error when more bytes are needed.
func (s *scanner) scan(b []byte) (int, error) {
	if !s.open {
		s.stack = append(s.stack[:0], 1)
		s.open = true
	}
	s.want = 0
	for len(s.stack) > 0 {
		hdr, n, kind, err := s.header(b[s.pos:])
		if err != nil || hdr == 0 {
			return 0, err
		}
		switch kind {
		case kindArray, kindMap:
			if len(s.stack) >= s.lim.MaxDepth && n > 0 {
				return 0, fmt.Errorf("%w: nesting deeper than %d", ErrTooLarge, s.lim.MaxDepth)
			}
			s.pos += hdr
			s.stack[len(s.stack)-1]--
			if n > 0 {
				s.stack = append(s.stack, n)
			}
		default: // scalar or payload of n bytes
			if int64(s.pos)+int64(hdr)+int64(n) > s.max {
				return 0, fmt.Errorf("%w: value of %d bytes at offset %d exceeds the %d-byte request limit", ErrTooLarge, n, s.pos, s.max)
			}
			if s.pos+hdr+n > len(b) {
				s.want = s.pos + hdr + n
				return 0, nil
			}
			s.pos += hdr + n
			s.stack[len(s.stack)-1]--
		}
		for len(s.stack) > 0 && s.stack[len(s.stack)-1] == 0 {
			s.stack = s.stack[:len(s.stack)-1]
		}
	}
	s.open = false
	return s.pos, nil
}

const (
	kindScalar = iota
	kindArray
	kindMap
)

// header decodes the header at the start of b: its length (0 when b is too
// short to hold it), the element count for containers (pairs*2 for maps)
// or the payload length otherwise, checked against the limits.
func (s *scanner) header(b []byte) (hdr, n, kind int, err error) {
	if len(b) == 0 {
		return 0, 0, 0, nil
	}
	c := b[0]
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		return 1, 0, kindScalar, nil
	case c >= 0x80 && c <= 0x8f:
		return 1, int(c&0x0f) * 2, kindMap, nil
	case c >= 0x90 && c <= 0x9f:
		return 1, int(c & 0x0f), kindArray, nil
	case c >= 0xa0 && c <= 0xbf:
		return s.payload(1, uint64(c&0x1f), s.lim.MaxStrLen, "str")
	}
	var size int // bytes of the length field
	switch c {
	case 0xcc, 0xd0:
		return 1, 1, kindScalar, nil
	case 0xcd, 0xd1:
		return 1, 2, kindScalar, nil
	case 0xca, 0xce, 0xd2:
		return 1, 4, kindScalar, nil
	case 0xcb, 0xcf, 0xd3:
		return 1, 8, kindScalar, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext: type byte + 1,2,4,8,16
		return 1, 1 + 1<<(c-0xd4), kindScalar, nil
	case 0xc4, 0xd9, 0xc7:
		size = 1
	case 0xc5, 0xda, 0xc8, 0xdc, 0xde:
		size = 2
	case 0xc6, 0xdb, 0xc9, 0xdd, 0xdf:
		size = 4
	default: // 0xc1 is never used
		return 0, 0, 0, fmt.Errorf("%w: invalid msgpack code 0x%02x", ErrMalformed, c)
	}
	if len(b) < 1+size {
		return 0, 0, 0, nil
	}
	var l uint64
	switch size {
	case 1:
		l = uint64(b[1])
	case 2:
		l = uint64(binary.BigEndian.Uint16(b[1:]))
	case 4:
		l = uint64(binary.BigEndian.Uint32(b[1:]))
	}
	switch c {
	case 0xc4, 0xc5, 0xc6:
		return s.payload(1+size, l, s.lim.MaxBinLen, "bin")
	case 0xd9, 0xda, 0xdb:
		return s.payload(1+size, l, s.lim.MaxStrLen, "str")
	case 0xc7, 0xc8, 0xc9: // ext: length, type byte, data
		return s.payload(1+size, l+1, s.lim.MaxBinLen+1, "ext")
	case 0xdc, 0xdd:
		if l > uint64(s.lim.MaxArrayLen) {
			return 0, 0, 0, fmt.Errorf("%w: array of %d elements (limit %d)", ErrTooLarge, l, s.lim.MaxArrayLen)
		}
		return 1 + size, int(l), kindArray, nil
	default: // map16, map32
		if l > uint64(s.lim.MaxMapLen) {
			return 0, 0, 0, fmt.Errorf("%w: map of %d pairs (limit %d)", ErrTooLarge, l, s.lim.MaxMapLen)
		}
		return 1 + size, int(l) * 2, kindMap, nil
	}
}

func (s *scanner) payload(hdr int, l uint64, max int, what string) (int, int, int, error) {
	if l > uint64(max) {
		return 0, 0, 0, fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrTooLarge, what, l, max)
	}
	return hdr, int(l), kindScalar, nil
}

// skipValue returns the length of the complete msgpack value at the start
// of b, which must be whole (an incomplete value is an error here).
func (s *scanner) skipValue(b []byte) (int, error) {
	if n, ok := s.skipFlatMap(b); ok {
		return n, nil
	}
	return s.skipScanned(b)
}

// skipScanned is skipValue by the scanner, for any value.
func (s *scanner) skipScanned(b []byte) (int, error) {
	s.reset(s.lim, math.MaxInt64)
	n, err := s.scan(b)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: truncated value", ErrMalformed)
	}
	return n, nil
}

// skipFlatMap is skipValue for what nearly every record is: a map whose
// keys and values are strings or scalars, whole in b and within the
// limits. Skipping it takes one pass without the scanner's stack (the
// scanner was a fifth of intake's CPU). It answers only when sure: for
// anything else (nesting, binaries, extensions, a bad code, a length over
// a limit, truncation) it returns false and the scanner, which finds and
// names what is wrong, decides.
func (s *scanner) skipFlatMap(b []byte) (int, bool) {
	if len(b) == 0 || s.lim.MaxDepth <= 1 {
		return 0, false
	}
	var n, p int // elements (keys and values) and the offset after the header
	switch c := b[0]; {
	case c >= 0x80 && c <= 0x8f:
		n, p = int(c&0x0f)*2, 1
	case c == 0xde && len(b) >= 3:
		n, p = int(binary.BigEndian.Uint16(b[1:]))*2, 3
	case c == 0xdf && len(b) >= 5:
		n, p = int(binary.BigEndian.Uint32(b[1:]))*2, 5
	default:
		return 0, false
	}
	if p > 1 && n/2 > s.lim.MaxMapLen {
		return 0, false
	}
	maxStr := s.lim.MaxStrLen
	for ; n > 0; n-- {
		if p >= len(b) {
			return 0, false
		}
		c := b[p]
		var l int
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			p++
			continue
		case c >= 0xa0 && c <= 0xbf:
			l, p = int(c&0x1f), p+1
		case c == 0xd9 && p+2 <= len(b):
			l, p = int(b[p+1]), p+2
		case c == 0xda && p+3 <= len(b):
			l, p = int(binary.BigEndian.Uint16(b[p+1:])), p+3
		case c == 0xdb && p+5 <= len(b):
			l, p = int(binary.BigEndian.Uint32(b[p+1:])), p+5
		case c == 0xcc || c == 0xd0:
			p += 2
			continue
		case c == 0xcd || c == 0xd1:
			p += 3
			continue
		case c == 0xca || c == 0xce || c == 0xd2:
			p += 5
			continue
		case c == 0xcb || c == 0xcf || c == 0xd3:
			p += 9
			continue
		default:
			return 0, false
		}
		if l > maxStr {
			return 0, false
		}
		p += l
	}
	if p > len(b) {
		return 0, false
	}
	return p, true
}
