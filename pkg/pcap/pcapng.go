package pcap

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// pcapng block types read; the rest are skipped.
const (
	ngSHB = 0x0A0D0D0A
	ngIDB = 1
	ngPB  = 2 // obsolete packet block
	ngSPB = 3
	ngEPB = 6
)

// ngBlockLimit caps non-packet blocks read into memory (interface
// descriptions); bigger ones are skipped unread.
const ngBlockLimit = 1 << 16

type ngIface struct {
	link    uint32
	snaplen uint32
	tsMul   float64 // nanoseconds per timestamp unit
	tsDiv   uint64  // timestamp units per second when exact, else 0
}

// pcapng is logdoctor's own pcapng reader: gopacket's allocates whatever
// capture length a block claims, which a damaged file turns into gigabytes.
// This one caps every length, counts damaged blocks with their offsets and
// resynchronises on the next plausible block.
type pcapng struct {
	fr     *FileReader
	order  binary.ByteOrder
	ifaces []ngIface
}

func (fr *FileReader) openNg() error {
	ng := &pcapng{fr: fr}
	fr.png = ng
	b, err := fr.br.Peek(12)
	if err != nil {
		return fmt.Errorf("%w: pcapng section header cut short", ErrNotPcap)
	}
	if !ng.setOrder(b[8:12]) {
		return fmt.Errorf("%w: bad pcapng byte-order magic", ErrNotPcap)
	}
	fr.Stats.Format = "pcapng"
	// read up to the first interface so LinkType and Snaplen are known
	for len(ng.ifaces) == 0 {
		typ, body, total, ok := ng.block()
		if !ok {
			break
		}
		if typ == ngEPB || typ == ngSPB || typ == ngPB {
			return fmt.Errorf("%w: pcapng packet before any interface description", ErrNotPcap)
		}
		_ = body
		ng.consume(total)
	}
	if len(ng.ifaces) > 0 {
		fr.Stats.LinkType, fr.Stats.Snaplen = ng.ifaces[0].link, ng.ifaces[0].snaplen
	}
	return nil
}

func (ng *pcapng) setOrder(m []byte) bool {
	switch {
	case binary.LittleEndian.Uint32(m) == 0x1A2B3C4D:
		ng.order = binary.LittleEndian
	case binary.BigEndian.Uint32(m) == 0x1A2B3C4D:
		ng.order = binary.BigEndian
	default:
		return false
	}
	return true
}

func (ng *pcapng) consume(total int) {
	_, _ = ng.fr.br.Discard(total)
	ng.fr.pos += int64(total)
}

// block reads the next block's header and, for the blocks this reader
// uses, its body (valid until the next call); ok is false at the end of
// the input. Damaged blocks are counted and skipped here.
func (ng *pcapng) block() (typ uint32, body []byte, total int, ok bool) {
	fr := ng.fr
	for {
		h, err := fr.br.Peek(12)
		if err != nil {
			if len(h) > 0 {
				fr.Stats.corrupt(fr.pos, fmt.Sprintf("truncated pcapng block header: %d of 12 bytes", len(h)))
			}
			return 0, nil, 0, false
		}
		typ = ng.order.Uint32(h)
		if typ == ngSHB && !ng.setOrder(h[8:12]) {
			fr.Stats.corrupt(fr.pos, "pcapng section header with a bad byte-order magic")
			if !ng.resync() {
				return 0, nil, 0, false
			}
			continue
		}
		n := ng.order.Uint32(h[4:])
		if reason := ng.checkLen(typ, n); reason != "" {
			fr.Stats.corrupt(fr.pos, reason)
			if !ng.resync() {
				return 0, nil, 0, false
			}
			continue
		}
		if !ng.wanted(typ) {
			// skipped unread, whatever its size; a wrong length shows up at
			// the next block and resynchronises there
			return typ, nil, int(n), true
		}
		b, err := fr.br.Peek(int(n))
		if err != nil {
			fr.Stats.corrupt(fr.pos, fmt.Sprintf("truncated pcapng block: length %d, the file ends after %d", n, len(b)))
			return 0, nil, 0, false
		}
		if ng.order.Uint32(b[n-4:]) != n {
			fr.Stats.corrupt(fr.pos, fmt.Sprintf("pcapng block lengths disagree (%d vs %d)", n, ng.order.Uint32(b[n-4:])))
			if !ng.resync() {
				return 0, nil, 0, false
			}
			continue
		}
		if typ == ngIDB {
			ng.iface(b[8 : n-4])
		}
		return typ, b[8 : n-4], int(n), true
	}
}

func (ng *pcapng) wanted(typ uint32) bool {
	switch typ {
	case ngIDB, ngEPB, ngSPB, ngPB, ngSHB:
		return true
	}
	return false
}

func (ng *pcapng) checkLen(typ, n uint32) string {
	switch {
	case n < 12 || n%4 != 0:
		return fmt.Sprintf("pcapng block length %d is invalid", n)
	case typ == ngEPB || typ == ngSPB || typ == ngPB:
		if n > recordLimit+256 {
			return fmt.Sprintf("pcapng packet block length %d exceeds %d", n, recordLimit+256)
		}
	case ng.wanted(typ) && n > ngBlockLimit:
		return fmt.Sprintf("pcapng block length %d exceeds %d", n, ngBlockLimit)
	}
	return ""
}

// resync skips bytes until a block whose leading and trailing lengths agree.
func (ng *pcapng) resync() bool {
	fr := ng.fr
	for {
		if _, err := fr.br.Discard(4); err != nil {
			return false
		}
		fr.pos += 4
		fr.Stats.SkipBytes += 4
		h, err := fr.br.Peek(12)
		if err != nil {
			fr.Stats.SkipBytes += int64(len(h))
			return false
		}
		typ, n := ng.order.Uint32(h), ng.order.Uint32(h[4:])
		if !ng.wanted(typ) || ng.checkLen(typ, n) != "" {
			continue
		}
		b, err := fr.br.Peek(int(n))
		if err == nil && ng.order.Uint32(b[n-4:]) == n {
			return true
		}
	}
}

func (ng *pcapng) iface(b []byte) {
	if len(ng.ifaces) >= 256 {
		return // a damaged file could declare millions
	}
	if len(b) < 8 {
		return
	}
	ifc := ngIface{link: uint32(ng.order.Uint16(b)), snaplen: ng.order.Uint32(b[4:]), tsMul: 1000, tsDiv: 1e6}
	opts := b[8:]
	for len(opts) >= 4 {
		code, l := ng.order.Uint16(opts), int(ng.order.Uint16(opts[2:]))
		if code == 0 || 4+l > len(opts) {
			break
		}
		if code == 9 && l >= 1 { // if_tsresol
			v := opts[4]
			if v&0x80 == 0 && v <= 19 {
				div := uint64(1)
				for i := 0; i < int(v); i++ {
					div *= 10
				}
				ifc.tsDiv, ifc.tsMul = div, 1e9/float64(div)
			} else if v&0x80 != 0 && v&0x7f < 64 {
				ifc.tsDiv, ifc.tsMul = 0, 1e9/math.Pow(2, float64(v&0x7f))
			}
		}
		opts = opts[4+(l+3)&^3:]
	}
	ng.ifaces = append(ng.ifaces, ifc)
}

func (ng *pcapng) timeNS(ifc ngIface, ts uint64) int64 {
	if ifc.tsDiv > 0 {
		sec, frac := ts/ifc.tsDiv, ts%ifc.tsDiv
		return int64(sec)*1e9 + int64(float64(frac)*ifc.tsMul)
	}
	return int64(float64(ts) * ifc.tsMul)
}

func (ng *pcapng) next() ([]byte, Meta, error) {
	fr := ng.fr
	for {
		typ, body, total, ok := ng.block()
		if !ok {
			return nil, Meta{}, io.EOF
		}
		off := fr.pos
		var data []byte
		var m Meta
		good := false
		switch typ {
		case ngEPB, ngPB:
			if len(body) < 20 {
				break
			}
			var idx int
			if typ == ngEPB {
				idx = int(ng.order.Uint32(body))
			} else {
				idx = int(ng.order.Uint16(body))
			}
			capLen, orig := ng.order.Uint32(body[12:]), ng.order.Uint32(body[16:])
			if idx >= len(ng.ifaces) || int(capLen) > len(body)-20 {
				break
			}
			ifc := ng.ifaces[idx]
			ts := uint64(ng.order.Uint32(body[4:]))<<32 | uint64(ng.order.Uint32(body[8:]))
			data = body[20 : 20+capLen]
			m = Meta{TimeNS: ng.timeNS(ifc, ts), CapLen: int(capLen), OrigLen: int(max(orig, capLen)), Link: ifc.link}
			good = true
		case ngSPB:
			if len(body) < 4 || len(ng.ifaces) == 0 {
				break
			}
			orig := int(ng.order.Uint32(body))
			capLen := min(orig, len(body)-4)
			if s := int(ng.ifaces[0].snaplen); s > 0 {
				capLen = min(capLen, s)
			}
			data = body[4 : 4+capLen]
			m = Meta{CapLen: capLen, OrigLen: max(orig, capLen), Link: ng.ifaces[0].link}
			good = true
		default:
			ng.consume(total)
			continue
		}
		ng.consume(total)
		if !good {
			fr.Stats.corrupt(off, "pcapng packet block inconsistent with its interface or length")
			continue
		}
		fr.Stats.Records++
		return data, m, nil
	}
}
