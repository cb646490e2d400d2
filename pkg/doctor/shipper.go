package doctor

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// Finding ids of `logdoctor doctor` (stable API, documented in
// docs/commands/doctor.md).
const (
	FindingOutputRetrying = "shipper.output_retrying"
	FindingBufferFilling  = "shipper.buffer_filling"
	FindingOutputStalled  = "shipper.output_stalled"
	FindingChunksDropped  = "shipper.chunks_dropped"
	FindingNotUnderstood  = "shipper.not_understood"
)

// Rules lists doctor's own finding ids, for SARIF.
var Rules = []report.Rule{
	{ID: FindingOutputRetrying, Description: "An output's retry count grows: it fails to deliver and tries again."},
	{ID: FindingBufferFilling, Description: "An output's buffer grows while it retries or stalls; the estimate says when it reaches its limit."},
	{ID: FindingOutputStalled, Description: "Events keep arriving at an output that writes nothing."},
	{ID: FindingChunksDropped, Description: "The shipper counts (or logs) chunks or records it gave up on."},
	{ID: FindingNotUnderstood, Description: "A log shipper logdoctor finds but does not diagnose yet (Vector, Logstash)."},
}

// Delta is a number at the first and the last sample.
type Delta struct {
	First  float64 `json:"first"`
	Last   float64 `json:"last"`
	Change float64 `json:"change"`
}

func delta(first, last float64) *Delta { return &Delta{First: first, Last: last, Change: last - first} }

// OutputTrend is one output's own numbers over the interval.
type OutputTrend struct {
	Output    string  `json:"output"`
	At        string  `json:"at"`
	MetricsID string  `json:"metrics_id"`
	Seconds   float64 `json:"seconds"`
	Retries   *Delta  `json:"retries,omitempty"`
	Writes    *Delta  `json:"writes,omitempty"`
	Incoming  *Delta  `json:"incoming_records,omitempty"`
	Queued    *Delta  `json:"queued_bytes,omitempty"`
	QueueLen  *Delta  `json:"queue_length,omitempty"`
	Dropped   *Delta  `json:"dropped,omitempty"`
	// QueuedFrom says how the queued bytes were measured.
	QueuedFrom string  `json:"queued_from,omitempty"`
	BytesPerS  float64 `json:"growth_bytes_per_second,omitempty"`
	Limit      int64   `json:"limit_bytes,omitempty"`
	LimitFrom  string  `json:"limit_from,omitempty"`
	// ETASeconds is the time until Limit at the measured growth.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	Retrying   bool     `json:"retrying"`
	Stalled    bool     `json:"stalled"`
	LastError  string   `json:"last_error,omitempty"`
	Memory     bool     `json:"memory_buffer"`
	plugin     *shipconf.Plugin
	limitPos   shipconf.Pos
	memParam   *shipconf.Param
	dropLines  []logEvent
}

// metricsID is how the shipper's monitoring names output o.
func metricsID(c *shipconf.Config, o *shipconf.Plugin, s *Sample) string {
	if c.Shipper == shipconf.FluentBit {
		if o.ID != "" {
			return o.ID
		}
		return fmt.Sprintf("%s.%d", o.Type, o.Index)
	}
	if o.ID != "" {
		return o.ID
	}
	// Without @id, monitor_agent names plugins object:NNN; tell outputs
	// of one type apart by the settings it shows, then by order.
	var cands []*PluginSample
	for i := range s.Plugins {
		ps := &s.Plugins[i]
		if ps.Category == "output" && ps.Type == o.Type {
			cands = append(cands, ps)
		}
	}
	best, bestScore := "", -1
	for _, ps := range cands {
		score := 0
		for _, prm := range o.Section.Params {
			if prm.State == shipconf.Known && ps.Config[prm.Key] == prm.Value {
				score++
			}
		}
		if score > bestScore {
			best, bestScore = ps.ID, score
		}
	}
	if bestScore > 0 || len(cands) == 1 {
		return best
	}
	n := 0
	for _, other := range c.Outputs() {
		if other == o {
			break
		}
		if other.Type == o.Type {
			n++
		}
	}
	if n < len(cands) {
		return cands[n].ID
	}
	return ""
}

// inputIDs are the Fluent Bit instance names of the inputs routed to o.
func inputIDs(c *shipconf.Config, o *shipconf.Plugin) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range c.Routes() {
		if r.Output != o {
			continue
		}
		id := r.Input.ID
		if id == "" {
			id = fmt.Sprintf("%s.%d", r.Input.Type, r.Input.Index)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func val(ps *PluginSample, key string) (float64, bool) {
	if ps == nil {
		return 0, false
	}
	v, ok := ps.Values[key]
	return v, ok
}

func pair(first, last *PluginSample, key string) *Delta {
	a, ok1 := val(first, key)
	b, ok2 := val(last, key)
	if !ok1 || !ok2 {
		return nil
	}
	return delta(a, b)
}

// trends computes every output's trend from the samples (first and last
// carry the findings; all of them draw the chart). storage holds, per
// Fluent Bit input instance, the bytes of its chunk files at the first
// and the last sample.
func trends(c *shipconf.Config, samples []Sample, storage map[string][2]float64) []*OutputTrend {
	var ok []Sample
	for _, s := range samples {
		if s.Error == "" {
			ok = append(ok, s)
		}
	}
	if len(ok) < 2 {
		return nil
	}
	first, last := &ok[0], &ok[len(ok)-1]
	secs := last.At.Sub(first.At).Seconds()
	var out []*OutputTrend
	for _, o := range c.Outputs() {
		id := metricsID(c, o, first)
		if id == "" {
			continue
		}
		f, l := first.plugin(id), last.plugin(id)
		if f == nil || l == nil {
			continue
		}
		t := &OutputTrend{Output: o.Name(), At: at(o.Pos), MetricsID: id, Seconds: secs, plugin: o}
		if c.Shipper == shipconf.FluentBit {
			t.Retries = pair(f, l, "retries")
			t.Writes = pair(f, l, "proc_records")
			t.Dropped = sumDelta(pair(f, l, "dropped_records"), pair(f, l, "retries_failed"))
			var in *Delta
			for _, iid := range inputIDs(c, o) {
				in = sumDelta(in, pair(first.plugin(iid), last.plugin(iid), "records"))
			}
			t.Incoming = in
			t.fluentBitBacklog(c, o, first, last, storage)
			errs := pair(f, l, "errors")
			retried := pair(f, l, "retried_records")
			t.Retrying = (t.Retries != nil && t.Retries.Change > 0) || (errs != nil && errs.Change > 0)
			t.Stalled = t.Incoming != nil && t.Incoming.Change > 0 && t.Writes != nil && t.Writes.Change == 0 &&
				(t.Retrying || (retried != nil && retried.Change > 0))
		} else {
			t.Retries = pair(f, l, "retry_count")
			if f.RetrySteps != nil && l.RetrySteps != nil && t.Retries == nil {
				t.Retries = delta(*f.RetrySteps, *l.RetrySteps)
			}
			// write_count counts attempts, failed ones too; a failed
			// write is rolled back, so delivered writes are the difference.
			t.Writes = sumDelta(pair(f, l, "write_count"), negate(pair(f, l, "rollback_count")))
			t.Incoming = pair(f, l, "emit_records")
			t.Queued = pair(f, l, "buffer_total_queued_size")
			t.QueuedFrom = "monitor_agent buffer_total_queued_size"
			t.QueueLen = pair(f, l, "buffer_queue_length")
			t.Retrying = t.Retries != nil && t.Retries.Change > 0
			queueHeld := t.QueueLen != nil && t.QueueLen.Last > 0 && t.QueueLen.Last >= t.QueueLen.First
			t.Stalled = t.Incoming != nil && t.Incoming.Change > 0 && t.Writes != nil && t.Writes.Change == 0 &&
				(t.Retrying || l.RetrySteps != nil || queueHeld)
			t.Limit, t.LimitFrom = configcheck.BufferLimit(c, o)
			if p := c.Setting(o, bufferOr(o), "total_limit_size"); p != nil {
				t.limitPos = p.Pos
			}
			t.Memory, t.memParam = configcheck.MemoryBuffer(c, o)
		}
		if t.Queued != nil && secs > 0 && t.Queued.Change > 0 {
			t.BytesPerS = t.Queued.Change / secs
			if t.Limit > 0 {
				eta := math.Max(float64(t.Limit)-t.Queued.Last, 0) / t.BytesPerS
				t.ETASeconds = &eta
			}
		}
		out = append(out, t)
	}
	return out
}

func bufferOr(o *shipconf.Plugin) *shipconf.Section {
	if b := o.Buffer(); b != nil {
		return b
	}
	return &shipconf.Section{Name: "buffer"}
}

func negate(d *Delta) *Delta {
	if d == nil {
		return nil
	}
	return delta(-d.First, -d.Last)
}

func sumDelta(a, b *Delta) *Delta {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return delta(a.First+b.First, a.Last+b.Last)
}

// fluentBitBacklog measures a Fluent Bit output's backlog: the bytes of
// the chunk files under storage.path when its inputs store on disk (read
// through the shipper's root), else the memory its inputs hold when
// /api/v1/storage reports it. The limit is storage.total_limit_size on
// the output, or the inputs' Mem_Buf_Limit.
func (t *OutputTrend) fluentBitBacklog(c *shipconf.Config, o *shipconf.Plugin, first, last *Sample, storage map[string][2]float64) {
	var disk *Delta
	for _, iid := range inputIDs(c, o) {
		if v, ok := storage[iid]; ok {
			disk = sumDelta(disk, delta(v[0], v[1]))
		}
	}
	if disk != nil {
		t.Queued = disk
		t.QueuedFrom = "chunk files under storage.path"
		if p := o.Param("storage.total_limit_size"); p != nil && p.State == shipconf.Known {
			if n, ok := shipconf.FluentBitSize(p.Value); ok && n > 0 {
				t.Limit, t.LimitFrom, t.limitPos = n, "storage.total_limit_size", p.Pos
			}
		}
		return
	}
	var q *Delta
	var limit int64
	for _, iid := range inputIDs(c, o) {
		q = sumDelta(q, pair(first.plugin(iid), last.plugin(iid), "storage_mem_bytes"))
		if v, ok := val(last.plugin(iid), "storage_mem_limit_bytes"); ok {
			limit += int64(v)
		}
	}
	if q != nil {
		t.Queued, t.QueuedFrom = q, "inputs' memory in /api/v1/storage"
		if limit > 0 {
			t.Limit, t.LimitFrom = limit, "Mem_Buf_Limit of its inputs"
		}
	}
}

func humanBytes(f float64) string {
	switch a := math.Abs(f); {
	case a >= 1<<30:
		return fmt.Sprintf("%.1f GiB", f/(1<<30))
	case a >= 1<<20:
		return fmt.Sprintf("%.1f MiB", f/(1<<20))
	case a >= 1<<10:
		return fmt.Sprintf("%.1f KiB", f/(1<<10))
	}
	return fmt.Sprintf("%.0f bytes", f)
}

// humanDuration rounds an estimate for a person: "about 6 min".
func humanDuration(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.0f s", d.Seconds())
	case d < 2*time.Hour:
		return fmt.Sprintf("%.0f min", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return fmt.Sprintf("%.0f days", d.Hours()/24)
}

func trendEvidence(t *OutputTrend, extra map[string]any) map[string]any {
	ev := map[string]any{"output": t.Output, "metrics_id": t.MetricsID, "seconds": round2(t.Seconds),
		"file": t.plugin.Pos.File, "line": t.plugin.Pos.Line}
	for k, v := range extra {
		ev[k] = v
	}
	if t.LastError != "" {
		ev["last_error"] = t.LastError
	}
	return ev
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// shipperFindings turns the trends into shipper.* findings.
func shipperFindings(kind Kind, ts []*OutputTrend) []report.Finding {
	var out []report.Finding
	for _, t := range ts {
		what := fmt.Sprintf("output %s (%s)", t.Output, t.At)
		if t.Retrying && t.Retries != nil {
			f := report.Finding{ID: FindingOutputRetrying, Severity: report.Warning,
				Summary:  fmt.Sprintf("%s retried %.0f times in %.1f s (retries %.0f -> %.0f)", what, t.Retries.Change, t.Seconds, t.Retries.First, t.Retries.Last),
				Evidence: trendEvidence(t, map[string]any{"retries_first": t.Retries.First, "retries_last": t.Retries.Last}),
				Remedy:   retryRemedy(kind)}
			if t.LastError != "" {
				f.Summary += "; last error: " + t.LastError
			}
			if t.Stalled {
				f.Severity = report.Critical
			}
			out = append(out, f)
		}
		if t.Stalled {
			out = append(out, report.Finding{ID: FindingOutputStalled, Severity: report.Critical,
				Summary: fmt.Sprintf("%s received %.0f records in %.1f s and wrote nothing (%s stayed at %.0f)", what, t.Incoming.Change, t.Seconds,
					writeName(kind), t.Writes.Last),
				Evidence: trendEvidence(t, map[string]any{"incoming_records": t.Incoming.Change, "writes_first": t.Writes.First, "writes_last": t.Writes.Last}),
				Remedy:   stalledRemedy(kind)})
		}
		if t.Queued != nil && t.Queued.Change > 0 && (t.Retrying || t.Stalled || (t.QueueLen != nil && t.QueueLen.Last > 0 && t.QueueLen.Last >= t.QueueLen.First)) {
			f := report.Finding{ID: FindingBufferFilling, Severity: report.Warning,
				Evidence: trendEvidence(t, map[string]any{"queued_bytes_first": t.Queued.First, "queued_bytes_last": t.Queued.Last,
					"growth_bytes_per_second": round2(t.BytesPerS), "measured_from": t.QueuedFrom, "memory_buffer": t.Memory}),
				Remedy: fillingRemedy(kind, t)}
			f.Summary = fmt.Sprintf("%s buffer grew from %s to %s in %.1f s (%s/s)", what, humanBytes(t.Queued.First), humanBytes(t.Queued.Last), t.Seconds, humanBytes(t.BytesPerS))
			if t.ETASeconds != nil {
				f.Evidence["limit_bytes"], f.Evidence["limit_from"], f.Evidence["eta_seconds"] = t.Limit, t.LimitFrom, math.Round(*t.ETASeconds)
				if t.limitPos.Line > 0 {
					f.Evidence["limit_at"] = at(t.limitPos)
				}
				f.Summary += fmt.Sprintf(": at this rate it reaches %s (%s) in about %s", humanBytes(float64(t.Limit)), t.LimitFrom, humanDuration(*t.ETASeconds))
				if *t.ETASeconds < 3600 {
					f.Severity = report.Critical
				}
			} else {
				f.Summary += ": no limit is set, it grows until memory or disk runs out"
			}
			if t.Memory {
				f.Summary += ", and it is held in memory: a restart or an OOM kill loses it"
				f.Severity = report.Critical
			}
			out = append(out, f)
		}
		if t.Dropped != nil && (t.Dropped.Change > 0 || t.Dropped.Last > 0) {
			sev, when := report.Critical, fmt.Sprintf("%.0f during the %.1f s run", t.Dropped.Change, t.Seconds)
			if t.Dropped.Change == 0 {
				sev, when = report.Warning, "none during the run"
			}
			out = append(out, report.Finding{ID: FindingChunksDropped, Severity: sev,
				Summary:  fmt.Sprintf("%s gave up on %.0f records or chunks since it started (%s)", what, t.Dropped.Last, when),
				Evidence: trendEvidence(t, map[string]any{"dropped_first": t.Dropped.First, "dropped_last": t.Dropped.Last}),
				Remedy:   droppedRemedy(kind)})
		}
		if len(t.dropLines) > 0 {
			fresh := 0
			for _, e := range t.dropLines {
				if e.Fresh {
					fresh++
				}
			}
			sev := report.Warning
			if fresh > 0 {
				sev = report.Critical
			}
			out = append(out, report.Finding{ID: FindingChunksDropped, Severity: sev,
				Summary: fmt.Sprintf("%s: the shipper's log says it dropped data %d time(s) (%d during the run): %s", what, len(t.dropLines), fresh,
					t.dropLines[len(t.dropLines)-1].Line),
				Evidence: trendEvidence(t, map[string]any{"log_lines": len(t.dropLines), "during_run": fresh}),
				Remedy:   droppedRemedy(kind)})
		}
	}
	return out
}

func writeName(k Kind) string {
	if k == FluentBit {
		return "proc_records"
	}
	return "write_count - rollback_count"
}

func retryRemedy(k Kind) string {
	if k == FluentBit {
		return "Find why the destination refuses (the last error, the endpoint probes below); while it does, keep chunks on disk " +
			"(`storage.type filesystem` on the inputs, `storage.total_limit_size` on this output) and let `Retry_Limit no_limits` retry them."
	}
	return "Find why the destination refuses (the last error, the endpoint probes below). While it does, the chunk waits in the buffer: " +
		"use `<buffer> @type file` so a restart keeps it, keep `retry_max_interval` modest (e.g. 30s) so recovery is noticed quickly, and for " +
		"Elasticsearch set `reload_connections false`, `reconnect_on_error true` and `resurrect_after 5s`."
}

func stalledRemedy(k Kind) string {
	if k == FluentBit {
		return "The output accepts records and delivers none: check the destination (probes below) and `net.connect_timeout`/`net.io_timeout`; " +
			"without a timeout a hung connection holds every chunk."
	}
	return "The output takes events and flushes none: the flush thread stopped sending, as in \"Logs stop reaching Elasticsearch\" " +
		"(docs/troubleshooting.md): check the destination (probes below) and the " +
		"flush thread (a `kill -CONT <pid>` sigdump shows where it hangs); set `request_timeout`, `reload_connections false` and " +
		"`reconnect_on_error true` for Elasticsearch, and buffer in a file so the backlog survives the restart that follows."
}

func fillingRemedy(k Kind, t *OutputTrend) string {
	if k == FluentBit {
		return "Fix the destination first; until then give the backlog room that survives a restart: `storage.type filesystem` on the inputs " +
			"with `storage.path` in [SERVICE], and `storage.total_limit_size` on this output sized for the longest outage."
	}
	if t.Memory {
		return "Fix the destination first; then give this output `<buffer> @type file` (with `path`, on a volume that outlives the container) " +
			"so the backlog survives a restart, with total_limit_size sized for the longest outage and `overflow_action block`."
	}
	return "Fix the destination first; then size total_limit_size for the longest outage and set `overflow_action block` so inputs slow down " +
		"instead of losing events when it is reached."
}

func droppedRemedy(k Kind) string {
	if k == FluentBit {
		return "Chunks that run out of retries are deleted: set `Retry_Limit no_limits` with filesystem storage, or keep them with " +
			"`storage.keep.rejected On`; for es outputs, rejected items are dropped on a partial success (see config.es_429_dropped)."
	}
	return "Chunks that run out of retries are dropped: add a `<secondary>` with `@type secondary_file`, raise `retry_timeout`, and " +
		"size the buffer (`total_limit_size`, `overflow_action block`) so a full buffer slows inputs instead of refusing events."
}

// attachLog gives each trend the last error and the drop lines that
// name its output (or the only output, when lines name none).
func attachLog(kind Kind, ts []*OutputTrend, evs []logEvent) {
	if len(ts) == 0 {
		return
	}
	for _, e := range evs {
		var owner *OutputTrend
		for _, t := range ts {
			if e.Plugin != "" && (e.Plugin == t.MetricsID || strings.HasSuffix(t.Output, "("+e.Plugin+")")) {
				owner = t
			}
		}
		if owner == nil && e.Plugin == "" {
			retrying := 0
			for _, t := range ts {
				if t.Retrying || t.Stalled {
					owner = t
					retrying++
				}
			}
			if retrying != 1 {
				owner = nil
				if len(ts) == 1 {
					owner = ts[0]
				}
			}
		}
		if owner == nil {
			continue
		}
		switch e.Kind {
		case "error":
			owner.LastError = e.Line
		case "drop":
			if kind == Fluentd {
				owner.dropLines = append(owner.dropLines, e)
			}
		}
	}
}

// chartSeries are the samples of one output as chart series.
func chartSeries(kind Kind, t *OutputTrend, samples []Sample) []report.Series {
	keys := []struct{ key, name, unit string }{
		{"buffer_total_queued_size", "buffer_total_queued_size", "bytes"}, {"retry_count", "retry_count", "count"},
		{"write_count", "write_count", "count"}, {"emit_records", "emit_records", "count"},
	}
	if kind == FluentBit {
		keys = []struct{ key, name, unit string }{
			{"retries", "retries", "count"}, {"proc_records", "proc_records", "count"}, {"errors", "errors", "count"},
			{"dropped_records", "dropped_records", "count"},
		}
	}
	var out []report.Series
	var t0 time.Time
	for _, k := range keys {
		s := report.Series{Name: t.MetricsID + " " + k.name, Unit: k.unit}
		for _, sm := range samples {
			ps := sm.plugin(t.MetricsID)
			if sm.Error != "" || ps == nil {
				continue
			}
			if t0.IsZero() {
				t0 = sm.At
			}
			if v, ok := ps.Values[k.key]; ok {
				s.Points = append(s.Points, report.Point{X: round2(sm.At.Sub(t0).Seconds()), Y: v})
			}
		}
		if len(s.Points) > 0 {
			out = append(out, s)
		}
	}
	return out
}
