package testenv

import (
	"net/netip"
	"testing"
)

// FreeAddr hands out ports of its range that every bind takes, and none
// that one of them refuses: a port bound for UDP only, or for TCP only,
// is not free for both, and is free again once closed.
func TestFreeAddr(t *testing.T) {
	lo := func() string { return "127.0.0.1" }
	seen := map[uint16]bool{}
	for range 20 {
		addr, ok := FreeAddr(lo, 10000, 10000, BindTCP, BindUDP)
		if !ok {
			t.Fatal("no free address")
		}
		port := netip.MustParseAddrPort(addr).Port()
		if port < 10000 || port >= 20000 {
			t.Fatalf("%s outside 10000-19999", addr)
		}
		seen[port] = true
	}
	if len(seen) < 2 {
		t.Fatalf("the same port every time: %v", seen)
	}
	addr, _ := FreeAddr(lo, 10000, 10000, BindTCP, BindUDP)
	port := int(netip.MustParseAddrPort(addr).Port())
	for _, b := range []struct {
		proto string
		bind  Bind
	}{{"UDP", BindUDP}, {"TCP", BindTCP}} {
		c, err := b.bind(addr)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := FreeAddr(lo, port, 1, BindTCP, BindUDP); ok {
			t.Fatalf("%s handed out while bound for %s", got, b.proto)
		}
		c.Close()
	}
	if got, ok := FreeAddr(lo, port, 1, BindTCP, BindUDP); !ok || got != addr {
		t.Fatalf("%s not free once closed: %q %v", addr, got, ok)
	}
}
