package esprobe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// shipLate replays how duplicates reach Elasticsearch (docs/troubleshooting.md):
// a shipper without _id sends a bulk, times out
// while the cluster is still indexing it, and resends the same chunk.
func shipLate(t *testing.T, s *essim.Server, index string, events, attempts int) {
	t.Helper()
	var b strings.Builder
	for i := 0; i < events; i++ {
		fmt.Fprintf(&b, "{\"index\":{\"_index\":%q}}\n{\"request_id\":\"req-%d\",\"message\":\"event %d\",\"n\":%d}\n", index, i, i, i)
	}
	c := &http.Client{Timeout: 200 * time.Millisecond}
	for a := 0; a < attempts; a++ {
		res, err := c.Post(s.URL()+"/_bulk", "application/x-ndjson", strings.NewReader(b.String()))
		if err == nil {
			res.Body.Close()
			t.Fatalf("attempt %d answered (%s) before the client timeout", a, res.Status)
		}
	}
}

func TestDupsAfterLateIndexing(t *testing.T) {
	s := startSim(t, essim.Config{Faults: essim.Faults{IndexLate: true, LateBy: time.Second}})
	shipLate(t, s, "logs-a", 20, 3)
	s.SetFaults(essim.Faults{})
	if n := s.Count("logs-a"); n != 60 {
		t.Fatalf("stored %d, want 60 (3 copies of 20)", n)
	}
	res, fs, err := Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "logs-*", Field: "request_id"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "terms" || res.Duplicated != 20 || res.ExtraCopies != 40 || res.TotalDocs != 60 || len(res.Examples) != 5 ||
		res.Examples[0].Copies != 3 || len(res.Examples[0].IDs) != 3 {
		t.Fatalf("terms: %+v", res)
	}
	if len(fs) != 1 || fs[0].ID != FindingDuplicates || fs[0].Severity != report.Critical || !strings.Contains(fs[0].Remedy, "elasticsearch_genid") {
		t.Fatalf("findings %+v", fs)
	}
	res, _, err = Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "logs-a", Fields: []string{"message", "n"}, Examples: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "fingerprint" || res.Scanned != 60 || res.Duplicated != 20 || res.ExtraCopies != 40 || len(res.Examples) != 2 ||
		!strings.HasPrefix(res.Examples[0].Key, `message="event`) {
		t.Fatalf("fingerprint: %+v", res)
	}
	// Whole-source fingerprint, bounded scan.
	res, _, err = Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "logs-a", MaxDocs: 30})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scanned != 30 || !res.Truncated || res.Duplicated != 10 {
		t.Fatalf("bounded: %+v", res)
	}
}

func TestDupsCleanIndexAndErrors(t *testing.T) {
	s := startSim(t, essim.Config{})
	var b strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, "{\"create\":{\"_index\":\"clean\",\"_id\":\"id-%d\"}}\n{\"m\":%d}\n", i, i)
	}
	for a := 0; a < 2; a++ { // the replay gets 409s: no copies
		res, err := http.Post(s.URL()+"/_bulk", "application/x-ndjson", strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	res, fs, err := Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "clean"})
	if err != nil || len(fs) != 0 || res.Scanned != 10 || res.Duplicated != 0 {
		t.Fatalf("%+v %+v %v", res, fs, err)
	}
	if _, _, err := Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "missing"}); err == nil || !strings.Contains(err.Error(), "index_not_found_exception") {
		t.Fatalf("missing index: %v", err)
	}
	if _, _, err := Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "clean", Field: "a", Fields: []string{"b"}}); err == nil {
		t.Fatal("--field with --fields accepted")
	}
}

// bulkSeq indexes one document per seq value in [from, to) without an
// _id, as a shipper without ids does, in bulks of 5,000.
func bulkSeq(t *testing.T, url, index string, from, to int) {
	t.Helper()
	var b strings.Builder
	flush := func() {
		res, err := http.Post(url+"/_bulk", "application/x-ndjson", strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		b.Reset()
	}
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "{\"index\":{\"_index\":%q}}\n{\"seq\":%d,\"message\":\"event %d\"}\n", index, i, i)
		if (i-from)%5000 == 4999 {
			flush()
		}
	}
	flush()
}

// freeScrolls reports how many scroll contexts were still open.
func freeScrolls(t *testing.T, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, url+"/_search/scroll/_all", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r struct {
		NumFreed int `json:"num_freed"`
	}
	json.NewDecoder(res.Body).Decode(&r)
	return r.NumFreed
}

// TestDupsReadsPastResultWindow is issue 17's case: 15,000 seq values
// indexed twice. The terms method pages a composite aggregation and the
// fingerprint method scrolls, so both see every document.
func TestDupsReadsPastResultWindow(t *testing.T) {
	s := startSim(t, essim.Config{})
	bulkSeq(t, s.URL(), "twice", 0, 15000)
	bulkSeq(t, s.URL(), "twice", 0, 15000)
	o := Options{URLs: []string{s.URL()}}
	res, fs, err := Dups(context.Background(), o, DupsOptions{Index: "twice", Field: "seq"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicated != 15000 || res.ExtraCopies != 15000 || res.Scanned != 30000 || res.Truncated || res.Pages != 2 ||
		len(fs) != 1 || fs[0].ID != FindingDuplicates || res.Examples[0].Copies != 2 || len(res.Examples[0].IDs) != 2 {
		t.Fatalf("terms: %+v %v", res, fs)
	}
	// The default method: the whole source fingerprinted over a scroll.
	res, fs, err = Dups(context.Background(), o, DupsOptions{Index: "twice"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "fingerprint" || res.Duplicated != 15000 || res.ExtraCopies != 15000 || res.Scanned != 30000 ||
		res.Truncated || res.Pages != 30 || len(fs) != 1 || fs[0].Severity != report.Critical {
		t.Fatalf("fingerprint: %+v %v", res, fs)
	}
	if n := freeScrolls(t, s.URL()); n != 0 {
		t.Fatalf("es dups left %d scroll contexts open", n)
	}
}

// TestDupsFingerprintOneThirdDuplicated: 30,000 documents, a third of
// them second copies, found by the default method with no flag.
func TestDupsFingerprintOneThirdDuplicated(t *testing.T) {
	s := startSim(t, essim.Config{})
	bulkSeq(t, s.URL(), "third", 0, 20000)
	bulkSeq(t, s.URL(), "third", 5000, 15000)
	res, fs, err := Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "third"})
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalDocs != 30000 || res.Scanned != 30000 || res.Duplicated != 10000 || res.ExtraCopies != 10000 || res.Truncated ||
		len(fs) != 1 || fs[0].ID != FindingDuplicates || fs[0].Severity != report.Critical {
		t.Fatalf("%+v %v", res, fs)
	}
	// With --fields, the label names the values.
	res, _, err = Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "third", Fields: []string{"seq"}, Examples: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicated != 10000 || len(res.Examples) != 1 || res.Examples[0].Key != "seq=5000" || len(res.Examples[0].IDs) != 2 {
		t.Fatalf("fields: %+v", res)
	}
}

// TestDupsCutShortIsAFinding: a scan stopped by --max-docs or by a
// failing page is es.dups_incomplete, critical when nothing was found in
// the part read (no healthy verdict), never a silent clean result.
func TestDupsCutShortIsAFinding(t *testing.T) {
	s := startSim(t, essim.Config{})
	bulkSeq(t, s.URL(), "clean", 0, 12000)
	bulkSeq(t, s.URL(), "clean", 11900, 12000) // 100 duplicates at the very end
	o := Options{URLs: []string{s.URL()}}
	for _, field := range []string{"", "seq"} {
		res, fs, err := Dups(context.Background(), o, DupsOptions{Index: "clean", MaxDocs: 5000, Field: field})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Truncated || len(fs) != 1 || fs[0].ID != FindingDupsIncomplete || fs[0].Severity != report.Critical ||
			!strings.Contains(res.TruncatedReason, "--max-docs 5000") {
			t.Fatalf("field %q: %+v %v", field, res, fs)
		}
	}
	// The whole index: the 100 found, complete.
	res, fs, err := Dups(context.Background(), o, DupsOptions{Index: "clean", MaxDocs: 20000})
	if err != nil || res.Truncated || res.Duplicated != 100 || len(fs) != 1 || fs[0].ID != FindingDuplicates {
		t.Fatalf("whole: %+v %v %v", res, fs, err)
	}

	// A scroll whose context vanished on page 3 (the cluster restarted,
	// or pages took longer than the keep-alive).
	var scrollPages atomic.Int32
	h := s.Handler()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_search/scroll" && r.Method == http.MethodPost && scrollPages.Add(1) == 2 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"root_cause":[{"type":"search_context_missing_exception","reason":"No search context found for id [7]"}],"type":"search_phase_execution_exception","reason":"all shards failed"},"status":404}`)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	res, fs, err = Dups(context.Background(), Options{URLs: []string{proxy.URL}}, DupsOptions{Index: "clean"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || res.Scanned != 2000 || !strings.Contains(res.TruncatedReason, "search_phase_execution_exception") ||
		len(fs) != 1 || fs[0].ID != FindingDupsIncomplete || fs[0].Severity != report.Critical {
		t.Fatalf("vanished scroll: %+v %v", res, fs)
	}
}
