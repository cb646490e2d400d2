package shippertest

import (
	"fmt"
	"net"
	"testing"
)

// FreePort's ports lie below the ephemeral range and the cli tests' own,
// and are free for both TCP and UDP: in_forward binds both.
func TestFreePort(t *testing.T) {
	for range 20 {
		port := FreePort(t)
		if port < 10000 || port >= 20000 {
			t.Fatalf("port %d outside 10000-19999", port)
		}
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
}
