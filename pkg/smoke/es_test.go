package smoke

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/pkg/essim"
)

// TestESSearcherAgainstEssim: term query by run id, only that run's
// canaries, basic auth, a missing index, and refresh.
func TestESSearcherAgainstEssim(t *testing.T) {
	ctx := context.Background()
	sim, err := essim.Start(ctx, "127.0.0.1:0", essim.Config{Username: "smoke", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	var body strings.Builder
	for i := range 30 {
		run := "aaaa000011112222"
		if i%3 == 0 {
			run = "bbbb000011112222" // another run's canaries must not count
		}
		fmt.Fprintf(&body, `{"index":{"_index":"logs-smoke-2026.11.21"}}`+"\n"+`{%q:%q,%q:%d,"message":"m"}`+"\n", FieldRun, run, FieldSeq, i)
	}
	// Seq 1 twice: a duplicate as a shipper without stable ids makes it.
	fmt.Fprintf(&body, `{"index":{"_index":"logs-smoke-2026.11.22"}}`+"\n"+`{%q:"aaaa000011112222",%q:1}`+"\n", FieldRun, FieldSeq)
	req, _ := http.NewRequest(http.MethodPost, sim.URL()+"/_bulk", strings.NewReader(body.String()))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.SetBasicAuth("smoke", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("bulk: %v %v", err, resp)
	}
	resp.Body.Close()

	s := &ESSearcher{URL: sim.URL(), Index: "logs-*", User: "smoke", Password: "s3cret"}
	if err := s.Refresh(ctx); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	hits, err := s.Search(ctx, "aaaa000011112222", 100)
	if err != nil {
		t.Fatal(err)
	}
	copies := map[int]int{}
	for _, h := range hits {
		if h.Run != "aaaa000011112222" {
			t.Fatalf("hit of another run: %+v", h)
		}
		copies[h.Seq]++
	}
	if len(hits) != 21 || len(copies) != 20 || copies[1] != 2 || copies[0] != 0 {
		t.Fatalf("hits %d, copies %v", len(hits), copies)
	}

	missing := &ESSearcher{URL: sim.URL(), Index: "no-such-index", User: "smoke", Password: "s3cret"}
	if hits, err := missing.Search(ctx, "aaaa000011112222", 10); err != nil || len(hits) != 0 {
		t.Fatalf("missing index: %v %v", hits, err)
	}

	bad := &ESSearcher{URL: sim.URL(), Index: "logs-*", User: "smoke", Password: "wrong"}
	if _, err := bad.Search(ctx, "aaaa000011112222", 10); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: %v", err)
	} else if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("password in the error: %v", err)
	}
}
