package esprobe

import (
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// The checks that only compare what others measured are plain functions
// of their inputs: these tests give them snapshots, no cluster.

func TestCheckPressureFromSnapshots(t *testing.T) {
	before := &statsSnap{rejected: 4, pressure: 1, pressureReported: true}
	after := &statsSnap{rejected: 7, pressure: 1, queue: 12, pressureReported: true}
	pr, out := checkPressure(before, after, 300*time.Millisecond, false)
	if pr.WriteRejectedDelta != 3 || pr.PressureRejectDelta != 0 || pr.IntervalMS != 300 || pr.WriteQueue != 12 || !pr.IndexingPressure {
		t.Fatalf("pressure %+v", pr)
	}
	got := ids(out.findings)
	if got[FindingWriteRejections].Severity != report.Critical || got[FindingIndexingPressure].Severity != report.Warning || len(got) != 2 {
		t.Fatalf("findings %+v", out.findings)
	}
	if len(out.checks) != 1 || out.checks[0].Name != "write_pressure" || out.checks[0].OK {
		t.Fatalf("checks %+v", out.checks)
	}
	// The canary bulk already reported rejections: not twice.
	_, out = checkPressure(before, after, time.Second, true)
	if _, dup := ids(out.findings)[FindingWriteRejections]; dup {
		t.Fatalf("reported twice: %+v", out.findings)
	}
}

func TestCheckOtherClientsFromSnapshots(t *testing.T) {
	at := time.Unix(1000, 0)
	before := &statsSnap{at: at, opened: 100}
	after := &statsSnap{at: at.Add(500 * time.Millisecond), opened: 130}
	r, out := checkOtherClients(before, after, 10)
	if r.opened != 20 || r.windowMS != 500 || r.perSecond != 40 {
		t.Fatalf("%+v", r)
	}
	if f := ids(out.findings)[FindingConnectionChurn]; f.Severity != report.Warning || f.Evidence["probe_opened"] != int64(10) {
		t.Fatalf("findings %+v", out.findings)
	}
	// The probe's own connections explain the growth: nothing to say.
	if r, out := checkOtherClients(before, after, 30); r.opened != 0 || len(out.findings) != 0 {
		t.Fatalf("%+v %+v", r, out.findings)
	}
	var p Pool
	r.apply(&p)
	if p.OthersOpened != 20 || p.WindowMS != 500 {
		t.Fatalf("apply: %+v", p)
	}
}

func TestCheckBulkSizeAndTimeout(t *testing.T) {
	if out := checkBulkSize(8<<20, 0); len(out.checks)+len(out.findings) != 0 {
		t.Fatalf("unknown limit checked: %+v", out)
	}
	if out := checkBulkSize(8<<20, 100<<20); len(out.findings) != 0 || !out.checks[0].OK {
		t.Fatalf("fits: %+v", out)
	}
	if out := checkBulkSize(8<<20, 1<<20); ids(out.findings)[FindingBulkTooLarge].Severity != report.Critical {
		t.Fatalf("too large: %+v", out)
	}

	lats := []time.Duration{10 * time.Millisecond, 70 * time.Millisecond, 20 * time.Millisecond}
	p99, out := checkTimeout(nil, lats, 100*time.Millisecond)
	if p99 != 70 || ids(out.findings)[FindingRequestTimeout].Severity != report.Warning || lats[1] != 70*time.Millisecond {
		t.Fatalf("requests: p99 %v %+v (lats %v must stay as given)", p99, out.findings, lats)
	}
	p99, out = checkTimeout(&Bulk{Statuses: []int{201}, LatencyP99MS: 150}, lats, 100*time.Millisecond)
	f := ids(out.findings)[FindingRequestTimeout]
	if p99 != 150 || f.Severity != report.Critical || f.Evidence["measured_on"] != "bulk" {
		t.Fatalf("bulk: p99 %v %+v", p99, f)
	}
	if _, out := checkTimeout(nil, lats, time.Second); len(out.findings) != 0 {
		t.Fatalf("well under: %+v", out.findings)
	}
}
