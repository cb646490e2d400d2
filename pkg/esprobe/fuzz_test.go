package esprobe

import (
	"net"
	"strings"
	"testing"
)

// FuzzParsers feeds what a cluster or a user controls to the probe's small
// parsers: publish addresses, URL arguments, error bodies. No panics, and
// what comes out is usable.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9200", "es-0/10.1.2.3:9200", "[::1]:9200", "host/[fe80::1]:9201", "nope", ":",
		"http://u:p@es:9200/", "https://es", `{"error":{"type":"x"}}`, `{"error":"no handler"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if a, err := publishHostPort(s); err == nil {
			if _, _, err := net.SplitHostPort(a); err != nil {
				t.Fatalf("publishHostPort(%q) = %q, not host:port", s, a)
			}
		}
		var o Options
		if u, err := baseURL(s, &o); err == nil {
			if strings.Contains(u, "@") && o.Password != "" && strings.Contains(u, o.Password) {
				t.Fatalf("baseURL(%q) = %q keeps the password", s, u)
			}
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				t.Fatalf("baseURL(%q) = %q", s, u)
			}
		}
		if e := errorType([]byte(s)); len(e) > 120 {
			t.Fatalf("errorType too long: %d", len(e))
		}
	})
}
