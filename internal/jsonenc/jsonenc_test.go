package jsonenc

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendString(t *testing.T) {
	cases := map[string]string{
		"plain":         `"plain"`,
		`q"b\`:          `"q\"b\\"`,
		"nl\nt\tr\r":    `"nl\nt\tr\r"`,
		"\x00\x1f":      `"\u0000\u001f"`,
		"héllo 日本":      `"héllo 日本"`,
		"bad\xffutf8":   `"bad\ufffdutf8"`,
		"":              `""`,
		"trunc\xe6\x97": `"trunc\ufffd\ufffd"`,
	}
	for in, want := range cases {
		if got := string(AppendString(nil, in)); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got, want)
		}
		if got := string(AppendBytes([]byte("x"), []byte(in))); got != "x"+want {
			t.Errorf("AppendBytes(%q) = %s, want x%s", in, got, want)
		}
	}
}

func TestNoAllocation(t *testing.T) {
	buf := make([]byte, 0, 256)
	s := strings.Repeat("a\"é", 20)
	if n := testing.AllocsPerRun(100, func() { buf = AppendString(buf[:0], s) }); n != 0 {
		t.Fatalf("AppendString allocated %v times", n)
	}
}

// FuzzAppendString: the output always parses as JSON and decodes back to
// the input (with invalid UTF-8 replaced, as encoding/json does).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00\n", "日本", "\xff", "\xe6\x97"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q -> %s does not parse: %v", s, out, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if utf8.ValidString(s) && back != s {
			t.Fatalf("round trip %q -> %s -> %q", s, out, back)
		}
		if !utf8.ValidString(s) && utf8.RuneCountInString(back) != utf8.RuneCountInString(s) {
			// Each invalid byte is one U+FFFD, so the rune count is kept.
			t.Fatalf("round trip %q -> %s -> %q (ToValidUTF8 gives %q)", s, out, back, want)
		}
	})
}

func BenchmarkAppendString(b *testing.B) {
	for _, c := range []struct{ name, s string }{
		{"ascii", "c-123 " + strings.Repeat("x", 150)},
		{"escapes", strings.Repeat(`a"b\c`+"\n", 25)},
		{"utf8", strings.Repeat("héllo 日本 ", 15)},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			b.SetBytes(int64(len(c.s)))
			for b.Loop() {
				buf = AppendString(buf[:0], c.s)
			}
		})
	}
}

// TestWordSkipping: with every byte that needs attention (controls,
// quote, backslash, DEL, non-ASCII, invalid UTF-8) at every offset of
// strings around the 8-byte words the fast path reads, the output is what
// the plain byte-by-byte quoting gives.
func TestWordSkipping(t *testing.T) {
	specials := []string{"\x00", "\x1f", "\"", "\\", "\x7f", "é", "日", "\xff", "\xe6\x97"}
	for n := 0; n <= 40; n++ {
		for at := 0; at <= n; at++ {
			for _, sp := range specials {
				s := strings.Repeat("a", at) + sp + strings.Repeat("b", n-at)
				if got, want := string(AppendString(nil, s)), reference(s); got != want {
					t.Fatalf("%q: %s, want %s", s, got, want)
				}
				// Many specials in a row, then plain text: the gap after
				// misses must not skip a special.
				s = strings.Repeat(sp, at) + strings.Repeat("c", n) + sp
				if got, want := string(AppendString(nil, s)), reference(s); got != want {
					t.Fatalf("%q: %s, want %s", s, got, want)
				}
			}
		}
	}
}

// reference quotes one byte at a time, as AppendString did before it
// learned to skip plain words.
func reference(s string) string {
	out := []byte{'"'}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
			case c == '\n':
				out = append(out, `\n`...)
			case c == '\r':
				out = append(out, `\r`...)
			case c == '\t':
				out = append(out, `\t`...)
			case c < 0x20:
				out = append(out, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				out = append(out, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, `\ufffd`...)
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return string(append(out, '"'))
}

func BenchmarkAppendBytes(b *testing.B) {
	s := []byte("c-123 " + strings.Repeat("x", 150))
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendBytes(buf[:0], s)
	}
}
