package testenv

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FakeDNS is a resolver for tests that must dial host names other than
// localhost (the names a cluster publishes, say) without a DNS query
// leaving the machine: Go's own resolver, whose server connection is an
// in-memory pipe to an answerer that knows only the names it was given.
// /etc/hosts is still read first, so localhost resolves as usual.
type FakeDNS struct {
	// Resolver is what to inject (a net.Dialer's Resolver, an Options
	// field).
	Resolver *net.Resolver

	names map[string][]netip.Addr
	mu    sync.Mutex
	asked map[string]int
}

// NewFakeDNS answers each name (without the trailing dot) with its
// addresses, IPv4 and IPv6 literals; any other name does not exist
// (NXDOMAIN).
func NewFakeDNS(t testing.TB, names map[string][]string) *FakeDNS {
	t.Helper()
	f := &FakeDNS{names: map[string][]netip.Addr{}, asked: map[string]int{}}
	for n, addrs := range names {
		for _, a := range addrs {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				t.Fatalf("FakeDNS: %s: %v", n, err)
			}
			f.names[strings.ToLower(n)] = append(f.names[strings.ToLower(n)], ip)
		}
	}
	f.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		client, server := net.Pipe()
		go f.serve(server)
		return client, nil
	}}
	return f
}

// Asked is how many queries (A and AAAA each count) asked for name.
func (f *FakeDNS) Asked(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[strings.ToLower(name)]
}

// serve answers the length-prefixed queries Go's resolver sends over a
// stream connection until the resolver closes it.
func (f *FakeDNS) serve(c net.Conn) {
	defer c.Close()
	for {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		a, ok := f.answer(q)
		if !ok {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(a))), a...)); err != nil {
			return
		}
	}
}

func (f *FakeDNS) answer(query []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	f.mu.Lock()
	f.asked[name]++
	f.mu.Unlock()
	addrs, known := f.names[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	for _, ip := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && ip.Is4():
			if b.AResource(rr, dnsmessage.AResource{A: ip.As4()}) != nil {
				return nil, false
			}
		case q.Type == dnsmessage.TypeAAAA && ip.Is6():
			if b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: ip.As16()}) != nil {
				return nil, false
			}
		}
	}
	msg, err := b.Finish()
	return msg, err == nil
}
