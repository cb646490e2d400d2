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

func appendQuoted[S string | []byte](dst []byte, s S, decode func(S) (rune, int)) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
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
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
