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
