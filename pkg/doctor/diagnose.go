package doctor

import (
	"fmt"
	"sort"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
	"github.com/logdoctor/logdoctor/pkg/udpfrag"
)

// Cause is one entry of the diagnosis: evidence joined into a reason,
// with the settings to change.
type Cause struct {
	Rank     int             `json:"rank"`
	Severity report.Severity `json:"severity"`
	Target   string          `json:"target"`
	Text     string          `json:"text"`
	// Live is true when the shipper's behaviour (metrics, sockets,
	// probes) backs the cause, not only its configuration.
	Live     bool      `json:"live"`
	Settings []Setting `json:"settings,omitempty"`
	Findings []string  `json:"findings"`
}

// Setting is one change the diagnosis asks for.
type Setting struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Setting string `json:"setting"`
	Change  string `json:"change"`
}

// causes builds one target's diagnosis from its findings and evidence.
type diagnoser struct {
	t      *Target
	fs     []report.Finding
	used   map[int]bool
	causes []*Cause
}

func (d *diagnoser) find(id, output string) []int {
	var out []int
	for i, f := range d.fs {
		if f.ID != id {
			continue
		}
		if output != "" {
			if o, _ := f.Evidence["output"].(string); o != output {
				if p, _ := f.Evidence["plugin"].(string); p != output {
					if in, _ := f.Evidence["input"].(string); in != output {
						continue
					}
				}
			}
		}
		out = append(out, i)
	}
	return out
}

// live keeps the findings above info (a socket finding judged to be the
// output's normal pattern is info).
func (d *diagnoser) live(idx []int) []int {
	var out []int
	for _, i := range idx {
		if d.fs[i].Severity > report.Info {
			out = append(out, i)
		}
	}
	return out
}

func (d *diagnoser) use(idx ...[]int) []string {
	var ids []string
	for _, is := range idx {
		for _, i := range is {
			d.used[i] = true
			ids = append(ids, d.fs[i].ID)
		}
	}
	return ids
}

func pos(p *shipconf.Param) string {
	if p == nil {
		return ""
	}
	return at(p.Pos)
}

func (d *diagnoser) add(c *Cause) {
	c.Target = d.t.Process.Name()
	d.causes = append(d.causes, c)
}

func (d *diagnoser) trend(output string) *OutputTrend {
	for _, t := range d.t.Trends {
		if t.Output == output {
			return t
		}
	}
	return nil
}

// esStall is "logs stop reaching Elasticsearch" (docs/troubleshooting.md):
// an Elasticsearch output that does not deliver,
// read from its metrics, its sockets and the probe, tied to the memory
// buffer and the sniffing setting that make it lose data.
func (d *diagnoser) esStall(c *shipconf.Config, o *ESOutput) {
	tr := d.trend(o.Name)
	noEst := d.live(append(d.find(sockstat.FindingNoEstablished, o.Name), d.find(sockstat.FindingNoConnection, o.Name)...))
	unreach := d.find(esprobe.FindingUnreachable, o.Name)
	retry := d.find(FindingOutputRetrying, o.Name)
	stalled := d.find(FindingOutputStalled, o.Name)
	filling := d.find(FindingBufferFilling, o.Name)
	live := len(retry)+len(stalled)+len(filling) > 0 || (len(noEst) > 0 && len(unreach) > 0)
	if !live {
		return
	}
	mem, memParam := configcheck.MemoryBuffer(c, o.Plugin)
	memIdx := d.find(configcheck.FindingMemoryBuffer, o.Name)
	reloadIdx := d.find(configcheck.FindingESReloadConnections, o.Name)
	var parts []string
	cause := &Cause{Severity: report.Critical, Live: true}
	if mem {
		parts = append(parts, fmt.Sprintf("memory buffer (%s)", pos(memParam)))
	}
	if len(noEst) > 0 {
		f := d.fs[noEst[0]]
		tw, _ := f.Evidence["time_wait"].(int)
		s := fmt.Sprintf("no ESTABLISHED connection to %s", f.Evidence["endpoint"])
		if tw > 0 {
			s += fmt.Sprintf(" (%d TIME_WAIT)", tw)
		}
		parts = append(parts, s)
	}
	if len(unreach) > 0 {
		k, _ := d.fs[unreach[0]].Evidence["kind"].(string)
		parts = append(parts, fmt.Sprintf("Elasticsearch unreachable from the shipper (%s)", k))
	}
	rejected := d.find(esprobe.FindingWriteRejections, o.Name)
	if len(rejected) > 0 {
		parts = append(parts, "Elasticsearch rejects writes")
	}
	if tr != nil && tr.Retrying && tr.Retries != nil {
		parts = append(parts, fmt.Sprintf("retries growing (+%.0f in %.0f s)", tr.Retries.Change, tr.Seconds))
	}
	if tr != nil && tr.Stalled {
		parts = append(parts, fmt.Sprintf("nothing written while %.0f events arrived", tr.Incoming.Change))
	}
	text := strings.Join(parts, " + ") + ": "
	switch {
	case tr != nil && tr.ETASeconds != nil && tr.Queued != nil && tr.Queued.Change > 0:
		text += fmt.Sprintf("the buffer reaches its limit (%s) in about %s", humanBytes(float64(tr.Limit)), humanDuration(*tr.ETASeconds))
		if mem {
			text += " and a restart loses it"
		}
	case mem:
		text += "the buffer grows in memory and a restart or an OOM kill loses it"
	default:
		text += fmt.Sprintf("output %s (%s) does not deliver", o.Name, o.At)
	}
	var fixes []string
	if mem {
		fixes = append(fixes, "`<buffer> @type file`")
		cause.Settings = append(cause.Settings, Setting{File: memParam.Pos.File, Line: memParam.Pos.Line, Setting: memParam.Key, Change: "<buffer> @type file"})
	}
	if o.Sniffs && o.SniffParam != nil {
		fixes = append(fixes, fmt.Sprintf("`reload_connections false` (%s)", pos(o.SniffParam)))
		cause.Settings = append(cause.Settings, Setting{File: o.SniffParam.Pos.File, Line: o.SniffParam.Pos.Line, Setting: o.SniffParam.Key, Change: "reload_connections false"})
	}
	switch {
	case len(unreach) > 0:
		fixes = append(fixes, fmt.Sprintf("make %s reachable from the shipper (hosts at %s)", strings.Join(o.Addrs, ", "), at(o.HostAt)))
	case len(noEst) > 0 && len(d.t.ES) == 0:
		fixes = append(fixes, fmt.Sprintf("check that %s is reachable from the shipper (hosts at %s)", strings.Join(o.Addrs, ", "), at(o.HostAt)))
	}
	if len(fixes) > 0 {
		text += "; set " + joinAnd(fixes)
	}
	cause.Text = text
	cause.Findings = d.use(noEst, unreach, retry, stalled, filling, memIdx, reloadIdx, d.find(FindingChunksDropped, o.Name))
	d.add(cause)
}

func joinAnd(xs []string) string {
	if len(xs) <= 1 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

// esRejections is "duplicates in Elasticsearch" (docs/troubleshooting.md):
// the cluster rejects writes while the output
// sends no stable id (duplicates on retry) or lists the rejection in
// unrecoverable_error_types (the whole chunk is retried: copies, and a
// stalled output while the rejections last).
func (d *diagnoser) esRejections(c *shipconf.Config, o *ESOutput) {
	rej := append(d.find(esprobe.FindingWriteRejections, o.Name), d.find(esprobe.FindingIndexingPressure, o.Name)...)
	timeouts := d.find(esprobe.FindingRequestTimeout, o.Name)
	if len(rej)+len(timeouts) == 0 {
		return
	}
	noID := d.find(configcheck.FindingESNoID, o.Name)
	dropped := d.find(configcheck.FindingES429Dropped, o.Name)
	if len(noID)+len(dropped) == 0 {
		return
	}
	cause := &Cause{Severity: report.Critical, Live: true}
	var why string
	if len(rej) > 0 {
		f := d.fs[rej[0]]
		why = "Elasticsearch rejects writes (" + strings.TrimPrefix(f.Summary, fmt.Sprintf("output %s (%s): ", o.Name, at(o.HostAt))) + ")"
	} else {
		why = "bulk requests come close to the output's request timeout"
	}
	var parts []string
	if len(noID) > 0 {
		f := d.fs[noID[0]]
		file, _ := f.Evidence["file"].(string)
		line, _ := f.Evidence["line"].(int)
		parts = append(parts, fmt.Sprintf("output %s sends no document id (%s:%d): every chunk it retries is indexed again, so logs are duplicated", o.Name, file, line))
		genid := "elasticsearch_genid"
		if o.Plugin != nil && o.Plugin.IsOpenSearch() {
			genid = "opensearch_genid"
		}
		fix, change := "add `<filter> @type "+genid+" </filter>` before it and set `id_key _hash`", "id_key _hash with the "+genid+" filter"
		if c.Shipper == shipconf.FluentBit {
			fix, change = "set `Generate_ID On`", "Generate_ID On"
		}
		cause.Settings = append(cause.Settings, Setting{File: file, Line: line, Setting: "id_key", Change: change})
		parts[len(parts)-1] += "; " + fix
	}
	if len(dropped) > 0 {
		f := d.fs[dropped[0]]
		file, _ := f.Evidence["file"].(string)
		line, _ := f.Evidence["line"].(int)
		if c.Shipper == shipconf.FluentBit {
			parts = append(parts, fmt.Sprintf("Fluent Bit drops the rejected items of a bulk that partly succeeded (%s:%d)", file, line))
		} else {
			rejected := rejectedType(o, f)
			parts = append(parts, fmt.Sprintf("unrecoverable_error_types (%s:%d) makes one rejected item retry the whole chunk: its accepted items are sent again and, while rejections last, the chunk never passes and the output stalls; remove %s from it so only the rejected items are re-emitted", file, line, rejected))
			cause.Settings = append(cause.Settings, Setting{File: file, Line: line, Setting: "unrecoverable_error_types", Change: "a list without " + rejected})
		}
	}
	cause.Text = why + " + " + strings.Join(parts, " + ")
	cause.Findings = d.use(rej, timeouts, noID, dropped)
	d.add(cause)
}

// rejectedType is the error type the output's plugin gives a rejected
// item: es_rejected_execution_exception for fluent-plugin-elasticsearch,
// rejected_execution_exception for fluent-plugin-opensearch (the finding
// says which it found in the list).
func rejectedType(o *ESOutput, f report.Finding) string {
	if t, ok := f.Evidence["rejected_type"].(string); ok && t != "" {
		return t
	}
	if o.Plugin != nil && o.Plugin.IsOpenSearch() {
		return "rejected_execution_exception"
	}
	return "es_rejected_execution_exception"
}

// tooLarge joins the cluster's http.max_content_length, read live, with
// the bulk size the configuration sends.
func (d *diagnoser) tooLarge(o *ESOutput) {
	live := d.find(esprobe.FindingBulkTooLarge, o.Name)
	cfg := d.find(configcheck.FindingChunkTooLarge, o.Name)
	if len(live) == 0 || o.BulkParam == nil {
		return
	}
	mcl, _ := d.fs[live[0]].Evidence["max_content_length_in_bytes"].(int64)
	c := &Cause{Severity: report.Critical, Live: true,
		Text: fmt.Sprintf("the cluster accepts bodies up to %s (http.max_content_length) and output %s sends bulks of up to %s (%s %s): those get 413 and are never delivered; set `bulk_message_request_threshold` below it, or a smaller chunk_limit_size",
			humanBytes(float64(mcl)), o.Name, humanBytes(float64(o.BulkSize)), o.BulkParam.Key, at(o.BulkParam.Pos)),
		Settings: []Setting{{File: o.BulkParam.Pos.File, Line: o.BulkParam.Pos.Line, Setting: o.BulkParam.Key, Change: "below " + humanBytes(float64(mcl))}}}
	c.Findings = d.use(live, cfg)
	d.add(c)
}

// forwardAcks is "logs lost without errors" (docs/troubleshooting.md):
// a forward output without acks to a receiver
// that does not acknowledge (or drops).
func (d *diagnoser) forwardAcks(o *ForwardOutput) {
	noAck := append(d.find(forwardprobe.FindingNoAck, o.Name), d.find(forwardprobe.FindingClosedBeforeAck, o.Name)...)
	stuck := d.find(sockstat.FindingSendQueueStuck, o.Name)
	cfg := d.find(configcheck.FindingForwardNoAck, o.Name)
	if len(noAck)+len(stuck) == 0 {
		return
	}
	addrs := make([]string, len(o.Servers))
	for i, s := range o.Servers {
		addrs[i] = s.Addr
	}
	cause := &Cause{Severity: report.Critical, Live: true}
	recv := fmt.Sprintf("the receiver at %s does not acknowledge chunks", strings.Join(addrs, ", "))
	if len(noAck) == 0 {
		recv = fmt.Sprintf("bytes sit unsent in the Send-Q to %s", strings.Join(addrs, ", "))
	}
	if !o.RequireAck {
		change, fix := "require_ack_response true", "`require_ack_response true` in this <match>"
		if d.t.Process.Kind == FluentBit {
			change, fix = "Require_ack_response On", "`Require_ack_response On` with `net.io_timeout 60s` in this [OUTPUT]"
		}
		cause.Text = fmt.Sprintf("forward output %s sends without acks (%s) + %s: every chunk the receiver drops is lost without a trace; set %s and fix the receiver",
			o.Name, pos(o.AckParam), recv, fix)
		if o.AckParam != nil {
			cause.Settings = append(cause.Settings, Setting{File: o.AckParam.Pos.File, Line: o.AckParam.Pos.Line, Setting: o.AckParam.Key, Change: change})
		}
	} else {
		cause.Text = fmt.Sprintf("forward output %s waits for acks (%s) and %s: each chunk is resent after the ack timeout (duplicates, a growing buffer); fix the receiver",
			o.Name, pos(o.AckParam), recv)
	}
	cause.Findings = d.use(noAck, stuck, cfg)
	d.add(cause)
}

// udp is "big UDP messages missing" (docs/troubleshooting.md):
// an input accepting datagrams larger than the path
// carries unfragmented, with fragments arriving or the kernel dropping.
func (d *diagnoser) udp(u *UDPView) {
	frag := d.find(udpfrag.FindingFragmented, u.Input)
	drops := d.find(udpfrag.FindingReceiveBufferDrops, u.Input)
	cfg := d.find(configcheck.FindingUDPMessageSize, u.Input)
	if len(frag)+len(drops) == 0 {
		return
	}
	cause := &Cause{Severity: report.Warning, Live: true}
	prm := u.in.LimitParam
	var parts []string
	if u.MaxPayload > 0 && u.Limit > int64(u.MaxPayload) {
		setting := fmt.Sprintf("%s at %s", prm.Key, at(prm.Pos))
		if prm.State == shipconf.Default {
			setting = fmt.Sprintf("%s by default, input at %s", prm.Key, at(prm.Pos))
		}
		parts = append(parts, fmt.Sprintf("UDP input %s accepts messages up to %d bytes (%s) over the MTU %d of %s in the shipper's namespace (%d bytes unfragmented)",
			u.Input, u.Limit, setting, u.MTU, u.Interface, u.MaxPayload))
	}
	if len(frag) > 0 {
		parts = append(parts, fmt.Sprintf("fragmented datagrams are arriving (%d reassembled during the run)", u.Reassembled))
	}
	if len(drops) > 0 {
		cause.Severity = report.Critical
		parts = append(parts, "the kernel drops datagrams at the socket")
	}
	cause.Text = strings.Join(parts, " + ")
	if len(frag) > 0 {
		cause.Text += fmt.Sprintf(": exactly the big messages vanish behind a load balancer that hashes on ports; keep messages at or under %d bytes at the sender or ship over TCP", u.MaxPayload)
		cause.Settings = append(cause.Settings, Setting{File: prm.Pos.File, Line: prm.Pos.Line, Setting: prm.Key, Change: fmt.Sprintf("at most %d, or a TCP input", u.MaxPayload)})
	} else {
		cause.Text += ": raise the socket's receive buffer or add workers"
	}
	cause.Findings = d.use(frag, drops, cfg)
	d.add(cause)
}

// single turns each remaining finding at warning or above into a cause
// of its own, its summary and the first sentence of its remedy.
func (d *diagnoser) single() {
	for i, f := range d.fs {
		if d.used[i] || f.Severity < report.Warning {
			continue
		}
		c := &Cause{Severity: f.Severity, Findings: []string{f.ID}}
		c.Live = !strings.HasPrefix(f.ID, "config.")
		text := f.Summary
		if r := firstSentence(f.Remedy); r != "" {
			text += "; " + r
		}
		c.Text = text
		if file, ok := f.Evidence["file"].(string); ok {
			line, _ := f.Evidence["line"].(int)
			set, _ := f.Evidence["setting"].(string)
			c.Settings = []Setting{{File: file, Line: line, Setting: set, Change: firstSentence(f.Remedy)}}
		}
		d.used[i] = true
		d.add(c)
	}
}

func firstSentence(s string) string {
	s = strings.TrimSpace(s)
	for i := 0; i+1 < len(s); i++ {
		if (s[i] == '.' || s[i] == ':') && s[i+1] == ' ' {
			return s[:i]
		}
	}
	return strings.TrimSuffix(s, ".")
}

// diagnose ranks one target's causes: severity, then live evidence over
// configuration alone, then how many findings back the cause.
func diagnose(t *Target, fs []report.Finding) []*Cause {
	d := &diagnoser{t: t, fs: fs, used: map[int]bool{}}
	if c := t.cfg; c != nil {
		for _, o := range t.Endpoints.ES {
			d.esStall(c, o)
			d.esRejections(c, o)
			d.tooLarge(o)
		}
	}
	for _, o := range t.Endpoints.Forward {
		d.forwardAcks(o)
	}
	for _, u := range t.UDP {
		d.udp(u)
	}
	d.single()
	sort.SliceStable(d.causes, func(i, j int) bool {
		a, b := d.causes[i], d.causes[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Live != b.Live {
			return a.Live
		}
		return len(a.Findings) > len(b.Findings)
	})
	return d.causes
}
