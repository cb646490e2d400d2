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

// TestESSearcherAgainstEssim: copies per canary by run id, only that
// run's canaries, basic auth, a missing index, and refresh.
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
	c, err := s.Count(ctx, "aaaa000011112222", 30)
	if err != nil {
		t.Fatal(err)
	}
	// 20 canaries of this run (seq 0, 3, ... are the other run's), seq 1 twice.
	if c.Total != 21 || c.Unattributed != 0 || c.Inexact || c.Copies[1] != 2 || c.Copies[0] != 0 || c.Copies[2] != 1 {
		t.Fatalf("counts %+v", c)
	}

	missing := &ESSearcher{URL: sim.URL(), Index: "no-such-index", User: "smoke", Password: "s3cret"}
	if c, err := missing.Count(ctx, "aaaa000011112222", 10); err != nil || c.Total != 0 || len(c.Copies) != 10 {
		t.Fatalf("missing index: %+v %v", c, err)
	}

	bad := &ESSearcher{URL: sim.URL(), Index: "logs-*", User: "smoke", Password: "wrong"}
	if _, err := bad.Count(ctx, "aaaa000011112222", 10); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: %v", err)
	} else if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("password in the error: %v", err)
	}
}

// TestCountHasNoPageCap is issue 17's case: 1,000 canaries with 3,000
// documents (every canary three times, as a shipper resending after
// timeouts leaves them). A search page of 2,100 hits saw 2,100; the count
// sees all 3,000, and documents without a sequence number are reported,
// not dropped.
func TestCountHasNoPageCap(t *testing.T) {
	ctx := context.Background()
	sim, err := essim.Start(ctx, "127.0.0.1:0", essim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	const run = "cccc000011112222"
	var body strings.Builder
	for copyN := 0; copyN < 3; copyN++ {
		for seq := 0; seq < 1000; seq++ {
			fmt.Fprintf(&body, `{"index":{"_index":"logs-a"}}`+"\n"+`{%q:%q,%q:%d}`+"\n", FieldRun, run, FieldSeq, seq)
		}
	}
	// Two copies that lost their sequence number on the way, one with a
	// sequence number no canary has.
	fmt.Fprintf(&body, `{"index":{"_index":"logs-a"}}`+"\n"+`{%q:%q}`+"\n", FieldRun, run)
	fmt.Fprintf(&body, `{"index":{"_index":"logs-a"}}`+"\n"+`{%q:%q,%q:"x"}`+"\n", FieldRun, run, FieldSeq)
	fmt.Fprintf(&body, `{"index":{"_index":"logs-a"}}`+"\n"+`{%q:%q,%q:1000}`+"\n", FieldRun, run, FieldSeq)
	resp, err := http.Post(sim.URL()+"/_bulk", "application/x-ndjson", strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c, err := (&ESSearcher{URL: sim.URL(), Index: "logs-*"}).Count(ctx, run, 1000)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for seq, n := range c.Copies {
		if n != 3 {
			t.Fatalf("seq %d: %d copies, want 3", seq, n)
		}
		sum += n
	}
	if sum != 3000 || c.Total != 3003 || c.Unattributed != 3 {
		t.Fatalf("copies %d, total %d, unattributed %d", sum, c.Total, c.Unattributed)
	}
}
