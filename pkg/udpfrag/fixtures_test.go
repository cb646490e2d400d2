package udpfrag

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/net/bpf"

	"github.com/logdoctor/logdoctor/pkg/pcap"
)

func dgram(size int, id uint32) pcap.Datagram {
	return pcap.Datagram{Src: v4src, Dst: v4dst, SrcPort: 40000, DstPort: 5160, Payload: size, ID: id, MTU: 1460}
}

func TestBadLengthAndSnapTruncated(t *testing.T) {
	bad := dgram(500, 1)
	bad.UDPLenDelta = 64 // header claims 64 bytes more than the packet holds
	frames := append(bad.Frames(), dgram(300, 2).Frames()...)
	// a first fragment alone is not bad_length, whatever tcpdump prints
	frames = append(frames, dgram(2064, 3).Frames()[0])
	r := analyze(t, capture(t, 0, frames...), Config{Ports: []uint16{5160}})
	if want := (Classes{Unfragmented: 1, BadLength: 1, FragmentedIncomplete: 1}); r.Datagrams != want {
		t.Fatalf("classes %v, want %v", r.Datagrams, want)
	}
	ids := findingIDs(Findings(r))
	if !ids[FindingBadLength] || !ids[FindingFragmentsLost] {
		t.Fatalf("findings %v", ids)
	}

	// snaplen 200 cuts big packets in the capture, not on the wire
	frames = append(dgram(1000, 4).Frames(), dgram(100, 5).Frames()...)
	frames = append(frames, dgram(3000, 6).Frames()...)
	r = analyze(t, capture(t, 200, frames...), Config{Ports: []uint16{5160}})
	if want := (Classes{Unfragmented: 1, SnapTruncated: 1, FragmentedComplete: 1}); r.Datagrams != want {
		t.Fatalf("snaplen classes %v, want %v", r.Datagrams, want)
	}
	// snaplen so small that the UDP header is cut
	r = analyze(t, capture(t, 40, dgram(1000, 7).Frames()...), Config{})
	if want := (Classes{SnapTruncated: 1}); r.Datagrams != want {
		t.Fatalf("tiny snaplen classes %v, want %v", r.Datagrams, want)
	}
	// a packet cut on the wire (origLen short): bad_length, not snap
	f := dgram(800, 8).Frames()[0]
	var buf bytes.Buffer
	w, _ := pcap.NewWriter(&buf, 0, pcap.LinkEthernet)
	_ = w.WritePacket(time.Unix(1, 0), f[:400], 400)
	_ = w.Flush()
	r = analyze(t, buf.Bytes(), Config{})
	if want := (Classes{BadLength: 1}); r.Datagrams != want {
		t.Fatalf("wire-cut classes %v, want %v", r.Datagrams, want)
	}
}

func findingIDs(fs []reportFinding) map[string]bool {
	m := map[string]bool{}
	for _, f := range fs {
		m[f.ID] = true
	}
	return m
}

func TestCorruptAndTruncatedRecords(t *testing.T) {
	good := capture(t, 0, dgram(100, 1).Frames()[0], dgram(200, 2).Frames()[0], dgram(300, 3).Frames()[0])
	// corrupt the second record's header: an absurd capture length
	first := 24 + 16 + len(dgram(100, 1).Frames()[0])
	b := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(b[first+8:], 0x7fffffff)
	r := analyze(t, b, Config{})
	if r.File.Corrupt != 1 || r.File.Corruptions[0].Offset != int64(first) {
		t.Fatalf("corrupt stats %+v", r.File)
	}
	if !strings.Contains(r.File.Corruptions[0].Reason, "exceeds") {
		t.Fatalf("reason %q", r.File.Corruptions[0].Reason)
	}
	if want := (Classes{Unfragmented: 2}); r.Datagrams != want {
		t.Fatalf("after resync classes %v, want %v", r.Datagrams, want)
	}
	// garbage inserted between records is skipped
	b = append(append(append([]byte(nil), good[:first]...), bytes.Repeat([]byte{0xff}, 37)...), good[first:]...)
	r = analyze(t, b, Config{})
	if r.File.Corrupt != 1 || r.File.SkipBytes != 37 || r.Datagrams[Unfragmented] != 3 {
		t.Fatalf("garbage: file %+v classes %v", r.File, r.Datagrams)
	}
	// the file ends in the middle of the last record
	r = analyze(t, good[:len(good)-10], Config{})
	if r.File.Corrupt != 1 || !strings.Contains(r.File.Corruptions[0].Reason, "truncated") || r.Datagrams[Unfragmented] != 2 {
		t.Fatalf("truncated: file %+v classes %v", r.File, r.Datagrams)
	}
	r = analyze(t, good[:len(good)-len(dgram(300, 3).Frames()[0])-6], Config{})
	if r.File.Corrupt != 1 || !strings.Contains(r.File.Corruptions[0].Reason, "header") {
		t.Fatalf("truncated header: file %+v", r.File)
	}
}

func TestNotPcap(t *testing.T) {
	for name, in := range map[string][]byte{
		"text":  []byte("this is a log file, not a capture\n"),
		"empty": nil,
		"gzip":  {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
	} {
		_, err := AnalyzeReader(context.Background(), bytes.NewReader(in), Config{})
		if !errors.Is(err, pcap.ErrNotPcap) {
			t.Fatalf("%s: err %v, want ErrNotPcap", name, err)
		}
	}
}

func TestPcapngAndLinkTypes(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range seedFrames(v4src, v4dst, 1460, 50) {
		for _, f := range d {
			ci := gopacketCI(time.Unix(1700000000+int64(i), 0), len(f))
			if err := w.WritePacket(ci, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := analyze(t, buf.Bytes(), Config{})
	if want := (Classes{Unfragmented: 2, FragmentedComplete: 3}); r.Datagrams != want || r.File.Format != "pcapng" {
		t.Fatalf("pcapng: classes %v format %s", r.Datagrams, r.File.Format)
	}

	// damage one packet block's length: it is counted with its offset and
	// the reader finds the next block
	ng := append([]byte(nil), buf.Bytes()...)
	off := bytes.Index(ng, []byte{6, 0, 0, 0}) // first enhanced packet block
	if off < 0 {
		t.Fatal("no enhanced packet block")
	}
	binary.LittleEndian.PutUint32(ng[off+4:], 0xfffffff0)
	r = analyze(t, ng, Config{})
	if r.File.Corrupt != 1 || r.File.Corruptions[0].Offset != int64(off) {
		t.Fatalf("pcapng damage: %+v", r.File)
	}
	if want := (Classes{Unfragmented: 1, FragmentedComplete: 3}); r.Datagrams != want {
		t.Fatalf("pcapng damage: classes %v, want %v", r.Datagrams, want)
	}

	// the same traffic as Linux cooked capture (tcpdump -i any) and raw IP
	for _, lt := range []uint32{pcap.LinkSLL, pcap.LinkSLL2, pcap.LinkRaw} {
		var b bytes.Buffer
		w, _ := pcap.NewWriter(&b, 0, lt)
		for _, f := range flat(seedFrames(v4src, v4dst, 1460, 60), nil) {
			var fr []byte
			switch lt {
			case pcap.LinkSLL:
				fr = append(make([]byte, 16), f[14:]...)
				binary.BigEndian.PutUint16(fr[14:], 0x0800)
			case pcap.LinkSLL2:
				fr = append(make([]byte, 20), f[14:]...)
				binary.BigEndian.PutUint16(fr[0:], 0x0800)
			default:
				fr = f[14:]
			}
			_ = w.WritePacket(time.Unix(1700000000, 0), fr, len(fr))
		}
		_ = w.Flush()
		r := analyze(t, b.Bytes(), Config{})
		if want := (Classes{Unfragmented: 2, FragmentedComplete: 3}); r.Datagrams != want {
			t.Fatalf("link type %d: classes %v", lt, r.Datagrams)
		}
	}
}

func TestTimeoutEvictionAndPorts(t *testing.T) {
	// fragments 40 s apart: the first expires before the rest arrive
	d := dgram(2000, 9).Frames()
	var buf bytes.Buffer
	w, _ := pcap.NewWriter(&buf, 0, pcap.LinkEthernet)
	_ = w.WritePacket(time.Unix(1000, 0), d[0], 0)
	_ = w.WritePacket(time.Unix(1040, 0), d[1], 0)
	_ = w.Flush()
	r := analyze(t, buf.Bytes(), Config{})
	if want := (Classes{FragmentedIncomplete: 1, OrphanFragments: 1}); r.Datagrams != want || r.Reassembly.Expired != 1 {
		t.Fatalf("timeout: classes %v reasm %+v", r.Datagrams, r.Reassembly)
	}
	// with a longer timeout they join
	r = analyze(t, buf.Bytes(), Config{Timeout: time.Minute})
	if want := (Classes{FragmentedComplete: 1}); r.Datagrams != want {
		t.Fatalf("long timeout: classes %v", r.Datagrams)
	}

	// at most 2 open reassemblies: interleaved first fragments evict
	var frames [][]byte
	var rest [][]byte
	for i := 0; i < 5; i++ {
		fs := dgram(2000, uint32(100+i)).Frames()
		frames = append(frames, fs[0])
		rest = append(rest, fs[1])
	}
	r = analyze(t, capture(t, 0, append(frames, rest...)...), Config{MaxFlows: 2})
	// every later half arrives after its first was pushed out: 5 firsts
	// without the rest, 5 rests without a first, 8 evictions
	if want := (Classes{FragmentedIncomplete: 5, OrphanFragments: 5}); r.Datagrams != want || r.Reassembly.Evicted != 8 || r.Reassembly.PeakFlows != 2 {
		t.Fatalf("eviction: classes %v reasm %+v", r.Datagrams, r.Reassembly)
	}
	r = analyze(t, capture(t, 0, append(frames, rest...)...), Config{MaxBytes: 3000})
	if r.Reassembly.Evicted == 0 {
		t.Fatalf("byte cap: reasm %+v", r.Reassembly)
	}

	// fragments of a datagram to another port are not counted
	other := dgram(2000, 200)
	other.DstPort = 9999
	r = analyze(t, capture(t, 0, append(other.Frames(), dgram(100, 201).Frames()...)...), Config{Ports: []uint16{5160}})
	if want := (Classes{Unfragmented: 1}); r.Datagrams != want || r.Packets.OtherPorts != 1 {
		t.Fatalf("ports: classes %v packets %+v", r.Datagrams, r.Packets)
	}
}

func TestOversizeFragments(t *testing.T) {
	// a last fragment at offset 65528 carrying 100 bytes: beyond 65,535
	f := dgram(1000, 77).Frames()[0]
	ip := f[14:]
	binary.BigEndian.PutUint16(ip[6:], 65528/8)
	r := analyze(t, capture(t, 0, f), Config{})
	if r.Reassembly.Oversize != 1 || !findingIDs(Findings(r))[FindingOversize] {
		t.Fatalf("oversize: %+v", r.Reassembly)
	}
}

func TestFilterMatchesWhatTheAccountingWants(t *testing.T) {
	prog, err := pcap.Filter([]uint16{5160, 5170}, 14, false, 65535)
	if err != nil {
		t.Fatal(err)
	}
	var ins []bpf.Instruction
	for _, r := range prog {
		ins = append(ins, r.Disassemble())
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	pass := func(f []byte) bool {
		n, err := vm.Run(f)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	other := dgram(100, 1)
	other.DstPort = 53
	otherBig := dgram(3000, 2)
	otherBig.DstPort = 53
	cases := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"v4 to port", dgram(100, 1).Frames()[0], true},
		{"v4 to second port", func() []byte { d := dgram(100, 1); d.DstPort = 5170; return d.Frames()[0] }(), true},
		{"v4 other port", other.Frames()[0], false},
		{"v4 non-first fragment of other port", otherBig.Frames()[1], true},
		{"v4 first fragment", dgram(3000, 3).Frames()[0], true},
		{"v6 to port", pcap.Datagram{Src: v6src, Dst: v6dst, DstPort: 5160, Payload: 100}.Frames()[0], true},
		{"v6 other port", pcap.Datagram{Src: v6src, Dst: v6dst, DstPort: 53, Payload: 100}.Frames()[0], false},
		{"v6 non-first fragment", pcap.Datagram{Src: v6src, Dst: v6dst, DstPort: 53, Payload: 3000}.Frames()[1], true},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 0), false},
	}
	for _, c := range cases {
		if got := pass(c.frame); got != c.want {
			t.Errorf("%s: pass %v, want %v", c.name, got, c.want)
		}
	}
	// raw IP interfaces: no link header
	prog, err = pcap.Filter(nil, 0, false, 65535)
	if err != nil {
		t.Fatal(err)
	}
	ins = ins[:0]
	for _, r := range prog {
		ins = append(ins, r.Disassemble())
	}
	vm, _ = bpf.NewVM(ins)
	if n, _ := vm.Run(other.Frames()[0][14:]); n == 0 {
		t.Error("raw IP, all ports: UDP dropped")
	}
}
