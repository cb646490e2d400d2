package essim

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

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
