package pcap

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// asm assembles classic BPF with named jump targets, so the filter reads
// top to bottom instead of as hand-counted skips.
type asm struct {
	ins    []bpf.Instruction
	labels map[string]int
	jumps  map[int][2]string // instruction index -> true/false targets ("" = next)
}

func (a *asm) emit(i bpf.Instruction) { a.ins = append(a.ins, i) }
func (a *asm) label(name string)      { a.labels[name] = len(a.ins) }
func (a *asm) jump(cond bpf.JumpTest, val uint32, t, f string) {
	a.jumps[len(a.ins)] = [2]string{t, f}
	a.emit(bpf.JumpIf{Cond: cond, Val: val})
}

func (a *asm) assemble() ([]bpf.RawInstruction, error) {
	for idx, tf := range a.jumps {
		j := a.ins[idx].(bpf.JumpIf)
		for k, name := range tf {
			if name == "" {
				continue
			}
			to, ok := a.labels[name]
			if !ok || to <= idx || to-idx-1 > 255 {
				return nil, fmt.Errorf("bpf: bad jump to %q", name)
			}
			if k == 0 {
				j.SkipTrue = uint8(to - idx - 1)
			} else {
				j.SkipFalse = uint8(to - idx - 1)
			}
		}
		a.ins[idx] = j
	}
	return bpf.Assemble(a.ins)
}

// packetOutgoing is PACKET_OUTGOING, the packet type of frames this host
// sends, as SKF_AD_PKTTYPE reports it.
const packetOutgoing = 4

// Filter compiles the kernel filter for a live capture: UDP to one of the
// ports, plus every IPv4 or IPv6 UDP fragment, since non-first fragments
// carry no port (the accounting drops datagrams to other ports once their
// first fragment names the port). linkHeader is 14 for Ethernet-framed
// interfaces, 0 for raw IP ones. With inboundOnly, frames the host sends
// are dropped (loopback shows each packet twice otherwise).
func Filter(ports []uint16, linkHeader uint32, inboundOnly bool, snaplen uint32) ([]bpf.RawInstruction, error) {
	a := &asm{labels: map[string]int{}, jumps: map[int][2]string{}}
	L := linkHeader
	if inboundOnly {
		a.emit(bpf.LoadExtension{Num: bpf.ExtType})
		a.jump(bpf.JumpEqual, packetOutgoing, "drop", "")
	}
	if L == 14 {
		a.emit(bpf.LoadAbsolute{Off: 12, Size: 2})
		a.jump(bpf.JumpEqual, 0x0800, "v4", "")
		a.jump(bpf.JumpEqual, 0x86dd, "v6", "drop")
	} else {
		a.emit(bpf.LoadAbsolute{Off: L, Size: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
		a.jump(bpf.JumpEqual, 4, "v4", "")
		a.jump(bpf.JumpEqual, 6, "v6", "drop")
	}
	portCheck := func() {
		if len(ports) == 0 {
			a.emit(bpf.RetConstant{Val: snaplen})
			return
		}
		for i, p := range ports {
			f := ""
			if i == len(ports)-1 {
				f = "drop"
			}
			a.jump(bpf.JumpEqual, uint32(p), "accept", f)
		}
	}
	a.label("v4")
	a.emit(bpf.LoadAbsolute{Off: L + 9, Size: 1})
	a.jump(bpf.JumpEqual, 17, "", "drop")
	a.emit(bpf.LoadAbsolute{Off: L + 6, Size: 2})
	a.jump(bpf.JumpBitsSet, 0x3fff, "accept", "") // MF or an offset: a fragment
	a.emit(bpf.LoadMemShift{Off: L})
	a.emit(bpf.LoadIndirect{Off: L + 2, Size: 2})
	portCheck()
	a.label("v6")
	a.emit(bpf.LoadAbsolute{Off: L + 6, Size: 1})
	a.jump(bpf.JumpEqual, 44, "v6frag", "")
	a.jump(bpf.JumpEqual, 17, "", "drop")
	a.emit(bpf.LoadAbsolute{Off: L + 42, Size: 2})
	portCheck()
	a.label("v6frag")
	// every fragment's fragment header names the upper protocol
	a.emit(bpf.LoadAbsolute{Off: L + 40, Size: 1})
	a.jump(bpf.JumpEqual, 17, "accept", "drop")
	a.label("accept")
	a.emit(bpf.RetConstant{Val: snaplen})
	a.label("drop")
	a.emit(bpf.RetConstant{Val: 0})
	return a.assemble()
}
