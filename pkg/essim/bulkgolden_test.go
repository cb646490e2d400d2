package essim

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// goldenBulks are bulk bodies covering every item outcome the bulk path
// renders: created, updated, noop, deleted, not_found, 409, invalid
// sources (not JSON, not an object, bad escapes, control characters;
// bytes that are not UTF-8 pass, as with encoding/json), invalid index
// names, long and escaped ids, metadata the fast action reader leaves to
// encoding/json, and whole-request failures; a bulk of failures is
// followed by one of successes, so reused working memory shows if it
// leaks between requests.
var goldenBulks = []string{
	`{"create":{"_index":"a","_id":"1"}}
{"msg":"one","n":1,"nested":{"x":[1,2.5e3,-0.1,true,false,null]}}
{"create":{"_index":"a","_id":"2"}}
{"msg":"esc \" \\ \/ \b\f\n\r\t \u00e9\ud83d\ude00 é 😀"}
{"index":{"_index":"a","_id":"3"}}
{"v":3}
{"create":{"_index":"a","_id":"1"}}
{"msg":"again"}
{"create":{"_index":"a","_id":"4"}}
{"msg":"unterminated}
{"create":{"_index":"a","_id":"5"}}
[1,2]
{"create":{"_index":"a","_id":"6"}}
{"bad":"\x"}
{"create":{"_index":"a","_id":"7"}}
{"ctl":"a	b"}
{"create":{"_index":"a","_id":"8"}}
{"a":1}{"b":2}
{"create":{"_index":"a","_id":"9"}}
  {"lead":"spaces"}  
{"create":{"_index":"A_b","_id":"1"}}
{"x":1}
{"create":{"_index":"_bad","_id":"1"}}
{"x":1}
{"create":{"_index":"a","_id":"` + strings.Repeat("L", 513) + `"}}
{"x":1}
{"create":{"_index":"a","_id":"q\"uote\\d"}}
{"x":"escaped id"}
{ "create" : { "_id" : "sp" , "_index" : "a" , "routing" : "r" } }
{"x":"spaced action"}
{"create":{"_index":"a","_id":"é😀"}}
{"x":"utf8 id"}
{"index":{"_index":"a","_id":"3"}}
{"v":33}
{"update":{"_index":"a","_id":"3"}}
{"doc":{"w":1}}
{"update":{"_index":"a","_id":"3"}}
{"doc":{"w":1}}
{"update":{"_index":"a","_id":"nope"}}
{"doc":{"w":1}}
{"update":{"_index":"a","_id":"up"}}
{"doc":{"w":2},"doc_as_upsert":true}
{"update":{"_index":"a"}}
{"doc":{"w":1}}
{"update":{"_index":"b","_id":"1"}}
{"doc":{"w":1}}
{"delete":{"_index":"a","_id":"2"}}
{"delete":{"_index":"a","_id":"2"}}
{"delete":{"_index":"nosuch","_id":"1"}}
{"delete":{"_index":"a"}}
`,
	`{"create":{"_index":"a","_id":"1"}}
{"msg":"dup"}
{"create":{"_index":"a","_id":"4"}}
not json
{"create":{"_index":"A","_id":"z"}}
{}
`,
	`{"create":{"_index":"c","_id":"1"}}
{}
{"index":{"_index":"c","_id":"2"}}
{"k":"v"}
`,
	"{\"create\":{\"_index\":\"a\",\"_id\":\"crlf\"}}\r\n{\"x\":1}\r\n\n\n{\"create\":{\"_id\":\"def\"}}\n{\"x\":2}\n",
	`{"create":{"_index":"a","_id":"t","_type":"_doc"}}
{"x":1}
`,
	`{"create":{"_index":"a","_id":"x"}}
{"x":1}`,
	`{"create":{"_index":"a"},"index":{}}
{"x":1}
`,
	`{"nope":{"_index":"a"}}
{"x":1}
`,
	`{"create":{"_index":"a","_id":"nosource"}}
`,
	"\n\n",
	"{\"create\":{\"_index\":\"a\",\"_id\":\"badutf8\"}}\n{\"x\":\"\xff\xc0\x80 \xed\xa0\x80\"}\n" +
		"{\"create\":{\"_index\":\"a\",\"_id\":\"\xffid\"}}\n{\"x\":1}\n" +
		"{\"create\":{\"_index\":\"a\",\"_id\":\"nul\"}}\n{\"x\":\"\x00\"}\n",
	"{\"create\":{\"_index\":\"a\",\"_id\":\"ctl\x01\"}}\n{\"x\":1}\n",
}

var tookRE = regexp.MustCompile(`"took":[0-9]+`)

// TestBulkAnswersGolden posts goldenBulks to Elasticsearch 8 and 7 (and 8
// with two nodes, where replicas are assigned), then
// searches what they stored, and compares every answer byte for byte with testdata/bulk_golden.txt,
// which the bulk path's answers before its speed work wrote: a faster
// path must not answer differently. ESSIM_UPDATE_GOLDEN=1 rewrites the
// file after an intended change.
func TestBulkAnswersGolden(t *testing.T) {
	var got bytes.Buffer
	for _, cfg := range []Config{{Version: "8.15.0"}, {Version: "7.17.0"}, {Version: "8.15.0", Nodes: 2}} {
		version := cfg.Version
		if cfg.Nodes > 1 {
			version += " nodes=2"
		}
		s := start(t, cfg)
		for i, body := range goldenBulks {
			for _, path := range []string{"/_bulk", "/def/_bulk"} {
				r := do(t, nil, "POST", s.URL()+path, body)
				got.WriteString(version + " bulk " + strconv.Itoa(i) + " " + path + " " + r.header.Get("Content-Type") + "\n")
				got.Write(tookRE.ReplaceAll(r.body, []byte(`"took":0`)))
				got.WriteString("\n")
			}
		}
		// What was stored, as a search reads it back.
		r := do(t, nil, "POST", s.URL()+"/a,c,def/_search", `{"size":100}`)
		got.WriteString(version + " search\n")
		got.Write(tookRE.ReplaceAll(r.body, []byte(`"took":0`)))
		got.WriteString("\n")
	}
	file := filepath.Join("testdata", "bulk_golden.txt")
	if os.Getenv("ESSIM_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(file, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("answer differs at line %d:\ngot  %s\nwant %s", i+1, g, w)
			}
		}
	}
}

// TestBulkScratchKeepsNothing: working memory kept for the next bulk
// holds no pointer into the last request's body or ids, and scratch
// from a huge bulk is not kept at all.
func TestBulkScratchKeepsNothing(t *testing.T) {
	s := start(t, Config{})
	n := s.nodes[0]
	body := []byte(`{"x":1}`)
	sc := &bulkScratch{items: make([]BulkItem, 3, 8), res: make([]itemResult, 2, 8)}
	for i := range sc.items {
		sc.items[i] = BulkItem{Op: OpCreate, Index: "a", ID: "id", Source: body}
	}
	for i := range sc.res[:cap(sc.res)] { // a failed write leaves results past len
		sc.res[:cap(sc.res)][i] = itemResult{index: "a", id: "id", errReason: "r"}
	}
	n.putScratch(sc)
	if len(sc.items) != 0 || len(sc.res) != 0 {
		t.Fatalf("kept scratch has %d items, %d results", len(sc.items), len(sc.res))
	}
	for i, it := range sc.items[:cap(sc.items)] {
		if it.Source != nil || it.ID != "" || it.Index != "" || it.Type != "" {
			t.Fatalf("kept item %d: %+v", i, it)
		}
	}
	for i, x := range sc.res[:cap(sc.res)] {
		if x != (itemResult{}) {
			t.Fatalf("kept result %d: %+v", i, x)
		}
	}
	huge := &bulkScratch{items: make([]BulkItem, 0, maxScratchItems+1)}
	huge.items = append(huge.items, BulkItem{ID: "keep"})
	n.putScratch(huge)
	if len(huge.items) != 1 || slices.Contains(n.scratch, huge) {
		t.Fatal("scratch of a huge bulk was kept for reuse")
	}
	// As many are kept as the node has write threads (2 by default).
	if got := n.getScratch(); got != sc {
		t.Fatalf("got %p, want the kept %p", got, sc)
	}
	for range 3 {
		n.putScratch(&bulkScratch{})
	}
	if len(n.scratch) != 2 {
		t.Fatalf("%d scratches kept, want 2", len(n.scratch))
	}
}
