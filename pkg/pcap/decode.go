package pcap

import "encoding/binary"

// IPPacket is what fragment accounting needs from one IPv4 or IPv6 packet
// carrying UDP or a fragment of it: addresses, fragment identity and
// position, the UDP header when this packet holds it, and whether the
// capture or the network cut it short. Decode fills it in place, so
// decoding allocates nothing.
type IPPacket struct {
	V6       bool
	Src, Dst [16]byte // IPv4 addresses in the first 4 bytes
	Proto    uint8

	Frag bool   // a fragment (IPv4 MF or offset, IPv6 fragment header)
	ID   uint32 // fragment identification
	Off  int    // fragment offset in bytes
	More bool   // more fragments follow
	PLen int    // fragmentable payload length per the IP header(s)
	Size int    // IP packet size, for MTU inference

	SnapCut  bool // the capture cut the packet (snaplen), not the network
	WireCut  bool // the IP header claims more than arrived on the wire
	HaveUDP  bool // a UDP header was captured (unfragmented or first fragment)
	SrcPort  uint16
	DstPort  uint16
	UDPLen   int  // the UDP header's length field
	TooLarge bool // fragment offset+length beyond 65535
}

// DecodeStatus says whether Decode found UDP, and why not.
type DecodeStatus int

const (
	DecodedUDP DecodeStatus = iota // p describes UDP or a UDP fragment
	NotIP
	NotUDP
	Malformed
	SnapShort // the capture cut the IP header itself
)

// linkOffset returns where the network header starts and its ethertype
// (0 when the link type gives the IP version in the first nibble).
func linkOffset(link uint32, b []byte) (int, uint16, bool) {
	switch link {
	case LinkEthernet:
		if len(b) < 14 {
			return 0, 0, false
		}
		off, et := 14, binary.BigEndian.Uint16(b[12:])
		for i := 0; i < 2 && (et == 0x8100 || et == 0x88a8); i++ {
			if len(b) < off+4 {
				return 0, 0, false
			}
			et = binary.BigEndian.Uint16(b[off+2:])
			off += 4
		}
		return off, et, true
	case LinkSLL:
		if len(b) < 16 {
			return 0, 0, false
		}
		return 16, binary.BigEndian.Uint16(b[14:]), true
	case LinkSLL2:
		if len(b) < 20 {
			return 0, 0, false
		}
		return 20, binary.BigEndian.Uint16(b[0:]), true
	case LinkRaw, 12, 14: // 12 and 14 are LINKTYPE_RAW on some systems
		return 0, 0, true
	case LinkIPv4:
		return 0, 0x0800, true
	case LinkIPv6:
		return 0, 0x86dd, true
	}
	return 0, 0, false
}

// Decode parses one captured frame of the given link type into p. origLen
// is the frame's length on the wire.
func Decode(p *IPPacket, link uint32, b []byte, origLen int) DecodeStatus {
	off, et, ok := linkOffset(link, b)
	if !ok {
		return NotIP
	}
	if et == 0 {
		if len(b) <= off {
			return NotIP
		}
		switch b[off] >> 4 {
		case 4:
			et = 0x0800
		case 6:
			et = 0x86dd
		}
	}
	wire := origLen - off // IP packet bytes on the wire (may include padding)
	ip := b[off:]
	switch et {
	case 0x0800:
		return decode4(p, ip, wire)
	case 0x86dd:
		return decode6(p, ip, wire)
	}
	return NotIP
}

func decode4(p *IPPacket, ip []byte, wire int) DecodeStatus {
	if len(ip) < 20 {
		if wire >= 20 {
			return SnapShort
		}
		return Malformed
	}
	if ip[0]>>4 != 4 {
		return Malformed
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < 20 || total < ihl {
		return Malformed
	}
	if len(ip) < ihl {
		return SnapShort
	}
	*p = IPPacket{Proto: ip[9]}
	copy(p.Src[:4], ip[12:16])
	copy(p.Dst[:4], ip[16:20])
	fo := binary.BigEndian.Uint16(ip[6:])
	p.Off = int(fo&0x1fff) * 8
	p.More = fo&0x2000 != 0
	p.Frag = p.More || p.Off != 0
	p.ID = uint32(binary.BigEndian.Uint16(ip[4:]))
	p.PLen = total - ihl
	p.Size = total
	p.TooLarge = p.Off+p.PLen > 65535-ihl
	return finishUDP(p, ip[ihl:min(len(ip), total)], total, ihl, wire)
}

func decode6(p *IPPacket, ip []byte, wire int) DecodeStatus {
	if len(ip) < 40 {
		if wire >= 40 {
			return SnapShort
		}
		return Malformed
	}
	if ip[0]>>4 != 6 {
		return Malformed
	}
	payload := int(binary.BigEndian.Uint16(ip[4:]))
	if payload == 0 {
		return NotUDP // jumbogram or nothing: not a log datagram
	}
	*p = IPPacket{V6: true}
	copy(p.Src[:], ip[8:24])
	copy(p.Dst[:], ip[24:40])
	total := 40 + payload
	next, hdr := ip[6], 40
walk:
	for i := 0; i < 8; i++ { // bounded walk of extension headers
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(ip) < hdr+2 {
				return snapOrMalformed(total, wire, hdr+2)
			}
			n := (int(ip[hdr+1]) + 1) * 8
			next = ip[hdr]
			hdr += n
			if hdr > total {
				return Malformed
			}
			continue
		case 44:
			if len(ip) < hdr+8 {
				return snapOrMalformed(total, wire, hdr+8)
			}
			if hdr+8 > total {
				return Malformed
			}
			fo := binary.BigEndian.Uint16(ip[hdr+2:])
			p.Frag = true
			p.Off = int(fo & 0xfff8)
			p.More = fo&1 != 0
			p.ID = binary.BigEndian.Uint32(ip[hdr+4:])
			next = ip[hdr]
			hdr += 8
			if !p.More && p.Off == 0 {
				p.Frag = false // atomic fragment: a whole datagram
			}
			break walk
		default:
			break walk
		}
	}
	p.Proto = next
	p.PLen = total - hdr
	p.Size = total
	p.TooLarge = p.Off+p.PLen > 65535
	return finishUDP(p, ip[hdr:min(len(ip), total)], total, hdr, wire)
}

func snapOrMalformed(total, wire, need int) DecodeStatus {
	if wire >= need && total >= need {
		return SnapShort
	}
	return Malformed
}

// finishUDP reads the UDP header when this packet carries one and works out
// whether the capture or the network cut it short.
func finishUDP(p *IPPacket, payload []byte, total, hdr, wire int) DecodeStatus {
	if p.Proto != 17 {
		return NotUDP
	}
	p.WireCut = total > wire
	p.SnapCut = len(payload) < min(total, wire)-hdr
	if p.Off == 0 && len(payload) >= 8 {
		p.HaveUDP = true
		p.SrcPort = binary.BigEndian.Uint16(payload[0:])
		p.DstPort = binary.BigEndian.Uint16(payload[2:])
		p.UDPLen = int(binary.BigEndian.Uint16(payload[4:]))
	}
	return DecodedUDP
}
