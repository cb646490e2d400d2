package forward

import (
	"encoding/binary"
	"fmt"
	"math"
)

// mp reads msgpack values from a complete byte slice without allocating.
type mp struct {
	b  []byte
	p  int
	sc *scanner
}

func (r *mp) errf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format+" at offset %d", append([]any{ErrMalformed}, append(a, r.p)...)...)
}

func (r *mp) peek() (byte, error) {
	if r.p >= len(r.b) {
		return 0, r.errf("unexpected end of data")
	}
	return r.b[r.p], nil
}

// need checks that n more bytes are there.
func (r *mp) need(n int) error {
	if n < 0 || len(r.b)-r.p < n {
		return r.errf("truncated value")
	}
	return nil
}

func (r *mp) uintN(n int) uint64 {
	var v uint64
	switch n {
	case 1:
		v = uint64(r.b[r.p])
	case 2:
		v = uint64(binary.BigEndian.Uint16(r.b[r.p:]))
	case 4:
		v = uint64(binary.BigEndian.Uint32(r.b[r.p:]))
	case 8:
		v = binary.BigEndian.Uint64(r.b[r.p:])
	}
	r.p += n
	return v
}

func isArrayCode(c byte) bool { return c >= 0x90 && c <= 0x9f || c == 0xdc || c == 0xdd }
func isMapCode(c byte) bool   { return c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf }
func isStrCode(c byte) bool   { return c >= 0xa0 && c <= 0xbf || c >= 0xd9 && c <= 0xdb }
func isBinCode(c byte) bool   { return c >= 0xc4 && c <= 0xc6 }

func (r *mp) arrayLen() (int, error) {
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0x90 && c <= 0x9f:
		r.p++
		return int(c & 0x0f), nil
	case c == 0xdc || c == 0xdd:
		n := 2 << (c - 0xdc)
		if err := r.need(1 + n); err != nil {
			return 0, err
		}
		r.p++
		return int(r.uintN(n)), nil
	}
	return 0, r.errf("expected array, got code 0x%02x", c)
}

func (r *mp) mapLen() (int, error) {
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0x80 && c <= 0x8f:
		r.p++
		return int(c & 0x0f), nil
	case c == 0xde || c == 0xdf:
		n := 2 << (c - 0xde)
		if err := r.need(1 + n); err != nil {
			return 0, err
		}
		r.p++
		return int(r.uintN(n)), nil
	}
	return 0, r.errf("expected map, got code 0x%02x", c)
}

// bytesVal reads a str or bin and returns its payload (aliasing r.b).
func (r *mp) bytesVal() ([]byte, error) {
	c, err := r.peek()
	if err != nil {
		return nil, err
	}
	var n, l int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n, l = 0, int(c&0x1f)
	case c == 0xd9 || c == 0xc4:
		n = 1
	case c == 0xda || c == 0xc5:
		n = 2
	case c == 0xdb || c == 0xc6:
		n = 4
	default:
		return nil, r.errf("expected str or bin, got code 0x%02x", c)
	}
	if err := r.need(1 + n); err != nil {
		return nil, err
	}
	r.p++
	if n > 0 {
		l = int(r.uintN(n))
	}
	if err := r.need(l); err != nil {
		return nil, err
	}
	v := r.b[r.p : r.p+l : r.p+l]
	r.p += l
	return v, nil
}

// intVal reads any msgpack integer.
func (r *mp) intVal() (int64, error) {
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		r.p++
		return int64(c), nil
	case c >= 0xe0:
		r.p++
		return int64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf:
		n := 1 << (c - 0xcc)
		if err := r.need(1 + n); err != nil {
			return 0, err
		}
		r.p++
		v := r.uintN(n)
		if v > math.MaxInt64 {
			return 0, r.errf("integer %d out of range", v)
		}
		return int64(v), nil
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		if err := r.need(1 + n); err != nil {
			return 0, err
		}
		r.p++
		v := r.uintN(n)
		switch n {
		case 1:
			return int64(int8(v)), nil
		case 2:
			return int64(int16(v)), nil
		case 4:
			return int64(int32(v)), nil
		}
		return int64(v), nil
	}
	return 0, r.errf("expected integer, got code 0x%02x", c)
}

// eventTime reads ext 0 (fixext8 or ext8 of length 8), an integer or a float.
func (r *mp) eventTime() (EventTime, error) {
	c, err := r.peek()
	if err != nil {
		return EventTime{}, err
	}
	switch c {
	case 0xd7, 0xc7:
		h := 2
		if c == 0xc7 {
			if err := r.need(3); err != nil {
				return EventTime{}, err
			}
			if r.b[r.p+1] != 8 {
				return EventTime{}, r.errf("EventTime ext of length %d, want 8", r.b[r.p+1])
			}
			h = 3
		}
		if err := r.need(h + 8); err != nil {
			return EventTime{}, err
		}
		if typ := r.b[r.p+h-1]; typ != 0 {
			return EventTime{}, r.errf("time is ext type %d, want EventTime (0)", int8(typ))
		}
		r.p += h
		return EventTime{Sec: uint32(r.uintN(4)), Nsec: uint32(r.uintN(4))}, nil
	case 0xca:
		if err := r.need(5); err != nil {
			return EventTime{}, err
		}
		r.p++
		return eventTimeFromFloat(float64(math.Float32frombits(uint32(r.uintN(4)))))
	case 0xcb:
		if err := r.need(9); err != nil {
			return EventTime{}, err
		}
		r.p++
		return eventTimeFromFloat(math.Float64frombits(r.uintN(8)))
	}
	v, err := r.intVal()
	if err != nil {
		return EventTime{}, r.errf("expected time (EventTime or integer), got code 0x%02x", c)
	}
	if v < 0 || v > math.MaxUint32 {
		return EventTime{}, r.errf("time %d out of range", v)
	}
	return EventTime{Sec: uint32(v)}, nil
}

// skip returns the raw bytes of the next value, checking limits.
func (r *mp) skip() ([]byte, error) {
	if r.p >= len(r.b) {
		return nil, r.errf("unexpected end of data")
	}
	n, err := r.sc.skipValue(r.b[r.p:])
	if err != nil {
		return nil, fmt.Errorf("%w (offset %d)", err, r.p)
	}
	v := r.b[r.p : r.p+n : r.p+n]
	r.p += n
	return v, nil
}

// record reads a map value and returns its raw bytes.
func (r *mp) record() ([]byte, error) {
	c, err := r.peek()
	if err != nil {
		return nil, err
	}
	if !isMapCode(c) {
		return nil, r.errf("record is not a map (code 0x%02x)", c)
	}
	return r.skip()
}
