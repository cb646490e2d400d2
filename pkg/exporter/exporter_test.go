package exporter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// fakeSource returns what its fn says; it counts its runs.
type fakeSource struct {
	name, target string
	desc         *prometheus.Desc
	fn           func(ctx context.Context) (*Sample, error)
	runs         atomic.Int32
}

func newFake(name string, fn func(ctx context.Context) (*Sample, error)) *fakeSource {
	return &fakeSource{name: name, target: "t", fn: fn,
		desc: prometheus.NewDesc("logdoctor_test_value", "A test value.", []string{"source"}, nil)}
}

func (f *fakeSource) Name() string                        { return f.name }
func (f *fakeSource) Target() string                      { return f.target }
func (f *fakeSource) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f *fakeSource) Collect(ctx context.Context) (*Sample, error) {
	f.runs.Add(1)
	return f.fn(ctx)
}

func (f *fakeSource) value(v float64) *Sample {
	return &Sample{Metrics: []prometheus.Metric{prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, v, f.name)}}
}

// gather collects e through a pedantic registry, which also checks that
// every metric collected was described.
func gather(t *testing.T, e *Engine) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value returns the value of the series of family name whose labels
// include want, and whether there is one.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func mustValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := value(mfs, name, want)
	if !ok {
		t.Fatalf("no %s%v", name, want)
	}
	return v
}

// TestHungSourceDoesNotHoldTheScrape: a source that ignores its context
// and never returns is counted as timed out, its metrics are gone, the
// other sources go on, and a scrape over HTTP answers at once.
func TestHungSourceDoesNotHoldTheScrape(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hung := newFake("hung", func(context.Context) (*Sample, error) { <-release; return nil, nil })
	var ok *fakeSource
	ok = newFake("ok", func(context.Context) (*Sample, error) { return ok.value(1), nil })
	e := New(Options{})
	e.Add(hung, Schedule{Interval: 50 * time.Millisecond, Timeout: 100 * time.Millisecond})
	e.Add(ok, Schedule{Interval: 50 * time.Millisecond, Timeout: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { cancel(); <-done }()

	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = Serve(ctx, ln, Handler(reg, nil), "", nil) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		mfs := gather(t, e)
		if v, _ := value(mfs, "logdoctor_source_errors_total", map[string]string{"source": "hung", "kind": "timeout"}); v >= 1 {
			if up := mustValue(t, mfs, "logdoctor_source_up", map[string]string{"source": "hung"}); up != 0 {
				t.Fatalf("hung source up = %v", up)
			}
			if ts := mustValue(t, mfs, "logdoctor_source_last_success_timestamp_seconds", map[string]string{"source": "hung"}); ts != 0 {
				t.Fatalf("hung source has a success at %v", ts)
			}
			if v := mustValue(t, mfs, "logdoctor_test_value", map[string]string{"source": "ok"}); v != 1 {
				t.Fatalf("the healthy source's value is %v", v)
			}
			if _, found := value(mfs, "logdoctor_test_value", map[string]string{"source": "hung"}); found {
				t.Fatal("the hung source has metrics")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hung source was never counted as timed out: %v", mfs["logdoctor_source_errors_total"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The scrape over HTTP, as Prometheus does it, with its timeout.
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	resp, err := client.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatalf("scrape while a source hangs: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("scrape took %s while a source hangs", took)
	}
	if !strings.Contains(string(body), `logdoctor_source_up{source="hung",target="t"} 0`) {
		t.Errorf("scrape does not show the hung source down:\n%s", body)
	}
	// The hung run holds one goroutine, not one per interval.
	time.Sleep(300 * time.Millisecond)
	if n := hung.runs.Load(); n != 1 {
		t.Errorf("a hung source was started %d times; want 1 until it returns", n)
	}
}

// TestSourceFailsAndRecovers: an error clears the source's metrics and
// findings and counts; the next success brings them back.
func TestSourceFailsAndRecovers(t *testing.T) {
	var fail atomic.Bool
	var src *fakeSource
	src = newFake("flaky", func(ctx context.Context) (*Sample, error) {
		if fail.Load() {
			return nil, errors.New("boom")
		}
		s := src.value(7)
		s.Findings = []Finding{{Finding: report.Finding{ID: "tcp.close_wait", Severity: report.Warning}, Target: "127.0.0.1:9200"}}
		return s, nil
	})
	now := time.Unix(1_700_000_000, 0)
	e := New(Options{Now: func() time.Time { return now }})
	e.Add(src, Schedule{Interval: time.Second, Timeout: time.Second})
	e.RunOnce(context.Background())
	mfs := gather(t, e)
	if v := mustValue(t, mfs, "logdoctor_finding", map[string]string{"id": "tcp.close_wait", "severity": "warning", "target": "127.0.0.1:9200", "shipper": ""}); v != 1 {
		t.Fatalf("finding = %v", v)
	}
	if ts := mustValue(t, mfs, "logdoctor_source_last_success_timestamp_seconds", map[string]string{"source": "flaky"}); ts != float64(now.Unix()) {
		t.Fatalf("last success %v, want %v", ts, now.Unix())
	}
	fail.Store(true)
	e.RunOnce(context.Background())
	mfs = gather(t, e)
	if _, found := value(mfs, "logdoctor_finding", nil); found {
		t.Fatal("a failed source's findings are still served")
	}
	if _, found := value(mfs, "logdoctor_test_value", nil); found {
		t.Fatal("a failed source's metrics are still served")
	}
	if v := mustValue(t, mfs, "logdoctor_source_errors_total", map[string]string{"source": "flaky", "kind": "error"}); v != 1 {
		t.Fatalf("errors = %v", v)
	}
	if ts := mustValue(t, mfs, "logdoctor_source_last_success_timestamp_seconds", map[string]string{"source": "flaky"}); ts != float64(now.Unix()) {
		t.Fatalf("last success moved to %v on a failure", ts)
	}
	fail.Store(false)
	now = now.Add(time.Minute)
	e.RunOnce(context.Background())
	mfs = gather(t, e)
	if v := mustValue(t, mfs, "logdoctor_source_up", map[string]string{"source": "flaky"}); v != 1 {
		t.Fatalf("up = %v after recovery", v)
	}
	if v := mustValue(t, mfs, "logdoctor_test_value", nil); v != 7 {
		t.Fatalf("value = %v after recovery", v)
	}
}

// TestFindingsDeduplicated: two sources reporting the same finding about
// the same target give one series, not a gather error.
func TestFindingsDeduplicated(t *testing.T) {
	f := Finding{Finding: report.Finding{ID: "forward.no_ack", Severity: report.Critical}, Target: "127.0.0.1:24224"}
	e := New(Options{})
	for _, n := range []string{"a", "b"} {
		e.Add(newFake(n, func(context.Context) (*Sample, error) { return &Sample{Findings: []Finding{f, f}}, nil }), Schedule{Interval: time.Second})
	}
	e.RunOnce(context.Background())
	mfs := gather(t, e)
	if n := len(mfs["logdoctor_finding"].GetMetric()); n != 1 {
		t.Fatalf("%d finding series, want 1", n)
	}
}

// exposition renders reg as Prometheus text and parses it back with
// prometheus/common's parser, as a Prometheus server does; with promtool
// available it must pass `promtool check metrics` too.
func exposition(t *testing.T, reg prometheus.Gatherer) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	parsed, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, buf.String())
	}
	return buf.String(), parsed
}

// promtoolCheck runs `promtool check metrics` on an exposition: it fails
// on lint problems (names, units, _total on counters, help texts).
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	testenv.RequireCommands(t, "promtool")
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestAddAndRemoveWhileRunning: a source added while the engine runs
// starts at once; a removed one stops and its series go.
func TestAddAndRemoveWhileRunning(t *testing.T) {
	e := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var src *fakeSource
	src = newFake("late", func(context.Context) (*Sample, error) { return src.value(3), nil })
	e.Add(src, Schedule{Interval: 20 * time.Millisecond})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, ok := value(gather(t, e), "logdoctor_test_value", nil); ok && v == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a source added to a running engine never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.Remove(src)
	if _, ok := value(gather(t, e), "logdoctor_source_up", map[string]string{"source": "late"}); ok {
		t.Fatal("a removed source is still served")
	}
	runs := src.runs.Load()
	time.Sleep(100 * time.Millisecond)
	if n := src.runs.Load(); n > runs+1 {
		t.Errorf("a removed source ran %d more times", n-runs)
	}
}
