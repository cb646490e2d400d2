package esprobe

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// shipLate replays seed 003: a shipper without _id sends a bulk, times out
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
