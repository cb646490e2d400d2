package essim

// A validator and an action-line reader faster than encoding/json for the
// bulk hot path: encoding/json's scanner calls a function per byte, which
// made validation a third of essim's bulk CPU. Both fall back to
// encoding/json (or reject) on anything unusual; the fuzz targets check
// validJSON against json.Valid.

import (
	"encoding/binary"
	"math/bits"
)

const maxDepth = 10000

// validJSON reports whether b is exactly one JSON value (with surrounding
// whitespace), like json.Valid.
func validJSON(b []byte) bool {
	i := skipWS(b, 0)
	i, ok := jsonValue(b, i, 0)
	if !ok {
		return false
	}
	return skipWS(b, i) == len(b)
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func jsonValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxDepth {
		return i, false
	}
	switch c := b[i]; {
	case c == '{':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			var ok bool
			if i, ok = jsonString(b, i); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = jsonValue(b, skipWS(b, i+1), depth+1); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipWS(b, i+1)
		}
	case c == '[':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = jsonValue(b, i, depth+1); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipWS(b, i+1)
		}
	case c == '"':
		return jsonString(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return jsonNumber(b, i)
	}
	return i, false
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// plainByte marks bytes that need no attention inside a JSON string; a
// table lookup keeps the inner loop to one load and one branch.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Bytes repeated across a word, for the SWAR tests in jsonString.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// jsonString validates a string starting at the quote at b[i].
func jsonString(b []byte, i int) (int, bool) {
	i++
	for i < len(b) {
		// Eight bytes at a time while none is a quote, a backslash or a
		// control character: the lowest byte flagged below is the first
		// one that needs attention (borrows only flag bytes above a real
		// hit). Bytes from 0x80 up are plain, as json.Valid takes them.
		for ; i+8 <= len(b); i += 8 {
			x := binary.LittleEndian.Uint64(b[i : i+8])
			q, bs := x^(ones*'"'), x^(ones*'\\')
			m := ((q - ones) &^ q) | ((bs - ones) &^ bs) | ((x - ones*0x20) &^ x)
			if m &= highs; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
		}
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, false
					}
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default:
			i++
		}
	}
	return i, false
}

func jsonNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false
		}
	}
	return i, true
}

// fastAction reads the common action line shapes
// {"op":{"_index":"x","_id":"y",...}} whose metadata values are plain
// strings without escapes. ok is false for anything else; the caller then
// uses encoding/json. index and id alias b: the caller decides which
// strings to make (a bulk names one index thousands of times). Unlike
// encoding/json it keeps bytes that are not UTF-8 as they are and takes
// keys as written ("_ID" is not _id); FuzzParseBulk knows both.
func fastAction(b []byte) (op BulkOp, index, id []byte, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, nil, nil, false
	}
	key, i, ok := plainString(b, skipWS(b, i+1))
	if !ok {
		return 0, nil, nil, false
	}
	switch string(key) {
	case "index":
		op = OpIndex
	case "create":
		op = OpCreate
	case "update":
		op = OpUpdate
	case "delete":
		op = OpDelete
	default:
		return 0, nil, nil, false
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, nil, nil, false
	}
	i = skipWS(b, i+1)
	if i >= len(b) || b[i] != '{' {
		return 0, nil, nil, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			var k, v []byte
			if k, i, ok = plainString(b, i); !ok {
				return 0, nil, nil, false
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return 0, nil, nil, false
			}
			if v, i, ok = plainString(b, skipWS(b, i+1)); !ok {
				return 0, nil, nil, false
			}
			switch string(k) {
			case "_index":
				index = v
			case "_id":
				id = v
			case "_type":
				return 0, nil, nil, false // rare and version-dependent: the slow path reports it
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, nil, nil, false
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return 0, nil, nil, false
			}
			i = skipWS(b, i+1)
		}
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '}' || skipWS(b, i+1) != len(b) {
		return 0, nil, nil, false
	}
	return op, index, id, true
}

// plainString reads a string without escapes or control characters; s
// aliases b.
func plainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, i, false
		}
	}
	return nil, i, false
}
