package forwardprobe

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Sections renders the result as tables (report.Tabular).
func (res *Result) Sections() []report.Section {
	steps := report.Section{Title: "Steps to " + res.Addr, Header: []string{"STEP", "MS", "OK", "ERROR"}}
	for _, s := range res.Steps {
		steps.Rows = append(steps.Rows, []string{s.Name, fmt.Sprintf("%.2f", s.MS), strconv.FormatBool(s.OK), s.Error})
	}
	out := []report.Section{steps}
	if len(res.Canaries) > 0 {
		c := report.Section{Title: "Canary chunks (run " + res.RunID + ")", Header: []string{"MODE", "EVENTS", "BYTES", "OUTCOME", "ACK MS", "Send-Q max", "CHUNK"}}
		for _, cn := range res.Canaries {
			sq := ""
			if len(cn.Socket) > 0 {
				m := 0
				for _, s := range cn.Socket {
					m = max(m, s.SendQ)
				}
				sq = strconv.Itoa(m)
			}
			ack := ""
			if cn.Outcome == "acked" {
				ack = fmt.Sprintf("%.2f", cn.AckMS)
			}
			c.Rows = append(c.Rows, []string{cn.Mode, strconv.Itoa(cn.Events), strconv.Itoa(cn.Bytes), cn.Outcome, ack, sq, cn.Chunk})
		}
		out = append(out, c)
	}
	if l := res.Load; l != nil {
		keep := "keep-alive"
		if !l.KeepAlive {
			keep = "new connection per chunk"
		}
		s := report.Section{Title: fmt.Sprintf("Load: %s, %d events/chunk, %d connection(s), %s", l.Mode, l.ChunkEvents, l.Concurrency, keep),
			Header: []string{"METRIC", "VALUE"}}
		s.Rows = [][]string{
			{"events sent / acked", fmt.Sprintf("%d / %d", l.EventsSent, l.EventsAcked)},
			{"chunks sent / acked", fmt.Sprintf("%d / %d", l.ChunksSent, l.ChunksAcked)},
			{"acked events/s", fmt.Sprintf("%.0f", l.AckedPerSecond)},
			{"seconds", fmt.Sprintf("%.3f", l.Seconds)},
			{"ack latency p50/p90/p99/max ms", fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", l.AckLatency.P50, l.AckLatency.P90, l.AckLatency.P99, l.AckLatency.Max)},
			{"connections", strconv.FormatInt(l.Connections, 10)},
		}
		if w := l.Warmup; w != nil {
			s.Rows = append(s.Rows,
				[]string{"warm-up (not counted above) seconds / chunks acked", fmt.Sprintf("%.3f / %d of %d", w.Seconds, w.ChunksAcked, w.ChunksSent)},
				[]string{"warm-up ack latency p50/p90/p99/max ms", fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", w.AckLatency.P50, w.AckLatency.P90, w.AckLatency.P99, w.AckLatency.Max)})
		}
		kinds := make([]string, 0, len(l.Errors))
		for k := range l.Errors {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			s.Rows = append(s.Rows, []string{"errors: " + k, strconv.Itoa(l.Errors[k])})
		}
		out = append(out, s)
	} else if res.AckLatency != nil {
		l := res.AckLatency
		out = append(out, report.Section{Lines: []string{fmt.Sprintf("ack latency p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d chunk(s)", l.P50, l.P99, l.Max, l.N)}})
	}
	if hb := res.Heartbeat; hb != nil {
		line := fmt.Sprintf("UDP heartbeat: answered in %.2f ms", hb.RTTMS)
		if !hb.OK {
			line = "UDP heartbeat: no answer (" + hb.Error + ")"
			if hb.Refused {
				line = "UDP heartbeat: nothing listens on the UDP port (" + hb.Error + ")"
			}
		}
		out = append(out, report.Section{Lines: []string{line}})
	}
	return out
}
