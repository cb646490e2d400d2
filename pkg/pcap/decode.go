package pcap

import "encoding/binary"

// ipPacket is what the accounting needs from one IPv4 or IPv6 packet
// carrying UDP or a fragment of it. It is filled in place, so decoding
// allocates nothing.
type ipPacket struct {
	v6       bool
	src, dst [16]byte
	proto    uint8

	frag  bool   // a fragment (IPv4 MF or offset, IPv6 fragment header)
	id    uint32 // fragment identification
	off   int    // fragment offset in bytes
	more  bool   // more fragments follow
	plen  int    // fragmentable payload length per the IP header(s)
	mtuSz int    // IP packet size, for MTU inference

	snapCut  bool // the capture cut the packet (snaplen), not the network
	wireCut  bool // the IP header claims more than arrived on the wire
	haveUDP  bool // a UDP header was captured (unfragmented or first fragment)
	sport    uint16
	dport    uint16
	udpLen   int
	tooLarge bool // fragment offset+length beyond 65535
}

// decodeStatus says why a packet was not decoded.
type decodeStatus int

const (
	decodedUDP decodeStatus = iota
	notIP
	notUDP
	malformed
	snapShort // the capture cut the IP header itself
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

// decode parses one captured frame. origLen is the frame's length on the
// wire.
func decode(p *ipPacket, link uint32, b []byte, origLen int) decodeStatus {
	off, et, ok := linkOffset(link, b)
	if !ok {
		return notIP
	}
	if et == 0 {
		if len(b) <= off {
			return notIP
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
	return notIP
}

func decode4(p *ipPacket, ip []byte, wire int) decodeStatus {
	if len(ip) < 20 {
		if wire >= 20 {
			return snapShort
		}
		return malformed
	}
	if ip[0]>>4 != 4 {
		return malformed
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < 20 || total < ihl {
		return malformed
	}
	if len(ip) < ihl {
		return snapShort
	}
	*p = ipPacket{proto: ip[9]}
	copy(p.src[:4], ip[12:16])
	copy(p.dst[:4], ip[16:20])
	fo := binary.BigEndian.Uint16(ip[6:])
	p.off = int(fo&0x1fff) * 8
	p.more = fo&0x2000 != 0
	p.frag = p.more || p.off != 0
	p.id = uint32(binary.BigEndian.Uint16(ip[4:]))
	p.plen = total - ihl
	p.mtuSz = total
	p.tooLarge = p.off+p.plen > 65535-ihl
	return finishUDP(p, ip[ihl:min(len(ip), total)], total, ihl, wire)
}

func decode6(p *ipPacket, ip []byte, wire int) decodeStatus {
	if len(ip) < 40 {
		if wire >= 40 {
			return snapShort
		}
		return malformed
	}
	if ip[0]>>4 != 6 {
		return malformed
	}
	payload := int(binary.BigEndian.Uint16(ip[4:]))
	if payload == 0 {
		return notUDP // jumbogram or nothing: not a log datagram
	}
	*p = ipPacket{v6: true}
	copy(p.src[:], ip[8:24])
	copy(p.dst[:], ip[24:40])
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
				return malformed
			}
			continue
		case 44:
			if len(ip) < hdr+8 {
				return snapOrMalformed(total, wire, hdr+8)
			}
			if hdr+8 > total {
				return malformed
			}
			fo := binary.BigEndian.Uint16(ip[hdr+2:])
			p.frag = true
			p.off = int(fo & 0xfff8)
			p.more = fo&1 != 0
			p.id = binary.BigEndian.Uint32(ip[hdr+4:])
			next = ip[hdr]
			hdr += 8
			if !p.more && p.off == 0 {
				p.frag = false // atomic fragment: a whole datagram
			}
			break walk
		default:
			break walk
		}
	}
	p.proto = next
	p.plen = total - hdr
	p.mtuSz = total
	p.tooLarge = p.off+p.plen > 65535
	return finishUDP(p, ip[hdr:min(len(ip), total)], total, hdr, wire)
}

func snapOrMalformed(total, wire, need int) decodeStatus {
	if wire >= need && total >= need {
		return snapShort
	}
	return malformed
}

// finishUDP reads the UDP header when this packet carries one and works out
// whether the capture or the network cut it short.
func finishUDP(p *ipPacket, payload []byte, total, hdr, wire int) decodeStatus {
	if p.proto != 17 {
		return notUDP
	}
	p.wireCut = total > wire
	p.snapCut = len(payload) < min(total, wire)-hdr
	if p.off == 0 && len(payload) >= 8 {
		p.haveUDP = true
		p.sport = binary.BigEndian.Uint16(payload[0:])
		p.dport = binary.BigEndian.Uint16(payload[2:])
		p.udpLen = int(binary.BigEndian.Uint16(payload[4:]))
	}
	return decodedUDP
}
