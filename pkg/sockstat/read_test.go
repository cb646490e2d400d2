package sockstat

import (
	"net"
	"net/netip"
	"testing"
)

// A real loopback connection appears in /proc/net/tcp with both ends, and
// Find locates each end by its endpoints, as the forward probe does to read
// its own Send-Q.
func TestReadTCPFindsLiveConnection(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.31.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()

	socks, src, err := ReadTCP("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Read) == 0 || src.Read[0].Path != "/proc/net/tcp" {
		t.Fatalf("sources: %+v", src)
	}
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	cs, ok := Find(socks, local, remote)
	if !ok {
		t.Fatalf("client socket %v -> %v not found among %d", local, remote, len(socks))
	}
	if cs.State != Established || cs.State.String() != "ESTABLISHED" || cs.Inode == 0 {
		t.Fatalf("client socket: %+v", cs)
	}
	ss, ok := Find(socks, remote, local)
	if !ok || ss.State != Established {
		t.Fatalf("server socket: %+v %v", ss, ok)
	}
	lp := ln.Addr().(*net.TCPAddr).AddrPort()
	ls, ok := Find(socks, lp, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	if !ok || ls.State != Listen {
		t.Fatalf("listener: %+v %v", ls, ok)
	}
	// An IPv4-mapped form of the same endpoints finds the same socket.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(local.Addr().As16()), local.Port())
	if s2, ok := Find(socks, mapped, remote); !ok || s2 != cs {
		t.Fatalf("mapped lookup: %+v %v", s2, ok)
	}
}
