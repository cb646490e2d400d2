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
// maps so handlers see one representation. The frame is walked in place
// and only one record at a time is decoded into Go values, with what that
// costs taken from the budget first: a large JSON request cannot make the
// decoder hold a tree many times its size.
func (d *Decoder) parseJSON(frame []byte, req *Request) error {
	if frame[0] == '{' {
		if !json.Valid(frame) {
			return fmt.Errorf("%w: JSON: invalid object", ErrMalformed)
		}
		return fmt.Errorf("%w: a bare JSON object (want [tag, time, record] or [tag, [[time, record], ...]])", ErrNotRequest)
	}
	var el [4][]byte
	n := 0
	err := jsonElems(d.lim, frame, func(i int, raw []byte) error {
		if i >= len(el) {
			return fmt.Errorf("%w: JSON request is an array of more than %d elements, want 2 to 4", ErrMalformed, len(el))
		}
		el[i] = raw
		n = i + 1
		return nil
	})
	if err != nil {
		return err
	}
	if n < 2 {
		return fmt.Errorf("%w: JSON request is an array of %d elements, want 2 to 4", ErrMalformed, n)
	}
	var tag string
	if el[0][0] != '"' || json.Unmarshal(el[0], &tag) != nil || tag == "" {
		return fmt.Errorf("%w: JSON request has no string tag", ErrMalformed)
	}
	req.Tag = tag
	var opt []byte
	if el[1][0] == '[' {
		req.Mode = ModeForward
		if n > 3 {
			return fmt.Errorf("%w: JSON Forward request with %d elements", ErrMalformed, n)
		}
		err := jsonElems(d.lim, el[1], func(i int, raw []byte) error {
			if i >= d.lim.MaxArrayLen {
				return fmt.Errorf("%w: more than %d events in one request", ErrTooLarge, d.lim.MaxArrayLen)
			}
			var pair [2][]byte
			k := 0
			if raw[0] == '[' {
				if err := jsonElems(d.lim, raw, func(j int, v []byte) error {
					if j < 2 {
						pair[j] = v
					}
					k = j + 1
					return nil
				}); err != nil {
					return fmt.Errorf("JSON entry %d: %w", i, err)
				}
			}
			if k != 2 {
				return fmt.Errorf("%w: JSON entry %d is not [time, record]", ErrMalformed, i)
			}
			if err := d.appendJSONEntry(req, pair[0], pair[1]); err != nil {
				return fmt.Errorf("JSON entry %d: %w", i, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n == 3 {
			opt = el[2]
		}
	} else {
		req.Mode = ModeMessage
		if n < 3 {
			return fmt.Errorf("%w: JSON Message request with %d elements", ErrMalformed, n)
		}
		if err := d.appendJSONEntry(req, el[1], el[2]); err != nil {
			return err
		}
		if n == 4 {
			opt = el[3]
		}
	}
	if opt == nil || string(opt) == "null" {
		return nil
	}
	if opt[0] != '{' {
		return fmt.Errorf("%w: JSON option is not an object", ErrMalformed)
	}
	cost := int64(len(opt)) * jsonExpansion
	if err := d.grow(cost); err != nil {
		return err
	}
	defer d.shrink(cost)
	var m map[string]any
	jd := json.NewDecoder(bytes.NewReader(opt))
	jd.UseNumber()
	if err := jd.Decode(&m); err != nil {
		return fmt.Errorf("%w: JSON option: %w", ErrMalformed, err)
	}
	if c, ok := m["chunk"].(string); ok {
		req.Chunk = c
	}
	if n, ok := m["size"].(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			req.Size = int(i)
		}
	}
	return nil
}

func (d *Decoder) appendJSONEntry(req *Request, t, rec []byte) error {
	if t[0] == '"' {
		return fmt.Errorf("%w: JSON time is not a number", ErrMalformed)
	}
	var n json.Number
	if err := json.Unmarshal(t, &n); err != nil {
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
	if rec[0] != '{' {
		return fmt.Errorf("%w: JSON record is not an object", ErrMalformed)
	}
	// The Go values are garbage once re-encoded; the msgpack copy stays
	// with the request.
	cost := int64(len(rec)) * jsonExpansion
	if err := d.grow(cost); err != nil {
		return err
	}
	out, err := jsonToMsgpack(rec)
	d.shrink(cost)
	if err != nil {
		return err
	}
	if err := d.grow(int64(cap(out))); err != nil {
		return err
	}
	return d.addEntry(req, Entry{Time: et, Record: out})
}

func jsonToMsgpack(rec []byte) ([]byte, error) {
	var m map[string]any
	jd := json.NewDecoder(bytes.NewReader(rec))
	jd.UseNumber()
	if err := jd.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: JSON: %w", ErrMalformed, err)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(fromJSON(m)); err != nil {
		return nil, fmt.Errorf("%w: re-encode JSON record: %w", ErrMalformed, err)
	}
	return buf.Bytes(), nil
}

// jsonElems calls fn with the raw bytes of each element of the JSON array
// b (a whole value, as framed by jsonScanner), without decoding them.
func jsonElems(lim Limits, b []byte, fn func(i int, raw []byte) error) error {
	p := skipJSONSpace(b, 0)
	if p >= len(b) || b[p] != '[' {
		return fmt.Errorf("%w: JSON: want an array", ErrMalformed)
	}
	p = skipJSONSpace(b, p+1)
	if p < len(b) && b[p] == ']' {
		return nil
	}
	for i := 0; ; i++ {
		end, err := jsonValueEnd(lim, b, p)
		if err != nil {
			return err
		}
		if err := fn(i, b[p:end]); err != nil {
			return err
		}
		p = skipJSONSpace(b, end)
		if p >= len(b) {
			return fmt.Errorf("%w: JSON: unterminated array", ErrMalformed)
		}
		switch b[p] {
		case ',':
			p = skipJSONSpace(b, p+1)
		case ']':
			return nil
		default:
			return fmt.Errorf("%w: JSON: unexpected %q in array", ErrMalformed, b[p])
		}
	}
}

func skipJSONSpace(b []byte, p int) int {
	for p < len(b) && isJSONSpace(b[p]) {
		p++
	}
	return p
}

// jsonValueEnd returns the end of the JSON value starting at b[p]. Only
// its extent is checked here; json.Unmarshal checks the contents.
func jsonValueEnd(lim Limits, b []byte, p int) (int, error) {
	if p >= len(b) {
		return 0, fmt.Errorf("%w: JSON: missing value", ErrMalformed)
	}
	switch b[p] {
	case '[', '{':
		s := jsonScanner{lim: lim}
		n, err := s.scan(b[p:])
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, fmt.Errorf("%w: JSON: unterminated value", ErrMalformed)
		}
		return p + n, nil
	case '"':
		for i := p + 1; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			}
		}
		return 0, fmt.Errorf("%w: JSON: unterminated string", ErrMalformed)
	case ',', ']', '}', ':':
		return 0, fmt.Errorf("%w: JSON: missing value", ErrMalformed)
	}
	i := p
	for i < len(b) && !isJSONSpace(b[i]) && b[i] != ',' && b[i] != ']' && b[i] != '}' {
		i++
	}
	return i, nil
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
	out, _, err := recordToJSON(dst, record, nil, false)
	return out, err
}

// KeySpan is where one top-level key of a record, and its value, landed
// in the JSON RecordToJSONKeys wrote: dst[Key:Val] is the quoted key and
// its colon, dst[Val:End] the value.
type KeySpan struct{ Key, Val, End int }

// RecordToJSONKeys is RecordToJSON that also appends to keys the span of
// every top-level key, so a caller looking for a key (the document
// builder's @timestamp and tag) need not scan the JSON it just got.
func RecordToJSONKeys(dst []byte, record []byte, keys []KeySpan) ([]byte, []KeySpan, error) {
	return recordToJSON(dst, record, keys, true)
}

func recordToJSON(dst, record []byte, keys []KeySpan, wantKeys bool) ([]byte, []KeySpan, error) {
	c := mpJSON{r: mp{b: record}, maxDepth: DefaultLimits.MaxDepth, keys: keys, wantKeys: wantKeys}
	if len(record) == 0 || !isMapCode(record[0]) {
		return dst, keys, fmt.Errorf("%w: record is not a msgpack map", ErrMalformed)
	}
	out, err := c.value(dst, 0)
	if err != nil {
		return dst, keys, err
	}
	if c.r.p != len(record) {
		return dst, keys, fmt.Errorf("%w: %d trailing bytes after record", ErrMalformed, len(record)-c.r.p)
	}
	return out, c.keys, nil
}

type mpJSON struct {
	r        mp
	maxDepth int
	// keys receives the top-level key spans when wantKeys.
	keys     []KeySpan
	wantKeys bool
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
			keyAt := len(dst)
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
			valAt := len(dst)
			if dst, err = c.value(dst, depth+1); err != nil {
				return dst, err
			}
			if depth == 0 && c.wantKeys {
				c.keys = append(c.keys, KeySpan{Key: keyAt, Val: valAt, End: len(dst)})
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
