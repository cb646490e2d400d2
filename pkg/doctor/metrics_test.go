package doctor

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseMonitorAgent(t *testing.T) {
	ps, err := ParseMonitorAgent(readTestdata(t, "plugins.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 4 {
		t.Fatalf("%d plugins", len(ps))
	}
	es := ps[2]
	if es.ID != "object:5b4" || es.Category != "output" || es.Values["buffer_total_queued_size"] != 92553 ||
		es.Values["retry_count"] != 3 || es.RetrySteps == nil || *es.RetrySteps != 2 || es.Config["port"] != "29200" {
		t.Errorf("es output %+v", es)
	}
	if _, ok := ps[0].Values["retry_count"]; ok {
		t.Error("a null retry_count became a number")
	}
	if ps[3].RetrySteps != nil {
		t.Error("an empty retry object is not a retry state")
	}
	if _, err := ParseMonitorAgent([]byte("<html>")); err == nil {
		t.Error("HTML accepted as monitor_agent's answer")
	}
}

func TestParseFluentBit(t *testing.T) {
	ps, err := ParseFluentBitV1(readTestdata(t, "v1metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 || ps[2].ID != "es.0" || ps[2].Type != "es" || ps[2].Values["retries"] != 3 || ps[0].Values["records"] != 200 {
		t.Errorf("v1 %+v", ps)
	}
	per, global, err := ParseFluentBitV2(readTestdata(t, "v2metrics.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if per["es.0"]["fluentbit_output_retries_total"] != 3 || per["dummy.0"]["fluentbit_input_records_total"] != 200 ||
		per["es.0"]["fluentbit_output_chunk_available_capacity_percent"] != 87.5 || global["fluentbit_storage_chunks"] != 4 || global["fluentbit_uptime"] != 4 {
		t.Errorf("v2 per %v global %v", per, global)
	}
	if _, _, err := ParseFluentBitV2([]byte("not metrics at all\n")); err == nil {
		t.Error("garbage accepted as v2 metrics")
	}
	layer, in, err := ParseFluentBitStorage(readTestdata(t, "storage.json"))
	if err != nil {
		t.Fatal(err)
	}
	if layer["total_chunks"] != 4 || in["dummy.0"]["storage_mem_bytes"] != 1.2*(1<<20) || in["dummy.0"]["storage_mem_limit_bytes"] != 5<<20 || in["dummy.0"]["chunks_busy"] != 1 {
		t.Errorf("storage %v %v", layer, in)
	}
}

func FuzzParseMetrics(f *testing.F) {
	for _, n := range []string{"plugins.json", "v1metrics.json", "v2metrics.txt", "storage.json"} {
		f.Add(readTestdata(f, n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseMonitorAgent(b)
		_, _ = ParseFluentBitV1(b)
		_, _, _ = ParseFluentBitV2(b)
		_, _, _ = ParseFluentBitStorage(b)
		_ = splitNUL(b)
		_, _ = parseStat(b)
		_ = parseEnviron(b)
		for _, k := range []Kind{Fluentd, FluentBit} {
			for _, l := range strings.Split(string(b), "\n") {
				_, _ = classifyLogLine(k, l)
			}
		}
	})
}

const seed000Conf = `<source>
  @type monitor_agent
  port 24220
</source>
<match a.**>
  @type elasticsearch
  host 127.0.0.1
  port 9200
  <buffer>
    @type memory
    total_limit_size 64m
  </buffer>
</match>
`

func fdSample(at time.Time, queued, retries, emits, writes, rollbacks float64) Sample {
	return Sample{At: at, Plugins: []PluginSample{{ID: "object:1", Type: "elasticsearch", Category: "output",
		Config: map[string]string{"host": "127.0.0.1", "port": "9200"},
		Values: map[string]float64{"buffer_total_queued_size": queued, "retry_count": retries, "emit_records": emits,
			"write_count": writes, "rollback_count": rollbacks, "buffer_queue_length": 1}}}}
}

func findingIDs(fs []report.Finding) map[string]report.Finding {
	m := map[string]report.Finding{}
	for _, f := range fs {
		m[f.ID] = f
	}
	return m
}

// TestSeed000Trend: retries growing, writes rolled back, buffer growing:
// retrying, stalled, filling with the time to total_limit_size.
func TestSeed000Trend(t *testing.T) {
	c, err := shipconf.Parse("fluent.conf", []byte(seed000Conf), shipconf.Options{Format: shipconf.FormatFluentd})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	samples := []Sample{fdSample(t0, 1<<20, 3, 1000, 8, 3), fdSample(t0.Add(5*time.Second), 1<<20+5*64<<10, 6, 2000, 11, 6)}
	ts := trends(c, samples, nil)
	if len(ts) != 1 {
		t.Fatalf("trends %+v", ts)
	}
	tr := ts[0]
	if !tr.Retrying || !tr.Stalled || tr.BytesPerS != 64<<10 || tr.Limit != 64<<20 || tr.ETASeconds == nil || !tr.Memory {
		t.Fatalf("trend %+v", tr)
	}
	// (64 MiB - 1.3125 MiB) at 64 KiB/s
	if eta := *tr.ETASeconds; eta < 1002 || eta > 1003 {
		t.Errorf("eta %.1f s", eta)
	}
	attachLog(Fluentd, ts, []logEvent{{Kind: "error", Line: "Errno::ECONNREFUSED"}, {Kind: "drop", Line: "hit limit for retries", Fresh: true}})
	fs := findingIDs(shipperFindings(Fluentd, ts))
	for _, id := range []string{FindingOutputRetrying, FindingOutputStalled, FindingBufferFilling, FindingChunksDropped} {
		f, ok := fs[id]
		if !ok {
			t.Errorf("missing %s in %v", id, fs)
			continue
		}
		if f.Evidence["file"] != "fluent.conf" || f.Evidence["line"] != 5 || f.Severity != report.Critical {
			t.Errorf("%s: %v %+v", id, f.Severity, f.Evidence)
		}
	}
	if s := fs[FindingBufferFilling].Summary; !strings.Contains(s, "in about 17 min") || !strings.Contains(s, "restart") {
		t.Errorf("buffer summary %q", s)
	}
	if s := fs[FindingOutputRetrying].Summary; !strings.Contains(s, "ECONNREFUSED") {
		t.Errorf("retry summary lacks the last error: %q", s)
	}

	// Healthy: writes move, no retries, the stage grows before a flush:
	// nothing to report.
	healthy := []Sample{fdSample(t0, 1000, 0, 100, 10, 0), fdSample(t0.Add(5*time.Second), 5000, 0, 200, 15, 0)}
	healthy[1].Plugins[0].Values["buffer_queue_length"] = 0
	if fs := shipperFindings(Fluentd, trends(c, healthy, nil)); len(fs) != 0 {
		t.Errorf("healthy output: %v", fs)
	}
}

func TestFluentBitTrend(t *testing.T) {
	conf := "[SERVICE]\n    HTTP_Server On\n[INPUT]\n    Name dummy\n[OUTPUT]\n    Name es\n    Match *\n"
	c, err := shipconf.Parse("fluent-bit.conf", []byte(conf), shipconf.Options{Format: shipconf.FormatFluentBit})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	mk := func(at time.Time, in, proc, retries, dropped, memBytes float64) Sample {
		return Sample{At: at, Plugins: []PluginSample{
			{ID: "dummy.0", Type: "dummy", Category: "input", Values: map[string]float64{"records": in, "storage_mem_bytes": memBytes, "storage_mem_limit_bytes": 10 << 20}},
			{ID: "es.0", Type: "es", Category: "output", Values: map[string]float64{"proc_records": proc, "retries": retries, "dropped_records": dropped, "retries_failed": 0, "errors": 0}},
		}}
	}
	ts := trends(c, []Sample{mk(t0, 100, 50, 1, 0, 1<<20), mk(t0.Add(4*time.Second), 300, 50, 4, 7, 2<<20)}, nil)
	if len(ts) != 1 || !ts[0].Stalled || !ts[0].Retrying || ts[0].Limit != 10<<20 {
		t.Fatalf("trend %+v", ts)
	}
	fs := findingIDs(shipperFindings(FluentBit, ts))
	for _, id := range []string{FindingOutputRetrying, FindingOutputStalled, FindingBufferFilling, FindingChunksDropped} {
		if _, ok := fs[id]; !ok {
			t.Errorf("missing %s: %v", id, fs)
		}
	}
	// Filesystem storage measured on disk wins over the memory figure.
	ts = trends(c, []Sample{mk(t0, 100, 50, 1, 0, 0), mk(t0.Add(4*time.Second), 300, 50, 4, 0, 0)}, map[string][2]float64{"dummy.0": {1000, 9000}})
	if ts[0].Queued == nil || ts[0].Queued.Change != 8000 || ts[0].QueuedFrom != "chunk files under storage.path" {
		t.Errorf("disk backlog %+v", ts[0])
	}
}

func TestMetricsIDWithoutAtID(t *testing.T) {
	conf := "<match a>\n  @type elasticsearch\n  port 9201\n</match>\n<match b>\n  @type elasticsearch\n  port 9202\n</match>\n<match c>\n  @type elasticsearch\n  @id third\n</match>\n"
	c, err := shipconf.Parse("fluent.conf", []byte(conf), shipconf.Options{Format: shipconf.FormatFluentd})
	if err != nil {
		t.Fatal(err)
	}
	s := &Sample{Plugins: []PluginSample{
		{ID: "object:b", Type: "elasticsearch", Category: "output", Config: map[string]string{"port": "9202"}},
		{ID: "object:a", Type: "elasticsearch", Category: "output", Config: map[string]string{"port": "9201"}},
		{ID: "third", Type: "elasticsearch", Category: "output"},
	}}
	outs := c.Outputs()
	if a, b, third := metricsID(c, outs[0], s), metricsID(c, outs[1], s), metricsID(c, outs[2], s); a != "object:a" || b != "object:b" || third != "third" {
		t.Errorf("ids %q %q %q", a, b, third)
	}
}

func TestLogLines(t *testing.T) {
	fd := `2026-11-29 18:16:45 +0000 [warn]: #0 [es_out] failed to flush the buffer. retry_times=0 next_retry_time=2026-11-29 18:16:47 +0000 chunk="66" error_class=Fluent::Plugin::ElasticsearchOutput::RecoverableRequestFailure error="could not push logs to Elasticsearch cluster ({:host=>\"127.0.0.1\", :port=>29200, :scheme=>\"http\", :user=>\"elastic\", :password=>\"hunter2\"}): Connection refused"`
	ev, ok := classifyLogLine(Fluentd, fd)
	if !ok || ev.Kind != "error" || ev.Plugin != "es_out" || !strings.HasPrefix(ev.Line, "Fluent::Plugin::ElasticsearchOutput::RecoverableRequestFailure: could not push") {
		t.Errorf("fluentd flush error: %+v", ev)
	}
	if strings.Contains(ev.Line, "hunter2") {
		t.Errorf("secret in %q", ev.Line)
	}
	ev, ok = classifyLogLine(Fluentd, `2026-11-29 18:20:00 +0000 [warn]: #0 failed to flush the buffer, and hit limit for retries. dropping all chunks in the buffer queue.`)
	if !ok || ev.Kind != "drop" {
		t.Errorf("fluentd drop: %+v", ev)
	}
	ev, ok = classifyLogLine(FluentBit, `[2026/11/29 18:16:23.136391688] [ warn] [engine] failed to flush chunk '4811-1795976182.142645753.flb', retry in 8 seconds: task_id=0, input=dummy.0 > output=es.0 (out_id=0)`)
	if !ok || ev.Kind != "error" || ev.Plugin != "es.0" {
		t.Errorf("fluent bit flush: %+v", ev)
	}
	if _, ok := classifyLogLine(FluentBit, "[info] [engine] started"); ok {
		t.Error("an info line taken for an error")
	}
}
