package pcap

import (
	"net/netip"
	"testing"
)

// TestDecode holds the header facts fragment accounting relies on, for
// frames synthesised as a Linux sender fragments them.
func TestDecode(t *testing.T) {
	v4s, v4d := netip.MustParseAddr("10.77.1.2"), netip.MustParseAddr("10.77.2.2")
	v6s, v6d := netip.MustParseAddr("fd77:1::2"), netip.MustParseAddr("fd77:2::2")
	whole := Datagram{Src: v4s, Dst: v4d, SrcPort: 40000, DstPort: 5160, Payload: 100, ID: 7}.Frames()
	frag := Datagram{Src: v4s, Dst: v4d, SrcPort: 40000, DstPort: 5160, Payload: 2000, ID: 8, MTU: 1460}.Frames()
	frag6 := Datagram{Src: v6s, Dst: v6d, SrcPort: 40000, DstPort: 5160, Payload: 2000, ID: 9, MTU: 1460}.Frames()
	if len(whole) != 1 || len(frag) != 2 || len(frag6) != 2 {
		t.Fatalf("synthesised %d, %d, %d frames", len(whole), len(frag), len(frag6))
	}
	var p IPPacket
	dec := func(f []byte, orig int) DecodeStatus { return Decode(&p, LinkEthernet, f, orig) }

	if s := dec(whole[0], len(whole[0])); s != DecodedUDP || p.Frag || !p.HaveUDP || p.DstPort != 5160 || p.SrcPort != 40000 || p.UDPLen != 108 || p.PLen != 108 || p.V6 {
		t.Errorf("whole datagram: %v %+v", s, p)
	}
	if netip.AddrFrom4([4]byte(p.Src[:4])) != v4s || netip.AddrFrom4([4]byte(p.Dst[:4])) != v4d {
		t.Errorf("addresses %v %v", p.Src, p.Dst)
	}
	if s := dec(frag[0], len(frag[0])); s != DecodedUDP || !p.Frag || !p.More || p.Off != 0 || !p.HaveUDP || p.UDPLen != 2008 || p.ID != 8 || p.Size != 1460 || p.PLen != 1440 {
		t.Errorf("first fragment: %v %+v", s, p)
	}
	if s := dec(frag[1], len(frag[1])); s != DecodedUDP || !p.Frag || p.More || p.Off != 1440 || p.HaveUDP || p.PLen != 2008-1440 {
		t.Errorf("last fragment: %v %+v", s, p)
	}
	if s := dec(frag6[1], len(frag6[1])); s != DecodedUDP || !p.V6 || !p.Frag || p.More || p.Off == 0 || p.ID != 9 || p.Proto != 17 {
		t.Errorf("IPv6 last fragment: %v %+v", s, p)
	}
	// cut by the capture: the UDP header is still read, the cut noted
	if s := dec(whole[0][:60], len(whole[0])); s != DecodedUDP || !p.SnapCut || p.WireCut || !p.HaveUDP {
		t.Errorf("snap-cut: %v %+v", s, p)
	}
	// cut on the wire: the IP header claims more than arrived
	if s := dec(whole[0][:60], 60); s != DecodedUDP || p.SnapCut || !p.WireCut {
		t.Errorf("wire-cut: %v %+v", s, p)
	}
	if s := dec(whole[0][:20], len(whole[0])); s != SnapShort {
		t.Errorf("IP header cut by the capture: %v", s)
	}
	if s := dec(append(make([]byte, 12), 0x08, 0x06, 0, 0), 16); s != NotIP {
		t.Errorf("ARP: %v", s)
	}
	tcp := append([]byte(nil), whole[0]...)
	tcp[14+9] = 6
	if s := dec(tcp, len(tcp)); s != NotUDP {
		t.Errorf("TCP: %v", s)
	}
	bad := append([]byte(nil), whole[0]...)
	bad[14] = 0x41 // header length 4 bytes
	if s := dec(bad, len(bad)); s != Malformed {
		t.Errorf("IHL 1: %v", s)
	}
}
