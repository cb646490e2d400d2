package testenv

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"
)

func TestFakeDNS(t *testing.T) {
	f := NewFakeDNS(t, map[string][]string{"es-0.cluster.test": {"127.0.0.2"}, "v6.test": {"::1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := f.Resolver.LookupHost(ctx, "es-0.cluster.test")
	if err != nil || !slices.Equal(addrs, []string{"127.0.0.2"}) {
		t.Fatalf("es-0.cluster.test: %v %v", addrs, err)
	}
	if addrs, err := f.Resolver.LookupHost(ctx, "v6.test"); err != nil || !slices.Equal(addrs, []string{"::1"}) {
		t.Fatalf("v6.test: %v %v", addrs, err)
	}
	if f.Asked("es-0.cluster.test") == 0 {
		t.Fatal("the name was not asked for")
	}
	_, err = f.Resolver.LookupHost(ctx, "nope.test")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("unknown name: %v", err)
	}
	// A dialer with the resolver reaches a listener by a name only it knows.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	d := net.Dialer{Resolver: f.Resolver}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("es-0.cluster.test", port))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
