package essim

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// bigBulk indexes n documents of about size bytes each into index "m" with
// ids m-0, m-1, ... and returns their sources by id.
func bigBulk(t *testing.T, s *Server, n, size int) map[string]string {
	t.Helper()
	srcs := map[string]string{}
	const per = 500
	for start := 0; start < n; start += per {
		var b strings.Builder
		for i := start; i < min(start+per, n); i++ {
			id := fmt.Sprintf("m-%d", i)
			src := fmt.Sprintf(`{"n":%d,"host":"h%d","message":"%s"}`, i, i%3, strings.Repeat(string(rune('a'+i%26)), size))
			srcs[id] = src
			fmt.Fprintf(&b, "{\"index\":{\"_index\":\"m\",\"_id\":%q}}\n%s\n", id, src)
		}
		r := do(t, nil, "POST", s.URL()+"/_bulk", b.String())
		if r.status != 200 || get(r.json(t), "errors") != false {
			t.Fatalf("bulk: %d %.300s", r.status, r.body)
		}
	}
	return srcs
}

// TestDiskStoreKeepsNoSources is the structural half of "the embedded
// essim does not grow memory with the documents": with a data dir the
// per-document entries carry no bytes of source (only the id string), the
// in-memory source slots stay empty, and every read still returns the exact
// bytes, before and after a restart.
func TestDiskStoreKeepsNoSources(t *testing.T) {
	// doc may hold exactly one variable-length field, the id.
	dt := reflect.TypeOf(doc{})
	for i := 0; i < dt.NumField(); i++ {
		f := dt.Field(i)
		switch f.Type.Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Array:
			t.Fatalf("doc.%s is a %s: documents must not hold their source in memory", f.Name, f.Type)
		case reflect.String:
			if f.Name != "id" {
				t.Fatalf("doc.%s is a string besides the id", f.Name)
			}
		}
	}
	if sz := dt.Size(); sz > 48 {
		t.Fatalf("doc is %d bytes, want <= 48", sz)
	}

	dir := t.TempDir()
	s := start(t, Config{DataDir: dir})
	const n = 2000
	srcs := bigBulk(t, s, n, 300)
	// An update of a document written earlier in the same bulk reads its
	// source back while the record may still be in the writer's buffer.
	r := do(t, nil, "POST", s.URL()+"/_bulk", "{\"index\":{\"_index\":\"m\",\"_id\":\"u\"}}\n{\"a\":1}\n{\"update\":{\"_index\":\"m\",\"_id\":\"u\"}}\n{\"doc\":{\"b\":2}}\n")
	if r.status != 200 || get(r.json(t), "errors") != false {
		t.Fatalf("bulk update: %d %s", r.status, r.body)
	}
	srcs["u"] = `{"a":1,"b":2}`

	check := func(s *Server) {
		t.Helper()
		st := s.store
		st.mu.RLock()
		if len(st.mem) != 0 || len(st.free) != 0 {
			st.mu.RUnlock()
			t.Fatalf("disk store holds %d in-memory sources", len(st.mem))
		}
		ix := st.indices["m"]
		live := 0
		for _, c := range ix.docs {
			for i := range c {
				if d := &c[i]; !d.deleted {
					live++
					if d.off <= 0 || int(d.n) != len(srcs[d.id]) {
						st.mu.RUnlock()
						t.Fatalf("doc %s: off %d n %d, want its source's place in the log (%d bytes)", d.id, d.off, d.n, len(srcs[d.id]))
					}
				}
			}
		}
		st.mu.RUnlock()
		if live != n+1 {
			t.Fatalf("%d live docs, want %d", live, n+1)
		}
		for _, id := range []string{"m-0", "m-777", fmt.Sprintf("m-%d", n-1), "u"} {
			if got, ok := s.Doc("m", id); !ok || string(got) != srcs[id] {
				t.Fatalf("Doc(%s) = %q, %v; want %q", id, got, ok, srcs[id])
			}
			r := do(t, nil, "GET", s.URL()+"/m/_doc/"+id, "")
			var g struct {
				Source json.RawMessage `json:"_source"`
			}
			if err := json.Unmarshal([]byte(r.body), &g); err != nil || string(g.Source) != srcs[id] {
				t.Fatalf("GET _doc/%s: %d %.200s", id, r.status, r.body)
			}
		}
		// A term query and an aggregation parse every document from the log.
		r := do(t, nil, "POST", s.URL()+"/m/_search", `{"size":3,"query":{"term":{"host":"h1"}},"aggs":{"h":{"terms":{"field":"host"}}}}`)
		var res struct {
			Hits struct {
				Total struct{ Value int } `json:"total"`
				Hits  []struct {
					ID     string          `json:"_id"`
					Source json.RawMessage `json:"_source"`
				} `json:"hits"`
			} `json:"hits"`
			Aggs struct {
				H struct {
					Buckets []struct {
						Key   string `json:"key"`
						Count int    `json:"doc_count"`
					} `json:"buckets"`
				} `json:"h"`
			} `json:"aggregations"`
		}
		if err := json.Unmarshal([]byte(r.body), &res); err != nil {
			t.Fatalf("search: %v %.300s", err, r.body)
		}
		want := (n + 1) / 3 // i%3 == 1 for i < n
		if res.Hits.Total.Value != want || len(res.Hits.Hits) != 3 || len(res.Aggs.H.Buckets) != 1 || res.Aggs.H.Buckets[0].Count != want {
			t.Fatalf("search: %.500s", r.body)
		}
		for _, h := range res.Hits.Hits {
			if string(h.Source) != srcs[h.ID] {
				t.Fatalf("hit %s source %q, want %q", h.ID, h.Source, srcs[h.ID])
			}
		}
	}
	check(s)
	s.Close()
	check(start(t, Config{DataDir: dir}))
}

// TestDiskStoreHeapDoesNotHoldSources indexes 40 MiB of sources and checks
// the live heap grew by a small fraction of that with a data dir, and by at
// least all of it without one (so the measurement can tell them apart).
func TestDiskStoreHeapDoesNotHoldSources(t *testing.T) {
	const n, size = 10000, 4096
	grown := func(dir string) int64 {
		s := start(t, Config{DataDir: dir})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		bigBulk(t, s, n, size)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(s)
		return int64(after.HeapAlloc) - int64(before.HeapAlloc)
	}
	if g := grown(""); g < n*size {
		t.Fatalf("in-memory store grew the heap by %d bytes for %d bytes of sources: the measurement does not work", g, n*size)
	}
	if g := grown(t.TempDir()); g > n*size/8 {
		t.Fatalf("disk store grew the heap by %d bytes for %d bytes of sources, want < %d", g, n*size, n*size/8)
	}
}

// TestMemoryStoreReusesSlots: without a data dir, deleted documents and
// indices give their source slots back.
func TestMemoryStoreReusesSlots(t *testing.T) {
	s := start(t, Config{})
	do(t, nil, "POST", s.URL()+"/_bulk", "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n{\"index\":{\"_index\":\"a\",\"_id\":\"2\"}}\n{\"x\":2}\n{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"index\":{\"_index\":\"a\",\"_id\":\"3\"}}\n{\"x\":3}\n{\"index\":{\"_index\":\"a\",\"_id\":\"2\"}}\n{\"x\":22}\n")
	if got, _ := s.Doc("a", "3"); string(got) != `{"x":3}` {
		t.Fatalf("doc 3 %q", got)
	}
	if got, _ := s.Doc("a", "2"); string(got) != `{"x":22}` {
		t.Fatalf("doc 2 %q", got)
	}
	s.store.mu.RLock()
	slots := len(s.store.mem)
	s.store.mu.RUnlock()
	if slots != 2 {
		t.Fatalf("%d source slots for 2 live documents", slots)
	}
	do(t, nil, "DELETE", s.URL()+"/a", "")
	do(t, nil, "POST", s.URL()+"/_bulk", "{\"index\":{\"_index\":\"b\",\"_id\":\"1\"}}\n{\"y\":1}\n")
	s.store.mu.RLock()
	slots, free := len(s.store.mem), len(s.store.free)
	s.store.mu.RUnlock()
	if slots != 2 || free != 1 {
		t.Fatalf("after deleting the index: %d slots, %d free", slots, free)
	}
	if got, _ := s.Doc("b", "1"); string(got) != `{"y":1}` {
		t.Fatalf("doc b/1 %q", got)
	}
}
