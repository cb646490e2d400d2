package essim

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

// TestPythonElasticsearchClient drives essim with Debian's
// python3-elasticsearch 7.17 (helpers.bulk, count, search, get) against
// both the 8.x and the 7.17 personality; the client's product check
// (X-Elastic-Product, tagline, build_flavor) has to pass too.
func TestPythonElasticsearchClient(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/python3", "/usr/lib/python3/dist-packages/elasticsearch/__init__.py")
	for _, version := range []string{"", "7.17.9"} {
		t.Run("v"+version, func(t *testing.T) {
			s := start(t, Config{Version: version, Username: "elastic", Password: "pw"})
			cmd := exec.Command("/usr/bin/python3", "-W", "ignore::DeprecationWarning", "testdata/pyclient.py", s.URL(), "pyidx", "500", "elastic:pw")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("python client: %v\n%s%s", err, out, stderr.String())
			}
			var r struct {
				Version string
				First   struct{ OK, Errors int }
				Replay  struct {
					OK, Errors int
					Statuses   []int
					Types      []string
				}
				Count        int
				CountNoid    int      `json:"count_noid"`
				CountTerm    int      `json:"count_term"`
				SearchHits   []string `json:"search_hits"`
				SearchTotal  int      `json:"search_total"`
				Buckets      map[string]int
				Get, Missing string
			}
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if r.First.OK != 500 || r.First.Errors != 0 {
				t.Errorf("first bulk %+v", r.First)
			}
			if r.Replay.OK != 0 || r.Replay.Errors != 500 || len(r.Replay.Statuses) != 1 || r.Replay.Statuses[0] != 409 ||
				r.Replay.Types[0] != "version_conflict_engine_exception" {
				t.Errorf("replay %+v", r.Replay)
			}
			if r.Count != 500 || r.CountTerm != 167 || s.Count("pyidx") != 500 {
				t.Errorf("count %d term %d", r.Count, r.CountTerm)
			}
			if r.CountNoid != 20 {
				t.Errorf("documents without id sent twice: %d, want 20", r.CountNoid)
			}
			if r.SearchTotal != 1 || len(r.SearchHits) != 1 || r.SearchHits[0] != "message 7" {
				t.Errorf("search %v %d", r.SearchHits, r.SearchTotal)
			}
			if r.Buckets["h0"] != 167 || r.Buckets["h1"] != 167 || r.Buckets["h2"] != 166 {
				t.Errorf("buckets %v", r.Buckets)
			}
			if r.Get != "message 3" || r.Missing != "NotFoundError" {
				t.Errorf("get %q missing %q", r.Get, r.Missing)
			}
		})
	}
}

// TestPrometheusElasticsearchExporter scrapes essim with Debian's
// prometheus-elasticsearch-exporter: a real consumer of _cluster/health,
// _nodes/stats and GET /, which must read the rejections essim counted.
func TestPrometheusElasticsearchExporter(t *testing.T) {
	const exporter = "/usr/bin/prometheus-elasticsearch-exporter"
	testenv.RequireFiles(t, exporter)
	s := start(t, Config{Nodes: 2, Faults: Faults{RejectRate: 1, Health: "yellow"}})
	do(t, nil, "POST", s.URLs()[0]+"/_bulk", "{\"index\":{\"_index\":\"x\"}}\n{\"a\":1}\n{\"index\":{\"_index\":\"x\"}}\n{\"a\":2}\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(exporter, "--es.uri="+s.URL(), "--es.all", "--web.listen-address="+addr)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	want := []string{
		`elasticsearch_cluster_health_status{cluster="essim",color="yellow"} 1`,
		`elasticsearch_cluster_health_number_of_nodes{cluster="essim"} 2`,
		`name="essim-0",type="write"} 2`,
		`name="essim-1",type="write"} 0`,
		`elasticsearch_node_stats_up 1`,
	}
	var body string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			body = string(b)
			missing := false
			for _, w := range want {
				missing = missing || !strings.Contains(body, w)
			}
			if !missing {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %s", w)
		}
	}
	t.Logf("exporter log:\n%s", logs.String())
}

// TestPythonClientRefusesWithoutProductHeader: elasticsearch-py 7.17
// refuses an 8.x server whose X-Elastic-Product header a proxy stripped,
// and an OpenSearch server, the failures es.product_check warns about.
func TestPythonClientRefusesWithoutProductHeader(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/python3", "/usr/lib/python3/dist-packages/elasticsearch/__init__.py")
	const script = `
import sys
from elasticsearch import Elasticsearch
try:
    Elasticsearch([sys.argv[1]]).count(index="_all")
    print("ok")
except Exception as e:
    print(type(e).__name__)
`
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "ok"},
		{Config{Faults: Faults{StripProductHeader: true}}, "UnsupportedProductError"},
		{Config{Distribution: "opensearch"}, "UnsupportedProductError"},
	} {
		s := start(t, tc.cfg)
		out, err := exec.Command("/usr/bin/python3", "-W", "ignore", "-c", script, s.URL()).Output()
		if err != nil {
			t.Fatalf("python: %v %s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.cfg, got, tc.want)
		}
	}
}

// TestPythonClientScansPastResultWindow: python3-elasticsearch's
// helpers.scan (scroll) and a composite aggregation paged by after_key
// read all of 25,000 documents, 5,000 of them duplicated, on the 8.x and
// 7.17 personalities: the request and response shapes essim gives these
// APIs are the ones a real client relies on.
func TestPythonClientScansPastResultWindow(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/python3", "/usr/lib/python3/dist-packages/elasticsearch/__init__.py")
	for _, version := range []string{"", "7.17.9"} {
		t.Run("v"+version, func(t *testing.T) {
			s := start(t, Config{Version: version})
			var b strings.Builder
			for i := 0; i < 25000; i++ {
				fmt.Fprintf(&b, "{\"index\":{\"_index\":\"scan\"}}\n{\"seq\":%d}\n", i%20000)
				if i%5000 == 4999 {
					do(t, nil, "POST", s.URL()+"/_bulk", b.String())
					b.Reset()
				}
			}
			cmd := exec.Command("/usr/bin/python3", "-W", "ignore::DeprecationWarning", "testdata/pyscan.py", s.URL(), "scan", "seq")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("python client: %v\n%s%s", err, out, stderr.String())
			}
			var r struct {
				Scanned, Pages, Buckets int
				UniqueIDs               int            `json:"unique_ids"`
				LastAfterKey            bool           `json:"last_page_has_after_key"`
				Copies                  map[string]int `json:"copies"`
			}
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if r.Scanned != 25000 || r.UniqueIDs != 25000 {
				t.Errorf("helpers.scan read %d documents (%d ids), want 25000", r.Scanned, r.UniqueIDs)
			}
			if r.Pages != 5 || r.Buckets != 20000 || r.Copies["2"] != 5000 || r.Copies["1"] != 15000 || r.LastAfterKey {
				t.Errorf("composite: %+v", r)
			}
			// helpers.scan clears its scroll at the end.
			s.scrolls.mu.Lock()
			open := len(s.scrolls.ctxs)
			s.scrolls.mu.Unlock()
			if open != 0 {
				t.Errorf("%d scroll contexts left open", open)
			}
		})
	}
}
