package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 5, "abcde..."},
		{"日本語のテキスト", 7, "日本..."}, // 3-byte runes: cut back to 6
		{"日本語", 3, "日..."},
		{"ab日本", 3, "ab..."},
		{"\x80\x80\x80\x80\x80\x80", 4, "\x80..."}, // invalid input: at most 3 steps back
		{"abc", 0, "..."},
	} {
		if got := String(tc.in, tc.max); got != tc.want {
			t.Errorf("String(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
		if got := Bytes([]byte(tc.in), tc.max); got != tc.want {
			t.Errorf("Bytes(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func FuzzString(f *testing.F) {
	f.Add("日本語のテキスト", 7)
	f.Add(strings.Repeat("\xbf", 10), 5)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		got := String(s, max)
		if len(s) <= max {
			if got != s {
				t.Fatalf("short input changed: %q -> %q", s, got)
			}
			return
		}
		kept := strings.TrimSuffix(got, ellipsis)
		if !strings.HasPrefix(s, kept) || len(kept) > max || len(kept) < max-(utf8.UTFMax-1) {
			t.Fatalf("String(%q, %d) = %q", s, max, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("String(%q, %d) = %q: cut inside a rune", s, max, got)
		}
		if Bytes([]byte(s), max) != got {
			t.Fatalf("Bytes and String differ on %q, %d", s, max)
		}
	})
}
