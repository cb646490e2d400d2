package doctor

import (
	"fmt"
	"net"
	"strconv"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/udpfrag"
)

// UDP header overheads: the largest unfragmented payload is MTU minus
// these (IPv4 and IPv6 header plus the UDP header).
const (
	udpIPv4Overhead = 28
	udpIPv6Overhead = 48
)

// readKernelUDP reads the UDP and reassembly counters and the inputs'
// sockets in pid's network namespace (/proc/PID/net, no entering).
func readKernelUDP(procRoot string, pid int, inputs []*UDPInput) (*udpfrag.KernelSnapshot, error) {
	ports := make([]uint16, 0, len(inputs))
	for _, in := range inputs {
		ports = append(ports, uint16(in.Port))
	}
	return udpfrag.ReadKernelOf(procRoot, pid, ports)
}

// UDPView is one UDP input as the kernel sees it.
type UDPView struct {
	Input     string `json:"input"`
	At        string `json:"at"`
	Port      int    `json:"port"`
	Limit     int64  `json:"max_message_bytes"`
	Listening bool   `json:"listening"`
	// MTU is the smallest MTU among the namespace's interfaces that are
	// up, MaxPayload the largest datagram that is not fragmented.
	MTU        int    `json:"mtu,omitempty"`
	Interface  string `json:"interface,omitempty"`
	MaxPayload int    `json:"max_unfragmented_payload,omitempty"`
	// Changes over the interval: drops at the input's socket, and the
	// namespace's receive-buffer errors and reassemblies.
	SocketDrops  uint64 `json:"socket_drops"`
	RxQueue      uint64 `json:"rx_queue_bytes"`
	RcvbufErrors int64  `json:"rcvbuf_errors"`
	Reassembled  int64  `json:"reassembled"`
	ReasmFails   int64  `json:"reassembly_failures"`
	in           *UDPInput
}

// udpViews joins the change of the kernel counters with the inputs and
// the MTU.
func udpViews(inputs []*UDPInput, d *udpfrag.KernelDelta, mtu int, iface string) []*UDPView {
	var out []*UDPView
	for _, in := range inputs {
		v := &UDPView{Input: in.Name, At: in.At, Port: in.Port, Limit: in.Limit, MTU: mtu, Interface: iface, in: in}
		if mtu > 0 {
			oh := udpIPv4Overhead
			if isV6(in.Bind) {
				oh = udpIPv6Overhead
			}
			v.MaxPayload = mtu - oh
		}
		for _, s := range d.Sockets {
			if _, port, err := net.SplitHostPort(s.Local); err == nil && port == strconv.Itoa(in.Port) {
				v.Listening = true
				v.SocketDrops += s.DropsDelta
				v.RxQueue += s.RxQueue
			}
		}
		v.RcvbufErrors = d.Counters["Udp.RcvbufErrors"] + d.Counters["Udp6.RcvbufErrors"]
		v.Reassembled = d.Counters["Ip.ReasmOKs"] + d.Counters["Ip6.ReasmOKs"]
		v.ReasmFails = d.Counters["Ip.ReasmFails"] + d.Counters["Ip6.ReasmFails"]
		out = append(out, v)
	}
	return out
}

func isV6(bind string) bool {
	for i := 0; i < len(bind); i++ {
		if bind[i] == ':' {
			return true
		}
	}
	return false
}

// udpFindings: datagrams the kernel dropped for want of buffer space, and
// fragmented datagrams arriving at an input that accepts messages larger
// than one packet. The ids are udp-frag's: the same kernel facts, read in
// the shipper's namespace.
func udpFindings(vs []*UDPView) []report.Finding {
	var out []report.Finding
	for _, v := range vs {
		ev := func(extra map[string]any) map[string]any {
			m := map[string]any{"input": v.Input, "port": v.Port, "max_message_bytes": v.Limit,
				"file": v.in.LimitParam.Pos.File, "line": v.in.LimitParam.Pos.Line, "setting": v.in.LimitParam.Key}
			if v.MTU > 0 {
				m["mtu"], m["interface"], m["max_unfragmented_payload"] = v.MTU, v.Interface, v.MaxPayload
			}
			for k, x := range extra {
				m[k] = x
			}
			return m
		}
		if v.SocketDrops > 0 || v.RcvbufErrors > 0 {
			out = append(out, report.Finding{ID: udpfrag.FindingReceiveBufferDrops, Severity: report.Critical,
				Summary: fmt.Sprintf("UDP input %s (%s, port %d): the kernel dropped %d datagrams at the socket (%d receive-buffer errors in the namespace) during the run",
					v.Input, v.At, v.Port, v.SocketDrops, v.RcvbufErrors),
				Evidence: ev(map[string]any{"socket_drops": v.SocketDrops, "rcvbuf_errors": v.RcvbufErrors, "rx_queue_bytes": v.RxQueue}),
				Remedy: "The shipper does not read the socket fast enough: raise the socket's receive buffer (net.core.rmem_max and the input's " +
					"receive_buffer_size / Fluent Bit's Buffer_Size), add workers, or ship over TCP."})
		}
		if v.Reassembled+v.ReasmFails > 0 && v.MaxPayload > 0 && v.Limit > int64(v.MaxPayload) {
			out = append(out, report.Finding{ID: udpfrag.FindingFragmented, Severity: report.Warning,
				Summary: fmt.Sprintf("UDP input %s (%s) accepts %d-byte messages and fragmented datagrams are arriving in its namespace (%d reassembled, %d failed, during the run) over %s with MTU %d (unfragmented up to %d bytes)",
					v.Input, v.At, v.Limit, v.Reassembled, v.ReasmFails, v.Interface, v.MTU, v.MaxPayload),
				Evidence: ev(map[string]any{"reassembled": v.Reassembled, "reassembly_failures": v.ReasmFails}),
				Remedy: fmt.Sprintf("Keep every message at or under %d bytes at the sender, or ship over TCP: a load balancer or firewall that "+
					"hashes on ports drops the fragments that carry none, and exactly the big messages vanish (check the path with `logdoctor udp-frag`).", v.MaxPayload)})
		}
	}
	return out
}
