package exporter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/udpfrag"
)

// UDPConfig configures the UDP source.
type UDPConfig struct {
	// Shipper labels the namespace read, like SocketsConfig.Shipper.
	Shipper  string
	ProcRoot string
	// PID reads that process's network namespace (0: this process's).
	PID int
	// Ports are the UDP ports whose sockets' drops are exported per port
	// (the shipper's UDP inputs); none exports the host-wide counters only.
	Ports []uint16
}

// UDP is the source of the kernel's UDP and reassembly counters
// (/proc/net/snmp, snmp6) and of the drops of the sockets bound to the
// watched ports (/proc/net/udp, udp6), read through pkg/udpfrag.
type UDP struct {
	c        UDPConfig
	portErrs *prometheus.Desc
	portQ    *prometheus.Desc
	portSock *prometheus.Desc
	kernel   *prometheus.Desc
	reasm    *prometheus.Desc
}

// NewUDP returns the UDP source.
func NewUDP(c UDPConfig) *UDP {
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	c.Ports = slices.Clone(c.Ports)
	slices.Sort(c.Ports)
	c.Ports = slices.Compact(c.Ports)
	return &UDP{c: c,
		portErrs: prometheus.NewDesc("logdoctor_udp_receive_buffer_errors_total",
			"Datagrams the kernel dropped on the sockets bound to the port (their drops column: mostly a full receive buffer). "+
				"Counted per socket since it was opened: a restarted receiver starts again from 0.",
			[]string{"shipper", "port"}, nil),
		portQ: prometheus.NewDesc("logdoctor_udp_receive_queue_bytes",
			"Bytes waiting in the receive queues of the sockets bound to the port.",
			[]string{"shipper", "port"}, nil),
		portSock: prometheus.NewDesc("logdoctor_udp_sockets",
			"UDP sockets bound to the port; 0 means nothing listens there.",
			[]string{"shipper", "port"}, nil),
		kernel: prometheus.NewDesc("logdoctor_kernel_udp_errors_total",
			"The network namespace's UDP error counters (/proc/net/snmp Udp and snmp6 Udp6): kind receive_buffer (RcvbufErrors), "+
				"in (InErrors, receive_buffer included) and no_port (NoPorts).",
			[]string{"shipper", "ip", "kind"}, nil),
		reasm: prometheus.NewDesc("logdoctor_kernel_ip_reassembly_total",
			"IP fragment reassemblies (/proc/net/snmp Ip and snmp6 Ip6 Reasm*): result ok, failed, or timeout (a part of failed). "+
				"Failures with big UDP datagrams mean lost fragments.",
			[]string{"shipper", "ip", "result"}, nil),
	}
}

func (u *UDP) Name() string   { return "udp" }
func (u *UDP) Target() string { return u.c.Shipper }

func (u *UDP) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{u.portErrs, u.portQ, u.portSock, u.kernel, u.reasm} {
		ch <- d
	}
}

// errNoCounters: neither snmp file could be read.
var errNoCounters = errors.New("no UDP counters readable")

func (u *UDP) Collect(ctx context.Context) (*Sample, error) {
	read := udpfrag.ReadKernel
	if u.c.PID > 0 {
		read = func(procRoot string, ports []uint16) (*udpfrag.KernelSnapshot, error) {
			return udpfrag.ReadKernelOf(procRoot, u.c.PID, ports)
		}
	}
	snap, err := read(u.c.ProcRoot, u.c.Ports)
	if err != nil {
		return nil, err
	}
	if len(snap.Counters) == 0 {
		return nil, fmt.Errorf("%w: %s", errNoCounters, strings.Join(snap.Errors, "; "))
	}
	sh := u.c.Shipper
	out := &Sample{}
	add := func(d *prometheus.Desc, vt prometheus.ValueType, v float64, labels ...string) {
		out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(d, vt, v, append([]string{sh}, labels...)...))
	}
	for _, fam := range []struct{ ip, ipName, udpName string }{{"4", "Ip", "Udp"}, {"6", "Ip6", "Udp6"}} {
		for _, k := range []struct{ kind, counter string }{{"receive_buffer", "RcvbufErrors"}, {"in", "InErrors"}, {"no_port", "NoPorts"}} {
			if v, ok := snap.Counters[fam.udpName+"."+k.counter]; ok {
				add(u.kernel, prometheus.CounterValue, v, fam.ip, k.kind)
			}
		}
		for _, r := range []struct{ result, counter string }{{"ok", "ReasmOKs"}, {"failed", "ReasmFails"}, {"timeout", "ReasmTimeout"}} {
			if v, ok := snap.Counters[fam.ipName+"."+r.counter]; ok {
				add(u.reasm, prometheus.CounterValue, v, fam.ip, r.result)
			}
		}
	}
	type portSum struct {
		drops, queue uint64
		n            int
	}
	sums := map[uint16]*portSum{}
	for _, p := range u.c.Ports {
		sums[p] = &portSum{}
	}
	for _, s := range snap.Sockets {
		p, err := localPort(s.Local)
		if err != nil {
			continue
		}
		if ps := sums[p]; ps != nil {
			ps.drops += s.Drops
			ps.queue += s.RxQueue
			ps.n++
		}
	}
	for _, p := range u.c.Ports {
		ps, port := sums[p], strconv.Itoa(int(p))
		add(u.portSock, prometheus.GaugeValue, float64(ps.n), port)
		if ps.n == 0 {
			continue // no socket: no counter to report, rather than a fake 0
		}
		add(u.portErrs, prometheus.CounterValue, float64(ps.drops), port)
		add(u.portQ, prometheus.GaugeValue, float64(ps.queue), port)
	}
	return out, ctx.Err()
}

func localPort(hostPort string) (uint16, error) {
	i := strings.LastIndexByte(hostPort, ':')
	n, err := strconv.ParseUint(hostPort[i+1:], 10, 16)
	return uint16(n), err
}
