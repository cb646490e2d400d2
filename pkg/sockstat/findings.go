package sockstat

import (
	"fmt"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Finding ids of `logdoctor sockets` (stable API, documented in
// docs/commands/sockets.md).
const (
	FindingCloseWait      = "tcp.close_wait"
	FindingTimeWaitChurn  = "tcp.time_wait_churn"
	FindingSendQueueStuck = "tcp.send_queue_stuck"
	FindingNoEstablished  = "tcp.no_established"
	FindingSynSent        = "tcp.syn_sent"
)

// Thresholds tune when a histogram becomes a finding.
type Thresholds struct {
	CloseWait         int     // CLOSE_WAIT sockets to one peer for a warning
	CloseWaitCritical int     // ... for critical (growth across --watch samples is critical too)
	TimeWait          int     // TIME_WAIT sockets to one peer before churn is considered
	TimeWaitRatio     float64 // churn when TIME_WAIT >= ratio x ESTABLISHED
	SendQ             uint64  // Send-Q bytes on one ESTABLISHED/FIN_WAIT1 socket counted as stuck
	SynSent           int     // SYN_SENT sockets to one peer for a warning
	// Retransmits is how many retransmission timeouts in a row on one
	// connection make tcp.retransmitting; RetransCritical how long without
	// an ACK (with a growing backoff) makes it critical.
	Retransmits     int
	RetransCritical time.Duration
	// ZeroWindowProbes is how many zero-window probe timeouts one
	// connection must have sat through for tcp.peer_zero_window.
	ZeroWindowProbes int
}

// DefaultThresholds are the documented defaults of the sockets flags.
func DefaultThresholds() Thresholds {
	return Thresholds{CloseWait: 1, CloseWaitCritical: 10, TimeWait: 50, TimeWaitRatio: 10, SendQ: 64 * 1024, SynSent: 1,
		Retransmits: 2, RetransCritical: 30 * time.Second, ZeroWindowProbes: 1}
}

// maxEvidenceSockets caps the sockets listed in one finding's evidence.
const maxEvidenceSockets = 5

// Findings turns one aggregated sample into findings. prev is the previous
// --watch sample (nil for a single look): growing CLOSE_WAIT and Send-Q
// that did not drain between samples are critical.
func Findings(cur Result, prev *Result, th Thresholds) []report.Finding {
	var out []report.Finding
	prevPeers := map[string]*Peer{}
	prevStuck := map[[2]string]*StuckSocket{}
	if prev != nil {
		for i := range prev.Peers {
			p := &prev.Peers[i]
			prevPeers[string(p.Direction)+" "+p.Peer] = p
			for j, s := range p.Stuck {
				prevStuck[[2]string{s.Local.String(), s.Remote.String()}] = &p.Stuck[j]
			}
		}
	}
	for i := range cur.Peers {
		p := &cur.Peers[i]
		pp := prevPeers[string(p.Direction)+" "+p.Peer]
		if f, ok := closeWait(p, pp, th); ok {
			out = append(out, f)
		}
		if f, ok := timeWaitChurn(p, th); ok {
			out = append(out, f)
		}
		if f, ok := sendQueueStuck(p, prevStuck, th); ok {
			out = append(out, f)
		}
		if f, ok := retransmitting(p, th); ok {
			out = append(out, f)
		}
		if f, ok := peerZeroWindow(p, th); ok {
			out = append(out, f)
		}
		if n := p.States[SynSent]; th.SynSent > 0 && n >= th.SynSent {
			out = append(out, report.Finding{
				ID: FindingSynSent, Severity: report.Warning,
				Summary:  fmt.Sprintf("%d connection attempt(s) to %s hanging in SYN_SENT", n, peerName(p)),
				Evidence: peerEvidence(p, map[string]any{"syn_sent": n, "established": p.States[Established]}),
				Remedy: "The peer does not answer the SYN: a wrong or unreachable address (for fluent-plugin-elasticsearch, addresses sniffed from _nodes/http " +
					"that are pod IPs or internal names; set reload_connections false and list reachable hosts), a firewall dropping SYNs, or a " +
					"full listen backlog on the server. Check reachability with `logdoctor es probe`.",
			})
		}
	}
	for _, sc := range cur.Specs {
		est, tw, syn := sc.States[Established], sc.States[TimeWait], sc.States[SynSent]
		if est > 0 || tw+syn == 0 {
			continue
		}
		out = append(out, report.Finding{
			ID: FindingNoEstablished, Severity: report.Critical,
			Summary: fmt.Sprintf("no ESTABLISHED connection to %s while %d TIME_WAIT and %d SYN_SENT show it keeps trying", specName(sc.Spec), tw, syn),
			Evidence: map[string]any{"peer": sc.Spec.Raw, "alias": sc.Spec.Alias, "ports": sc.Spec.Ports,
				"established": est, "time_wait": tw, "syn_sent": syn, "close_wait": sc.States[CloseWait]},
			Remedy: "The shipper has no working connection and keeps opening and dropping new ones; its buffer grows until it is killed and the " +
				"in-memory chunks are lost. For fluent-plugin-elasticsearch set reload_connections false (stop replacing the pool with sniffed, " +
				"possibly unreachable addresses), reload_on_failure true and resurrect_after 5s; use a file buffer (@type file) so a restart " +
				"loses nothing. Check the store with `logdoctor es probe`.",
		})
	}
	return out
}

func closeWait(p, prev *Peer, th Thresholds) (report.Finding, bool) {
	n := p.States[CloseWait]
	if th.CloseWait <= 0 || n < th.CloseWait {
		return report.Finding{}, false
	}
	sev := report.Warning
	growing := prev != nil && n > prev.States[CloseWait]
	why := ""
	switch {
	case growing:
		sev, why = report.Critical, fmt.Sprintf(", up from %d in the previous sample", prev.States[CloseWait])
	case th.CloseWaitCritical > 0 && n >= th.CloseWaitCritical:
		sev = report.Critical
	}
	ev := peerEvidence(p, map[string]any{"close_wait": n, "growing": growing})
	if prev != nil {
		ev["previous_close_wait"] = prev.States[CloseWait]
	}
	return report.Finding{
		ID: FindingCloseWait, Severity: sev,
		Summary: fmt.Sprintf("%d CLOSE_WAIT socket(s) to %s%s held by %s: the application does not close connections the server closed",
			n, peerName(p), why, procNames(p.Processes)),
		Evidence: ev,
		Remedy: "The peer closed these connections and the owning process never called close(); they stay until it does or exits, and the " +
			"connection pool may be stuck on them. Restart the shipper to free them now; for Fluentd with fluent-plugin-elasticsearch upgrade " +
			"(td-agent >= 4.2 / fluentd >= 1.13.3 fixes the excon hang), set reconnect_on_error true and reload_connections false; for " +
			"Fluent Bit set net.keepalive_idle_timeout below the server's idle timeout.",
	}, true
}

func timeWaitChurn(p *Peer, th Thresholds) (report.Finding, bool) {
	tw, est := p.States[TimeWait], p.States[Established]
	if th.TimeWait <= 0 || tw < th.TimeWait || float64(tw) < th.TimeWaitRatio*float64(est) {
		return report.Finding{}, false
	}
	side := "this host opens a new connection for each request"
	if p.Direction == Inbound {
		side = "this server closes connections first and clients reconnect for each request"
	}
	return report.Finding{
		ID: FindingTimeWaitChurn, Severity: report.Warning,
		Summary:  fmt.Sprintf("%d TIME_WAIT next to %d ESTABLISHED to %s: connections are not reused (%s)", tw, est, peerName(p), side),
		Evidence: peerEvidence(p, map[string]any{"time_wait": tw, "established": est, "ratio_threshold": th.TimeWaitRatio}),
		Remedy: "Turn keep-alive on and stop pool churn: fluent-plugin-elasticsearch keeps connections with the default excon backend, but " +
			"reload_connections true (the default) replaces the pool every 10,000 requests, so set reload_connections false; Fluentd " +
			"out_forward keepalive true; Fluent Bit net.keepalive on; Vector keeps connections unless the server sends Connection: close. " +
			"Port exhaustion follows if this grows.",
	}, true
}

func sendQueueStuck(p *Peer, prevStuck map[[2]string]*StuckSocket, th Thresholds) (report.Finding, bool) {
	if th.SendQ == 0 || len(p.Stuck) == 0 {
		return report.Finding{}, false
	}
	var total uint64
	persisted := 0
	// With tcp_info (Aggregate kept only queues that are not draining):
	// how long the stalest went without an ACK, and the segments waiting.
	var noAck int64
	var unacked uint64
	withInfo, closed := 0, 0
	ev := make([]StuckSocket, 0, maxEvidenceSockets)
	for _, s := range p.Stuck {
		total += s.SendQ
		// Still stuck, and with tcp_info nothing acknowledged since.
		if ps := prevStuck[[2]string{s.Local.String(), s.Remote.String()}]; ps != nil &&
			(s.StuckTCP == nil || ps.StuckTCP == nil || s.BytesAcked == ps.BytesAcked) {
			persisted++
		}
		if s.StuckTCP != nil {
			withInfo++
			unacked += uint64(s.Unacked)
			if s.Unacked > 0 {
				noAck = max(noAck, s.NoAckForMS)
			}
			if s.PeerWindow != nil && *s.PeerWindow == 0 {
				closed++
			}
		}
		if len(ev) < maxEvidenceSockets {
			ev = append(ev, s)
		}
	}
	sev := report.Warning
	why := ""
	if withInfo > 0 {
		why = fmt.Sprintf(", not draining: no acknowledgement for %.1f s, %d unacked segment(s)", float64(noAck)/1000, unacked)
		if closed > 0 {
			why += fmt.Sprintf(", the peer's window closed on %d", closed)
		}
	}
	if persisted > 0 {
		sev = report.Critical
		why += fmt.Sprintf("; %d did not drain since the previous sample", persisted)
	}
	evidence := map[string]any{"stuck_sockets": len(p.Stuck), "send_q_bytes": total,
		"persisted": persisted, "sockets": ev, "threshold_bytes": th.SendQ}
	if withInfo > 0 {
		evidence["no_ack_for_ms"] = noAck
		evidence["unacked_segments"] = unacked
	}
	return report.Finding{
		ID: FindingSendQueueStuck, Severity: sev,
		Summary: fmt.Sprintf("%d bytes queued unsent on %d connection(s) to %s (>= %d bytes each)%s",
			total, len(p.Stuck), peerName(p), th.SendQ, why),
		Evidence: peerEvidence(p, evidence),
		Remedy: "The peer does not read, or something on the path drops data while the connection looks healthy; without acks the chunk " +
			"is lost when the socket is torn down. For forward set require_ack_response true (Fluent Bit: Require_ack_response true) so " +
			"unacknowledged chunks are retried, keep send_timeout and ack_response_timeout finite, and check the receiver with " +
			"`logdoctor forward probe`. On a high-latency link in-flight bytes count too: raise --send-q or use --watch.",
	}, true
}

func peerEvidence(p *Peer, m map[string]any) map[string]any {
	m["peer"] = p.Peer
	m["direction"] = p.Direction
	if p.Alias != "" {
		m["alias"] = p.Alias
	}
	m["processes"] = p.Processes
	return m
}

func peerName(p *Peer) string {
	if p.Alias != "" {
		return fmt.Sprintf("%s (%s)", p.Peer, p.Alias)
	}
	return p.Peer
}

func specName(s PeerSpec) string {
	if s.Alias != "" {
		ports := make([]string, len(s.Ports))
		for i, p := range s.Ports {
			ports[i] = fmt.Sprint(p)
		}
		return fmt.Sprintf("%s (ports %s)", s.Alias, strings.Join(ports, ","))
	}
	return s.Raw
}

func procNames(ps []Process) string {
	if len(ps) == 0 {
		return "an unknown process (not attributed: --no-processes, or not readable without root)"
	}
	names := make([]string, 0, len(ps))
	for i, p := range ps {
		if i == 3 {
			names = append(names, fmt.Sprintf("and %d more", len(ps)-3))
			break
		}
		names = append(names, fmt.Sprintf("%s[%d]", p.Comm, p.PID))
	}
	return strings.Join(names, ", ")
}
