package udpfrag

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/prometheus/procfs"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// KernelSnapshot is the kernel's own count of reassembly and UDP receive
// trouble at one moment, in the network namespace of the process reading
// procRoot/self/net.
type KernelSnapshot struct {
	Counters map[string]float64
	Sockets  map[uint64]SocketDrops // by inode
	Errors   []string
}

// SocketDrops is one UDP socket bound to a watched port.
type SocketDrops struct {
	Local      string `json:"local"`
	Inode      uint64 `json:"inode"`
	Drops      uint64 `json:"drops"`       // since the socket was created
	DropsDelta uint64 `json:"drops_delta"` // during the run
	RxQueue    uint64 `json:"rx_queue"`
}

// KernelDelta is what changed in the kernel counters over a run.
type KernelDelta struct {
	Counters map[string]int64 `json:"counters"` // e.g. "Ip.ReasmFails": 3
	Sockets  []SocketDrops    `json:"sockets"`
	Errors   []string         `json:"errors,omitempty"`
}

// counterNames are the counters the report shows, in order.
var counterNames = []string{
	"Ip.ReasmOKs", "Ip.ReasmFails", "Ip.ReasmTimeout",
	"Ip6.ReasmOKs", "Ip6.ReasmFails", "Ip6.ReasmTimeout",
	"Udp.InErrors", "Udp.RcvbufErrors", "Udp.NoPorts",
	"Udp6.InErrors", "Udp6.RcvbufErrors", "Udp6.NoPorts",
}

// ReadKernel reads /proc/self/net/snmp, snmp6, udp and udp6 under procRoot
// (normally /proc); sockets only for the given ports, none without. Files that cannot be read are noted in Errors, not
// fatal: a container may hide some of them.
func ReadKernel(procRoot string, ports []uint16) (*KernelSnapshot, error) {
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, fmt.Errorf("open proc filesystem %s: %w", procRoot, err)
	}
	self, err := pfs.Self()
	if err != nil {
		return nil, fmt.Errorf("read %s/self: %w", procRoot, err)
	}
	return readKernel(self, pfs, ports), nil
}

// ReadKernelOf is ReadKernel in the network namespace of process pid
// (procRoot/PID/net): a shipper's, read from the host or a debug
// container without entering it.
func ReadKernelOf(procRoot string, pid int, ports []uint16) (*KernelSnapshot, error) {
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, fmt.Errorf("open proc filesystem %s: %w", procRoot, err)
	}
	p, err := pfs.Proc(pid)
	if err != nil {
		return nil, fmt.Errorf("read %s/%d: %w", procRoot, pid, err)
	}
	nfs, err := procfs.NewFS(filepath.Join(procRoot, strconv.Itoa(pid)))
	if err != nil {
		return nil, fmt.Errorf("open %s/%d: %w", procRoot, pid, err)
	}
	return readKernel(p, nfs, ports), nil
}

// readKernel reads p's net/snmp and snmp6, and the UDP sockets of the
// namespace whose net/ directory netFS holds.
func readKernel(p procfs.Proc, netFS procfs.FS, ports []uint16) *KernelSnapshot {
	s := &KernelSnapshot{Counters: map[string]float64{}, Sockets: map[uint64]SocketDrops{}}
	set := func(name string, v *float64) {
		if v != nil {
			s.Counters[name] = *v
		}
	}
	if sn, err := p.Snmp(); err == nil {
		set("Ip.ReasmOKs", sn.Ip.ReasmOKs)
		set("Ip.ReasmFails", sn.Ip.ReasmFails)
		set("Ip.ReasmTimeout", sn.Ip.ReasmTimeout)
		set("Udp.InErrors", sn.Udp.InErrors)
		set("Udp.RcvbufErrors", sn.Udp.RcvbufErrors)
		set("Udp.NoPorts", sn.Udp.NoPorts)
	} else {
		s.Errors = append(s.Errors, fmt.Sprintf("snmp: %v", err))
	}
	if sn, err := p.Snmp6(); err == nil {
		set("Ip6.ReasmOKs", sn.Ip6.ReasmOKs)
		set("Ip6.ReasmFails", sn.Ip6.ReasmFails)
		set("Ip6.ReasmTimeout", sn.Ip6.ReasmTimeout)
		set("Udp6.InErrors", sn.Udp6.InErrors)
		set("Udp6.RcvbufErrors", sn.Udp6.RcvbufErrors)
		set("Udp6.NoPorts", sn.Udp6.NoPorts)
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.Errors = append(s.Errors, fmt.Sprintf("snmp6: %v", err))
	}
	want := map[uint64]bool{}
	for _, p := range ports {
		want[uint64(p)] = true
	}
	if len(ports) == 0 {
		// no port to watch (--send): every socket's history would only be noise
		return s
	}
	for _, read := range []func() (procfs.NetUDP, error){netFS.NetUDP, netFS.NetUDP6} {
		lines, err := read()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.Errors = append(s.Errors, fmt.Sprintf("udp sockets: %v", err))
			}
			continue
		}
		for _, l := range lines {
			if !want[l.LocalPort] {
				continue
			}
			d := SocketDrops{Local: net.JoinHostPort(l.LocalAddr.String(), strconv.FormatUint(l.LocalPort, 10)), Inode: l.Inode, RxQueue: l.RxQueue}
			if l.Drops != nil {
				d.Drops = *l.Drops
			}
			s.Sockets[l.Inode] = d
		}
	}
	return s
}

// Delta is later minus s.
func (s *KernelSnapshot) Delta(later *KernelSnapshot) *KernelDelta {
	d := &KernelDelta{Counters: map[string]int64{}, Sockets: []SocketDrops{}}
	for _, n := range counterNames {
		b, ok1 := s.Counters[n]
		e, ok2 := later.Counters[n]
		if ok1 && ok2 {
			d.Counters[n] = int64(e - b)
		}
	}
	for ino, sock := range later.Sockets {
		if before, ok := s.Sockets[ino]; ok && sock.Drops >= before.Drops {
			sock.DropsDelta = sock.Drops - before.Drops
		} else if !ok {
			sock.DropsDelta = sock.Drops // created during the run
		}
		d.Sockets = append(d.Sockets, sock)
	}
	sort.Slice(d.Sockets, func(i, j int) bool { return d.Sockets[i].Local < d.Sockets[j].Local })
	d.Errors = append(append(d.Errors, s.Errors...), later.Errors...)
	return d
}

// RcvbufDrops adds the receive-buffer drops seen during the run.
func (d *KernelDelta) RcvbufDrops() (counter int64, sockets uint64) {
	counter = d.Counters["Udp.RcvbufErrors"] + d.Counters["Udp6.RcvbufErrors"]
	for _, s := range d.Sockets {
		sockets += s.DropsDelta
	}
	return counter, sockets
}

// Section is the table view of the counters.
func (d *KernelDelta) Section() report.Section {
	sec := report.Section{Title: "Kernel counters (change during the run)", Header: []string{"counter", "delta"}}
	for _, n := range counterNames {
		if v, ok := d.Counters[n]; ok {
			sec.Rows = append(sec.Rows, []string{n, strconv.FormatInt(v, 10)})
		}
	}
	for _, s := range d.Sockets {
		sec.Lines = append(sec.Lines, fmt.Sprintf("socket %s: drops %d (during run %d), rx queue %d", s.Local, s.Drops, s.DropsDelta, s.RxQueue))
	}
	for _, e := range d.Errors {
		sec.Lines = append(sec.Lines, "unreadable: "+e)
	}
	return sec
}
