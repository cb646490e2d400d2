package udpfrag

import (
	"fmt"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Finding ids of udp-frag: stable API, documented in docs/commands/udp-frag.md.
const (
	FindingFragmented         = "udp.fragmented"
	FindingFragmentsLost      = "udp.fragments_lost"
	FindingBadLength          = "udp.bad_length"
	FindingReceiveBufferDrops = "udp.receive_buffer_drops"
	FindingOversize           = "udp.oversize"
)

// RemedySize is the advice for keeping datagrams unfragmented.
func RemedySize(maxPayload int) string {
	return fmt.Sprintf("keep each UDP log message at or under %d bytes (truncate or split long records in the sender, e.g. Fluent Bit/Fluentd record size limits), "+
		"or ship over TCP instead (Fluentd forward/in_tcp, syslog over TCP), "+
		"or make the load balancer keep fragments together (session affinity CLIENT_IP instead of 5-tuple; one UDP forwarding rule per IP)", maxPayload)
}

// Findings turns a Result into findings.
func Findings(r *Result) []report.Finding {
	var out []report.Finding
	d := r.Datagrams
	s := r.Sizes
	if n := d[FragmentedComplete] + d[FragmentedIncomplete]; n > 0 {
		out = append(out, report.Finding{
			ID:       FindingFragmented,
			Severity: report.Warning,
			Summary: fmt.Sprintf("%d UDP datagram(s) of %d-%d bytes were IP-fragmented: path MTU %d leaves %d bytes for an unfragmented IPv4 payload",
				n, s.FragmentedMin, s.FragmentedMax, s.PathMTU, s.MaxUnfragmented4),
			Evidence: map[string]any{
				"fragmented_complete": d[FragmentedComplete], "fragmented_incomplete": d[FragmentedIncomplete],
				"smallest_fragmented": s.FragmentedMin, "largest_fragmented": s.FragmentedMax,
				"path_mtu": s.PathMTU, "mtu_source": s.MTUSource,
				"max_unfragmented_payload_ipv4": s.MaxUnfragmented4, "max_unfragmented_payload_ipv6": s.MaxUnfragmented6,
			},
			Remedy: "fragments survive only if every hop passes all of them; " + RemedySize(s.MaxUnfragmented4),
		})
	}
	if n := d[FragmentedIncomplete] + d[OrphanFragments]; n > 0 {
		out = append(out, report.Finding{
			ID:       FindingFragmentsLost,
			Severity: report.Critical,
			Summary: fmt.Sprintf("%d fragmented UDP datagram(s) never arrived whole (%d first fragments without the rest, %d sets of fragments without a first): the big log messages are being dropped on the path",
				n, d[FragmentedIncomplete], d[OrphanFragments]),
			Evidence: map[string]any{
				"fragmented_incomplete": d[FragmentedIncomplete], "orphan_fragments": d[OrphanFragments],
				"lost_sizes": s.LostSizes, "sources": r.lostSources(10),
				"max_unfragmented_payload_ipv4": s.MaxUnfragmented4, "path_mtu": s.PathMTU,
				"reassembly_timeout_ms": r.Reassembly.TimeoutMS,
			},
			Remedy: RemedySize(s.MaxUnfragmented4),
		})
	}
	if n := d[BadLength]; n > 0 {
		out = append(out, report.Finding{
			ID:       FindingBadLength,
			Severity: report.Critical,
			Summary:  fmt.Sprintf("%d unfragmented UDP datagram(s) arrived shorter than their UDP header says: the kernel drops them (Udp InErrors)", n),
			Evidence: map[string]any{"bad_length": n, "sources": r.lostSources(10)},
			Remedy:   "find the hop that truncates packets (a middlebox or tunnel with a smaller MTU that cuts instead of fragmenting); " + RemedySize(s.MaxUnfragmented4),
		})
	}
	if r.Reassembly.Oversize > 0 {
		out = append(out, report.Finding{
			ID:       FindingOversize,
			Severity: report.Critical,
			Summary:  fmt.Sprintf("%d fragmented datagram(s) reach beyond 65,535 bytes: no UDP datagram over %d bytes of payload can be delivered", r.Reassembly.Oversize, MaxUDPPayload),
			Evidence: map[string]any{"oversize": r.Reassembly.Oversize, "max_udp_payload": MaxUDPPayload},
			Remedy:   OversizeRemedy,
		})
	}
	if k := r.Kernel; k != nil {
		if f, ok := ReceiveBufferFinding(k); ok {
			out = append(out, f)
		}
	}
	return out
}

// OversizeRemedy is the advice for messages UDP cannot carry.
const OversizeRemedy = "messages over 65,507 bytes cannot travel in one UDP datagram: ship them over TCP (Fluentd forward / in_tcp) or cap the record size in the sender"

// ReceiveBufferFinding reports drops after reassembly: the socket's receive
// buffer was full, so the path is fine and the receiver is too slow.
func ReceiveBufferFinding(k *KernelDelta) (report.Finding, bool) {
	counter, sockets := k.RcvbufDrops()
	var historic uint64
	for _, s := range k.Sockets {
		historic += s.Drops
	}
	sev := report.Critical
	switch {
	case counter > 0 || sockets > 0:
	case historic > 0:
		sev = report.Warning
	default:
		return report.Finding{}, false
	}
	return report.Finding{
		ID:       FindingReceiveBufferDrops,
		Severity: sev,
		Summary: fmt.Sprintf("the receiving socket's buffer overflowed: %d RcvbufErrors and %d socket drops during the run (%d since the socket opened)",
			counter, sockets, historic),
		Evidence: map[string]any{"rcvbuf_errors": counter, "socket_drops": sockets, "socket_drops_total": historic, "sockets": k.Sockets},
		Remedy: "the datagrams arrived but the receiver read too slowly: raise the socket receive buffer, SO_RCVBUF (Fluent Bit/Fluentd in_udp receive_buffer_size, rsyslog imudp RcvBufSize) " +
			"and the kernel cap it is bounded by (sysctl net.core.rmem_max, net.core.rmem_default), or add receiver threads/workers",
	}, true
}
