package testenv

import (
	"net"
	"testing"
	"time"
)

// Two namespaces joined by veth: a UDP datagram sent from one (socket made
// with Do) arrives at a listener made in the other.
func TestNetnsVethDo(t *testing.T) {
	a, b := NewNetns(t), NewNetns(t)
	Veth(t, a, "eth0", "10.231.0.1/24", b, "eth0", "10.231.0.2/24", 1460)

	var ln *net.UDPConn
	if err := b.Do(func() (err error) {
		ln, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.231.0.2"), Port: 5160})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var c net.Conn
	if err := a.Do(func() (err error) {
		c, err = net.Dial("udp4", "10.231.0.2:5160")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := ln.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "hello" || !from.IP.Equal(net.ParseIP("10.231.0.1")) {
		t.Fatalf("got %q from %v", buf[:n], from)
	}
	if mtu := a.Run(t, "cat", "/sys/class/net/eth0/mtu"); mtu != "1460\n" {
		t.Fatalf("mtu %q", mtu)
	}
}
