// Package jsonenc appends JSON strings to a byte slice without reflection or
// allocation. logdoctor builds JSON by hand on its hot paths (forward records
// to Elasticsearch documents, bulk bodies, essim's bulk responses), and this
// is the one quoting routine they share.
package jsonenc

import "unicode/utf8"

// AppendString appends s as a quoted JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does, so the output always parses.
func AppendString(dst []byte, s string) []byte {
	return appendQuoted(dst, s, utf8.DecodeRuneInString)
}

// AppendBytes is AppendString for a byte slice.
func AppendBytes(dst []byte, s []byte) []byte {
	return appendQuoted(dst, s, utf8.DecodeRune)
}

const hexDigits = "0123456789abcdef"

// Word-at-a-time tests (Bit Twiddling Hacks, "determine if a word has a
// byte less than n / equal to n"): exact as to whether any byte of the
// word qualifies.
const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

// skipPlain returns the first offset at or after i that does not start
// 8 plain bytes: no control character, quote, backslash or non-ASCII byte.
func skipPlain[S string | []byte](s S, i int) int {
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		v := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		quote, backslash := v^(ones*'"'), v^(ones*'\\')
		if (v|(v-ones*0x20)&^v|(quote-ones)&^quote|(backslash-ones)&^backslash)&high != 0 {
			break
		}
	}
	return i
}

func appendQuoted[S string | []byte](dst []byte, s S, decode func(S) (rune, int)) []byte {
	dst = append(dst, '"')
	start := 0
	// Log text is mostly plain ASCII: skip it eight bytes at a time (it
	// was 9% of the pipeline's CPU one byte at a time). After a word that
	// is not plain the bytes go one by one for a while, longer after each
	// miss in a row, so text full of escapes or UTF-8 (a Japanese log
	// line) does not pay for a failed test every few bytes.
	gap := 8
	for i := 0; i < len(s); {
		from := i
		i = skipPlain(s, i)
		if i > from {
			gap = 8
		} else {
			gap = min(2*gap, 256)
		}
		for end := min(i+gap, len(s)); i < end; {
			c := s[i]
			if c < utf8.RuneSelf {
				if c >= 0x20 && c != '"' && c != '\\' {
					i++
					continue
				}
				dst = append(dst, s[start:i]...)
				switch c {
				case '"', '\\':
					dst = append(dst, '\\', c)
				case '\n':
					dst = append(dst, '\\', 'n')
				case '\r':
					dst = append(dst, '\\', 'r')
				case '\t':
					dst = append(dst, '\\', 't')
				default:
					dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				}
				i++
				start = i
				continue
			}
			// Only non-ASCII bytes pay for the decode call.
			r, size := decode(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
