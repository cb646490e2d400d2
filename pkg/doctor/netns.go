package doctor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/logdoctor/logdoctor/internal/netns"
)

// How doctor reaches addresses the shipper's configuration names.
const (
	// ReachSame: the shipper shares logdoctor's network namespace.
	ReachSame = "same network namespace"
	// ReachEntered: logdoctor enters the shipper's namespace (setns) for
	// each connection, so 127.0.0.1 is the shipper's own loopback.
	ReachEntered = "entered the shipper's network namespace"
	// ReachLoopback: logdoctor may not enter the namespace and dials from
	// its own; a port the shipper's container publishes on this host's
	// loopback is reached, nothing else that is private to the shipper.
	ReachLoopback = "from logdoctor's own namespace (published ports only)"
)

// Net is the shipper's network namespace as logdoctor reaches it.
type Net struct {
	Path  string `json:"path"`          // /proc/PID/ns/net
	ID    string `json:"id,omitempty"`  // net:[4026532...]
	Reach string `json:"reach"`         // one of the Reach* values
	Why   string `json:"why,omitempty"` // why it could not enter
	pid   int
	mu    sync.Mutex
	mine  map[netip.AddrPort]bool // local ends of doctor's own connections
	dial  net.Dialer
}

// OpenNet decides how to reach pid's namespace: the same as logdoctor's,
// entered with setns (CAP_SYS_ADMIN), or only through ports published on
// this host.
func OpenNet(procRoot string, pid int) *Net {
	n := &Net{Path: filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"), pid: pid, mine: map[netip.AddrPort]bool{}}
	n.ID, _ = os.Readlink(n.Path)
	self, _ := os.Readlink(filepath.Join(procRoot, "self", "ns", "net"))
	if n.ID != "" && n.ID == self {
		n.Reach = ReachSame
		return n
	}
	if err := netns.Run(n.Path, func() error { return nil }); err != nil {
		n.Reach, n.Why = ReachLoopback, err.Error()
		return n
	}
	n.Reach = ReachEntered
	return n
}

// Entered reports whether connections are opened inside the namespace.
func (n *Net) Entered() bool { return n.Reach == ReachEntered }

// Inside reports whether addresses are reached as the shipper reaches
// them (its namespace or the same one).
func (n *Net) Inside() bool { return n.Reach != ReachLoopback }

// DialContext opens a connection the way the shipper would: inside its
// network namespace when doctor may enter it. Names are resolved first,
// here, so the connection is made to one address from a thread in the
// namespace (Go's dual-stack racing would dial from other threads).
func (n *Net) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if !n.Entered() {
		return n.record(n.dial.DialContext(ctx, network, addr))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips := []string{host}
	if _, err := netip.ParseAddr(host); err != nil {
		if ips, err = net.DefaultResolver.LookupHost(ctx, host); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for _, ip := range ips {
		var c net.Conn
		err := netns.Run(n.Path, func() error {
			var err error
			c, err = n.dial.DialContext(ctx, network, net.JoinHostPort(ip, port))
			return err
		})
		if err == nil {
			return n.record(c, nil)
		}
		lastErr = err
	}
	return nil, lastErr
}

// record remembers the local end of a connection doctor opened, so the
// shipper's socket view leaves it out (its TIME_WAIT outlives it).
func (n *Net) record(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	if ta, ok := c.LocalAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		n.mu.Lock()
		n.mine[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
		n.mu.Unlock()
	}
	return c, nil
}

// Mine reports whether local is the local end of a connection doctor
// opened.
func (n *Net) Mine(local netip.AddrPort) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mine[local]
}

// Interface is one network interface of the namespace.
type Interface struct {
	Name string `json:"name"`
	MTU  int    `json:"mtu"`
	Up   bool   `json:"up"`
}

// Interfaces lists the namespace's interfaces (through a netlink socket
// opened inside it).
func (n *Net) Interfaces() ([]Interface, error) {
	var list []net.Interface
	get := func() error {
		var err error
		list, err = net.Interfaces()
		return err
	}
	var err error
	switch n.Reach {
	case ReachSame:
		err = get()
	case ReachEntered:
		err = netns.Run(n.Path, get)
	default:
		return nil, fmt.Errorf("cannot read the interfaces of another network namespace without entering it (%s)", n.Why)
	}
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(list))
	for _, i := range list {
		if i.Flags&net.FlagLoopback != 0 {
			continue
		}
		out = append(out, Interface{Name: i.Name, MTU: i.MTU, Up: i.Flags&net.FlagUp != 0})
	}
	return out, nil
}
