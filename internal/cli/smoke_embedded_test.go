package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/smoke"
)

func TestSmokeEmbeddedCountsEveryCanary(t *testing.T) {
	code, out, errOut := runCLI(t, "smoke", "-o", "json")
	r := parseSmoke(t, out)
	if code != ExitOK {
		t.Fatalf("exit %d, findings %+v\nstderr: %s", code, r.Findings, errOut)
	}
	r.exactlyOnce(t, 1000)
	if r.Data.Mode != "embedded" || r.Data.Count != 1000 || len(r.Data.RunID) != 16 {
		t.Errorf("data: %+v", r.Data)
	}
	if a, s := r.Data.AckLatency, r.Data.SearchLatency; a.P50MS <= 0 || a.P99MS < a.P50MS || s.P50MS <= 0 || s.P99MS < s.P50MS {
		t.Errorf("latency: ack %+v searchable %+v", a, s)
	}
	names := map[string]bool{}
	for _, p := range r.Data.Probes {
		names[p.Name] = true
		if p.Error != "" {
			t.Errorf("probe %s: %s", p.Name, p.Error)
		}
	}
	if !names["sockets"] || !names["forward probe"] || !names["es probe"] {
		t.Errorf("probes run: %+v", r.Data.Probes)
	}
	if errOut != "" {
		t.Errorf("JSON mode printed progress on stderr: %q", errOut)
	}
}

// TestSmokeChaosStillExactlyOnce: essim rejects 20% of items with 429,
// answers bulks after the pipeline's timeout for a while (documents already
// stored: the retry must get 409, not a second copy) and closes idle
// connections. The probes may flag all that; the canaries stay exact.
func TestSmokeChaosStillExactlyOnce(t *testing.T) {
	// Exit 0 under the default --fail-on critical, as smoke.md says: what
	// the probes flag under chaos are warnings.
	code, out, errOut := runCLI(t, "smoke", "-o", "json", "--chaos", "--count", "500")
	r := parseSmoke(t, out)
	if code != ExitOK {
		t.Fatalf("exit %d: %s %+v", code, errOut, r.Findings)
	}
	r.exactlyOnce(t, 500)
	e := r.Data.Embedded
	if e == nil || e.ES == nil || e.ES.Rejected == 0 || e.Pipeline.Output.Retried == 0 {
		t.Fatalf("chaos injected nothing the pipeline had to retry: %+v", e)
	}
	// The late answers made the pipeline resend documents essim had
	// stored: those are 409s, never second copies.
	if e.ES.Conflicts == 0 || e.Pipeline.Output.Duplicates == 0 {
		t.Fatalf("no replay answered 409 under chaos: essim %+v pipeline %+v", e.ES, e.Pipeline.Output)
	}
}

// TestSmokeAgainstEssimFaults runs the embedded pipeline against an ES that
// rejects items or answers late (smoke's --es pointed at it).
func TestSmokeAgainstEssimFaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults essim.Faults
		check  func(essim.Stats) bool
	}{
		{"rejects 30% with 429", essim.Faults{RejectRate: 0.3, Seed: 7}, func(s essim.Stats) bool { return s.Rejected > 0 }},
		{"indexes late and rejects", essim.Faults{IndexLate: true, LateBy: 300 * time.Millisecond, RejectRate: 0.2, Seed: 5},
			func(s essim.Stats) bool { return s.Rejected > 0 && s.BulkRequests > 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := startEssim(t, tc.faults)
			code, out, errOut := runCLI(t, "smoke", "-o", "json", "--count", "400", "--no-probes",
				"--es", sim.URL(), "--timeout", "60s")
			if code != ExitOK {
				t.Fatalf("exit %d: %s\n%s", code, errOut, out)
			}
			parseSmoke(t, out).exactlyOnce(t, 400)
			if st := sim.Stats(); !tc.check(st) || st.Docs != 400 {
				t.Fatalf("essim: %+v", st)
			}
		})
	}
}

// TestSmokeReportsDroppedDocuments: essim acknowledges some items with 201
// and never stores them. smoke must name exactly those canaries.
func TestSmokeReportsDroppedDocuments(t *testing.T) {
	sim := startEssim(t, essim.Faults{DropRate: 0.05, Seed: 3})
	code, out, _ := runCLI(t, "smoke", "-o", "json", "--count", "1000", "--no-probes", "--es", sim.URL(),
		"--timeout", "20s")
	r := parseSmoke(t, out)
	if code != ExitFindings || !r.has(smoke.FindingMissing) {
		t.Fatalf("exit %d findings %+v", code, r.Findings)
	}
	dropped := int(sim.Stats().Dropped)
	if dropped == 0 || r.Data.Missing != dropped || r.Data.Indexed != 1000-dropped || r.Data.Acked != 1000 {
		t.Fatalf("essim dropped %d; smoke: %+v", dropped, r.Data)
	}
	// Every canary was acked: the remedy is about what comes after the
	// receiver only.
	if rem := r.remedy(smoke.FindingMissing); r.Data.MissingAcked != dropped || !strings.Contains(rem, "acknowledged and still lost") ||
		strings.Contains(rem, "never acknowledged") {
		t.Fatalf("missing_acked %d, remedy: %s", r.Data.MissingAcked, rem)
	}
	if len(r.Data.MissingIDs) != min(dropped, 100) {
		t.Fatalf("missing_ids %d, want %d", len(r.Data.MissingIDs), min(dropped, 100))
	}
	for _, id := range r.Data.MissingIDs {
		if !strings.HasPrefix(id, r.Data.RunID+"-") {
			t.Fatalf("missing id %q not of run %s", id, r.Data.RunID)
		}
	}
}

// TestSmokeProgressOnATerminal: a person watching a terminal sees the
// counters move on stderr; the report itself is on stdout.
func TestSmokeProgressOnATerminal(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"smoke", "--count", "200", "--no-probes"},
		IO{In: strings.NewReader(""), Out: &out, Err: &errb, OutTTY: true})
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "indexed 200") || !strings.Contains(errb.String(), "\r") {
		t.Fatalf("no progress on stderr: %q", errb.String())
	}
	if !strings.Contains(out.String(), "send -> searchable") || !strings.Contains(out.String(), "200") {
		t.Fatalf("table report: %s", out.String())
	}
}
