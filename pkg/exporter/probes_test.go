package exporter

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
)

// TestForwardProbeSource probes a receiver that acks and one that never
// does: success, the ack histogram, the outcome counter and the no-ack
// finding.
func TestForwardProbeSource(t *testing.T) {
	rec := forwardtest.NewRecorder()
	acking := forwardtest.Start(t, &forward.Server{Handler: rec})
	silent := forwardtest.Start(t, &forward.Server{Handler: forward.HandlerFunc(func(context.Context, net.Addr, *forward.Request) error {
		return errors.New("ack withheld")
	})})
	e := New(Options{})
	sch := Schedule{Interval: time.Minute, Timeout: 5 * time.Second}
	e.Add(NewForwardProbe(forwardprobe.Options{Addr: acking, AckTimeout: 2 * time.Second}), sch)
	e.Add(NewForwardProbe(forwardprobe.Options{Addr: silent, AckTimeout: 300 * time.Millisecond}), sch)
	e.RunOnce(context.Background())
	e.RunOnce(context.Background())
	mfs := gather(t, e)

	if v := mustValue(t, mfs, "logdoctor_forward_probe_success", map[string]string{"target": acking}); v != 1 {
		t.Errorf("success against an acking receiver = %v", v)
	}
	if v := mustValue(t, mfs, "logdoctor_forward_ack_seconds", map[string]string{"target": acking}); v != 2 {
		t.Errorf("ack histogram count = %v after two runs", v)
	}
	if v := mustValue(t, mfs, "logdoctor_forward_probe_chunks_total", map[string]string{"target": acking, "outcome": "acked"}); v != 2 {
		t.Errorf("acked chunks = %v", v)
	}
	if got := rec.WaitFor(2, time.Second); len(got) < 2 || got[0].Tag == "" {
		t.Errorf("the receiver got %d canary events", len(got))
	}
	if v := mustValue(t, mfs, "logdoctor_forward_probe_success", map[string]string{"target": silent}); v != 0 {
		t.Errorf("success against a silent receiver = %v", v)
	}
	if v := mustValue(t, mfs, "logdoctor_forward_probe_chunks_total", map[string]string{"target": silent, "outcome": "no_ack"}); v != 2 {
		t.Errorf("no_ack chunks = %v", v)
	}
	if v := mustValue(t, mfs, "logdoctor_forward_ack_seconds", map[string]string{"target": silent}); v != 0 {
		t.Errorf("a chunk without ack was observed in the histogram (%v)", v)
	}
	if _, ok := value(mfs, "logdoctor_finding", map[string]string{"id": forwardprobe.FindingNoAck, "severity": "critical", "target": silent}); !ok {
		t.Error("no forward.no_ack finding for the silent receiver")
	}
	text, _ := exposition(t, promRegistry(e))
	promtoolCheck(t, text)
}

// TestESProbeSource probes essim rejecting part of the bulk items: write
// rejections by cluster, health, and the probe's success.
func TestESProbeSource(t *testing.T) {
	srv := essimtest.Start(t, essim.Config{ClusterName: "logs-prod", Faults: essim.Faults{RejectRate: 1}})
	url := srv.URL()
	// Rejections the cluster counted before the probe: one bulk.
	bulkRejected(t, url)
	e := New(Options{})
	e.Add(NewESProbe(esprobe.Options{URLs: []string{url}, Timeout: 2 * time.Second}), Schedule{Interval: time.Minute, Timeout: 10 * time.Second})
	e.RunOnce(context.Background())
	mfs := gather(t, e)
	if v := mustValue(t, mfs, "logdoctor_source_up", map[string]string{"source": "es_probe"}); v != 1 {
		t.Fatalf("es probe failed: %v", mfs["logdoctor_source_errors_total"])
	}
	if v := mustValue(t, mfs, "logdoctor_es_write_rejections_total", map[string]string{"cluster": "logs-prod", "kind": "thread_pool"}); v < 1 {
		t.Errorf("write rejections = %v, want at least the one bulk item", v)
	}
	if v := mustValue(t, mfs, "logdoctor_es_cluster_health", map[string]string{"cluster": "logs-prod", "status": "green"}); v != 1 {
		t.Errorf("health green = %v", v)
	}
	if _, ok := value(mfs, "logdoctor_finding", map[string]string{"id": esprobe.FindingWriteRejections, "target": url}); !ok {
		t.Errorf("no es.write_rejections finding: %v", mfs["logdoctor_finding"])
	}
	text, _ := exposition(t, promRegistry(e))
	promtoolCheck(t, text)
}

// bulkRejected sends one bulk item, which essim with RejectRate 1 answers
// 429 and counts in thread_pool.write.rejected.
func bulkRejected(t *testing.T, base string) {
	t.Helper()
	body := strings.NewReader(`{"index":{"_index":"logs"}}` + "\n" + `{"msg":"x"}` + "\n")
	resp, err := http.Post(base+"/_bulk", "application/x-ndjson", body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "es_rejected_execution_exception") {
		t.Fatalf("essim did not reject the bulk item: %s", b)
	}
}
