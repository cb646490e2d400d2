package essim

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim/store"
)

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(context.Background(), "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d body %q: %v", r.status, r.body, err)
	}
	return m
}

func do(t *testing.T, c *http.Client, method, url string, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, b}
}

func get(m map[string]any, path string) any {
	var v any = m
	for _, p := range strings.Split(path, ".") {
		switch t := v.(type) {
		case map[string]any:
			v = t[p]
		case []any:
			var i int
			fmt.Sscan(p, &i)
			if i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

func TestRootVersionsAndHeaders(t *testing.T) {
	for _, tc := range []struct {
		version string
		header  string
	}{{"", "Elasticsearch"}, {"7.17.9", "Elasticsearch"}, {"7.10.2", ""}} {
		s := start(t, Config{Version: tc.version})
		r := do(t, nil, "GET", s.URL()+"/", "")
		m := r.json(t)
		if r.status != 200 || get(m, "tagline") != "You Know, for Search" || get(m, "version.build_flavor") != "default" {
			t.Fatalf("%s: %d %s", tc.version, r.status, r.body)
		}
		want := tc.version
		if want == "" {
			want = DefaultVersion
		}
		if get(m, "version.number") != want {
			t.Errorf("version %v, want %s", get(m, "version.number"), want)
		}
		if got := r.header.Get("X-Elastic-Product"); got != tc.header {
			t.Errorf("%s: X-Elastic-Product %q, want %q", want, got, tc.header)
		}
		h := do(t, nil, "HEAD", s.URL()+"/", "")
		if h.status != 200 || len(h.body) != 0 {
			t.Errorf("HEAD /: %d %q", h.status, h.body)
		}
		for _, m := range []string{"DELETE", "POST", "PUT"} {
			if d := do(t, nil, m, s.URL()+"/", ""); d.status != 405 || !strings.Contains(string(d.body), "Incorrect HTTP method") {
				t.Errorf("%s /: %d %s", m, d.status, d.body)
			}
		}
	}
}

func TestBulkCreateConflictCountSearch(t *testing.T) {
	s := start(t, Config{})
	body := `{"create":{"_index":"logs","_id":"a"}}
{"msg":"one","host":"h1"}
{"create":{"_index":"logs","_id":"b"}}
{"msg":"two","host":"h2"}
{"index":{"_index":"logs"}}
{"msg":"three","host":"h1"}
`
	r := do(t, nil, "POST", s.URL()+"/_bulk", body)
	m := r.json(t)
	if r.status != 200 || get(m, "errors") != false {
		t.Fatalf("first bulk: %d %s", r.status, r.body)
	}
	if get(m, "items.0.create.status") != 201.0 || get(m, "items.0.create._id") != "a" || get(m, "items.0.create.result") != "created" {
		t.Fatalf("item 0: %s", r.body)
	}
	if id, _ := get(m, "items.2.index._id").(string); len(id) != 20 {
		t.Fatalf("generated id %q", id)
	}
	r = do(t, nil, "POST", s.URL()+"/logs/_bulk", `{"create":{"_id":"a"}}
{"msg":"one","host":"h1"}
`)
	m = r.json(t)
	if get(m, "errors") != true || get(m, "items.0.create.status") != 409.0 ||
		get(m, "items.0.create.error.type") != "version_conflict_engine_exception" {
		t.Fatalf("replay: %s", r.body)
	}
	if s.Count("logs") != 3 || s.Stats().Conflicts != 1 {
		t.Fatalf("count %d stats %+v", s.Count("logs"), s.Stats())
	}
	if c := do(t, nil, "GET", s.URL()+"/logs/_count", "").json(t); get(c, "count") != 3.0 {
		t.Fatalf("_count: %v", c)
	}
	if c := do(t, nil, "POST", s.URL()+"/log*/_count", `{"query":{"term":{"host.keyword":"h1"}}}`).json(t); get(c, "count") != 2.0 {
		t.Fatalf("_count term: %v", c)
	}
	sr := do(t, nil, "POST", s.URL()+"/logs/_search", `{"size":5,"query":{"terms":{"host":["h2"]}}}`).json(t)
	if get(sr, "hits.total.value") != 1.0 || get(sr, "hits.hits.0._source.msg") != "two" || get(sr, "hits.hits.0._id") != "b" {
		t.Fatalf("search: %v", sr)
	}
	ag := do(t, nil, "POST", s.URL()+"/logs/_search", `{"size":0,"aggs":{"d":{"terms":{"field":"host","min_doc_count":2}}}}`).json(t)
	if get(ag, "aggregations.d.buckets.0.key") != "h1" || get(ag, "aggregations.d.buckets.0.doc_count") != 2.0 || get(ag, "aggregations.d.buckets.1") != nil {
		t.Fatalf("aggs: %v", ag)
	}
	if d := do(t, nil, "GET", s.URL()+"/logs/_doc/b", "").json(t); get(d, "found") != true || get(d, "_source.msg") != "two" {
		t.Fatalf("_doc: %v", d)
	}
	if r := do(t, nil, "GET", s.URL()+"/nope/_count", ""); r.status != 404 || get(r.json(t), "error.type") != "index_not_found_exception" {
		t.Fatalf("missing index: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "POST", s.URL()+"/nope,logs/_search?ignore_unavailable=true&allow_no_indices=true", `{"size":0}`); r.status != 200 || get(r.json(t), "hits.total.value") != 3.0 {
		t.Fatalf("ignore_unavailable: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "POST", s.URL()+"/nope/_refresh?ignore_unavailable=true", ""); r.status != 200 {
		t.Fatalf("refresh ignore_unavailable: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "GET", s.URL()+"/zz*/_count?allow_no_indices=false", ""); r.status != 404 {
		t.Fatalf("allow_no_indices=false: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "POST", s.URL()+"/logs/_search", `{"_source":["msg"],"query":{"ids":{"values":["a"]}}}`); string(get(r.json(t), "hits.hits.0._source").(map[string]any)["msg"].(string)) != "one" ||
		get(r.json(t), "hits.hits.0._source.host") != nil {
		t.Fatalf("_source filter: %s", r.body)
	}
	if r := do(t, nil, "POST", s.URL()+"/logs/_search?_source=false", `{"query":{"ids":{"values":["a"]}}}`); get(r.json(t), "hits.hits.0._id") != "a" || get(r.json(t), "hits.hits.0._source") != nil {
		t.Fatalf("_source=false: %s", r.body)
	}
	if r := do(t, nil, "GET", s.URL()+"/_cat/indices/log*?format=json&h=index,docs.count", ""); string(r.body) != `[{"docs.count":"3","index":"logs"}]` {
		t.Fatalf("_cat/indices: %s", r.body)
	}
	if r := do(t, nil, "GET", s.URL()+"/_cat/indices?v&h=index,docs.count", ""); string(r.body) != "index docs.count\nlogs 3\n" {
		t.Fatalf("_cat/indices text: %q", r.body)
	}
	if r := do(t, nil, "POST", s.URL()+"/_refresh", ""); r.status != 200 {
		t.Fatalf("_refresh %d", r.status)
	}
	if h := do(t, nil, "GET", s.URL()+"/_cluster/health", "").json(t); get(h, "status") != "green" || get(h, "number_of_nodes") != 1.0 {
		t.Fatalf("health %v", h)
	}
	// filter_path as fluent-plugin-elasticsearch sends it.
	fp := do(t, nil, "POST", s.URL()+"/_bulk?filter_path=errors,items.*.error,items.*.status", `{"create":{"_index":"logs","_id":"a"}}
{"x":1}
`)
	if string(fp.body) != `{"errors":true,"items":[{"create":{"error":{"index":"logs","index_uuid":"`+get(fp.json(t), "items.0.create.error.index_uuid").(string)+`","reason":"[a]: version conflict, document already exists (current version [1])","shard":"0","type":"version_conflict_engine_exception"},"status":409}}]}` {
		t.Fatalf("filter_path: %s", fp.body)
	}
}

func TestBulkMalformedAndLimits(t *testing.T) {
	s := start(t, Config{MaxContentLength: 4096})
	for _, tc := range []struct{ body, want string }{
		{`{"index":{}}` + "\n" + `{"a":1}`, "terminated by a newline"},
		{"{\"bogus\":{}}\n{}\n", "Malformed action/metadata line [1]"},
		{"not json\n", "Malformed action/metadata line [1]"},
		{"{\"index\":{\"_index\":\"x\"}}\n", "no source line"},
	} {
		r := do(t, nil, "POST", s.URL()+"/_bulk", tc.body)
		if r.status != 400 || !strings.Contains(string(r.body), tc.want) || get(r.json(t), "error.type") != "illegal_argument_exception" {
			t.Errorf("%q: %d %s", tc.body, r.status, r.body)
		}
	}
	// Elasticsearch 8 refuses mapping types unless asked for 7.x compatibility.
	typed := "{\"index\":{\"_index\":\"t\"}}\n{}\n{\"index\":{\"_index\":\"t\",\"_type\":\"events\"}}\n{}\n"
	if r := do(t, nil, "POST", s.URL()+"/_bulk", typed); r.status != 400 || get(r.json(t), "error.reason") != "Action/metadata line [3] contains an unknown parameter [_type]" {
		t.Errorf("_type on 8: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "POST", s.URL()+"/_bulk", typed, "Content-Type", "application/vnd.elasticsearch+x-ndjson;compatible-with=7"); r.status != 200 || s.Count("t") != 2 {
		t.Errorf("_type with compatible-with=7: %d %s", r.status, r.body)
	}
	r := do(t, nil, "POST", s.URL()+"/_bulk", "{\"index\":{\"_index\":\"Bad\"}}\n{}\n{\"index\":{\"_index\":\"x\"}}\n[1]\n")
	m := r.json(t)
	if get(m, "items.0.index.error.type") != "invalid_index_name_exception" || get(m, "items.1.index.error.type") != "document_parsing_exception" {
		t.Errorf("item errors: %s", r.body)
	}
	// The index name is checked once per run of items naming it: a bad
	// name between good ones still fails, alone.
	r = do(t, nil, "POST", s.URL()+"/_bulk", "{\"index\":{\"_index\":\"x\"}}\n{}\n{\"index\":{\"_index\":\"X\"}}\n{}\n{\"index\":{\"_index\":\"x\"}}\n{}\n")
	m = r.json(t)
	if get(m, "items.0.index.status") != 201.0 || get(m, "items.1.index.error.type") != "invalid_index_name_exception" || get(m, "items.2.index.status") != 201.0 {
		t.Errorf("item errors: %s", r.body)
	}
	big := strings.Repeat(`{"index":{"_index":"x"}}`+"\n"+`{"m":"`+strings.Repeat("a", 100)+`"}`+"\n", 40)
	if r := do(t, nil, "POST", s.URL()+"/_bulk", big); r.status != 413 {
		t.Errorf("over max_content_length: %d", r.status)
	}
	// gzip bodies inflate, and the cap applies to the inflated size.
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	io.WriteString(zw, "{\"index\":{\"_index\":\"z\"}}\n{\"a\":1}\n")
	zw.Close()
	if r := do(t, nil, "POST", s.URL()+"/_bulk", zb.String(), "Content-Encoding", "gzip"); r.status != 200 || s.Count("z") != 1 {
		t.Errorf("gzip bulk: %d %s", r.status, r.body)
	}
}

func TestFaultsRejectFailDropHealth(t *testing.T) {
	s := start(t, Config{Faults: Faults{RejectRate: 1}})
	bulk := "{\"index\":{\"_index\":\"f\"}}\n{\"a\":1}\n{\"index\":{\"_index\":\"f\"}}\n{\"a\":2}\n"
	m := do(t, nil, "POST", s.URL()+"/_bulk", bulk).json(t)
	if get(m, "errors") != true || get(m, "items.1.index.status") != 429.0 || get(m, "items.1.index.error.type") != "es_rejected_execution_exception" {
		t.Fatalf("reject: %v", m)
	}
	st := do(t, nil, "GET", s.URL()+"/_nodes/stats/thread_pool", "").json(t)
	var rejected float64
	for _, nd := range get(st, "nodes").(map[string]any) {
		rejected += get(nd.(map[string]any), "thread_pool.write.rejected").(float64)
	}
	if rejected != 2 || s.Count("f") != 0 {
		t.Fatalf("rejected %v count %d", rejected, s.Count("f"))
	}
	cat := do(t, nil, "GET", s.URL()+"/_cat/thread_pool/write?format=json&h=node_name,name,rejected", "")
	if string(cat.body) != `[{"name":"write","node_name":"essim-0","rejected":"2"}]` {
		t.Fatalf("_cat: %s", cat.body)
	}
	// Runtime change through the admin endpoint.
	r := do(t, nil, "POST", s.URL()+"/_essim/faults", `{"fail_rate":1,"fail_status":503}`)
	if r.status != 200 {
		t.Fatalf("admin: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "POST", s.URL()+"/_bulk", bulk); r.status != 503 || get(r.json(t), "error.type") != "cluster_block_exception" {
		t.Fatalf("fail 503: %d %s", r.status, r.body)
	}
	s.SetFaults(Faults{FailRate: 1})
	if r := do(t, nil, "POST", s.URL()+"/_bulk", bulk); r.status != 429 || get(r.json(t), "status") != 429.0 {
		t.Fatalf("fail 429: %d %s", r.status, r.body)
	}
	ip := do(t, nil, "GET", s.URL()+"/_nodes/stats/indexing_pressure", "").json(t)
	for _, nd := range get(ip, "nodes").(map[string]any) {
		if v := get(nd.(map[string]any), "indexing_pressure.memory.total.coordinating_rejections"); v != 1.0 {
			t.Fatalf("coordinating_rejections %v", v)
		}
	}
	s.SetFaults(Faults{DropRate: 1})
	m = do(t, nil, "POST", s.URL()+"/_bulk", bulk).json(t)
	if get(m, "errors") != false || get(m, "items.0.index.status") != 201.0 || s.Count("f") != 0 || s.Stats().Dropped != 2 {
		t.Fatalf("drop: %v count %d", m, s.Count("f"))
	}
	s.SetFaults(Faults{Health: "red"})
	h := do(t, nil, "GET", s.URL()+"/_cluster/health", "").json(t)
	if get(h, "status") != "red" {
		t.Fatalf("health %v", h)
	}
	m = do(t, nil, "POST", s.URL()+"/_bulk", bulk).json(t)
	if get(m, "items.0.index.status") != 503.0 {
		t.Fatalf("red bulk %v", m)
	}
	if err := s.SetFaults(Faults{RejectRate: 2}); err == nil {
		t.Fatal("reject rate 2 accepted")
	}
}

func TestIndexLateStoresWhileClientTimesOut(t *testing.T) {
	s := start(t, Config{Faults: Faults{IndexLate: true, LateBy: 3 * time.Second}})
	c := &http.Client{Timeout: time.Second}
	bulk := "{\"index\":{\"_index\":\"late\"}}\n{\"a\":1}\n"
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("POST", s.URL()+"/_bulk", strings.NewReader(bulk))
		req.Header.Set("Content-Type", "application/x-ndjson")
		if _, err := c.Do(req); err == nil {
			t.Fatal("bulk answered before the client timeout")
		}
	}
	// Both attempts are stored: the retry without an _id is a duplicate.
	if n := s.Count("late"); n != 2 {
		t.Fatalf("count %d, want 2", n)
	}
}

func TestConnectionCountersAndIdleClose(t *testing.T) {
	s := start(t, Config{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for i := 0; i < 3; i++ {
		do(t, c, "GET", s.URL()+"/", "")
	}
	if st := s.Stats(); st.OpenedConns != 1 {
		t.Fatalf("3 keep-alive requests opened %d connections", st.OpenedConns)
	}
	// From now on idle connections are closed after 100 ms; the timer is
	// armed when the next request leaves the connection idle.
	s.SetFaults(Faults{IdleClose: 100 * time.Millisecond})
	do(t, c, "GET", s.URL()+"/", "")
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().IdleClosed == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	s.SetFaults(Faults{})
	time.Sleep(50 * time.Millisecond) // let the client's pool see the EOF
	do(t, c, "GET", s.URL()+"/", "")
	st := s.Stats()
	if st.IdleClosed != 1 || st.OpenedConns != 2 {
		t.Fatalf("after idle close: %+v", st)
	}
	hs := do(t, c, "GET", s.URL()+"/_nodes/stats/http", "").json(t)
	for _, nd := range get(hs, "nodes").(map[string]any) {
		if get(nd.(map[string]any), "http.total_opened") != 2.0 || get(nd.(map[string]any), "http.current_open") != 1.0 {
			t.Fatalf("http stats %v", nd)
		}
	}
}

func TestMultiNodeSharedStoreAndPublish(t *testing.T) {
	s := start(t, Config{Nodes: 3, Faults: Faults{PublishAddress: "127.0.0.2:1"}})
	if len(s.URLs()) != 3 {
		t.Fatal(s.URLs())
	}
	do(t, nil, "POST", s.URLs()[2]+"/_bulk", "{\"index\":{\"_index\":\"m\",\"_id\":\"1\"}}\n{\"a\":1}\n")
	if c := do(t, nil, "GET", s.URLs()[0]+"/m/_count", "").json(t); get(c, "count") != 1.0 {
		t.Fatalf("shared store: %v", c)
	}
	n := do(t, nil, "GET", s.URL()+"/_nodes/http", "").json(t)
	nodes := get(n, "nodes").(map[string]any)
	if len(nodes) != 3 {
		t.Fatalf("nodes %v", nodes)
	}
	for _, nd := range nodes {
		if get(nd.(map[string]any), "http.publish_address") != "127.0.0.2:1" {
			t.Fatalf("publish %v", nd)
		}
	}
	s.SetFaults(Faults{})
	n = do(t, nil, "GET", s.URL()+"/_nodes/http", "").json(t)
	seen := map[string]bool{}
	for _, nd := range get(n, "nodes").(map[string]any) {
		seen[get(nd.(map[string]any), "http.publish_address").(string)] = true
	}
	for _, a := range s.Addrs() {
		if !seen[a] {
			t.Fatalf("publish addresses %v miss %s", seen, a)
		}
	}
}

func TestDiskStorageSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Start(context.Background(), "127.0.0.1:0", Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	do(t, nil, "POST", s.URL()+"/_bulk", "{\"create\":{\"_index\":\"d\",\"_id\":\"1\"}}\n{\"a\":1}\n{\"index\":{\"_index\":\"d\",\"_id\":\"2\"}}\n{\"a\":2}\n{\"delete\":{\"_index\":\"d\",\"_id\":\"2\"}}\n{\"update\":{\"_index\":\"d\",\"_id\":\"1\"}}\n{\"doc\":{\"b\":true}}\n")
	s.Close()
	s2 := start(t, Config{DataDir: dir})
	if s2.Count("d") != 1 {
		t.Fatalf("after restart count %d", s2.Count("d"))
	}
	src, ok := s2.Doc("d", "1")
	if !ok || string(src) != `{"a":1,"b":true}` {
		t.Fatalf("doc 1 %q", src)
	}
	r := do(t, nil, "POST", s2.URL()+"/_bulk", "{\"create\":{\"_index\":\"d\",\"_id\":\"1\"}}\n{\"a\":1}\n")
	if get(r.json(t), "items.0.create.status") != 409.0 {
		t.Fatalf("create after restart: %s", r.body)
	}
}

func TestBasicAuth(t *testing.T) {
	s := start(t, Config{Username: "elastic", Password: "s3cret", APIKey: "a2V5"})
	r := do(t, nil, "GET", s.URL()+"/", "")
	if r.status != 401 || get(r.json(t), "error.type") != "security_exception" || len(r.header.Values("WWW-Authenticate")) != 2 {
		t.Fatalf("no auth: %d %s %v", r.status, r.body, r.header)
	}
	req, _ := http.NewRequest("GET", s.URL()+"/", nil)
	req.SetBasicAuth("elastic", "s3cret")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("basic auth: %v %v", res, err)
	}
	res.Body.Close()
	if r := do(t, nil, "GET", s.URL()+"/", "", "Authorization", "ApiKey a2V5"); r.status != 200 {
		t.Fatalf("api key: %d", r.status)
	}
}

func TestTemplatesAndPoliciesAreKept(t *testing.T) {
	s := start(t, Config{})
	if r := do(t, nil, "HEAD", s.URL()+"/_template/fluentd", ""); r.status != 404 {
		t.Fatalf("HEAD missing template: %d", r.status)
	}
	if r := do(t, nil, "PUT", s.URL()+"/_template/fluentd", `{"index_patterns":["logs-*"]}`); r.status != 200 || get(r.json(t), "acknowledged") != true {
		t.Fatalf("PUT template: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "GET", s.URL()+"/_template/fluentd", ""); get(r.json(t), "fluentd.index_patterns.0") != "logs-*" {
		t.Fatalf("GET template: %s", r.body)
	}
	if r := do(t, nil, "PUT", s.URL()+"/_ilm/policy/logs", `{"policy":{}}`); r.status != 200 {
		t.Fatalf("PUT ilm: %d", r.status)
	}
	if r := do(t, nil, "PUT", s.URL()+"/_index_template/x", `not json`); r.status != 400 {
		t.Fatalf("bad template: %d", r.status)
	}
	if r := do(t, nil, "GET", s.URL()+"/_nope", ""); r.status != 400 || string(r.body) != `{"error":"no handler found for uri [/_nope] and method [GET]"}` {
		t.Fatalf("unknown endpoint: %d %s", r.status, r.body)
	}
}

// TestWriteQueueBuildsAndRejects: with slow indexing, bulks beyond the
// write threads queue, and beyond the queue capacity are rejected whole
// with 429, counted in thread_pool.write.rejected.
func TestWriteQueueBuildsAndRejects(t *testing.T) {
	s := start(t, Config{WriteThreads: 1, WriteQueueSize: 1, Faults: Faults{Latency: time.Second}})
	bulk := "{\"index\":{\"_index\":\"q\"}}\n{\"a\":1}\n"
	results := make(chan int, 2)
	send := func() {
		res, err := http.Post(s.URL()+"/_bulk", "application/x-ndjson", strings.NewReader(bulk))
		if err != nil {
			results <- 0
			return
		}
		res.Body.Close()
		results <- res.StatusCode
	}
	pool := func() map[string]any {
		m := do(t, nil, "GET", s.URL()+"/_nodes/stats/thread_pool", "").json(t)
		for _, nd := range get(m, "nodes").(map[string]any) {
			return get(nd.(map[string]any), "thread_pool.write").(map[string]any)
		}
		return nil
	}
	// Polled in process: a stats request would itself wait the latency.
	waitFor := func(active, queue int64) {
		deadline := time.Now().Add(5 * time.Second)
		st := s.Stats()
		for (st.WriteActive != active || st.WriteQueue != queue) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			st = s.Stats()
		}
		if st.WriteActive != active || st.WriteQueue != queue {
			t.Fatalf("write pool %+v, want active %d queue %d", st, active, queue)
		}
	}
	go send()
	waitFor(1, 0) // the first bulk indexes (slowly) on the only thread
	go send()
	waitFor(1, 1) // the second waits in the queue
	r := do(t, nil, "POST", s.URL()+"/_bulk", bulk)
	if r.status != 429 || get(r.json(t), "error.type") != "es_rejected_execution_exception" ||
		!strings.Contains(string(r.body), "queue capacity = 1") {
		t.Fatalf("third bulk: %d %s", r.status, r.body)
	}
	if a, b := <-results, <-results; a != 200 || b != 200 {
		t.Fatalf("queued bulks: %d %d", a, b)
	}
	s.SetFaults(Faults{})
	p := pool()
	if p["rejected"] != 1.0 || p["completed"] != 2.0 || p["largest"] != 1.0 || s.Count("q") != 2 {
		t.Fatalf("after: %v count %d", p, s.Count("q"))
	}
}

// TestDeleteCompaction deletes most of an index so the store compacts it
// (its entries span several chunks), in memory and on disk, then checks
// every survivor is still found by id and by search, and that writes after
// the compaction land where reads find them.
func TestDeleteCompaction(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		s := start(t, Config{DataDir: dir})
		const n = 3*store.ChunkDocs + 100
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "{\"index\":{\"_index\":\"c\",\"_id\":\"%d\"}}\n{\"n\":%d}\n", i, i)
		}
		do(t, nil, "POST", s.URL()+"/_bulk", b.String())
		b.Reset()
		for i := 0; i < n; i++ {
			if i%10 != 0 {
				fmt.Fprintf(&b, "{\"delete\":{\"_index\":\"c\",\"_id\":\"%d\"}}\n", i)
			}
		}
		m := do(t, nil, "POST", s.URL()+"/_bulk", b.String()).json(t)
		if get(m, "errors") != false || get(m, "items.2699.delete.result") != "deleted" || get(m, "items.2699.delete._version") != 2.0 {
			t.Fatalf("deletes: %v", get(m, "items.2699"))
		}
		if s.Count("c") != (n+9)/10 {
			t.Fatalf("count %d", s.Count("c"))
		}
		s.store.RLock()
		entries := s.store.LookupLocked("c").Len()
		s.store.RUnlock()
		if entries >= n {
			t.Fatalf("no compaction: %d entries", entries)
		}
		for i := 0; i < n; i += 10 {
			src, ok := s.Doc("c", fmt.Sprint(i))
			if !ok || string(src) != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("doc %d: %q %v", i, src, ok)
			}
		}
		if _, ok := s.Doc("c", "7"); ok {
			t.Fatal("deleted doc 7 still there")
		}
		sr := do(t, nil, "POST", s.URL()+"/c/_search", `{"size":3,"query":{"term":{"n":2990}}}`).json(t)
		if get(sr, "hits.total.value") != 1.0 || get(sr, "hits.hits.0._id") != "2990" {
			t.Fatalf("search after compaction: %v", sr)
		}
		do(t, nil, "POST", s.URL()+"/_bulk", "{\"index\":{\"_index\":\"c\",\"_id\":\"new\"}}\n{\"n\":-1}\n{\"index\":{\"_index\":\"c\",\"_id\":\"20\"}}\n{\"n\":-20}\n")
		if src, _ := s.Doc("c", "new"); string(src) != `{"n":-1}` {
			t.Fatalf("doc new after compaction: %q", src)
		}
		if src, _ := s.Doc("c", "20"); string(src) != `{"n":-20}` {
			t.Fatalf("doc 20 after compaction: %q", src)
		}
	}
}

// TestFilterPathDeepDocument: ** patterns on a deeply nested document stay
// linear (they used to double per level).
func TestFilterPathDeepDocument(t *testing.T) {
	s := start(t, Config{})
	deep := strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200)
	if r := do(t, nil, "PUT", s.URL()+"/deep/_doc/1", deep, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("index: %d %s", r.status, r.body)
	}
	fp := strings.Repeat("**.", 16) + "zzz,**._id"
	r := do(t, nil, "GET", s.URL()+"/deep/_search?filter_path="+fp, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"_id":"1"`) {
		t.Fatalf("filter_path: %d %.200s", r.status, r.body)
	}
}
