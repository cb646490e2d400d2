package pcap

import (
	"encoding/binary"
	"net/netip"
)

// Datagram describes a UDP datagram to synthesize as Ethernet frames, for
// test fixtures, fuzz seeds and the benchmark's capture generator.
type Datagram struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Payload          int    // UDP payload bytes
	ID               uint32 // IPv4 identification (16 bits used) or IPv6 fragment id
	MTU              int    // link MTU: fragment when the IP packet exceeds it; 0 = 1500
	// UDPLenDelta is added to the UDP header's length field, to build
	// bad-length datagrams.
	UDPLenDelta int
}

var synthMAC = [12]byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1}

// Frames returns the Ethernet frames carrying d, fragmented as a Linux
// sender would at d.MTU (IPv4 fragments carry multiples of 8 bytes except
// the last; IPv6 adds a fragment header). The payload is filled with a
// JSON-ish pattern.
func (d Datagram) Frames() [][]byte {
	mtu := d.MTU
	if mtu == 0 {
		mtu = 1500
	}
	udp := make([]byte, 8+d.Payload)
	binary.BigEndian.PutUint16(udp[0:], d.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], d.DstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+d.Payload+d.UDPLenDelta))
	for i := 8; i < len(udp); i++ {
		udp[i] = "{\"log\":\"x\"}"[i%11]
	}
	if d.Src.Is4() {
		return frames4(d, udp, mtu)
	}
	return frames6(d, udp, mtu)
}

func ether(ethType uint16, n int) []byte {
	f := make([]byte, 14, 14+n)
	copy(f, synthMAC[:])
	binary.BigEndian.PutUint16(f[12:], ethType)
	return f
}

func frames4(d Datagram, udp []byte, mtu int) [][]byte {
	maxData := (mtu - 20) &^ 7
	var out [][]byte
	for off := 0; off < len(udp) || off == 0; {
		n := len(udp) - off
		more := false
		if 20+n > mtu {
			n, more = maxData, true
		}
		f := ether(0x0800, 20+n)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+n))
		binary.BigEndian.PutUint16(ip[4:], uint16(d.ID))
		fo := uint16(off / 8)
		if more {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(ip[6:], fo)
		ip[8] = 64
		ip[9] = 17
		s, t := d.Src.As4(), d.Dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], t[:])
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		f = append(f, ip...)
		f = append(f, udp[off:off+n]...)
		out = append(out, f)
		off += n
		if !more {
			break
		}
	}
	return out
}

func frames6(d Datagram, udp []byte, mtu int) [][]byte {
	s, t := d.Src.As16(), d.Dst.As16()
	hdr := func(payloadLen int, next byte) []byte {
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(payloadLen))
		ip[6] = next
		ip[7] = 64
		copy(ip[8:], s[:])
		copy(ip[24:], t[:])
		return ip
	}
	if 40+len(udp) <= mtu {
		f := ether(0x86dd, 40+len(udp))
		f = append(f, hdr(len(udp), 17)...)
		return [][]byte{append(f, udp...)}
	}
	maxData := (mtu - 48) &^ 7
	var out [][]byte
	for off := 0; off < len(udp); {
		n := len(udp) - off
		more := false
		if 48+n > mtu {
			n, more = maxData, true
		}
		f := ether(0x86dd, 48+n)
		f = append(f, hdr(8+n, 44)...)
		fh := make([]byte, 8)
		fh[0] = 17
		fo := uint16(off)
		if more {
			fo |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], fo)
		binary.BigEndian.PutUint32(fh[4:], d.ID)
		f = append(f, fh...)
		f = append(f, udp[off:off+n]...)
		out = append(out, f)
		off += n
	}
	return out
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = (sum >> 16) + (sum & 0xffff)
	}
	return ^uint16(sum)
}
