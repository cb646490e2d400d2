package configcheck

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// ---- forward without acks (logs lost without errors, docs/troubleshooting.md) ----

func (ck *checker) forwardNoAck() {
	for _, o := range ck.c.Outputs() {
		if o.Type != "forward" {
			continue
		}
		s := ck.c.Setting(o, nil, "require_ack_response")
		if s == nil || s.State == shipconf.Unknown || ck.bool(s.Value) {
			continue
		}
		f := report.Finding{ID: FindingForwardNoAck, Severity: report.Critical, Evidence: evidence(o, s, false, nil)}
		if ck.fluentBit() {
			f.Summary = fmt.Sprintf("%s: forward output %s sends without Require_ack_response On%s: a receiver that accepts and drops chunks loses them silently",
				where(s, o), o.Name(), defaultNote(s))
			f.Remedy = "Set `Require_ack_response On` in this [OUTPUT], and `net.io_timeout 60s` with it: Fluent Bit otherwise waits for an ack forever when the receiver hangs."
		} else {
			f.Summary = fmt.Sprintf("%s: forward output %s sends without require_ack_response%s: a receiver that accepts and drops chunks loses them silently",
				where(s, o), o.Name(), defaultNote(s))
			f.Remedy = "Set `require_ack_response true` in this <match> (keep `ack_response_timeout`, 190s by default, above the receiver's flush time): an unacknowledged chunk is then retried instead of forgotten."
		}
		ck.add(f)
	}
}

// bool reads a boolean the way the shipper does.
func (ck *checker) bool(v string) bool {
	if ck.fluentBit() {
		b, _ := shipconf.FluentBitBool(v)
		return b
	}
	b, _ := shipconf.FluentdBool(v)
	return b
}

// ---- Fluentd buffers ----

// fdBuffered are Fluentd outputs that buffer when no <buffer> is given
// (they implement #write / #try_write; stdout and null only buffer with a
// <buffer> section, relabel, copy and roundrobin never).
var fdBuffered = map[string]bool{
	"forward": true, "file": true, "http": true, "exec": true, "exec_filter": true, "secondary_file": true,
	"elasticsearch": true, "elasticsearch_data_stream": true, "elasticsearch_dynamic": true,
	"opensearch": true, "opensearch_data_stream": true, "s3": true, "kafka2": true, "rdkafka2": true,
	"kafka_buffered": true, "loki": true, "cloudwatch_logs": true, "splunk_hec": true, "datadog": true,
	"google_cloud": true, "azure-loganalytics": true, "kinesis_streams": true, "kinesis_firehose": true,
	"gelf": true, "bigquery_insert": true, "remote_syslog": true, "mongo": true, "newrelic": true, "sumologic": true,
}

var fdUnbuffered = map[string]bool{"relabel": true, "copy": true, "roundrobin": true, "rewrite_tag_filter": true, "route": true}

// fdBufferOf returns the buffer section of a buffered Fluentd output (nil
// when it buffers with defaults), and whether it buffers at all.
func fdBufferOf(o *shipconf.Plugin) (*shipconf.Section, bool) {
	if o.Role == "secondary" || fdUnbuffered[o.Type] {
		return nil, false
	}
	if b := o.Buffer(); b != nil {
		return b, true
	}
	return nil, fdBuffered[o.Type]
}

// nonReplayable returns the inputs feeding o that lose events on a
// restart, by name.
func (ck *checker) nonReplayable(o *shipconf.Plugin) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range ck.to[o] {
		if r.Input.CannotReplay() && !seen[r.Input.Name()] {
			seen[r.Input.Name()] = true
			out = append(out, r.Input.Name())
		}
	}
	sort.Strings(out)
	return out
}

func (ck *checker) buffers() {
	if ck.fluentBit() {
		ck.fluentBitRetries()
		return
	}
	for _, o := range ck.c.Outputs() {
		buf, ok := fdBufferOf(o)
		if !ok {
			continue
		}
		typ := ck.c.Setting(o, bufferSec(buf), "@type")
		if typ == nil || typ.State == shipconf.Unknown {
			continue
		}
		memory := typ.Value == "memory"
		replay := ck.nonReplayable(o)
		if memory {
			sev := report.Warning
			why := "a restart or an OOM kill loses what it holds"
			if len(replay) > 0 {
				sev = report.Critical
				why = "a restart or an OOM kill loses what it holds, and " + strings.Join(replay, ", ") + " cannot send it again"
			}
			prm := typ
			if buf == nil {
				prm = &shipconf.Param{Key: "<buffer>", Name: "<buffer>", Value: "memory (no <buffer> section)", State: shipconf.Default, Pos: o.Pos}
			}
			ck.add(report.Finding{ID: FindingMemoryBuffer, Severity: sev,
				Summary:  fmt.Sprintf("%s: output %s buffers in memory%s: %s", where(prm, o), o.Name(), defaultNote(prm), why),
				Evidence: evidence(o, prm, false, map[string]any{"inputs_that_cannot_replay": replay}),
				Remedy: fmt.Sprintf("Give this <match> a file buffer: `<buffer>` with `@type file` and `path /var/log/fluentd/buffer/%s` (one directory per output, on a volume that outlives the container), keeping chunk_limit_size and total_limit_size within the disk.",
					safeName(o))})
		}
		ck.fdRetries(o, buf, memory)
		ck.fdOverflow(o, buf, replay)
	}
}

// bufferSec turns a nil buffer into an empty <buffer> so Setting reads
// the buffer's defaults.
func bufferSec(b *shipconf.Section) *shipconf.Section {
	if b != nil {
		return b
	}
	return &shipconf.Section{Name: "buffer"}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

func safeName(o *shipconf.Plugin) string {
	n := o.ID
	if n == "" {
		n = o.Type
	}
	return unsafeChars.ReplaceAllString(n, "_")
}

func (ck *checker) fdRetries(o *shipconf.Plugin, buf *shipconf.Section, memory bool) {
	b := bufferSec(buf)
	forever := ck.c.Setting(o, b, "retry_forever")
	if forever == nil || forever.State == shipconf.Unknown {
		return
	}
	if ck.bool(forever.Value) {
		if memory {
			limit, from := fdTotalLimit(ck.c, o, b)
			ck.add(report.Finding{ID: FindingRetryUnbounded, Severity: report.Warning,
				Summary: fmt.Sprintf("%s: output %s retries forever on a memory buffer: while the destination is down the buffer grows to %s, and a container whose memory limit is below that is killed and loses it",
					where(forever, o), o.Name(), human(limit)),
				Evidence: evidence(o, forever, false, map[string]any{"effective_limit_bytes": limit, "limit_from": from}),
				Remedy:   "Buffer in a file (`@type file` in <buffer>) so the backlog survives a restart, or keep retry_forever and set total_limit_size well below the container's memory limit (with overflow_action block so inputs slow down instead of losing data)."})
		}
		return
	}
	if o.Secondary() != nil {
		return
	}
	maxTimes := b.Get("retry_max_times")
	timeout := ck.c.Setting(o, b, "retry_timeout")
	var why string
	var prm *shipconf.Param
	switch {
	case maxTimes != nil && maxTimes.State == shipconf.Known:
		n, _ := shipconf.FluentdInt(maxTimes.Value)
		prm, why = maxTimes, fmt.Sprintf("after %d retries", n)
	case timeout != nil && timeout.State == shipconf.Known:
		d, ok := shipconf.FluentdTime(timeout.Value)
		if ok && d < time.Hour {
			prm, why = timeout, fmt.Sprintf("after retrying for %v", d)
		}
	}
	if prm != nil {
		ck.add(report.Finding{ID: FindingRetryDrops, Severity: report.Warning,
			Summary:  fmt.Sprintf("%s: output %s drops a chunk %s and has no <secondary> to put it", where(prm, o), o.Name(), why),
			Evidence: evidence(o, prm, false, nil),
			Remedy:   "Add a <secondary> with `@type secondary_file` (directory /var/log/fluentd/failed) so chunks that exhaust their retries are kept, or raise retry_timeout (default 72h) and drop retry_max_times."})
	}
}

func (ck *checker) fdOverflow(o *shipconf.Plugin, buf *shipconf.Section, replay []string) {
	ov := ck.c.Setting(o, bufferSec(buf), "overflow_action")
	if ov == nil || ov.State == shipconf.Unknown {
		return
	}
	switch ov.Value {
	case "drop_oldest_chunk":
		ck.add(report.Finding{ID: FindingOverflowDrops, Severity: report.Warning,
			Summary:  fmt.Sprintf("%s: output %s drops its oldest chunk when the buffer is full", where(ov, o), o.Name()),
			Evidence: evidence(o, ov, false, nil),
			Remedy:   "Set `overflow_action block` so inputs wait (tail, forward with acks slow down) instead of losing data, and size total_limit_size for the longest outage you expect."})
	case "throw_exception":
		if len(replay) > 0 {
			ck.add(report.Finding{ID: FindingOverflowDrops, Severity: report.Info,
				Summary: fmt.Sprintf("%s: output %s refuses events when its buffer is full (overflow_action throw_exception)%s, and %s cannot send them again",
					where(ov, o), o.Name(), defaultNote(ov), strings.Join(replay, ", ")),
				Evidence: evidence(o, ov, false, map[string]any{"inputs_that_cannot_replay": replay}),
				Remedy:   "For forward inputs, have senders use require_ack_response (they then retry what was refused); otherwise set `overflow_action block` and size total_limit_size for the longest outage you expect."})
		}
	}
}

// fdTotalLimit is buffer.rb's total: chunk_limit_size x queue_limit_length
// when the latter is set, else total_limit_size.
func fdTotalLimit(c *shipconf.Config, o *shipconf.Plugin, b *shipconf.Section) (int64, string) {
	if q := b.Get("queue_limit_length"); q != nil && q.State == shipconf.Known {
		n, _ := shipconf.FluentdInt(q.Value)
		chunk := c.Setting(o, b, "chunk_limit_size")
		cs, _ := shipconf.FluentdSize(chunk.Value)
		return cs * n, "chunk_limit_size x queue_limit_length"
	}
	t := c.Setting(o, b, "total_limit_size")
	n, _ := shipconf.FluentdSize(t.Value)
	if t.State == shipconf.Default {
		return n, "total_limit_size default"
	}
	return n, "total_limit_size"
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// ---- Fluent Bit storage and retries ----

// fbLocal are Fluent Bit outputs that do not send over the network.
var fbLocal = map[string]bool{"stdout": true, "null": true, "counter": true, "file": true, "exit": true, "flowcounter": true, "lib": true}

func (ck *checker) fbStorage(in *shipconf.Plugin) (*shipconf.Param, string) {
	st := ck.c.Setting(in, nil, "storage.type")
	if st == nil || st.State == shipconf.Unknown {
		return st, ""
	}
	return st, strings.ToLower(st.Value)
}

func (ck *checker) fluentBitStorage() {
	if !ck.fluentBit() {
		return
	}
	for _, in := range ck.c.Inputs() {
		st, typ := ck.fbStorage(in)
		if typ == "memory" || typ == "memrb" {
			var outs []string
			for _, r := range ck.from[in] {
				if !fbLocal[r.Output.Type] {
					outs = append(outs, r.Output.Name())
				}
			}
			if len(outs) > 0 {
				sev := report.Warning
				why := "a restart or an OOM kill loses the chunks waiting for " + strings.Join(outs, ", ")
				if in.CannotReplay() {
					sev = report.Critical
					why += ", and a " + in.Type + " sender does not send them again"
				}
				ck.add(report.Finding{ID: FindingMemoryBuffer, Severity: sev,
					Summary:  fmt.Sprintf("%s: input %s keeps its chunks in memory (storage.type %s%s): %s", where(st, in), in.Name(), typ, defaultIn(st), why),
					Evidence: evidence(in, st, false, map[string]any{"outputs": outs}),
					Remedy:   "Set `storage.type filesystem` on this [INPUT] and `storage.path /var/log/flb-storage/` in [SERVICE] (on a volume that outlives the container); cap the disk with `storage.total_limit_size` on the outputs."})
			}
		}
		mbl := in.Param("mem_buf_limit")
		if mbl == nil || mbl.State != shipconf.Known {
			continue
		}
		if n, ok := shipconf.FluentBitSize(mbl.Value); !ok || n <= 0 {
			continue
		}
		switch {
		case typ == "filesystem":
			ck.add(report.Finding{ID: FindingMemBufLimitIgnored, Severity: report.Warning,
				Summary:  fmt.Sprintf("%s: input %s sets Mem_Buf_Limit with storage.type filesystem: it no longer pauses the input, it only decides which chunks stay in memory", where(mbl, in), in.Name()),
				Evidence: evidence(in, mbl, false, map[string]any{"storage.type": "filesystem"}),
				Remedy:   "Bound memory with `storage.max_chunks_up` in [SERVICE] and disk with `storage.total_limit_size` on the outputs; drop Mem_Buf_Limit here (or set `storage.pause_on_chunks_overlimit On` if the input must pause)."})
		case in.Type == "tail" && (typ == "memory" || typ == "memrb"):
			ck.add(report.Finding{ID: FindingMemBufLimitIgnored, Severity: report.Warning,
				Summary:  fmt.Sprintf("%s: tail input %s with Mem_Buf_Limit and memory storage pauses when the limit is reached; files rotated away while it is paused are never read", where(mbl, in), in.Name()),
				Evidence: evidence(in, mbl, false, map[string]any{"storage.type": typ}),
				Remedy:   "Set `storage.type filesystem` on this input (with `storage.path` in [SERVICE]) so chunks spill to disk instead of pausing the tail, and keep `DB` set so offsets survive a restart."})
		}
	}
}

func (ck *checker) fluentBitRetries() {
	keepRejected := false
	if s := ck.c.Service; s != nil {
		kr, path := s.Get("storage.keep.rejected"), s.Get("storage.path")
		keepRejected = kr != nil && ck.bool(kr.Value) && path != nil && path.Value != ""
	}
	for _, o := range ck.c.Outputs() {
		if fbLocal[o.Type] {
			continue
		}
		rl := ck.c.Setting(o, nil, "retry_limit")
		if rl == nil || rl.State == shipconf.Unknown {
			continue
		}
		lim := shipconf.FluentBitRetryLimit(rl.Value)
		if lim.Unlimited {
			var limits []string
			memFed := false
			for _, r := range ck.to[o] {
				_, typ := ck.fbStorage(r.Input)
				if typ != "memory" && typ != "memrb" {
					continue
				}
				memFed = true
				m := r.Input.Param("mem_buf_limit")
				if n, ok := sizeOf(m); ok && n > 0 {
					limits = append(limits, fmt.Sprintf("%s: Mem_Buf_Limit %s", r.Input.Name(), m.Value))
				} else {
					limits = append(limits, r.Input.Name()+": no limit")
				}
			}
			if memFed {
				ck.add(report.Finding{ID: FindingRetryUnbounded, Severity: report.Warning,
					Summary: fmt.Sprintf("%s: output %s retries forever (Retry_Limit %s) while its inputs buffer in memory (%s): the backlog grows until the container is killed and loses it",
						where(rl, o), o.Name(), rl.Value, strings.Join(limits, "; ")),
					Evidence: evidence(o, rl, false, map[string]any{"effective_limit": limits}),
					Remedy:   "Set `storage.type filesystem` on the inputs (with `storage.path` in [SERVICE] and `storage.total_limit_size` on this output), or set `Mem_Buf_Limit` on each input well below the container's memory limit."})
			}
			continue
		}
		if keepRejected {
			continue
		}
		why := fmt.Sprintf("after %d retr%s", lim.Count, plural(lim.Count, "y", "ies"))
		if lim.None {
			why = "at the first failure (no_retries)"
		} else if rl.State == shipconf.Known && shipconf.FluentBitAtoi(rl.Value) <= 0 {
			why += " (0 and negative values mean 1)"
		}
		ck.add(report.Finding{ID: FindingRetryDrops, Severity: report.Warning,
			Summary:  fmt.Sprintf("%s: output %s drops a chunk %s%s", where(rl, o), o.Name(), why, defaultNote(rl)),
			Evidence: evidence(o, rl, false, map[string]any{"retries": lim.Count}),
			Remedy:   "Set `Retry_Limit no_limits` with filesystem storage on the inputs (bounded by `storage.total_limit_size`), or keep rejected chunks with `storage.keep.rejected On` and `storage.path` in [SERVICE]."})
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func sizeOf(p *shipconf.Param) (int64, bool) {
	if p == nil || p.State != shipconf.Known {
		return 0, false
	}
	return shipconf.FluentBitSize(p.Value)
}
