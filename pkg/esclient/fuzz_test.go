package esclient

import (
	"net"
	"strings"
	"testing"
)

// FuzzParsers feeds what a cluster or a user controls to the client's
// small parsers: publish addresses, URL arguments, error bodies. No
// panics, and what comes out is usable.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9200", "es-0/10.1.2.3:9200", "[::1]:9200", "host/[fe80::1]:9201", "nope", ":",
		"http://u:p@es:9200/", "https://es", `{"error":{"type":"x"}}`, `{"error":"no handler"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if a, err := DialAddress(s); err == nil {
			if _, _, err := net.SplitHostPort(a); err != nil {
				t.Fatalf("DialAddress(%q) = %q, not host:port", s, a)
			}
		}
		if u, a, err := ParseURL(s); err == nil {
			if strings.Contains(u, "@") && a.Password != "" && strings.Contains(u, a.Password) {
				t.Fatalf("ParseURL(%q) = %q keeps the password", s, u)
			}
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				t.Fatalf("ParseURL(%q) = %q", s, u)
			}
		}
		if e := ErrorType([]byte(s)); len(e) > 120 {
			t.Fatalf("ErrorType too long: %d", len(e))
		}
	})
}
