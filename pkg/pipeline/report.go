package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/forward/forwardserve"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// Finding ids of `pipeline run`.
const (
	FindingLeftInBuffer = "pipeline.left_in_buffer"
	FindingDeadLetters  = "pipeline.dead_letters"
	FindingUDPDrops     = "pipeline.udp_kernel_drops"
	FindingRefused      = "pipeline.forward_refused"
	FindingBroken       = "pipeline.forward_broken_requests"
	FindingMemoryBuffer = "pipeline.memory_buffer"

	FindingBufferCorrupt     = "pipeline.buffer_corrupt"
	FindingBufferWriteFailed = "pipeline.buffer_write_failed"
)

// Report is the report's data: what the run did.
type Report struct {
	Forward     string   `json:"forward,omitempty"`
	UDP         string   `json:"udp,omitempty"`
	ES          []string `json:"es"`
	BufferDir   string   `json:"buffer_dir,omitempty"`
	DeadLetter  string   `json:"dead_letter_file"`
	Stats       Stats    `json:"stats"`
	UDPDrops    uint64   `json:"udp_kernel_drops"`
	LeftOver    int64    `json:"left_in_buffer"`
	MemoryOnly  bool     `json:"memory_buffer"`
	ShutdownErr string   `json:"shutdown_error,omitempty"`
}

// Sections shows the counters as a table.
func (d *Report) Sections() []report.Section {
	s := d.Stats
	row := func(k string, v any) []string { return []string{k, fmt.Sprint(v)} }
	return []report.Section{{
		Title:  "pipeline",
		Header: []string{"counter", "value"},
		Rows: [][]string{
			row("forward events", s.ForwardEvents), row("forward acks", s.ForwardAcks),
			row("forward refused (no ack)", s.ForwardRefused), row("forward connections refused", s.ForwardServer.Refused),
			row("forward broken requests", s.ForwardServer.Dropped), row("udp events", s.UDPEvents),
			row("udp bad datagrams", s.UDPBad), row("udp kernel drops", d.UDPDrops),
			row("indexed", s.Output.Indexed), row("already indexed (409)", s.Output.Duplicates),
			row("retried", s.Output.Retried), row("dead letters", s.DeadLetters),
			row("gave up", s.Output.GaveUp), row("bulk requests", s.Output.Requests),
			row("left in buffer", d.LeftOver), row("buffer dir", d.BufferDir),
		},
	}}
}

// Findings are what the run's counters say went wrong.
func (d *Report) Findings() []report.Finding {
	var fs []report.Finding
	st := d.Stats
	if d.LeftOver > 0 {
		sev := report.Warning
		if d.MemoryOnly {
			sev = report.Critical
		}
		fs = append(fs, report.Finding{ID: FindingLeftInBuffer, Severity: sev,
			Summary:  fmt.Sprintf("%d events were not indexed before the shutdown timeout", d.LeftOver),
			Evidence: map[string]any{"events": d.LeftOver, "buffer_dir": d.BufferDir, "memory_buffer": d.MemoryOnly},
			Remedy:   "they are replayed on the next start from --buffer-dir; raise --shutdown-timeout or check Elasticsearch (rejections, latency)"})
	}
	if st.DeadLetters > 0 {
		fs = append(fs, report.Finding{ID: FindingDeadLetters, Severity: report.Warning,
			Summary:  fmt.Sprintf("%d events were written to the dead-letter file", st.DeadLetters),
			Evidence: map[string]any{"file": d.DeadLetter, "udp_bad": st.UDPBad, "es_refused": st.Output.DeadLetters, "gave_up": st.Output.GaveUp},
			Remedy:   "read the reason on each line: fix the sender's JSON (UDP), the index mapping (400 mapper_parsing_exception), or raise --retry-timeout"})
	}
	if d.UDPDrops > 0 {
		fs = append(fs, report.Finding{ID: FindingUDPDrops, Severity: report.Warning,
			Summary:  fmt.Sprintf("the kernel dropped %d datagrams for the UDP input socket", d.UDPDrops),
			Evidence: map[string]any{"drops": d.UDPDrops, "udp": d.UDP},
			Remedy:   "raise --udp-rcvbuf (and net.core.rmem_max), or send over forward/TCP with require_ack_response"})
	}
	if f, ok := forwardRefused(st); ok {
		fs = append(fs, f)
	}
	if n := st.ForwardServer.Dropped; n > 0 {
		fs = append(fs, report.Finding{ID: FindingBroken, Severity: report.Warning,
			Summary: fmt.Sprintf("%d forward messages were well-formed but not requests (in_forward's \"incoming chunk is broken\") and were dropped", n),
			Evidence: map[string]any{"broken_requests": n, "connections_closed_on_error": st.ForwardServer.Errors,
				"connections": st.ForwardServer.Accepted},
			Remedy: "something that does not speak the forward protocol writes to the forward port: a health check sending text, a " +
				"sender configured for another format (in_tcp/in_udp JSON lines, syslog), or a scanner. Find it from the peer in " +
				"the WARN log lines (logdoctor_pipeline_forward_broken_requests_total counts them) and point it at the right port"})
	}
	fs = append(fs, forwardserve.InputFindings(d.Forward, d.Stats.ForwardServer)...)
	if d.MemoryOnly {
		fs = append(fs, report.Finding{ID: FindingMemoryBuffer, Severity: report.Warning,
			Summary: "the memory buffer was used: acked events would have been lost on a crash",
			Remedy:  "drop --memory-buffer outside benchmarks"})
	}
	if len(st.BufferCorrupt) > 0 {
		fs = append(fs, bufferCorruptFinding(d))
	}
	if wf := st.BufferWriteFailures; wf != nil {
		fs = append(fs, bufferWriteFailedFinding(wf))
	}
	return fs
}

// forwardRefused reports what the forward input turned away: requests
// refused without ack (buffer full or failing) and connections refused
// over --max-conns. Both are retried by a sender with acks, and both mean
// delay the operator should know about.
func forwardRefused(st Stats) (report.Finding, bool) {
	reqs, conns := st.ForwardRefused, st.ForwardServer.Refused
	if reqs == 0 && conns == 0 {
		return report.Finding{}, false
	}
	var what, remedies []string
	if reqs > 0 {
		what = append(what, fmt.Sprintf("%d forward requests were refused without ack (buffer full or failing)", reqs))
		remedies = append(remedies, "raise --buffer-max or fix what slows Elasticsearch (see the buffer_error/buffer_full reasons in logdoctor_pipeline_forward_refused_total and the ERROR log)")
	}
	if conns > 0 {
		what = append(what, fmt.Sprintf("%d forward connections were refused over the --max-conns limit", conns))
		remedies = append(remedies, "raise --max-conns, or find the clients holding connections without sending (the WARN lines name the peers)")
	}
	return report.Finding{ID: FindingRefused, Severity: report.Warning,
		Summary:  strings.Join(what, "; "),
		Evidence: map[string]any{"refused": reqs, "refused_connections": conns, "buffer_bytes": st.Buffer.Bytes},
		Remedy:   "senders with require_ack_response retry them, later; " + strings.Join(remedies, "; ")}, true
}

// bufferCorruptFinding: damaged bytes in the buffer cost the events in
// them; every intact one was delivered and the bytes were kept.
func bufferCorruptFinding(d *Report) report.Finding {
	cs := d.Stats.BufferCorrupt
	lost, size := 0, int64(0)
	segs := map[string]bool{}
	for _, c := range cs {
		lost += c.Records
		size += c.Bytes
		segs[c.Segment] = true
	}
	where := fmt.Sprintf("%d damaged ranges in %d segments (%d bytes); copies in %s", len(cs), len(segs), size,
		filepath.Join(d.BufferDir, "corrupt"))
	if c := cs[0]; len(cs) == 1 {
		where = fmt.Sprintf("%s was damaged at bytes %d-%d (%d bytes); copy in %s", c.Segment, c.From, c.To, c.Bytes, c.Quarantine)
	}
	return report.Finding{ID: FindingBufferCorrupt, Severity: report.Critical,
		Summary: fmt.Sprintf("buffer %s: %d acked event(s) lost with it (estimated), every intact event delivered", where, lost),
		Evidence: map[string]any{"regions": cs[:min(len(cs), 20)], "regions_total": len(cs), "records_lost": lost, "bytes": size,
			"quarantine_dir": filepath.Join(d.BufferDir, "corrupt")},
		Remedy: "the disk or filesystem under --buffer-dir changed bytes after they were written: check dmesg, smartctl and fsck; " +
			"resend the lost events from the shipper's own buffer if it still holds them; the damaged bytes are kept for inspection"}
}

// bufferWriteFailedFinding: the disk refused buffer writes, so events were
// refused without ack meanwhile.
func bufferWriteFailedFinding(wf *BufferWriteFailures) report.Finding {
	cause := "a disk error"
	if wf.DiskFull > 0 {
		cause = "a full disk"
	}
	state := "then succeeded again"
	if wf.Failing {
		state = "and were still failing at exit"
	}
	return report.Finding{ID: FindingBufferWriteFailed, Severity: report.Critical,
		Summary: fmt.Sprintf("%d buffer writes failed on %s (%s of %s) %s; their events were refused without ack", wf.Count, cause, wf.Op, wf.Path, state),
		Evidence: map[string]any{"failed_writes": wf.Count, "disk_full": wf.DiskFull, "op": wf.Op, "path": wf.Path,
			"error": wf.Error, "first": wf.First, "last": wf.Last, "still_failing": wf.Failing},
		Remedy: "free space or grow the filesystem under --buffer-dir, and set --buffer-max below its free space so the buffer pushes back (buffer_full) before the disk fills; " +
			"for I/O errors check dmesg. Senders with require_ack_response resend the refused chunks; senders without acks lost them"}
}
