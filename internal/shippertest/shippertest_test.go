package shippertest

import (
	"fmt"
	"io"
	"net"
	"testing"
)

// FreePort's ports lie below the ephemeral range and the cli tests' own,
// and are free for both TCP and UDP: in_forward binds both.
func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		port := FreePort(t)
		if port < 10000 || port >= 20000 {
			t.Fatalf("port %d outside 10000-19999", port)
		}
		seen[port] = true
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		pc.Close()
	}
	if len(seen) < 2 {
		t.Fatalf("the same port every time: %v", seen)
	}
	// A port bound for UDP only, or for TCP only, is not free.
	port := FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, b := range []struct {
		proto string
		bind  func() (io.Closer, error)
	}{
		{"UDP", func() (io.Closer, error) { return net.ListenPacket("udp", addr) }},
		{"TCP", func() (io.Closer, error) { return net.Listen("tcp", addr) }},
	} {
		c, err := b.bind()
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := freePortIn(port, 1); ok {
			t.Fatalf("port %d handed out while bound for %s", p, b.proto)
		}
		c.Close()
	}
	if p, ok := freePortIn(port, 1); !ok || p != port {
		t.Fatalf("port %d not free once closed: %d %v", port, p, ok)
	}
}
