package doctor

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// maxVerdict is how many causes the verdict lists; the rest are in the
// data and the findings.
const maxVerdict = 5

// DiagnosisLines is the ranked verdict (report.Diagnosis).
func (r *Result) DiagnosisLines() []string {
	multi := len(r.Targets) > 1
	var out []string
	for i, c := range r.Diagnosis {
		if i == maxVerdict {
			out = append(out, fmt.Sprintf("(%d more in the findings below)", len(r.Diagnosis)-maxVerdict))
			break
		}
		line := fmt.Sprintf("[%s] %s", strings.ToUpper(c.Severity.String()), c.Text)
		if multi {
			line = fmt.Sprintf("[%s] %s: %s", strings.ToUpper(c.Severity.String()), c.Target, c.Text)
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		for _, t := range r.Targets {
			out = append(out, fmt.Sprintf("%s: no cause found: %s", t.Process.Name(), healthyWords(t)))
		}
	}
	return out
}

// healthyWords says what was seen working, so "no cause" is not read as
// "nothing was looked at".
func healthyWords(t *Target) string {
	var ok, skipped []string
	for _, s := range t.Steps {
		switch s.Status {
		case StepOK:
			ok = append(ok, s.Name)
		default:
			skipped = append(skipped, s.Name)
		}
	}
	s := "checked " + strings.Join(ok, ", ")
	if len(skipped) > 0 {
		s += "; not checked: " + strings.Join(skipped, ", ") + " (see Steps)"
	}
	return s
}

// Excerpt shows the configuration lines around a finding's file and line
// (report.Excerpter), already redacted.
func (r *Result) Excerpt(f report.Finding) (report.Excerpt, bool) {
	file, _ := f.Evidence["file"].(string)
	line := 0
	switch n := f.Evidence["line"].(type) {
	case int:
		line = n
	case float64:
		line = int(n)
	}
	if file == "" || line <= 0 {
		return report.Excerpt{}, false
	}
	target, _ := f.Evidence["target"].(string)
	for _, t := range r.Targets {
		if target != "" && t.Process.Name() != target {
			continue
		}
		lines, ok := t.sources[file]
		if !ok || line > len(lines) {
			continue
		}
		first := max(line-3, 1)
		last := min(line+3, len(lines))
		return report.Excerpt{File: file, First: first, Lines: append([]string(nil), lines[first-1:last]...), Mark: line}, true
	}
	return report.Excerpt{}, false
}

// Sections shows each target as tables, bars and charts (report.Tabular).
func (r *Result) Sections() []report.Section {
	var out []report.Section
	for _, t := range r.Targets {
		out = append(out, t.sections(r.IntervalMS)...)
	}
	if len(r.NotUnderstood) > 0 {
		s := report.Section{Title: "Shippers found but not diagnosed", Header: []string{"PID", "KIND", "COMMAND"}}
		for _, p := range r.NotUnderstood {
			s.Rows = append(s.Rows, []string{strconv.Itoa(p.PID), string(p.Kind), clip(p.Cmdline, 100)})
		}
		out = append(out, s)
	}
	return out
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (t *Target) sections(intervalMS int64) []report.Section {
	name := t.Process.Name()
	head := report.Section{Title: "Shipper " + name}
	p := t.Process
	head.Lines = append(head.Lines, fmt.Sprintf("%s, pid %d (comm %s)", kindName(p.Kind), p.PID, p.Comm))
	if len(p.Workers) > 0 {
		head.Lines = append(head.Lines, "workers: pid "+pidList(p.Workers)+" (their sockets are read)")
	}
	head.Lines = append(head.Lines, "command line: "+clip(p.Cmdline, 300))
	if t.Config != nil && t.Config.Path != "" {
		head.Lines = append(head.Lines, fmt.Sprintf("configuration: %s (from %s, read through /proc/%d/root), %d file(s)", t.Config.Path, t.Config.From, p.PID, len(t.Files)))
	}
	if len(t.EnvUsed) > 0 {
		head.Lines = append(head.Lines, "environment used (values not shown): "+strings.Join(t.EnvUsed, ", "))
	}
	if t.Net != nil {
		head.Lines = append(head.Lines, fmt.Sprintf("network namespace: %s, %s", t.Net.ID, t.Net.Reach))
	}
	out := []report.Section{head}

	steps := report.Section{Title: "Steps (" + name + ")", Header: []string{"STEP", "STATUS", "MS", "DETAIL"}}
	for _, s := range t.Steps {
		steps.Rows = append(steps.Rows, []string{s.Name, s.Status, strconv.FormatInt(s.MS, 10), clip(s.Detail, 240)})
	}
	out = append(out, steps)

	if sv := t.Sockets; sv != nil && len(sv.Peers) > 0 && sv.last != nil {
		sec := report.Section{Title: "Sockets to the configured endpoints (" + name + ")",
			Header: []string{"ENDPOINT", "OUTPUT", "AT", "STATES", "Send-Q", "Recv-Q"}}
		for _, pe := range sv.Peers {
			var states sockstat.StateCounts
			var sq, rq uint64
			if pe.Sockets != nil {
				states, sq, rq = pe.Sockets.States, pe.Sockets.SendQ, pe.Sockets.RecvQ
			}
			sec.Rows = append(sec.Rows, []string{pe.Endpoint, pe.Output, pe.At, stateSummary(states), strconv.FormatUint(sq, 10), strconv.FormatUint(rq, 10)})
			bar := report.Bar{Label: pe.Endpoint + " (" + pe.Output + ")"}
			for _, st := range sockstat.AllStates() {
				if states[st] > 0 {
					bar.Parts = append(bar.Parts, report.BarPart{Name: st.String(), Value: float64(states[st])})
				}
			}
			sec.Bars = append(sec.Bars, bar)
		}
		sec.Lines = append(sec.Lines, "source: "+sv.Source.Why)
		for _, s := range sv.Skipped {
			sec.Lines = append(sec.Lines, "not resolved: "+s)
		}
		out = append(out, sec)
	}

	if len(t.Trends) > 0 {
		sec := report.Section{Title: fmt.Sprintf("Outputs as the shipper counts them, over %.1f s (%s)", t.Trends[0].Seconds, name),
			Header: []string{"OUTPUT", "AT", "RETRIES", "WRITES", "INCOMING", "QUEUED", "GROWTH/s", "LIMIT", "TIME TO LIMIT"}}
		chart := &report.Chart{XUnit: "s"}
		for _, tr := range t.Trends {
			eta := "-"
			if tr.ETASeconds != nil {
				eta = "about " + humanDuration(*tr.ETASeconds)
			}
			limit := "-"
			if tr.Limit > 0 {
				limit = humanBytes(float64(tr.Limit))
			}
			growth := "-"
			if tr.BytesPerS > 0 {
				growth = humanBytes(tr.BytesPerS)
			}
			sec.Rows = append(sec.Rows, []string{tr.Output, tr.At, deltaText(tr.Retries, false), deltaText(tr.Writes, false),
				deltaText(tr.Incoming, false), deltaText(tr.Queued, true), growth, limit, eta})
			if t.Monitor != nil {
				chart.Series = append(chart.Series, chartSeries(t.Process.Kind, tr, t.Monitor.Samples)...)
			}
		}
		if len(chart.Series) > 0 {
			sec.Chart = chart
		}
		out = append(out, sec)
	}

	if len(t.ES) > 0 {
		sec := report.Section{Title: "Elasticsearch probes with the outputs' own settings (" + name + ")",
			Header: []string{"OUTPUT", "URL", "REACHABLE", "VERSION", "NODES REACHABLE", "max_content_length", "WRITE REJECTED"}}
		for _, p := range t.ES {
			if p.Result == nil {
				sec.Rows = append(sec.Rows, []string{p.Output, strings.Join(p.URLs, ","), "error: " + p.Error, "", "", "", ""})
				continue
			}
			for _, tg := range p.Result.Targets {
				reach := "yes"
				if !tg.Reachable {
					reach = "no: " + clip(tg.Error, 80)
				}
				nodes := "-"
				if len(p.Result.Nodes) > 0 {
					ok := 0
					for _, n := range p.Result.Nodes {
						if n.Reachable {
							ok++
						}
					}
					nodes = fmt.Sprintf("%d of %d", ok, len(p.Result.Nodes))
				}
				mcl := "-"
				if p.Result.MaxContentLength > 0 {
					mcl = humanBytes(float64(p.Result.MaxContentLength))
				}
				rej := "-"
				if pr := p.Result.Pressure; pr != nil {
					rej = fmt.Sprintf("%d (+%d in %d ms)", pr.WriteRejected, pr.WriteRejectedDelta, pr.IntervalMS)
				}
				ver := tg.Version
				if tg.Product == "opensearch" {
					ver = "OpenSearch " + ver
				}
				sec.Rows = append(sec.Rows, []string{p.Output, tg.URL, reach, ver, nodes, mcl, rej})
			}
		}
		out = append(out, sec)
	}

	if len(t.Forward) > 0 {
		sec := report.Section{Title: "Forward probes with the outputs' own settings (" + name + ")",
			Header: []string{"OUTPUT", "SERVER", "CONNECTED", "HANDSHAKE", "CANARY", "ACK MS"}}
		for _, p := range t.Forward {
			if p.Result == nil {
				sec.Rows = append(sec.Rows, []string{p.Output, p.Addr, "error: " + p.Error, "", "", ""})
				continue
			}
			connected := "no"
			for _, s := range p.Result.Steps {
				if s.Name == "connect" && s.OK {
					connected = "yes"
				}
			}
			canary, ack := "-", "-"
			for _, c := range p.Result.Canaries {
				canary = c.Outcome
				if c.Outcome == "acked" {
					ack = fmt.Sprintf("%.2f", c.AckMS)
				}
			}
			sec.Rows = append(sec.Rows, []string{p.Output, p.Addr, connected, strconv.FormatBool(p.Result.Handshake), canary, ack})
		}
		out = append(out, sec)
	}

	if len(t.UDP) > 0 {
		sec := report.Section{Title: "UDP inputs in the shipper's namespace (" + name + ")",
			Header: []string{"INPUT", "AT", "PORT", "MAX MESSAGE", "MTU", "UNFRAGMENTED UP TO", "REASSEMBLED", "SOCKET DROPS", "RCVBUF ERRORS"}}
		for _, u := range t.UDP {
			mtu := "-"
			if u.MTU > 0 {
				mtu = fmt.Sprintf("%d (%s)", u.MTU, u.Interface)
			}
			sec.Rows = append(sec.Rows, []string{u.Input, u.At, strconv.Itoa(u.Port), strconv.FormatInt(u.Limit, 10), mtu,
				strconv.Itoa(u.MaxPayload), strconv.FormatInt(u.Reassembled, 10), strconv.FormatUint(u.SocketDrops, 10), strconv.FormatInt(u.RcvbufErrors, 10)})
		}
		out = append(out, sec)
	}

	if len(t.LogEvents) > 0 {
		sec := report.Section{Title: "Shipper log: errors and drops (" + t.Log.Path + ")"}
		evs := t.LogEvents
		if len(evs) > 10 {
			evs = evs[len(evs)-10:]
		}
		for _, e := range evs {
			when := "before"
			if e.Fresh {
				when = "during"
			}
			sec.Lines = append(sec.Lines, fmt.Sprintf("[%s, %s the run] %s", e.Kind, when, e.Line))
		}
		out = append(out, sec)
	}

	if t.Monitor != nil && len(t.Monitor.Samples) > 0 {
		b, err := json.MarshalIndent(t.Monitor.Samples, "", "  ")
		if err == nil {
			out = append(out, report.Section{Title: fmt.Sprintf("Raw metrics samples: %s at %s (%s)", t.Monitor.Kind, t.Monitor.Addr, name),
				Collapsed: true, Lines: strings.Split(string(b), "\n")})
		}
	}
	for _, p := range t.ES {
		if p.Result == nil {
			continue
		}
		raw := report.Section{Title: fmt.Sprintf("Raw es probe checks: %s (%s)", p.Output, name), Collapsed: true,
			Header: []string{"CHECK", "TARGET", "OK", "MS", "DETAIL"}}
		for _, c := range p.Result.Checks {
			raw.Rows = append(raw.Rows, []string{c.Name, c.Target, strconv.FormatBool(c.OK), strconv.FormatInt(c.DurationMS, 10), c.Detail})
		}
		out = append(out, raw)
	}
	return out
}

// deltaText is "3 -> 7 (+4)".
func deltaText(d *Delta, bytes bool) string {
	if d == nil {
		return "-"
	}
	f := func(v float64) string {
		if bytes {
			return humanBytes(v)
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	if d.Change == 0 {
		return f(d.Last) + " (+0)"
	}
	sign := "+"
	if d.Change < 0 {
		sign = ""
	}
	return fmt.Sprintf("%s -> %s (%s%s)", f(d.First), f(d.Last), sign, f(d.Change))
}
