// Package pcaptest builds the network of "big UDP messages missing"
// (docs/troubleshooting.md) for tests: a sender, a
// forwarding "balancer" and a receiver in their own network namespaces,
// joined by veth pairs at MTU 1460, with an optional nftables rule on the
// balancer that drops non-first fragments as a 5-tuple load balancer does.
package pcaptest

import (
	"net"
	"testing"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

// Addresses inside the test's own namespaces.
const (
	Sender4   = "10.77.1.2"
	Receiver4 = "10.77.2.2"
	Sender6   = "fd77:1::2"
	Receiver6 = "fd77:2::2"
	MTU       = 1460
)

// SeedSizes are the payload sizes of that experiment.
var SeedSizes = []int{1400, 1432, 1440, 2000, 2312}

// Labnet is the three-namespace path.
type Labnet struct {
	Sender, Balancer, Receiver *testenv.Netns
}

// New builds the path; the receiver gives up on missing fragments after
// 1 s (ipfrag_time), so the kernel's ReasmTimeout moves within a test.
// With listenPort > 0 a UDP socket listens there in the receiver, as
// Fluentd's in_udp would, so nothing answers "port unreachable".
func New(t *testing.T, listenPort int) *Labnet {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nft", "sysctl")
	l := &Labnet{Sender: testenv.NewNetns(t), Balancer: testenv.NewNetns(t), Receiver: testenv.NewNetns(t)}
	testenv.Veth(t, l.Sender, "eth0", "10.77.1.2/24", l.Balancer, "eth0", "10.77.1.1/24", MTU)
	testenv.Veth(t, l.Balancer, "eth1", "10.77.2.1/24", l.Receiver, "eth0", "10.77.2.2/24", MTU)
	l.Sender.Run(t, "ip", "-6", "addr", "add", "fd77:1::2/64", "dev", "eth0", "nodad")
	l.Balancer.Run(t, "ip", "-6", "addr", "add", "fd77:1::1/64", "dev", "eth0", "nodad")
	l.Balancer.Run(t, "ip", "-6", "addr", "add", "fd77:2::1/64", "dev", "eth1", "nodad")
	l.Receiver.Run(t, "ip", "-6", "addr", "add", "fd77:2::2/64", "dev", "eth0", "nodad")
	l.Balancer.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.Balancer.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	l.Sender.Run(t, "ip", "route", "add", "default", "via", "10.77.1.1")
	l.Sender.Run(t, "ip", "-6", "route", "add", "default", "via", "fd77:1::1")
	l.Receiver.Run(t, "ip", "route", "add", "default", "via", "10.77.2.1")
	l.Receiver.Run(t, "ip", "-6", "route", "add", "default", "via", "fd77:2::1")
	l.Receiver.Run(t, "sysctl", "-qw", "net.ipv4.ipfrag_time=1")
	l.Receiver.Run(t, "sysctl", "-qw", "net.ipv6.ip6frag_time=1")
	if listenPort > 0 {
		err := l.Receiver.Do(func() error {
			c, err := net.ListenUDP("udp", &net.UDPAddr{Port: listenPort})
			if err == nil {
				t.Cleanup(func() { c.Close() })
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// DropLaterFragments makes the balancer drop non-first IPv4 and IPv6
// fragments, which carry no ports.
func (l *Labnet) DropLaterFragments(t *testing.T) {
	t.Helper()
	l.Balancer.Run(t, "nft", "add table inet lb; add chain inet lb filt { type filter hook forward priority 0; }; "+
		"add rule inet lb filt ip frag-off & 0x1fff != 0 drop; add rule inet lb filt frag frag-off != 0 drop")
}
