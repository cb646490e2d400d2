package essim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

// modelDoc is what the term index test expects a document to hold.
type modelDoc struct {
	tag  string
	n    int
	tags []string
}

func (d modelDoc) source() string {
	return fmt.Sprintf(`{"tag":%q,"n":%d,"tags":["%s"]}`, d.tag, d.n, strings.Join(d.tags, `","`))
}

// TestTermIndexAgainstModel runs random writes (new documents, in-place
// overwrites, deletes, enough of them to compact) and after each round
// compares the counts of term, terms, ids and bool queries, answered
// from the term index, with a model of the index. Memory and disk
// stores.
func TestTermIndexAgainstModel(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		s := start(t, Config{DataDir: dir})
		rng := rand.New(rand.NewPCG(7, 9))
		model := map[string]modelDoc{}
		tags := []string{"a", "b", "c", "d", "e"}
		nextID := 0
		for round := 0; round < 12; round++ {
			var b strings.Builder
			for i := 0; i < 600; i++ {
				switch op := rng.IntN(10); {
				case op < 6 || len(model) == 0: // new
					id := fmt.Sprintf("d%d", nextID)
					nextID++
					d := modelDoc{tag: tags[rng.IntN(len(tags))], n: rng.IntN(50), tags: []string{tags[rng.IntN(5)], tags[rng.IntN(5)]}}
					model[id] = d
					fmt.Fprintf(&b, "{\"index\":{\"_index\":\"m\",\"_id\":%q}}\n%s\n", id, d.source())
				case op < 8: // overwrite in place
					id := anyKey(rng, model)
					d := modelDoc{tag: tags[rng.IntN(len(tags))], n: rng.IntN(50), tags: []string{tags[rng.IntN(5)]}}
					model[id] = d
					fmt.Fprintf(&b, "{\"index\":{\"_index\":\"m\",\"_id\":%q}}\n%s\n", id, d.source())
				default: // delete
					id := anyKey(rng, model)
					delete(model, id)
					fmt.Fprintf(&b, "{\"delete\":{\"_index\":\"m\",\"_id\":%q}}\n", id)
				}
			}
			if round == 8 { // delete most: compaction renumbers positions
				for id := range model {
					if rng.IntN(10) != 0 {
						delete(model, id)
						fmt.Fprintf(&b, "{\"delete\":{\"_index\":\"m\",\"_id\":%q}}\n", id)
					}
				}
			}
			if m := do(t, nil, "POST", s.URL()+"/_bulk", b.String()).json(t); m["errors"] != false {
				t.Fatalf("round %d: bulk errors", round)
			}
			checkModel(t, s, model, round, rng)
		}
		s.store.RLock()
		ix := s.store.LookupLocked("m")
		compacted := ix.Len() < nextID
		s.store.RUnlock()
		if !compacted {
			t.Errorf("the test never compacted the index (%d entries for %d ids)", ix.Len(), nextID)
		}
	}
}

func anyKey(rng *rand.Rand, m map[string]modelDoc) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys[rng.IntN(len(keys))]
}

func checkModel(t *testing.T, s *Server, model map[string]modelDoc, round int, rng *rand.Rand) {
	t.Helper()
	count := func(query string) int {
		m := do(t, nil, "POST", s.URL()+"/m/_count", `{"query":`+query+`}`).json(t)
		c, ok := m["count"].(float64)
		if !ok {
			t.Fatalf("round %d: %s: %v", round, query, m)
		}
		return int(c)
	}
	want := func(f func(modelDoc) bool) int {
		k := 0
		for _, d := range model {
			if f(d) {
				k++
			}
		}
		return k
	}
	has := func(list []string, v string) bool {
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	ns := []int{rng.IntN(50), rng.IntN(50), rng.IntN(50)}
	var someIDs []string
	for id := range model {
		if len(someIDs) < 20 {
			someIDs = append(someIDs, id)
		}
	}
	someIDs = append(someIDs, "never-indexed")
	cases := []struct {
		query string
		want  int
	}{
		{`{"term":{"tag":"a"}}`, want(func(d modelDoc) bool { return d.tag == "a" })},
		{`{"term":{"tag.keyword":{"value":"b"}}}`, want(func(d modelDoc) bool { return d.tag == "b" })},
		{`{"term":{"tags":"c"}}`, want(func(d modelDoc) bool { return has(d.tags, "c") })},
		{fmt.Sprintf(`{"terms":{"n":[%d,%d,"%d"]}}`, ns[0], ns[1], ns[2]), want(func(d modelDoc) bool { return d.n == ns[0] || d.n == ns[1] || d.n == ns[2] })},
		{fmt.Sprintf(`{"bool":{"filter":[{"term":{"tag":"a"}},{"terms":{"n":[%d,%d]}}]}}`, ns[0], ns[1]),
			want(func(d modelDoc) bool { return d.tag == "a" && (d.n == ns[0] || d.n == ns[1]) })},
		{`{"bool":{"must":{"term":{"tag":"d"}},"must_not":{"term":{"tags":"d"}}}}`,
			want(func(d modelDoc) bool { return d.tag == "d" && !has(d.tags, "d") })},
		{`{"bool":{"should":[{"term":{"tag":"e"}},{"term":{"tags":"a"}}]}}`,
			want(func(d modelDoc) bool { return d.tag == "e" || has(d.tags, "a") })},
		{`{"bool":{"filter":{"exists":{"field":"n"}},"should":[{"term":{"tag":"e"}}]}}`, len(model)},
		{`{"ids":{"values":["` + strings.Join(someIDs, `","`) + `"]}}`, len(someIDs) - 1},
		{`{"match_none":{}}`, 0},
		{`{"match_all":{}}`, len(model)},
	}
	for _, c := range cases {
		if got := count(c.query); got != c.want {
			t.Errorf("round %d: %s: count %d, want %d", round, c.query, got, c.want)
		}
	}
}

// TestTookIsTheSearchTime: took is what the search cost, not a constant.
func TestTookIsTheSearchTime(t *testing.T) {
	s := start(t, Config{})
	for i := 0; i < 30; i++ {
		do(t, nil, "POST", s.URL()+"/_bulk", string(bulkBody(1000, "took", i)))
	}
	begin := time.Now()
	// A terms aggregation reads and parses all 30,000 documents.
	m := do(t, nil, "POST", s.URL()+"/took/_search", `{"size":0,"aggs":{"h":{"terms":{"field":"host"}}}}`).json(t)
	elapsed := time.Since(begin).Milliseconds()
	took, _ := m["took"].(float64)
	if took < 5 || int64(took) > elapsed {
		t.Fatalf("took %v ms, the request took %d ms", m["took"], elapsed)
	}
}

func TestCompositeAggregationPages(t *testing.T) {
	s := start(t, Config{})
	var b strings.Builder
	// 30 documents: n 0..14 twice, host h0..h2; two without n.
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&b, "{\"index\":{\"_index\":\"ca\"}}\n{\"n\":%d,\"host\":\"h%d\"}\n", i%15, i%3)
	}
	b.WriteString("{\"index\":{\"_index\":\"ca\"}}\n{\"host\":\"h9\"}\n{\"index\":{\"_index\":\"ca\"}}\n{\"host\":\"h9\"}\n")
	do(t, nil, "POST", s.URL()+"/_bulk", b.String())
	page := func(body string) map[string]any {
		t.Helper()
		r := do(t, nil, "POST", s.URL()+"/ca/_search", body)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", body, r.status, r.body)
		}
		return r.json(t)
	}
	// Numbers in numeric order (2 before 10), pages of 4, after_key chaining.
	var seen []float64
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("composite never ended")
		}
		m := page(`{"size":0,"aggs":{"d":{"composite":{"size":4,"sources":[{"n":{"terms":{"field":"n"}}}]` + after + `}}}}`)
		bs, _ := get(m, "aggregations.d.buckets").([]any)
		ak := get(m, "aggregations.d.after_key")
		if len(bs) == 0 {
			if ak != nil {
				t.Fatalf("empty page with after_key %v", ak)
			}
			break
		}
		for _, x := range bs {
			bk := x.(map[string]any)
			if bk["doc_count"] != 2.0 {
				t.Fatalf("bucket %v", bk)
			}
			seen = append(seen, bk["key"].(map[string]any)["n"].(float64))
		}
		last := bs[len(bs)-1].(map[string]any)["key"].(map[string]any)["n"]
		if ak.(map[string]any)["n"] != last {
			t.Fatalf("after_key %v, last key %v", ak, last)
		}
		after = fmt.Sprintf(`,"after":{"n":%v}`, last)
	}
	if len(seen) != 15 || !sort.Float64sAreSorted(seen) || seen[0] != 0 || seen[14] != 14 {
		t.Fatalf("keys %v", seen)
	}
	// Two sources, descending host, missing_bucket for n.
	m := page(`{"size":0,"aggs":{"d":{"composite":{"size":100,"sources":[{"host":{"terms":{"field":"host.keyword","order":"desc"}}},{"n":{"terms":{"field":"n","missing_bucket":true}}}]}}}}`)
	bs := get(m, "aggregations.d.buckets").([]any)
	first := bs[0].(map[string]any)
	if len(bs) != 16 || first["key"].(map[string]any)["host"] != "h9" || first["key"].(map[string]any)["n"] != nil || first["doc_count"] != 2.0 {
		t.Fatalf("two sources: %d buckets, first %v", len(bs), first)
	}
	for _, bad := range []string{
		`{"aggs":{"d":{"composite":{"sources":[]}}}}`,
		`{"aggs":{"d":{"composite":{"sources":[{"n":{"terms":{"field":"n"}}}],"after":{"x":1}}}}}`,
		`{"aggs":{"d":{"composite":{"sources":[{"n":{"terms":{"field":"n"}}}],"size":0}}}}`,
		`{"aggs":{"d":{"composite":{"sources":[{"n":{"histogram":{"field":"n"}}}]}}}}`,
	} {
		if r := do(t, nil, "POST", s.URL()+"/ca/_search", bad); r.status != 400 {
			t.Errorf("%s: %d %s", bad, r.status, r.body)
		}
	}
}

func TestScrollPagesThroughEverything(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		s := start(t, Config{DataDir: dir})
		for i := 0; i < 25; i++ {
			do(t, nil, "POST", s.URL()+"/_bulk", string(bulkBody(1000, "sc", i)))
		}
		r := do(t, nil, "POST", s.URL()+"/sc/_search?scroll=1m", `{"size":10000,"_source":["seq"],"sort":["_doc"]}`)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		m := r.json(t)
		id, _ := m["_scroll_id"].(string)
		if id == "" || get(m, "hits.total.value") != 25000.0 || get(m, "hits.total.relation") != "eq" {
			t.Fatalf("first page: id %q total %v", id, get(m, "hits.total"))
		}
		// Changes after the search began: a new document is not in the
		// context, a deleted one is skipped, and deleting enough to
		// compact does not move what the context reads.
		var b strings.Builder
		b.WriteString("{\"index\":{\"_index\":\"sc\",\"_id\":\"late\"}}\n{\"seq\":-1}\n")
		do(t, nil, "POST", s.URL()+"/_bulk", b.String())
		ids := s.ids("sc")
		deleted := map[string]bool{}
		b.Reset()
		for _, x := range ids[10000:23000] { // enough to compact, were it not pinned
			deleted[x] = true
			fmt.Fprintf(&b, "{\"delete\":{\"_index\":\"sc\",\"_id\":%q}}\n", x)
		}
		do(t, nil, "POST", s.URL()+"/_bulk", b.String())
		seen := map[string]bool{}
		for _, h := range get(m, "hits.hits").([]any) {
			seen[h.(map[string]any)["_id"].(string)] = true
		}
		pages := 1
		for {
			r := do(t, nil, "POST", s.URL()+"/_search/scroll", `{"scroll":"1m","scroll_id":"`+id+`"}`)
			if r.status != 200 {
				t.Fatalf("page %d: %d %s", pages, r.status, r.body)
			}
			m := r.json(t)
			if get(m, "_scroll_id") != id || get(m, "hits.total.value") != 25000.0 {
				t.Fatalf("page %d: %v %v", pages, get(m, "_scroll_id"), get(m, "hits.total"))
			}
			hits := get(m, "hits.hits").([]any)
			if len(hits) == 0 {
				break
			}
			pages++
			for _, h := range hits {
				hid := h.(map[string]any)["_id"].(string)
				if seen[hid] || deleted[hid] || hid == "late" {
					t.Fatalf("page %d: %s seen twice, deleted or late", pages, hid)
				}
				seen[hid] = true
				if src := h.(map[string]any)["_source"].(map[string]any); len(src) != 1 || src["seq"] == nil {
					t.Fatalf("source filter: %v", src)
				}
			}
		}
		if len(seen) != 25000-13000 || pages != 2 {
			t.Fatalf("scrolled %d documents in %d pages, want 12000 in 2", len(seen), pages)
		}
		s.store.RLock()
		pinned, entries := s.store.LookupLocked("sc").Pins(), s.store.LookupLocked("sc").Len()
		s.store.RUnlock()
		if pinned != 1 || entries != 25001 {
			t.Fatalf("pins %d, %d entries while the scroll is open (compaction must wait)", pinned, entries)
		}
		// Clear: 200 num_freed 1, then 404 num_freed 0; the id is gone.
		if r := do(t, nil, "DELETE", s.URL()+"/_search/scroll", `{"scroll_id":["`+id+`"]}`); r.status != 200 || get(r.json(t), "num_freed") != 1.0 {
			t.Fatalf("clear: %d %s", r.status, r.body)
		}
		if r := do(t, nil, "DELETE", s.URL()+"/_search/scroll", `{"scroll_id":"`+id+`"}`); r.status != 404 || get(r.json(t), "num_freed") != 0.0 {
			t.Fatalf("second clear: %d %s", r.status, r.body)
		}
		r = do(t, nil, "GET", s.URL()+"/_search/scroll?scroll_id="+id, "")
		if m := r.json(t); r.status != 404 || get(m, "error.type") != "search_phase_execution_exception" ||
			get(m, "error.root_cause.0.type") != "search_context_missing_exception" {
			t.Fatalf("after clear: %d %s", r.status, r.body)
		}
		// Unpinned, the next delete compacts.
		do(t, nil, "POST", s.URL()+"/_bulk", "{\"delete\":{\"_index\":\"sc\",\"_id\":\"late\"}}\n")
		s.store.RLock()
		pinned, entries = s.store.LookupLocked("sc").Pins(), s.store.LookupLocked("sc").Len()
		s.store.RUnlock()
		if pinned != 0 || entries != 12000 {
			t.Fatalf("pins %d, %d entries after clear and a delete", pinned, entries)
		}
	}
}

func TestScrollExpiresAndRefusesBadRequests(t *testing.T) {
	s := start(t, Config{})
	do(t, nil, "POST", s.URL()+"/_bulk", string(bulkBody(30, "ex", 0)))
	m := do(t, nil, "POST", s.URL()+"/ex/_search?scroll=50ms&size=10", "").json(t)
	id := m["_scroll_id"].(string)
	time.Sleep(100 * time.Millisecond)
	if r := do(t, nil, "POST", s.URL()+"/_search/scroll/"+id, ""); r.status != 404 {
		t.Fatalf("expired scroll: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		typ                string
	}{
		{"POST", "/ex/_search?scroll=1m", `{"from":10}`, 400, "action_request_validation_exception"},
		{"POST", "/ex/_search?scroll=1m", `{"size":10001}`, 400, "illegal_argument_exception"},
		{"POST", "/ex/_search?scroll=soon", ``, 400, "parse_exception"},
		{"POST", "/ex/_search?scroll=2d", ``, 400, "illegal_argument_exception"},
		{"POST", "/_search/scroll", `{"scroll_id":"not-ours"}`, 400, "illegal_argument_exception"},
		{"POST", "/_search/scroll", `{}`, 400, "action_request_validation_exception"},
		{"DELETE", "/_search/scroll", `{}`, 400, "action_request_validation_exception"},
		{"PUT", "/_search/scroll", `{}`, 405, ""},
	} {
		r := do(t, nil, c.method, s.URL()+c.path, c.body)
		if r.status != c.status || (c.typ != "" && get(r.json(t), "error.type") != c.typ) {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, r.status, r.body)
		}
	}
	// _all frees every context.
	for i := 0; i < 3; i++ {
		do(t, nil, "POST", s.URL()+"/ex/_search?scroll=1m&size=5", "")
	}
	if r := do(t, nil, "DELETE", s.URL()+"/_search/scroll/_all", ""); r.status != 200 || get(r.json(t), "num_freed") != 3.0 {
		t.Fatalf("clear _all: %d %s", r.status, r.body)
	}
}
