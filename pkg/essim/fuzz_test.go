package essim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzParseBulk: the parser never panics, every item it yields has a known
// op, and a source only when the op carries one, aliasing the input.
func FuzzParseBulk(f *testing.F) {
	for _, s := range []string{
		"{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n",
		"{\"create\":{}}\n{}\n{\"delete\":{\"_index\":\"a\",\"_id\":\"2\"}}\n",
		"{\"update\":{\"_id\":\"1\"}}\n{\"doc\":{\"a\":1}}\r\n",
		"\n\n{\"index\":{}}\n",
		"{\"index\":{\"_id\":5}}\n{}\n",
		"{\"bogus\":{}}\n",
	} {
		f.Add([]byte(s), "def")
	}
	f.Fuzz(func(t *testing.T, body []byte, def string) {
		n := 0
		_ = ParseBulk(body, def, func(it BulkItem) error {
			n++
			if it.Op < OpIndex || it.Op > OpDelete {
				t.Fatalf("op %d", it.Op)
			}
			if (it.Op == OpDelete) != (it.Source == nil) {
				t.Fatalf("op %s with source %q", it.Op, it.Source)
			}
			if len(it.Source) > 0 && !bytes.Contains(body, it.Source) {
				t.Fatalf("source %q not from body", it.Source)
			}
			if it.Line < 1 {
				t.Fatalf("line %d", it.Line)
			}
			return nil
		})
		if n > len(body) {
			t.Fatalf("%d items from %d bytes", n, len(body))
		}
	})
}

// FuzzValidJSON holds the fast validator to encoding/json's verdict and the
// fast action reader to encoding/json's reading.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":[1,2.5e-3,"x\\u00e9",true,null]}`, `{"index":{"_index":"a","_id":"b"}}`,
		`{"a":01}`, `{"a":"\x"}`, `[1,]`, `{"create":{"_id":"x","routing":"r"}} `, `-0.0E+1`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid = %v", b, got, want)
		}
		op, index, id, ok := fastAction(b)
		if !ok {
			return
		}
		var al map[string]map[string]any
		if err := json.Unmarshal(b, &al); err != nil || len(al) != 1 {
			t.Fatalf("fastAction accepted %q that encoding/json reads as %v (%v)", b, al, err)
		}
		m := al[op.String()]
		if m == nil || (m["_index"] != nil && m["_index"] != string(index)) || (m["_id"] != nil && m["_id"] != string(id)) {
			t.Fatalf("fastAction(%q) = %s %q %q, encoding/json %v", b, op, index, id, al)
		}
	})
}

// FuzzHandler sends arbitrary methods, paths, queries and bodies through
// the router: no panic, and every answer is a status Elasticsearch uses
// with a JSON (or _cat text) body.
func FuzzHandler(f *testing.F) {
	s, err := Start(context.Background(), "127.0.0.1:0", Config{MaxContentLength: 1 << 16, Faults: Faults{Latency: time.Nanosecond}})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	for _, c := range []struct{ m, p, b string }{
		{"POST", "/_bulk", "{\"index\":{\"_index\":\"a\"}}\n{}\n"},
		{"POST", "/", ""},
		{"GET", "/a/_search?size=x", `{"query":{"bool":{"must":[{"term":{"a":1}}]}}}`},
		{"GET", "/_bulk/_doc", ""},
		{"PUT", "/a/_doc/1?refresh=wait_for", `{"x":1}`},
		{"GET", "/_cat/thread_pool?h=name,queue&format=json", ""},
		{"POST", "/_essim/faults", `{"latency":"-1s"}`},
		{"GET", "/a/_count?q=x:1&filter_path=**.count", ""},
		{"POST", "/a,b*/_search", `{"aggs":{"t":{"terms":{"field":"x","size":-1}}}}`},
		{"POST", "/a/_search", `{"size":0,"aggs":{"c":{"composite":{"size":2,"sources":[{"x":{"terms":{"field":"x","missing_bucket":true}}}],"after":{"x":null}}}}}`},
		{"POST", "/a/_search?scroll=1m&size=1", `{"query":{"ids":{"values":["1"]}}}`},
		{"POST", "/_search/scroll", `{"scroll":"1d","scroll_id":"ZXNzaW0tc2Nyb2xsAHgAMQ"}`},
		{"DELETE", "/_search/scroll/_all", ""},
	} {
		f.Add(c.m, c.p, []byte(c.b))
	}
	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		if strings.HasPrefix(path, "/_essim") {
			return // faults changed by the fuzzer would slow every later input
		}
		req, err := http.NewRequest(method, "http://essim"+path, bytes.NewReader(body))
		if err != nil || req.URL.Path == "" {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 201, 400, 404, 405, 409, 413, 429, 500, 503:
		default:
			t.Fatalf("%s %s: status %d", method, path, rec.Code)
		}
		ct := rec.Header().Get("Content-Type")
		if rec.Code != 413 && method != "HEAD" && ct == "application/json" && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: invalid JSON %q", method, path, rec.Body.Bytes())
		}
	})
}
