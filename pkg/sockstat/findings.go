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
	FindingNoConnection   = "tcp.no_connection"
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
		if f, ok := noEstablished(sc); ok {
			out = append(out, f)
		}
	}
	return out
}

// peerKind is what a --peer is, as far as advice goes: Elasticsearch
// (the es alias or its ports), a forward input, or anything else.
type peerKind int

const (
	kindOther peerKind = iota
	kindES
	kindForward
)

func kindOf(s PeerSpec) peerKind {
	switch {
	case s.Alias == "es":
		return kindES
	case s.Alias == "forward":
		return kindForward
	}
	for _, p := range s.Ports {
		switch p {
		case 9200, 9243:
			return kindES
		case 24224:
			return kindForward
		}
	}
	return kindOther
}

// noEstablished judges one --peer with nothing ESTABLISHED: still trying
// (TIME_WAIT, SYN_SENT) is tcp.no_established, no socket at all is
// tcp.no_connection. The remedy names the settings of whatever talks to
// that kind of peer.
func noEstablished(sc SpecCount) (report.Finding, bool) {
	est, tw, syn := sc.States[Established], sc.States[TimeWait], sc.States[SynSent]
	if est > 0 {
		return report.Finding{}, false
	}
	kind := kindOf(sc.Spec)
	ev := map[string]any{"peer": sc.Spec.Raw, "alias": sc.Spec.Alias, "ports": sc.Spec.Ports,
		"established": est, "time_wait": tw, "syn_sent": syn, "close_wait": sc.States[CloseWait]}
	total := 0
	for _, n := range sc.States {
		total += n
	}
	if total == 0 {
		ev["sockets"] = 0
		return report.Finding{
			ID: FindingNoConnection, Severity: report.Warning,
			Summary:  fmt.Sprintf("no socket at all to %s: nothing is connected to it or trying to connect", specName(sc.Spec)),
			Evidence: ev,
			Remedy:   noConnectionRemedy[kind],
		}, true
	}
	if tw+syn == 0 {
		return report.Finding{}, false
	}
	return report.Finding{
		ID: FindingNoEstablished, Severity: report.Critical,
		Summary:  fmt.Sprintf("no ESTABLISHED connection to %s while %d TIME_WAIT and %d SYN_SENT show it keeps trying", specName(sc.Spec), tw, syn),
		Evidence: ev,
		Remedy:   noEstablishedRemedy[kind],
	}, true
}

// namespaceHint is the first thing to rule out when a peer shows nothing.
const namespaceHint = "If the client runs in a container, read its network namespace: `logdoctor sockets --pid $(pidof fluentd)` " +
	"(or fluent-bit), or run logdoctor in the pod with `kubectl debug`."

var noEstablishedRemedy = map[peerKind]string{
	kindES: "The shipper has no working connection to Elasticsearch and keeps opening and dropping new ones; its buffer grows until it is " +
		"killed and the in-memory chunks are lost. For fluent-plugin-elasticsearch set reload_connections false (stop replacing the pool " +
		"with sniffed, possibly unreachable addresses), reload_on_failure true and resurrect_after 5s; use a file buffer (@type file) so a " +
		"restart loses nothing. Check the store with `logdoctor es probe`.",
	kindForward: "The sender has no working connection to the forward input and keeps opening and dropping new ones; chunks wait in its " +
		"buffer (and are lost with it if it is in memory). For Fluentd out_forward keep keepalive true, check that the receiver is not " +
		"marked unavailable by heartbeats (heartbeat_type transport or none when UDP does not pass; phi_threshold), raise " +
		"connect_timeout on slow links, and use require_ack_response true with a file buffer; for Fluent Bit's forward output set " +
		"net.keepalive on and net.connect_timeout. Check the receiver with `logdoctor forward probe HOST:PORT`.",
	kindOther: "The client has no working connection to this peer and keeps opening new ones that end at once (TIME_WAIT) or never " +
		"complete (SYN_SENT): check that the peer is up and reachable on that port from here (firewalls, NetworkPolicies, a full listen " +
		"backlog), then the client's connection pool, keep-alive and timeout settings and its error log.",
}

var noConnectionRemedy = map[peerKind]string{
	kindES: "The shipper is not talking to Elasticsearch at all: it is stopped, its output is stuck before connecting (the flush " +
		"thread hangs while the buffer grows: \"Logs stop reaching Elasticsearch\", docs/troubleshooting.md), or it writes somewhere else (check the output's hosts/host and the addresses sniffing " +
		"put in its pool). Look at its buffer size and error log, and check the store with `logdoctor es probe`. " + namespaceHint,
	kindForward: "The sender is not connected to the forward input at all: it is stopped, has marked the receiver unavailable and is " +
		"buffering (Fluentd out_forward: heartbeat_type, phi_threshold, the log's \"no nodes are available\"), or sends to another " +
		"host or port. Check the receiver with `logdoctor forward probe HOST:PORT`. " + namespaceHint,
	kindOther: "Nothing on this host is connected to this peer or trying to: the client is not running, idle with no pooled connection, or " +
		"pointed at another address. " + namespaceHint,
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
