package forward

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/logdoctor/logdoctor/internal/jsonenc"

	"github.com/vmihailenco/msgpack/v5"
)

// jsonScanner finds the end of one JSON object or array in a growing
// buffer, keeping its place between calls like scanner does.
type jsonScanner struct {
	lim   Limits
	pos   int
	depth int
	inStr bool
	esc   bool
}

func (s *jsonScanner) reset(lim Limits) { *s = jsonScanner{lim: lim} }

func (s *jsonScanner) scan(b []byte) (int, error) {
	for ; s.pos < len(b); s.pos++ {
		c := b[s.pos]
		if s.inStr {
			switch {
			case s.esc:
				s.esc = false
			case c == '\\':
				s.esc = true
			case c == '"':
				s.inStr = false
			}
			continue
		}
		switch c {
		case '"':
			s.inStr = true
		case '[', '{':
			s.depth++
			if s.depth > s.lim.MaxDepth {
				return 0, fmt.Errorf("%w: JSON nesting deeper than %d", ErrTooLarge, s.lim.MaxDepth)
			}
		case ']', '}':
			s.depth--
			if s.depth == 0 {
				s.pos++
				return s.pos, nil
			}
			if s.depth < 0 {
				return 0, fmt.Errorf("%w: unbalanced JSON", ErrMalformed)
			}
		}
	}
	return 0, nil
}

// parseJSON decodes a bare JSON request: [tag, time, record, option?] or
// [tag, [[time, record], ...], option?]. Records are re-encoded as msgpack
// maps so handlers see one representation.
func (d *Decoder) parseJSON(frame []byte, req *Request) error {
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%w: JSON: %w", ErrMalformed, err)
	}
	arr, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%w: a bare JSON %T (want [tag, time, record] or [tag, [[time, record], ...]])", ErrNotRequest, v)
	}
	if len(arr) < 2 || len(arr) > 4 {
		return fmt.Errorf("%w: JSON request is an array of %d elements, want 2 to 4", ErrMalformed, len(arr))
	}
	tag, ok := arr[0].(string)
	if !ok || tag == "" {
		return fmt.Errorf("%w: JSON request has no string tag", ErrMalformed)
	}
	req.Tag = tag
	var opt any
	if entries, ok := arr[1].([]any); ok {
		req.Mode = ModeForward
		if len(arr) > 3 {
			return fmt.Errorf("%w: JSON Forward request with %d elements", ErrMalformed, len(arr))
		}
		if len(entries) > d.lim.MaxArrayLen {
			return fmt.Errorf("%w: %d events in one request", ErrTooLarge, len(entries))
		}
		for i, e := range entries {
			pair, ok := e.([]any)
			if !ok || len(pair) != 2 {
				return fmt.Errorf("%w: JSON entry %d is not [time, record]", ErrMalformed, i)
			}
			if err := appendJSONEntry(req, pair[0], pair[1]); err != nil {
				return fmt.Errorf("JSON entry %d: %w", i, err)
			}
		}
		if len(arr) == 3 {
			opt = arr[2]
		}
	} else {
		req.Mode = ModeMessage
		if len(arr) < 3 {
			return fmt.Errorf("%w: JSON Message request with %d elements", ErrMalformed, len(arr))
		}
		if err := appendJSONEntry(req, arr[1], arr[2]); err != nil {
			return err
		}
		if len(arr) == 4 {
			opt = arr[3]
		}
	}
	if m, ok := opt.(map[string]any); ok {
		if c, ok := m["chunk"].(string); ok {
			req.Chunk = c
		}
		if n, ok := m["size"].(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				req.Size = int(i)
			}
		}
	} else if opt != nil {
		return fmt.Errorf("%w: JSON option is not an object", ErrMalformed)
	}
	return nil
}

func appendJSONEntry(req *Request, t, rec any) error {
	n, ok := t.(json.Number)
	if !ok {
		return fmt.Errorf("%w: JSON time is not a number", ErrMalformed)
	}
	f, err := n.Float64()
	if err != nil {
		return fmt.Errorf("%w: JSON time: %w", ErrMalformed, err)
	}
	et, err := eventTimeFromFloat(f)
	if err != nil {
		return err
	}
	if i, err := n.Int64(); err == nil {
		et = EventTime{Sec: uint32(i)}
	}
	m, ok := rec.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: JSON record is not an object", ErrMalformed)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(fromJSON(m)); err != nil {
		return fmt.Errorf("%w: re-encode JSON record: %w", ErrMalformed, err)
	}
	req.Entries = append(req.Entries, Entry{Time: et, Record: buf.Bytes()})
	return nil
}

// fromJSON turns json.Number into int64 or float64 so msgpack gets numbers.
func fromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = fromJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = fromJSON(e)
		}
	}
	return v
}

// RecordToJSON appends the JSON form of a msgpack map (a Record) to dst.
// str and bin become JSON strings (invalid UTF-8 replaced by U+FFFD), an
// EventTime becomes a number of seconds with fraction, other ext values
// become base64 strings, NaN and infinities become null, and non-string
// map keys become their JSON text.
func RecordToJSON(dst []byte, record []byte) ([]byte, error) {
	c := mpJSON{r: mp{b: record}, maxDepth: DefaultLimits.MaxDepth}
	if len(record) == 0 || !isMapCode(record[0]) {
		return dst, fmt.Errorf("%w: record is not a msgpack map", ErrMalformed)
	}
	out, err := c.value(dst, 0)
	if err != nil {
		return dst, err
	}
	if c.r.p != len(record) {
		return dst, fmt.Errorf("%w: %d trailing bytes after record", ErrMalformed, len(record)-c.r.p)
	}
	return out, nil
}

type mpJSON struct {
	r        mp
	maxDepth int
}

func (c *mpJSON) value(dst []byte, depth int) ([]byte, error) {
	r := &c.r
	b, err := r.peek()
	if err != nil {
		return dst, err
	}
	switch {
	case isMapCode(b) || isArrayCode(b):
		if depth >= c.maxDepth {
			return dst, fmt.Errorf("%w: nesting deeper than %d", ErrTooLarge, c.maxDepth)
		}
		if isArrayCode(b) {
			n, err := r.arrayLen()
			if err != nil {
				return dst, err
			}
			if n > len(r.b)-r.p {
				return dst, r.errf("array of %d elements in %d bytes", n, len(r.b)-r.p)
			}
			dst = append(dst, '[')
			for i := 0; i < n; i++ {
				if i > 0 {
					dst = append(dst, ',')
				}
				if dst, err = c.value(dst, depth+1); err != nil {
					return dst, err
				}
			}
			return append(dst, ']'), nil
		}
		n, err := r.mapLen()
		if err != nil {
			return dst, err
		}
		if n > len(r.b)-r.p {
			return dst, r.errf("map of %d pairs in %d bytes", n, len(r.b)-r.p)
		}
		dst = append(dst, '{')
		for i := 0; i < n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if k, _ := r.peek(); isStrCode(k) || isBinCode(k) {
				s, err := r.bytesVal()
				if err != nil {
					return dst, err
				}
				dst = jsonenc.AppendBytes(dst, s)
			} else {
				// A non-string key becomes the text of its JSON form.
				start := len(dst)
				if dst, err = c.value(dst, depth+1); err != nil {
					return dst, err
				}
				key := string(dst[start:])
				dst = jsonenc.AppendString(dst[:start], key)
			}
			dst = append(dst, ':')
			if dst, err = c.value(dst, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case isStrCode(b) || isBinCode(b):
		s, err := r.bytesVal()
		if err != nil {
			return dst, err
		}
		return jsonenc.AppendBytes(dst, s), nil
	case b == 0xc0:
		r.p++
		return append(dst, "null"...), nil
	case b == 0xc2:
		r.p++
		return append(dst, "false"...), nil
	case b == 0xc3:
		r.p++
		return append(dst, "true"...), nil
	case b == 0xca || b == 0xcb:
		n := 4
		if b == 0xcb {
			n = 8
		}
		if err := r.need(1 + n); err != nil {
			return dst, err
		}
		r.p++
		var f float64
		if n == 4 {
			f = float64(math.Float32frombits(uint32(r.uintN(4))))
		} else {
			f = math.Float64frombits(r.uintN(8))
		}
		return appendJSONFloat(dst, f), nil
	case b == 0xcf:
		if err := r.need(9); err != nil {
			return dst, err
		}
		r.p++
		return strconv.AppendUint(dst, r.uintN(8), 10), nil
	case b >= 0xd4 && b <= 0xd8 || b >= 0xc7 && b <= 0xc9:
		return c.ext(dst)
	}
	i, err := r.intVal()
	if err != nil {
		return dst, err
	}
	return strconv.AppendInt(dst, i, 10), nil
}

func (c *mpJSON) ext(dst []byte) ([]byte, error) {
	r := &c.r
	b := r.b[r.p]
	var hdr, l int
	if b >= 0xd4 && b <= 0xd8 {
		hdr, l = 2, 1<<(b-0xd4)
	} else {
		n := 1 << (b - 0xc7)
		if err := r.need(2 + n); err != nil {
			return dst, err
		}
		r.p++
		l = int(r.uintN(n))
		r.p -= 1 + n
		hdr = 2 + n
	}
	if err := r.need(hdr + l); err != nil {
		return dst, err
	}
	typ := r.b[r.p+hdr-1]
	data := r.b[r.p+hdr : r.p+hdr+l]
	r.p += hdr + l
	if typ == 0 && l == 8 {
		t := EventTime{Sec: uint32(data[0])<<24 | uint32(data[1])<<16 | uint32(data[2])<<8 | uint32(data[3]),
			Nsec: uint32(data[4])<<24 | uint32(data[5])<<16 | uint32(data[6])<<8 | uint32(data[7])}
		dst = strconv.AppendUint(dst, uint64(t.Sec), 10)
		dst = append(dst, '.')
		ns := strconv.AppendUint(nil, uint64(t.Nsec)+1e9, 10)
		return append(dst, ns[1:]...), nil
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, data)
	return append(dst, '"'), nil
}

func appendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}
