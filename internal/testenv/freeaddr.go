package testenv

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
)

// Bind takes an address the way a command under test will, and gives it
// back on Close.
type Bind func(addr string) (io.Closer, error)

// BindTCP listens on a TCP address; BindUDP binds a UDP one.
var (
	BindTCP Bind = func(addr string) (io.Closer, error) { return net.Listen("tcp", addr) }
	BindUDP Bind = func(addr string) (io.Closer, error) { return net.ListenPacket("udp", addr) }
)

// FreeAddr returns host():port with a port of [lo, lo+n) that every bind
// accepts right now, tried at random up to 200 times, for a command under
// test to bind after FreeAddr let go of it. Take ports below the kernel's
// ephemeral range (ip_local_port_range, 32768-60999 by default): in that
// window no socket bound to port 0 and no outgoing connection can take
// them, as one did in CI to a port taken with ":0".
func FreeAddr(host func() string, lo, n int, binds ...Bind) (string, bool) {
	for range 200 {
		addr := fmt.Sprintf("%s:%d", host(), lo+rand.IntN(n))
		if bindAll(addr, binds) {
			return addr, true
		}
	}
	return "", false
}

// bindAll holds every bind of addr at once, and lets them all go.
func bindAll(addr string, binds []Bind) bool {
	for _, bind := range binds {
		c, err := bind(addr)
		if err != nil {
			return false
		}
		defer c.Close()
	}
	return true
}
