package essim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// refParseBulk is ParseBulk as it reads action lines without its fast
// reader: with encoding/json only. FuzzParseBulk holds ParseBulk to it.
func refParseBulk(body []byte, defaultIndex string) ([]BulkItem, error) {
	if len(body) > 0 && body[len(body)-1] != '\n' {
		return nil, fmt.Errorf("%w: The bulk request must be terminated by a newline [\\n]", ErrBulk)
	}
	var items []BulkItem
	lines := bytes.Split(body[:max(len(body)-1, 0)], []byte("\n"))
	if len(body) == 0 {
		lines = nil
	}
	for i := 0; i < len(lines); i++ {
		a := bytes.TrimSuffix(lines[i], []byte("\r"))
		if len(bytes.TrimSpace(a)) == 0 {
			continue
		}
		if len(a) > maxActionLine {
			return items, fmt.Errorf("%w: action/metadata line [%d] is %d bytes, longer than %d", ErrBulk, i+1, len(a), maxActionLine)
		}
		it := BulkItem{Line: i + 1}
		if err := decodeAction(a, &it); err != nil {
			return items, err
		}
		if it.Index == "" {
			it.Index = defaultIndex
		}
		if it.Op != OpDelete {
			if i+1 >= len(lines) {
				return items, fmt.Errorf("%w: action/metadata line [%d] has no source line", ErrBulk, i+1)
			}
			i++
			it.Source = bytes.TrimSuffix(lines[i], []byte("\r"))
		}
		items = append(items, it)
	}
	return items, nil
}

// The fast action reader differs from encoding/json in two ways, both
// kept because the bulk path has always answered so: it keeps bytes that
// are not UTF-8 where encoding/json puts U+FFFD (sameRunes), and it takes
// metadata keys as written where encoding/json ignores case, so "_ID" is
// no _id to it (foldedMetaKey). Elasticsearch refuses both.

// sameRunes reports whether a and b are the same once every byte that is
// not UTF-8 is read as U+FFFD, as encoding/json reads it.
func sameRunes(a, b string) bool { return slices.Equal([]rune(a), []rune(b)) }

// foldedMetaKey reports whether the action on the 1-based line of body
// has a metadata key that only case folding makes _index, _id or _type.
func foldedMetaKey(body []byte, line int) bool {
	lines := bytes.Split(body, []byte("\n"))
	if line < 1 || line > len(lines) {
		return false
	}
	var al map[string]map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimSuffix(lines[line-1], []byte("\r")), &al) != nil {
		return false
	}
	for _, m := range al {
		for k := range m {
			folded := strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, k)
			if k != folded || strings.ContainsFunc(k, func(r rune) bool { return r >= utf8.RuneSelf }) {
				switch folded {
				case "_index", "_id", "_type":
					return true
				}
			}
		}
	}
	return false
}

// FuzzParseBulk: the parser never panics, every item it yields has a known
// op, and a source only when the op carries one, aliasing the input; and
// it yields what encoding/json alone reads (refParseBulk), so the fast
// action reader changes nothing but the speed.
func FuzzParseBulk(f *testing.F) {
	for _, s := range []string{
		"{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n",
		"{\"create\":{}}\n{}\n{\"delete\":{\"_index\":\"a\",\"_id\":\"2\"}}\n",
		"{\"update\":{\"_id\":\"1\"}}\n{\"doc\":{\"a\":1}}\r\n",
		"\n\n{\"index\":{}}\n",
		"{\"index\":{\"_id\":5}}\n{}\n",
		"{\"bogus\":{}}\n",
		"{\"create\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{}\n{\"create\":{\"_index\":\"a\",\"_id\":\"2\"}}\n{}\n{\"index\":{\"_index\":\"b\"}}\n{}\n{\"create\":{\"_index\":\"\",\"_id\":\"3\"}}\n{}\n",
		"{\"create\":{\"_index\":\"a\",\"_id\":\"x\",\"_type\":\"_doc\"}}\n{}\n",
		"{ \"create\" : { \"_id\" : \"a\" , \"_id\" : \"b\" , \"routing\":\"r\"} }\n{}\n",
		"{\"create\":{\"_id\":\"q\\\"\"}}\n{}\n{\"create\":{\"_id\":5}}\n{}\n",
		"{\"create\":{\"_ID\":\"x\",\"_Index\":\"i\"}}\n{}\n",
		"{\"Create\":{\"_id\":\"x\"}}\n{}\n",
		"{\"delete\":{\"_id\":\"\x85\",\"_index\":\"\xff\"}}\n",
	} {
		f.Add([]byte(s), "def")
	}
	f.Fuzz(func(t *testing.T, body []byte, def string) {
		n := 0
		var got []BulkItem
		err := ParseBulk(body, def, func(it BulkItem) error {
			got = append(got, it)
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
		want, wantErr := refParseBulk(body, def)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("%q: error %v, encoding/json alone %v", body, err, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d items, encoding/json alone %d", body, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if foldedMetaKey(body, g.Line) {
				continue
			}
			if g.Op != w.Op || !sameRunes(g.Index, w.Index) || !sameRunes(g.ID, w.ID) || g.Type != w.Type || g.Line != w.Line || !bytes.Equal(g.Source, w.Source) || (g.Source == nil) != (w.Source == nil) {
				t.Fatalf("%q: item %d is %+v, encoding/json alone %+v", body, i, g, w)
			}
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
		same := func(v any, s []byte) bool { // v is what encoding/json read
			vs, ok := v.(string)
			return v == nil || ok && sameRunes(vs, string(s))
		}
		if m == nil || !same(m["_index"], index) || !same(m["_id"], id) {
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

// TestValidJSONEveryByteEverywhere puts every byte value at every offset
// of strings long enough for the eight-byte scan, alone and before an
// escape, and holds validJSON to json.Valid on each.
func TestValidJSONEveryByteEverywhere(t *testing.T) {
	for n := 1; n <= 26; n++ {
		for p := 0; p < n; p++ {
			for c := 0; c < 256; c++ {
				s := bytes.Repeat([]byte{'a'}, n)
				s[p] = byte(c)
				for _, tail := range []string{``, `\n`, `\u00e9`, `\x`, "\x01", `"`} {
					doc := []byte(`{"k":"` + string(s) + tail + `","n":1}`)
					if got, want := validJSON(doc), json.Valid(doc); got != want {
						t.Fatalf("validJSON(%q) = %v, json.Valid %v", doc, got, want)
					}
				}
			}
		}
	}
}
