package doctor

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/prometheus/procfs"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Finding ids doctor shares with udp-frag: the same kernel facts, read in
// the shipper's network namespace (documented in docs/commands/udp-frag.md
// and, for doctor, docs/commands/doctor.md).
const (
	findingUDPFragmented  = "udp.fragmented"
	findingUDPRcvbufDrops = "udp.receive_buffer_drops"
	udpIPv4Overhead       = 28
	udpIPv6Overhead       = 48
)

// kernelUDP is one read of the namespace's UDP and reassembly counters
// and of the input sockets' drop counts.
type kernelUDP struct {
	RcvbufErrors, InErrors           float64
	ReasmReqds, ReasmOKs, ReasmFails float64
	// Sockets maps a local port to its socket's drops and receive queue.
	Sockets map[int]udpSocket
}

type udpSocket struct {
	Drops   uint64
	RxQueue uint64
}

// readKernelUDP reads /proc/PID/net/snmp and /proc/PID/net/udp{,6}.
func readKernelUDP(procRoot string, pid int) (kernelUDP, error) {
	var k kernelUDP
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return k, err
	}
	p, err := fs.Proc(pid)
	if err != nil {
		return k, err
	}
	sn, err := p.Snmp()
	if err != nil {
		return k, fmt.Errorf("read %s/%d/net/snmp: %w", procRoot, pid, err)
	}
	get := func(v *float64) float64 {
		if v == nil {
			return 0
		}
		return *v
	}
	k.RcvbufErrors, k.InErrors = get(sn.Udp.RcvbufErrors), get(sn.Udp.InErrors)
	k.ReasmReqds, k.ReasmOKs, k.ReasmFails = get(sn.Ip.ReasmReqds), get(sn.Ip.ReasmOKs), get(sn.Ip.ReasmFails)
	k.Sockets = map[int]udpSocket{}
	nfs, err := procfs.NewFS(filepath.Join(procRoot, strconv.Itoa(pid)))
	if err != nil {
		return k, err
	}
	for _, read := range []func() (procfs.NetUDP, error){nfs.NetUDP, nfs.NetUDP6} {
		lines, err := read()
		if err != nil {
			continue
		}
		for _, l := range lines {
			s := k.Sockets[int(l.LocalPort)]
			s.RxQueue += l.RxQueue
			if l.Drops != nil {
				s.Drops += *l.Drops
			}
			k.Sockets[int(l.LocalPort)] = s
		}
	}
	return k, nil
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
	// Deltas over the interval.
	SocketDrops  *Delta `json:"socket_drops,omitempty"`
	RcvbufErrors *Delta `json:"rcvbuf_errors,omitempty"`
	ReasmReqds   *Delta `json:"reassembly_fragments,omitempty"`
	ReasmFails   *Delta `json:"reassembly_failures,omitempty"`
	RxQueue      uint64 `json:"rx_queue_bytes"`
	in           *UDPInput
}

// udpViews joins two kernel reads with the inputs and the MTU.
func udpViews(inputs []*UDPInput, first, last kernelUDP, mtu int, iface string) []*UDPView {
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
		s0, ok0 := first.Sockets[in.Port]
		s1, ok1 := last.Sockets[in.Port]
		v.Listening = ok1
		if ok0 && ok1 {
			v.SocketDrops = delta(float64(s0.Drops), float64(s1.Drops))
			v.RxQueue = s1.RxQueue
		}
		v.RcvbufErrors = delta(first.RcvbufErrors, last.RcvbufErrors)
		v.ReasmReqds = delta(first.ReasmReqds, last.ReasmReqds)
		v.ReasmFails = delta(first.ReasmFails, last.ReasmFails)
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
// than one packet.
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
		drops := 0.0
		if v.SocketDrops != nil {
			drops = v.SocketDrops.Change
		}
		if drops > 0 || (v.RcvbufErrors != nil && v.RcvbufErrors.Change > 0) {
			out = append(out, report.Finding{ID: findingUDPRcvbufDrops, Severity: report.Critical,
				Summary: fmt.Sprintf("UDP input %s (%s, port %d): the kernel dropped %.0f datagrams at the socket (%.0f receive-buffer errors in the namespace) during the run",
					v.Input, v.At, v.Port, drops, v.RcvbufErrors.Change),
				Evidence: ev(map[string]any{"socket_drops": drops, "rcvbuf_errors": v.RcvbufErrors.Change, "rx_queue_bytes": v.RxQueue}),
				Remedy: "The shipper does not read the socket fast enough: raise the socket's receive buffer (net.core.rmem_max and the input's " +
					"receive_buffer_size / Fluent Bit's Buffer_Size), add workers, or ship over TCP."})
		}
		if v.ReasmReqds != nil && v.ReasmReqds.Change > 0 && v.MaxPayload > 0 && v.Limit > int64(v.MaxPayload) {
			out = append(out, report.Finding{ID: findingUDPFragmented, Severity: report.Warning,
				Summary: fmt.Sprintf("UDP input %s (%s) accepts %d-byte messages and fragmented datagrams are arriving in its namespace (%.0f fragments to reassemble, %.0f failed, during the run) over %s with MTU %d (unfragmented up to %d bytes)",
					v.Input, v.At, v.Limit, v.ReasmReqds.Change, v.ReasmFails.Change, v.Interface, v.MTU, v.MaxPayload),
				Evidence: ev(map[string]any{"reassembly_fragments": v.ReasmReqds.Change, "reassembly_failures": v.ReasmFails.Change}),
				Remedy: fmt.Sprintf("Keep every message at or under %d bytes at the sender, or ship over TCP: a load balancer or firewall that "+
					"hashes on ports drops the fragments that carry none, and exactly the big messages vanish (check the path with `logdoctor udp-frag`).", v.MaxPayload)})
		}
	}
	return out
}
