package sockdiag

import (
	"cmp"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logdoctor/logdoctor/internal/sockettest"
	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

var record = flag.Bool("record", false, "rewrite testdata/dump/*.bin from the live namespace of TestNetlinkAgreesWithProc")

// stateZoo builds, inside ns, a socket in every TCP state loopback can
// hold still: ESTABLISHED with bytes in Send-Q and Recv-Q, LISTEN,
// CLOSE_WAIT and FIN_WAIT2, TIME_WAIT, SYN_SENT, SYN_RECV, FIN_WAIT1 and
// LAST_ACK (the last four held by nftables dropping one packet kind), over
// IPv4, IPv6 and a dual-stack listener. CLOSING needs a simultaneous close
// and is left out.
func stateZoo(t *testing.T, ns *testenv.Netns) {
	t.Helper()
	testenv.RequireCommands(t, "nft")
	var synPort, synRecvPort, fw1Port, lastAckPort int
	var listeners map[*int]net.Listener
	mk := sockettest.For(t)
	if err := ns.Do(func() error {
		for _, p := range []struct {
			server, client string
			n              int
			make           func(server, client string, n int) (sockettest.Set, error)
		}{
			{"127.0.0.1", "127.0.0.2", 2, mk.Established},
			{"::1", "::1", 1, mk.Established},
			{"127.0.0.3", "127.0.0.4", 2, mk.CloseWait},
			{"127.0.0.5", "127.0.0.6", 2, mk.TimeWait},
		} {
			if _, err := p.make(p.server, p.client, p.n); err != nil {
				return err
			}
		}
		if _, _, err := mk.SendQ("127.0.0.7", "127.0.0.8"); err != nil {
			return err
		}
		// A dual-stack listener: IPv4 clients show as IPv4 in tcp6.
		ln, err := net.Listen("tcp", "[::]:0")
		if err != nil {
			return err
		}
		t.Cleanup(func() { ln.Close() })
		if _, err := mk.Dial("127.0.0.9", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 10), Port: ln.Addr().(*net.TCPAddr).Port}); err != nil {
			return err
		}
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		t.Cleanup(func() { c.Close() })
		listeners = map[*int]net.Listener{}
		for _, p := range []*int{&synPort, &synRecvPort, &fw1Port, &lastAckPort} {
			l, err := mk.Listen("127.0.1.1")
			if err != nil {
				return err
			}
			*p = l.Addr().(*net.TCPAddr).Port
			listeners[p] = l
		}
		listeners[&synPort].Close() // nothing answers: the SYN is dropped anyway
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "add table inet ld; add chain inet ld out { type filter hook output priority 0; }; "+
		fmt.Sprintf("add rule inet ld out tcp dport %d drop; ", synPort)+
		// The client's handshake ACK never arrives: the server keeps a
		// request socket in SYN_RECV.
		fmt.Sprintf("add rule inet ld out tcp dport %d tcp flags & (syn|ack) == ack drop; ", synRecvPort)+
		// The client's FIN never arrives: FIN_WAIT1.
		fmt.Sprintf("add rule inet ld out tcp dport %d tcp flags & fin == fin drop; ", fw1Port)+
		// The server's FIN never arrives: LAST_ACK.
		fmt.Sprintf("add rule inet ld out tcp sport %d tcp flags & fin == fin drop", lastAckPort))
	if err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: synPort, Addr: [4]byte{127, 0, 1, 1}}); !errors.Is(err, unix.EINPROGRESS) {
			return fmt.Errorf("connect: %v, want EINPROGRESS", err)
		}
		dst := &net.TCPAddr{IP: net.IPv4(127, 0, 1, 1)}
		dst.Port = synRecvPort
		if _, err := mk.Dial("127.0.1.2", dst); err != nil {
			return err
		}
		dst.Port = fw1Port
		c, err := mk.Dial("127.0.1.3", dst)
		if err != nil {
			return err
		}
		if _, err := mk.Accept(listeners[&fw1Port]); err != nil { // held open until the test ends
			return err
		}
		c.Close()
		dst.Port = lastAckPort
		if c, err = mk.Dial("127.0.1.4", dst); err != nil {
			return err
		}
		srv, err := mk.Accept(listeners[&lastAckPort])
		if err != nil {
			return err
		}
		c.Close()
		if err := mk.WaitEOF(srv); err != nil {
			return err
		}
		srv.Close()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func sortSockets(s []sockstat.Socket) {
	slices.SortFunc(s, func(a, b sockstat.Socket) int {
		return cmp.Or(a.Local.Compare(b.Local), a.Remote.Compare(b.Remote), cmp.Compare(a.State, b.State))
	})
}

// diffSockets compares the fields both sources carry. Request sockets
// (SYN_RECV) are the one exception on the owner: /proc shows the
// listener's uid, sock_diag 0.
func diffSockets(nl, proc []sockstat.Socket) string {
	sortSockets(nl)
	sortSockets(proc)
	if len(nl) != len(proc) {
		return fmt.Sprintf("netlink %d sockets, /proc %d:\nnetlink %v\n/proc   %v", len(nl), len(proc), brief(nl), brief(proc))
	}
	for i := range nl {
		a, b := nl[i], proc[i]
		if a.State == sockstat.SynRecv {
			a.UID = b.UID
		}
		a.TCP = nil
		if a != b {
			return fmt.Sprintf("socket %d: netlink %+v, /proc %+v", i, a, b)
		}
	}
	return ""
}

func brief(s []sockstat.Socket) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = fmt.Sprintf("%s>%s %s", x.Local, x.Remote, x.State)
	}
	return out
}

// TestNetlinkAgreesWithProc holds the netlink view to the /proc view of
// the same namespace socket for socket: addresses, ports, states, queues,
// inodes and owners, in every state the zoo holds.
func TestNetlinkAgreesWithProc(t *testing.T) {
	ns, c := zooConn(t)

	want := map[sockstat.State]bool{}
	for _, s := range []sockstat.State{sockstat.Established, sockstat.Listen, sockstat.CloseWait, sockstat.FinWait2,
		sockstat.TimeWait, sockstat.SynSent, sockstat.SynRecv, sockstat.FinWait1, sockstat.LastAck} {
		want[s] = true
	}
	var diff string
	var d *Dump
	deadline := time.Now().Add(10 * time.Second)
	for {
		var proc []sockstat.Socket
		var err error
		d, err = c.Dump(AllStates, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := ns.Do(func() (err error) {
			proc, _, err = sockstat.ReadTCP("/proc/thread-self")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		seen := map[sockstat.State]bool{}
		for _, s := range d.Sockets {
			seen[s.State] = true
		}
		diff = diffSockets(slices.Clone(d.Sockets), proc)
		if diff == "" && fmt.Sprint(seen) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("states %v, want %v; %s", seen, want, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
	src := d.Source
	if src.Namespace != "/run/netns/"+ns.Name || src.Sockets != len(d.Sockets) || src.IPv4 == 0 || src.IPv6 == 0 ||
		src.Malformed != 0 || src.IPv4+src.IPv6 != src.Sockets {
		t.Errorf("source %+v", src)
	}
	// tcp_info comes with every full socket but listeners: not with
	// TIME_WAIT or request sockets, nor with an orphaned FIN_WAIT2 (closed
	// by its owner, so inode 0), which the kernel keeps as a TIME_WAIT
	// mini-socket.
	withInfo := 0
	for _, s := range d.Sockets {
		has := s.TCP != nil
		wantInfo := s.State != sockstat.Listen && s.State != sockstat.TimeWait && s.State != sockstat.SynRecv &&
			(s.State != sockstat.FinWait2 || s.Inode != 0)
		if has != wantInfo {
			t.Errorf("%s>%s %s: tcp_info %v", s.Local, s.Remote, s.State, has)
		}
		if has {
			withInfo++
		}
		if s.State == sockstat.SynSent && (s.TCP.Unacked != 1 || s.TCP.Timer != sockstat.TimerRetransmit) {
			t.Errorf("SYN_SENT: %+v", s.TCP)
		}
		if s.State == sockstat.Established && s.SendQ == 0 && s.TCP.RTT == 0 {
			t.Errorf("ESTABLISHED without an RTT: %+v", s.TCP)
		}
	}
	if src.TCPInfo != withInfo {
		t.Errorf("tcp_info count %d, counted %d", src.TCPInfo, withInfo)
	}

	// The kernel-side filter: only the states asked for come back.
	only, err := c.Dump(StateMask(sockstat.CloseWait, sockstat.Listen), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got sockstat.StateCounts
	for _, s := range only.Sockets {
		got[s.State]++
		if s.TCP != nil {
			t.Errorf("tcp_info not asked for: %+v", s)
		}
	}
	// 2 CLOSE_WAIT; 9 listeners (5 helper sets, the dual-stack one, 3 of
	// the nftables ones).
	if got.Total() != got[sockstat.CloseWait]+got[sockstat.Listen] || got[sockstat.CloseWait] != 2 || got[sockstat.Listen] != 9 {
		t.Errorf("state filter: %v", got)
	}

	if *record {
		recordDumps(t, c)
	}
}

// recordDumps writes the raw reply of each family's dump to testdata/dump
// for the parser tests and the fuzz seed corpus.
func recordDumps(t *testing.T, c *Conn) {
	for _, fam := range []struct {
		name string
		af   uint8
	}{{"v4", afInet}, {"v6", afInet6}} {
		var raw []byte
		err := c.walk(Request{Family: fam.af, States: AllStates, Info: true}, func(b []byte) (bool, error) {
			raw = append(raw, b...)
			return NewDump(0).ParseDump(b)
		})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "dump", "zoo-"+fam.name+".bin")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s (%d bytes)", path, len(raw))
	}
}

func appendMsg(b []byte, typ, flags uint16, payload []byte) []byte {
	l := nlmsgHdrLen + len(payload)
	b = binary.NativeEndian.AppendUint32(b, uint32(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, 1)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Without CAP_SYS_ADMIN, entering another namespace fails with a
// permission error the caller can tell apart, and the calling thread is
// back in its own namespace.
func TestDialNetnsWithoutPrivilege(t *testing.T) {
	testenv.RequireLinux(t)
	if os.Geteuid() == 0 {
		t.Skip("covered by internal/cli's --pid tests, which drop CAP_SYS_ADMIN from a child")
	}
	_, err := DialNetns("/proc/1/ns/net")
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("err %v, want a permission error", err)
	}
}

func TestDialNetnsMissing(t *testing.T) {
	_, err := DialNetns("/nonexistent/ns/net")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err %v", err)
	}
}

// A dump of this process's own namespace sees a socket the test opens.
func TestDialSelf(t *testing.T) {
	testenv.RequireLinux(t)
	set := sockettest.Established(t, "127.43.0.1", "127.43.0.2", 1)
	c, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.Dump(StateMask(sockstat.Established), true, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, s := range d.Sockets {
		if s.Remote == set.Server || s.Local == set.Server {
			found++
			if s.TCP == nil || s.Inode == 0 || s.UID != uint32(os.Geteuid()) {
				t.Errorf("socket %+v", s)
			}
		}
	}
	if found != 2 || d.Source.Namespace != "self" {
		t.Errorf("found %d ends of %s in %s", found, set.Server, d.Source.Namespace)
	}
}

// The one compatibility dump (both families in one walk) returns what the
// two per-family dumps return, which is what a kernel refusing it gets.
func TestCompatDumpAgreesWithPerFamily(t *testing.T) {
	_, c := zooConn(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		one, err := c.Dump(AllStates, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		two, err := c.dumpPerFamily(AllStates, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		if c.perFamily {
			t.Fatal("this kernel refused the compatibility request")
		}
		diff := diffSockets(slices.Clone(one.Sockets), slices.Clone(two.Sockets))
		if diff == "" && one.Source.IPv4 == two.Source.IPv4 && one.Source.IPv6 == two.Source.IPv6 && one.Source.IPv6 > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("compat %+v, per family %+v: %s", one.Source, two.Source, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// AddInfo, by exact lookups (more than one batch of them) and by a second
// dump, gives tcp_info to every socket asked for that is still there, and
// counts as vanished one closed since the census and one whose addresses
// a new connection took over (its cookie differs).
func TestAddInfo(t *testing.T) {
	testenv.RequireLinux(t)
	const server, client = "127.44.0.1", "127.44.0.2"
	sockettest.Established(t, server, client, 20)
	sockettest.SendQ(t, "127.44.0.3", "127.44.0.4")
	c, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ours := func(s sockstat.Socket) bool {
		// ESTABLISHED: a rerun finds the last run's sockets in TIME_WAIT.
		return s.State == sockstat.Established && netip.MustParsePrefix("127.44.0.0/24").Contains(s.Local.Addr())
	}
	for _, byDump := range []bool{false, true} {
		// Two connections to reset after the census; the first is
		// then made again from the same port.
		ln := sockettest.Listen(t, "127.44.0.5")
		var doomed [2]net.Conn
		for i := range doomed {
			doomed[i] = sockettest.Dial(t, "127.44.0.6", ln.Addr())
			if _, err := ln.Accept(); err != nil {
				t.Fatal(err)
			}
		}
		d, err := c.Dump(AllStates, false, 0)
		if err != nil {
			t.Fatal(err)
		}
		var idx []int
		for i, s := range d.Sockets {
			if s.TCP != nil {
				t.Fatalf("census with tcp_info: %+v", s)
			}
			if ours(s) {
				idx = append(idx, i)
			}
		}
		if len(idx) != 2*20+2+2*2 {
			t.Fatalf("%d of our sockets in the census, want 46", len(idx))
		}
		for _, conn := range doomed {
			_ = conn.(*net.TCPConn).SetLinger(0) // close with a reset: both ends go at once
			conn.Close()
		}
		again := net.Dialer{LocalAddr: doomed[0].LocalAddr()}
		replaced, err := again.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		err = c.addInfo(d, idx, byDump)
		_ = replaced.(*net.TCPConn).SetLinger(0)
		replaced.Close()
		if err != nil {
			t.Fatal(err)
		}
		withInfo := 0
		for _, i := range idx {
			s := d.Sockets[i]
			if s.TCP == nil {
				continue
			}
			withInfo++
			if s.State == sockstat.Established && s.TCP.RTT == 0 {
				t.Errorf("by dump %v: %s>%s without an RTT: %+v", byDump, s.Local, s.Remote, s.TCP)
			}
			if s.Remote.Addr() == netip.MustParseAddr("127.44.0.5") || s.Local.Addr() == netip.MustParseAddr("127.44.0.5") {
				t.Errorf("by dump %v: reset socket %s>%s got tcp_info", byDump, s.Local, s.Remote)
			}
		}
		src := d.Source
		if withInfo != 42 || src.TCPInfo != 42 || src.TCPInfoAsked != 46 || src.TCPInfoVanished != 4 || src.Malformed != 0 {
			t.Errorf("by dump %v: %d with tcp_info, source %+v", byDump, withInfo, src)
		}
		for i, s := range d.Sockets {
			if s.TCP != nil && !slices.Contains(idx, i) {
				t.Errorf("by dump %v: tcp_info for %+v, not asked for", byDump, s)
			}
		}
	}
}

// zooConn is a new namespace holding the state zoo and a sock_diag
// connection into it, closed when the test ends.
func zooConn(t *testing.T) (*testenv.Netns, *Conn) {
	t.Helper()
	testenv.RequireLinux(t)
	ns := testenv.NewNetns(t)
	stateZoo(t, ns)
	c, err := DialNetns("/run/netns/" + ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ns, c
}
