// Package clip shortens untrusted text (a server's answer, a garbage
// input line) before it goes into an error message or a report: at most
// max bytes, cut on a rune boundary so valid UTF-8 stays valid, marked
// with "...".
package clip

import "unicode/utf8"

const ellipsis = "..."

// String returns s when it has at most max bytes, else its prefix of at
// most max bytes ending on a rune boundary, followed by "...".
func String(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:boundary(s, max)] + ellipsis
}

// Bytes is String for a byte slice; it copies only what it keeps.
func Bytes(b []byte, max int) string {
	if len(b) <= max {
		return string(b)
	}
	return string(b[:boundary(b, max)]) + ellipsis
}

// boundary moves the cut at max back to the start of the rune it falls
// in, at most UTFMax-1 bytes: invalid input cannot make it walk far.
func boundary[T string | []byte](b T, max int) int {
	i := max
	for i > 0 && i > max-(utf8.UTFMax-1) && !utf8.RuneStart(b[i]) {
		i--
	}
	return i
}
