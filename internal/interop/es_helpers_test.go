package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
)

// esServe runs `logdoctor es serve` on a free port with the given flags
// and returns its URL; it stops at the test's end.
func esServe(t *testing.T, args ...string) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", shippertest.FreePort(t))
	start(t, addr, append([]string{"es", "serve", "--listen", addr, "-o", "json"}, args...)...)
	return "http://" + addr
}

// essimStats is what GET /_essim/stats says.
type essimStats struct {
	Docs         int   `json:"docs"`
	BulkRequests int64 `json:"bulk_requests"`
	BulkItems    int64 `json:"bulk_items"`
	Rejected     int64 `json:"rejected"`
	Conflicts    int64 `json:"conflicts"`
}

func getStats(t *testing.T, url string) essimStats {
	t.Helper()
	var s essimStats
	httpJSON(t, http.MethodGet, url+"/_essim/stats", "", &s)
	return s
}

// setFaults replaces es serve's faults at runtime (POST /_essim/faults).
func setFaults(t *testing.T, url, faults string) {
	t.Helper()
	httpJSON(t, http.MethodPost, url+"/_essim/faults", faults, nil)
}

func httpJSON(t *testing.T, method, url, body string, v any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s %v", method, url, res.StatusCode, b, err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
}

// waitFor polls cond every 100 ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// indexCopies is the test's own count of a smoke run's documents: one
// plain search (the run has fewer than 10,000 documents) read hit by hit,
// none of the aggregation, composite or scroll paths smoke and es dups
// take.
type indexCopies struct {
	total  int
	copies map[int]int // logdoctor_seq -> documents
}

func countRun(t *testing.T, url, index, run string) indexCopies {
	t.Helper()
	body := fmt.Sprintf(`{"size":10000,"track_total_hits":true,"_source":["logdoctor_seq"],"query":{"term":{"logdoctor_run":%q}}}`, run)
	var ans struct {
		Hits struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
			Hits []struct {
				Source struct {
					Seq *int `json:"logdoctor_seq"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	httpJSON(t, http.MethodPost, url+"/"+index+"/_search", body, &ans)
	c := indexCopies{copies: map[int]int{}}
	for _, h := range ans.Hits.Hits {
		if h.Source.Seq == nil {
			t.Fatalf("a document of run %s without logdoctor_seq", run)
		}
		c.copies[*h.Source.Seq]++
		c.total++
	}
	if c.total != ans.Hits.Total.Value || c.total >= 10000 {
		t.Fatalf("read %d hits of %d: the test's count needs fewer than 10,000", c.total, ans.Hits.Total.Value)
	}
	return c
}

// duplicated and extra are the index's duplicate numbers as es dups and
// smoke should report them.
func (c indexCopies) duplicated() (events, extra int) {
	for _, n := range c.copies {
		if n > 1 {
			events++
			extra += n - 1
		}
	}
	return events, extra
}

// smokeResult is the part of smoke's report data the tests read.
type smokeResult struct {
	RunID        string   `json:"run_id"`
	Count        int      `json:"count"`
	Sent         int      `json:"sent"`
	Acked        int      `json:"acked"`
	Indexed      int      `json:"indexed"`
	Missing      int      `json:"missing"`
	Duplicated   int      `json:"duplicated"`
	Documents    int      `json:"documents"`
	Unattributed int      `json:"unattributed_documents"`
	MissingIDs   []string `json:"missing_ids"`
	WaitedMS     int64    `json:"waited_ms"`
	SettledMS    int64    `json:"settled_ms"`
	TimedOut     bool     `json:"timed_out"`
}

// asyncRun runs logdoctor in the background, for a test that changes
// faults while it runs; wait returns what run would have.
func asyncRun(timeout time.Duration, args ...string) (wait func(t *testing.T) result) {
	type done struct {
		r   result
		err error
	}
	ch := make(chan done, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, logdoctorBin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		r := result{stdout: out.String(), stderr: errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			r.code, err = ee.ExitCode(), nil
		}
		ch <- done{r, err}
	}()
	return func(t *testing.T) result {
		t.Helper()
		d := <-ch
		if d.err != nil {
			t.Fatalf("logdoctor %s: %v\n%s", strings.Join(args, " "), d.err, d.r)
		}
		return d.r
	}
}

// smokeArgs are the flags of a smoke run through a shipper's forward
// input into es serve; the probes stay off so the index holds canaries
// only.
func smokeArgs(fwd, esURL, index, tag string, count int, extra ...string) []string {
	return append([]string{"smoke", "-o", "json", "--no-probes", "--forward", fwd, "--es", esURL, "--index", index,
		"--tag", tag, "--count", fmt.Sprint(count)}, extra...)
}

func parseSmoke(t *testing.T, r result) (report, smokeResult) {
	t.Helper()
	rep := parseReport(t, r)
	var s smokeResult
	if err := json.Unmarshal(rep.Data, &s); err != nil {
		t.Fatalf("smoke data: %v\n%s", err, r)
	}
	return rep, s
}

// checkSmokeMatchesIndex: smoke's verdict is what the index holds.
func checkSmokeMatchesIndex(t *testing.T, s smokeResult, c indexCopies) {
	t.Helper()
	dupEvents, _ := c.duplicated()
	missing := 0
	for seq := 0; seq < s.Sent; seq++ {
		if c.copies[seq] == 0 {
			missing++
		}
	}
	if s.Documents != c.total || s.Duplicated != dupEvents || s.Missing != missing || s.Indexed != len(c.copies) || s.Unattributed != 0 {
		t.Fatalf("smoke says documents %d, duplicated %d, missing %d, indexed %d (unattributed %d); the index holds %d documents, %d duplicated, %d missing, %d distinct",
			s.Documents, s.Duplicated, s.Missing, s.Indexed, s.Unattributed, c.total, dupEvents, missing, len(c.copies))
	}
}

// dupsResult is the part of es dups' data the tests read.
type dupsResult struct {
	Method      string `json:"method"`
	TotalDocs   int    `json:"total_docs"`
	Scanned     int    `json:"scanned"`
	Duplicated  int    `json:"duplicated_events"`
	ExtraCopies int    `json:"extra_copies"`
	Truncated   bool   `json:"truncated"`
}

// checkDupsMatchesIndex runs es dups both ways (a composite aggregation on
// logdoctor_seq, and the default whole-source fingerprint over a scroll)
// and compares each with the index.
func checkDupsMatchesIndex(t *testing.T, esURL, index string, c indexCopies) {
	t.Helper()
	events, extra := c.duplicated()
	for _, args := range [][]string{{"--field", "logdoctor_seq"}, nil} {
		r := run(t, time.Minute, append([]string{"es", "dups", esURL, "--index", index, "-o", "json"}, args...)...)
		rep := parseReport(t, r)
		var d dupsResult
		if err := json.Unmarshal(rep.Data, &d); err != nil {
			t.Fatal(err)
		}
		wantCode, wantIDs := 0, "[]"
		if events > 0 {
			wantCode, wantIDs = 3, "[es.duplicates]"
		}
		if r.code != wantCode || fmt.Sprint(rep.ids()) != wantIDs ||
			d.Duplicated != events || d.ExtraCopies != extra || d.Scanned != c.total || d.TotalDocs != c.total || d.Truncated {
			t.Fatalf("es dups %v: %+v, findings %v, exit %d; the index holds %d documents, %d events duplicated, %d extra copies\n%s",
				args, d, rep.ids(), r.code, c.total, events, extra, r)
		}
	}
}
