package smoke

import (
	"fmt"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Report is the data of a smoke report: the canary accounting plus where it ran
// and which probes contributed findings.
type Report struct {
	Mode    string `json:"mode"` // embedded, or external with --forward
	Forward string `json:"forward"`
	ES      string `json:"es"`
	Index   string `json:"index"`
	*Result
	Probes []ProbeRun `json:"probes"`
	// Embedded, in embedded mode, is what the lab went through.
	Embedded EmbeddedStats `json:"embedded,omitempty"`
}

// ProbeRun is one probe's contribution to the run.
type ProbeRun struct {
	Name     string `json:"name"`
	Findings int    `json:"findings"`
	Error    string `json:"error,omitempty"`
}

// Sections renders the report as tables (report.Tabular).
func (d *Report) Sections() []report.Section {
	r := d.Result
	secs := []report.Section{{
		Title:  fmt.Sprintf("Smoke run %s (%s): forward %s -> ES %s index %s", r.RunID, d.Mode, d.Forward, d.ES, d.Index),
		Header: []string{"count", "sent", "acked", "indexed", "missing", "duplicated", "documents", "waited"},
		Rows: [][]string{{itoa(r.Count), itoa(r.Sent), itoa(r.Acked), itoa(r.Indexed), itoa(r.Missing), itoa(r.Duplicated), itoa(r.Documents),
			(time.Duration(r.WaitedMS) * time.Millisecond).String()}},
	}, {
		Title:  "Latency",
		Header: []string{"path", "canaries", "p50", "p99", "max"},
		Rows: [][]string{
			latencyRow("send -> ack", r.AckLatency),
			latencyRow("send -> searchable", r.SearchLatency),
		},
	}}
	var lines []string
	lines = append(lines, idLines("missing", r.Missing, r.MissingIDs)...)
	lines = append(lines, idLines("duplicated", r.Duplicated, r.DuplicatedIDs)...)
	for _, e := range r.SendErrors {
		lines = append(lines, "send error: "+e)
	}
	if len(lines) > 0 {
		secs = append(secs, report.Section{Title: "Canaries", Lines: lines})
	}
	if d.Embedded != nil {
		secs = append(secs, d.Embedded.Section())
	}
	if len(d.Probes) > 0 {
		p := report.Section{Title: "Probes on the path", Header: []string{"probe", "findings", "error"}}
		for _, pr := range d.Probes {
			p.Rows = append(p.Rows, []string{pr.Name, itoa(pr.Findings), pr.Error})
		}
		secs = append(secs, p)
	}
	return secs
}

// tableIDs is how many canary ids the table shows; JSON has up to 100.
const tableIDs = 12

// idLines lists canary ids four to a line, so they stay readable in a
// terminal and greppable in a CI log.
func idLines(what string, n int, ids []string) []string {
	if n == 0 {
		return nil
	}
	shown := ids[:min(len(ids), tableIDs)]
	head := fmt.Sprintf("%s (%d):", what, n)
	if n > len(shown) {
		head = fmt.Sprintf("%s (%d, first %d; -o json lists up to %d):", what, n, len(shown), len(ids))
	}
	lines := []string{head}
	for i := 0; i < len(shown); i += 4 {
		lines = append(lines, "  "+strings.Join(shown[i:min(i+4, len(shown))], " "))
	}
	return lines
}

func itoa(n int) string { return fmt.Sprint(n) }

func latencyRow(name string, l Latency) []string {
	if l.Samples == 0 {
		return []string{name, "0", "-", "-", "-"}
	}
	ms := func(v float64) string { return fmt.Sprintf("%.1fms", v) }
	return []string{name, itoa(l.Samples), ms(l.P50MS), ms(l.P99MS), ms(l.MaxMS)}
}

// EmbeddedStats is the embedded lab's account of the run, rendered as one
// table section.
type EmbeddedStats interface {
	Section() report.Section
}
