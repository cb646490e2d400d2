package essim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/internal/clip"
	"github.com/logdoctor/logdoctor/pkg/essim/store"
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
// per-document entries carry neither id nor source (nothing the garbage
// collector must scan: store's TestEntriesHoldNoPointers checks the
// types), the in-memory slots stay empty, and every read still returns
// the exact bytes, before and after a restart.
func TestDiskStoreKeepsNoSources(t *testing.T) {
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
		st.RLock()
		if u := st.UsageLocked(); u.MemSlots != 0 || u.FreeSlots != 0 {
			st.RUnlock()
			t.Fatalf("disk store holds %d in-memory sources", u.MemSlots)
		}
		ix := st.LookupLocked("m")
		live := 0
		for p := range int32(ix.Len()) {
			if d := ix.At(p); !d.Deleted() {
				live++
				id, _, err := st.DocLocked(d)
				if err != nil || d.Offset() <= 0 || d.Len() != len(srcs[id]) {
					st.RUnlock()
					t.Fatalf("doc %q: off %d n %d (%v), want its place in the log (%d bytes)", id, d.Offset(), d.Len(), err, len(srcs[id]))
				}
			}
		}
		st.RUnlock()
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
	if dir != "" {
		s.Close()
		check(start(t, Config{DataDir: dir}))
	}
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
	s.store.RLock()
	slots := s.store.UsageLocked().MemSlots
	s.store.RUnlock()
	if slots != 2 {
		t.Fatalf("%d source slots for 2 live documents", slots)
	}
	do(t, nil, "DELETE", s.URL()+"/a", "")
	do(t, nil, "POST", s.URL()+"/_bulk", "{\"index\":{\"_index\":\"b\",\"_id\":\"1\"}}\n{\"y\":1}\n")
	s.store.RLock()
	u := s.store.UsageLocked()
	s.store.RUnlock()
	slots, free := u.MemSlots, u.FreeSlots
	if slots != 2 || free != 1 {
		t.Fatalf("after deleting the index: %d slots, %d free", slots, free)
	}
	if got, _ := s.Doc("b", "1"); string(got) != `{"y":1}` {
		t.Fatalf("doc b/1 %q", got)
	}
}

// TestIDHashCollisions keeps ten bits of the id hash, so about three ids
// share each hash: create, 409 on replay, update, delete, compaction
// and a restart must still tell every id apart, on disk and in memory.
func TestIDHashCollisions(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		name := "memory"
		if dir != "" {
			name = "disk"
		}
		t.Run(name, func(t *testing.T) {
			cfg := Config{DataDir: dir, hashMask: 0x3FF}
			s := start(t, cfg)
			const n = 3000
			bulk := func(op string, from, to int, src func(i int) string) map[string]any {
				var b strings.Builder
				for i := from; i < to; i++ {
					fmt.Fprintf(&b, "{%q:{\"_index\":\"c\",\"_id\":\"id-%d\"}}\n", op, i)
					if src != nil {
						b.WriteString(src(i) + "\n")
					}
				}
				r := do(t, nil, "POST", s.URL()+"/_bulk", b.String())
				if r.status != 200 {
					t.Fatalf("bulk %s: %d %.300s", op, r.status, r.body)
				}
				return r.json(t)
			}
			orig := func(i int) string { return fmt.Sprintf(`{"n":%d}`, i) }
			if m := bulk("create", 0, n, orig); m["errors"] != false {
				t.Fatalf("create: %.300v", m)
			}
			// A replay of the same ids: every one a 409, nothing stored twice.
			m := bulk("create", 0, n, orig)
			for i, it := range m["items"].([]any) {
				if st := it.(map[string]any)["create"].(map[string]any)["status"]; st != 409.0 {
					t.Fatalf("replayed create %d: status %v, want 409", i, st)
				}
			}
			// Delete the first two thirds: more than half, so the index compacts.
			bulk("delete", 0, 2*n/3, nil)
			bulk("index", 2*n/3, 2*n/3+10, func(i int) string { return fmt.Sprintf(`{"n":%d,"v":2}`, i) })
			check := func(s *Server) {
				t.Helper()
				if c := s.Count("c"); c != n-2*n/3 {
					t.Fatalf("count %d, want %d", c, n-2*n/3)
				}
				for i := 0; i < n; i++ {
					got, ok := s.Doc("c", fmt.Sprintf("id-%d", i))
					want := orig(i)
					switch {
					case i < 2*n/3:
						if ok {
							t.Fatalf("deleted id-%d still found: %s", i, got)
						}
						continue
					case i < 2*n/3+10:
						want = fmt.Sprintf(`{"n":%d,"v":2}`, i)
					}
					if !ok || string(got) != want {
						t.Fatalf("id-%d = %q, %v; want %s", i, got, ok, want)
					}
				}
				s.store.RLock()
				ix := s.store.LookupLocked("c")
				dead := ix.Dead()
				hashes := map[uint32]int{}
				for i := 2 * n / 3; i < n; i++ {
					hashes[s.store.HashOf(fmt.Sprintf("id-%d", i))]++
				}
				s.store.RUnlock()
				if len(hashes) > (n-2*n/3)*3/4 {
					t.Fatalf("%d live ids have %d hashes: too few collisions to test them", n-2*n/3, len(hashes))
				}
				if dead >= 2*n/3 {
					t.Fatalf("%d dead entries: the index never compacted", dead)
				}
			}
			check(s)
			if dir != "" {
				s.Close()
				check(start(t, cfg))
			}
		})
	}
}

// TestDiskStoreAnyBytes: ids with tabs and newlines and a pretty-printed
// source survive a restart byte for byte; the log bounds them by length.
func TestDiskStoreAnyBytes(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir})
	ids := []string{"tab\there", "new\nline", "I\tx\t1\n", strings.Repeat("é", 200)}
	const src = "{\n  \"a\": \"b\\tc\",\n  \"n\": 1\n}"
	for _, id := range ids {
		r := do(t, nil, "PUT", s.URL()+"/any/_doc/"+url.PathEscape(id), src)
		if r.status != 201 {
			t.Fatalf("PUT %q: %d %s", id, r.status, r.body)
		}
	}
	r := do(t, nil, "DELETE", s.URL()+"/any/_doc/"+url.PathEscape(ids[0]), "")
	if r.status != 200 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	s.Close()
	s = start(t, Config{DataDir: dir})
	if _, ok := s.Doc("any", ids[0]); ok {
		t.Fatalf("deleted %q back after restart", ids[0])
	}
	for _, id := range ids[1:] {
		if got, ok := s.Doc("any", id); !ok || string(got) != src {
			t.Fatalf("Doc(%q) = %q, %v after restart", id, got, ok)
		}
	}
}

// TestDiskStoreRefusesOldLog: a log from an older essim is refused with an
// error that names it, not misread.
func TestDiskStoreRefusesOldLog(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.LogName), []byte("I\tm\t1\t1\n{\"a\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), "127.0.0.1:0", Config{DataDir: dir})
	if err == nil {
		s.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "not an essim data log of this version") || !strings.Contains(err.Error(), store.LogName) {
		t.Fatalf("err = %v", err)
	}
}

// TestMaxDocsFloodStage: at MaxDocs every write item is refused as past
// Elasticsearch's flood-stage watermark (429 cluster_block_exception,
// counted), deletes still work, and they make room again.
func TestMaxDocsFloodStage(t *testing.T) {
	s := start(t, Config{MaxDocs: 5, DataDir: t.TempDir()})
	var b strings.Builder
	for i := 0; i < 7; i++ {
		fmt.Fprintf(&b, "{\"create\":{\"_index\":\"f\",\"_id\":\"%d\"}}\n{\"i\":%d}\n", i, i)
	}
	m := do(t, nil, "POST", s.URL()+"/_bulk", b.String()).json(t)
	items := m["items"].([]any)
	for i, it := range items {
		res := it.(map[string]any)["create"].(map[string]any)
		want := 201.0
		if i >= 5 {
			want = 429
			e, _ := res["error"].(map[string]any)
			if e["type"] != "cluster_block_exception" || !strings.Contains(fmt.Sprint(e["reason"]), "flood-stage watermark") {
				t.Fatalf("item %d: %v", i, res)
			}
		}
		if res["status"] != want {
			t.Fatalf("item %d: status %v, want %v", i, res["status"], want)
		}
	}
	if st := s.Stats(); st.Blocked != 2 || st.Docs != 5 {
		t.Fatalf("stats %+v", st)
	}
	// Updates are writes too; deletes are allowed and free room.
	r := do(t, nil, "POST", s.URL()+"/_bulk", "{\"index\":{\"_index\":\"f\",\"_id\":\"0\"}}\n{\"i\":100}\n{\"delete\":{\"_index\":\"f\",\"_id\":\"1\"}}\n{\"create\":{\"_index\":\"f\",\"_id\":\"5\"}}\n{\"i\":5}\n")
	got := []any{}
	for _, it := range r.json(t)["items"].([]any) {
		for _, v := range it.(map[string]any) {
			got = append(got, v.(map[string]any)["status"])
		}
	}
	if fmt.Sprint(got) != "[429 200 201]" {
		t.Fatalf("index/delete/create at the bound: statuses %v, want [429 200 201]", got)
	}
}

// TestMemoryStoreUpdateKeepsNoBody: an id read from a bulk body aliases
// it, which is free while the stored source comes from the same body; an
// update stores a merged source, and must not keep its request's body
// alive through the id. Ten padded bodies each update one document and
// upsert another; a stale reference or two (the race detector keeps
// some) may keep a body, the ids must not keep them all.
func TestMemoryStoreUpdateKeepsNoBody(t *testing.T) {
	s := start(t, Config{})
	const bodies, pad = 10, 4 << 20
	want := map[string]string{}
	for i := range bodies {
		do(t, nil, "POST", s.URL()+"/_bulk", fmt.Sprintf("{\"index\":{\"_index\":\"a\",\"_id\":\"u%d\"}}\n{\"x\":1}\n", i))
		want[fmt.Sprintf("u%d", i)] = fmt.Sprintf(`{"x":1,"y":%d}`, i)
		want[fmt.Sprintf("new%d", i)] = fmt.Sprintf(`{"z":%d}`, i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range bodies {
		if status, ok := postPaddedUpdates(t, s.URL(), i, pad); status != 200 || !ok {
			t.Fatalf("status %d, errors %v", status, !ok)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if g := int64(after.HeapAlloc) - int64(before.HeapAlloc); g > 3*pad {
		t.Fatalf("the heap grew by %d bytes after updates in %d bodies of %d bytes", g, bodies, pad)
	}
	for id, src := range want {
		if got, _ := s.Doc("a", id); string(got) != src {
			t.Fatalf("%s: %s, want %s", id, got, src)
		}
	}
}

// postPaddedUpdates posts an update of u<i> and an upsert of new<i> in a
// body padded to pad bytes, which lives only in this function's frame.
//
//go:noinline
func postPaddedUpdates(t *testing.T, url string, i, pad int) (status int, noErrors bool) {
	body := fmt.Sprintf("{\"update\":{\"_index\":\"a\",\"_id\":\"u%d\"}}\n{\"doc\":{\"y\":%d},\"pad\":\"%s\"}\n", i, i, strings.Repeat("p", pad)) +
		fmt.Sprintf("{\"update\":{\"_index\":\"a\",\"_id\":\"new%d\"}}\n{\"doc\":{\"z\":%d},\"doc_as_upsert\":true}\n", i, i)
	r := do(t, nil, "POST", url+"/_bulk", body)
	return r.status, strings.Contains(string(r.body), `"errors":false`)
}

// TestDiskStoreReusesBodies: with a data dir a bulk's body memory serves
// the next bulk, so nothing may keep pointing into it. Bulks of the same
// size, each overwriting the last one's body, create, conflict on,
// update and delete documents; every id and source must read back as
// sent, after the bodies are gone and after a restart. Without a data dir
// (where stored documents point into their bodies) the same holds.
func TestDiskStoreReusesBodies(t *testing.T) {
	for _, dir := range []string{t.TempDir(), ""} {
		storeReusesBodies(t, dir)
	}
}

func storeReusesBodies(t *testing.T, dir string) {
	s := start(t, Config{DataDir: dir})
	want := map[string]string{}
	bulk := func(round int) string {
		var b strings.Builder
		for i := 0; i < 50; i++ {
			id := fmt.Sprintf("r%d-%03d", round, i)
			src := fmt.Sprintf(`{"round":%d,"i":%d,"pad":"%c%c%c"}`, round, i, 'a'+round, 'a'+round, 'a'+round)
			fmt.Fprintf(&b, "{\"create\":{\"_index\":\"a\",\"_id\":%q}}\n%s\n", id, src)
			want[id] = src
			if round > 0 { // the previous round's ids again: 409, naming the id
				prev := fmt.Sprintf("r%d-%03d", round-1, i)
				fmt.Fprintf(&b, "{\"create\":{\"_index\":\"a\",\"_id\":%q}}\n{\"round\":%d,\"i\":%d,\"pad\":\"zzz\"}\n", prev, round, i)
			}
		}
		return b.String()
	}
	for round := 0; round < 4; round++ {
		r := do(t, nil, "POST", s.URL()+"/_bulk", bulk(round))
		if r.status != 200 {
			t.Fatalf("round %d: %d %s", round, r.status, clip.Bytes(r.body, 300))
		}
		if round > 0 && !strings.Contains(string(r.body), fmt.Sprintf(`"[r%d-049]: version conflict`, round-1)) {
			t.Fatalf("round %d: no conflict on r%d-049 in %s", round, round-1, clip.Bytes(r.body, 300))
		}
	}
	// An update and a delete, then a bulk that overwrites their body.
	do(t, nil, "POST", s.URL()+"/_bulk", "{\"update\":{\"_index\":\"a\",\"_id\":\"r0-000\"}}\n{\"doc\":{\"u\":1}}\n{\"delete\":{\"_index\":\"a\",\"_id\":\"r0-001\"}}\n")
	want["r0-000"] = `{"i":0,"pad":"aaa","round":0,"u":1}` // an update re-encodes
	delete(want, "r0-001")
	do(t, nil, "POST", s.URL()+"/_bulk", bulk(4))
	check := func(s *Server) {
		t.Helper()
		if got := s.Count("a"); got != len(want) {
			t.Fatalf("%d documents, want %d", got, len(want))
		}
		for id, src := range want {
			if got, ok := s.Doc("a", id); !ok || string(got) != src {
				t.Fatalf("%s: %s (found %v), want %s", id, got, ok, src)
			}
		}
	}
	check(s)
	if dir != "" {
		s.Close()
		check(start(t, Config{DataDir: dir}))
	}
}
