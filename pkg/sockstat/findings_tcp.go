package sockstat

import (
	"fmt"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Finding ids that need tcp_info (the netlink source); documented in
// docs/commands/sockets.md like the others.
const (
	FindingRetransmitting = "tcp.retransmitting"
	FindingPeerZeroWindow = "tcp.peer_zero_window"
)

// tcpEvidence is one socket of a tcp_info finding as its evidence shows it.
type tcpEvidence struct {
	Local        string  `json:"local"`
	Remote       string  `json:"remote"`
	State        string  `json:"state"`
	SendQ        uint64  `json:"send_q_bytes"`
	Unacked      uint32  `json:"unacked_segments"`
	Retransmits  uint8   `json:"retransmits"`
	TotalRetrans uint32  `json:"total_retransmissions"`
	Backoff      uint8   `json:"backoff"`
	Probes       uint8   `json:"probes"`
	RTOms        float64 `json:"rto_ms"`
	NoAckForMS   int64   `json:"no_ack_for_ms"`
	NoSendForMS  int64   `json:"no_data_sent_for_ms"`
	PeerWindow   *uint32 `json:"peer_window_bytes,omitempty"`
}

func toEvidence(ss []TCPSocket) []tcpEvidence {
	out := make([]tcpEvidence, 0, min(len(ss), maxEvidenceSockets))
	for _, s := range ss[:min(len(ss), maxEvidenceSockets)] {
		i := s.Info
		e := tcpEvidence{
			Local: s.Local.String(), Remote: s.Remote.String(), State: s.State, SendQ: s.SendQ,
			Unacked: i.Unacked, Retransmits: i.Retransmits, TotalRetrans: i.TotalRetrans, Backoff: i.Backoff, Probes: i.Probes,
			RTOms: float64(i.RTO.Microseconds()) / 1000, NoAckForMS: i.LastAckRecv.Milliseconds(), NoSendForMS: i.LastDataSent.Milliseconds(),
		}
		if i.HasSndWnd {
			w := i.SndWnd
			e.PeerWindow = &w
		}
		out = append(out, e)
	}
	return out
}

// retransmitting: data to the peer is not acknowledged and the kernel keeps
// resending it with a doubling timeout. Critical once a connection has gone
// without an ACK for th.RetransCritical while its backoff grew.
func retransmitting(p *Peer, th Thresholds) (report.Finding, bool) {
	if th.Retransmits <= 0 || len(p.Retransmitting) == 0 {
		return report.Finding{}, false
	}
	var worst TCPInfo
	critical := 0
	for _, s := range p.Retransmitting {
		if s.Info.LastAckRecv > worst.LastAckRecv {
			worst = s.Info
		}
		if th.RetransCritical > 0 && s.Info.Backoff > 0 && s.Info.LastAckRecv >= th.RetransCritical {
			critical++
		}
	}
	sev, why := report.Warning, ""
	if critical > 0 {
		sev, why = report.Critical, fmt.Sprintf("; %d without an ACK for %s or more", critical, th.RetransCritical)
	}
	return report.Finding{
		ID: FindingRetransmitting, Severity: sev,
		Summary: fmt.Sprintf("%d connection(s) to %s retransmitting unacknowledged data: up to %d timeouts in a row, backoff %d, no ACK for %.1f s%s",
			len(p.Retransmitting), peerName(p), worst.Retransmits, worst.Backoff, worst.LastAckRecv.Seconds(), why),
		Evidence: peerEvidence(p, map[string]any{
			"retransmitting": len(p.Retransmitting), "max_no_ack_for_ms": worst.LastAckRecv.Milliseconds(),
			"max_retransmits": worst.Retransmits, "max_backoff": worst.Backoff,
			"threshold_retransmits": th.Retransmits, "critical_after_ms": th.RetransCritical.Milliseconds(),
			"sockets": toEvidence(p.Retransmitting),
		}),
		Remedy: "Data reaches the wire but no ACK comes back: a firewall, security group or load balancer that passes the handshake and drops " +
			"data (often full-size segments when path-MTU discovery is blocked), or a peer that is gone. The sender keeps the chunk in " +
			"flight for up to 15 minutes (net.ipv4.tcp_retries2) and loses it if the socket is torn down. For forward set " +
			"require_ack_response true (Fluent Bit: Require_ack_response true) so the chunk is retried elsewhere, and keep send_timeout " +
			"and ack_response_timeout finite (Fluent Bit: net.io_timeout); for Elasticsearch outputs set request_timeout so the client " +
			"gives up and reconnects. Check the path with `logdoctor forward probe` and the MTU with `logdoctor udp-frag`.",
	}, true
}

// peerZeroWindow: the peer advertises a zero receive window, so writes
// block: it is alive (it answers the probes) but does not read.
func peerZeroWindow(p *Peer, th Thresholds) (report.Finding, bool) {
	if th.ZeroWindowProbes <= 0 || len(p.ZeroWindow) == 0 {
		return report.Finding{}, false
	}
	var queued uint64
	var longest TCPInfo
	for _, s := range p.ZeroWindow {
		queued += s.SendQ
		if s.Info.LastDataSent > longest.LastDataSent {
			longest = s.Info
		}
	}
	return report.Finding{
		ID: FindingPeerZeroWindow, Severity: report.Warning,
		Summary: fmt.Sprintf("%s advertises a zero receive window on %d connection(s): it is alive but not reading; %d bytes wait, nothing sent for %.1f s",
			peerName(p), len(p.ZeroWindow), queued, longest.LastDataSent.Seconds()),
		Evidence: peerEvidence(p, map[string]any{
			"zero_window": len(p.ZeroWindow), "send_q_bytes": queued, "max_no_data_sent_for_ms": longest.LastDataSent.Milliseconds(),
			"threshold_probes": th.ZeroWindowProbes, "sockets": toEvidence(p.ZeroWindow),
		}),
		Remedy: "The receiver's socket buffer is full because the application stopped reading: a Fluentd whose in_forward is blocked by its " +
			"own output (buffer overflow_action block, a stuck flush thread), a Fluent Bit input paused by mem_buf_limit, or an " +
			"Elasticsearch node too busy to read bulk requests. Fix the receiver (its buffer and outputs; `logdoctor es probe` for ES). " +
			"On this sender, bound the wait so the chunk is retried instead of blocking: Fluentd out_forward send_timeout (60 s default) " +
			"with require_ack_response true, Fluent Bit net.io_timeout, and for Elasticsearch outputs request_timeout.",
	}, true
}
