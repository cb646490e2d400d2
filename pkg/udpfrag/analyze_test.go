package udpfrag

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/pcap"
)

// capture builds a pcap of the given frames with the project's writer.
func capture(t testing.TB, snaplen uint32, frames ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, snaplen, pcap.LinkEthernet)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	for i, f := range frames {
		if err := w.WritePacket(ts.Add(time.Duration(i)*time.Millisecond), f, len(f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func analyze(t testing.TB, b []byte, cfg Config) *Result {
	t.Helper()
	r, err := AnalyzeReader(context.Background(), bytes.NewReader(b), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	v4src = netip.MustParseAddr("10.77.1.2")
	v4dst = netip.MustParseAddr("10.77.2.2")
	v6src = netip.MustParseAddr("fd77:1::2")
	v6dst = netip.MustParseAddr("fd77:2::2")
)

func seedFrames(src, dst netip.Addr, mtu int, idBase uint32) [][][]byte {
	var out [][][]byte
	for i, size := range []int{1400, 1432, 1440, 2000, 2312} {
		d := pcap.Datagram{Src: src, Dst: dst, SrcPort: 40000, DstPort: 5160, Payload: size, ID: idBase + uint32(i), MTU: mtu}
		out = append(out, d.Frames())
	}
	return out
}

func flat(ds [][][]byte, keep func(i, j int) bool) [][]byte {
	var out [][]byte
	for i, d := range ds {
		for j, f := range d {
			if keep == nil || keep(i, j) {
				out = append(out, f)
			}
		}
	}
	return out
}

func TestSeedSizesIPv4(t *testing.T) {
	ds := seedFrames(v4src, v4dst, 1460, 100)
	r := analyze(t, capture(t, 0, flat(ds, nil)...), Config{Ports: []uint16{5160}})
	want := Classes{Unfragmented: 2, FragmentedComplete: 3}
	if r.Datagrams != want {
		t.Fatalf("classes %v, want %v", r.Datagrams, want)
	}
	if r.Sizes.PathMTU != 1460 || r.Sizes.MaxUnfragmented4 != 1432 || r.Sizes.OverMaxUnfragmented != 3 || r.Sizes.Largest != 2312 {
		t.Fatalf("sizes %+v", r.Sizes)
	}
	// the black hole: every non-first fragment dropped
	r = analyze(t, capture(t, 0, flat(ds, func(i, j int) bool { return j == 0 })...), Config{Ports: []uint16{5160}})
	want = Classes{Unfragmented: 2, FragmentedIncomplete: 3}
	if r.Datagrams != want {
		t.Fatalf("black hole classes %v, want %v", r.Datagrams, want)
	}
	if got := r.Sizes.LostSizes; len(got) != 3 || got[0] != 1440 || got[2] != 2312 {
		t.Fatalf("lost sizes %v", got)
	}
	ids := map[string]bool{}
	for _, f := range Findings(r) {
		ids[f.ID] = true
	}
	if !ids[FindingFragmentsLost] || !ids[FindingFragmented] || ids[FindingBadLength] {
		t.Fatalf("findings %v", ids)
	}
	// only the later fragments: orphans
	r = analyze(t, capture(t, 0, flat(ds, func(i, j int) bool { return j > 0 })...), Config{Ports: []uint16{5160}})
	want = Classes{OrphanFragments: 3}
	if r.Datagrams != want {
		t.Fatalf("orphan classes %v, want %v", r.Datagrams, want)
	}
}

func TestSeedSizesIPv6AndReordering(t *testing.T) {
	ds := seedFrames(v6src, v6dst, 1460, 7)
	frames := flat(ds, nil)
	// reverse the fragments of each datagram: reassembly must not care
	var rev [][]byte
	for _, d := range ds {
		for j := len(d) - 1; j >= 0; j-- {
			rev = append(rev, d[j])
		}
	}
	for name, fr := range map[string][][]byte{"inorder": frames, "reversed": rev} {
		r := analyze(t, capture(t, 0, fr...), Config{})
		// IPv6 at MTU 1460 fits 1412 bytes: only 1400 is unfragmented
		want := Classes{Unfragmented: 1, FragmentedComplete: 4}
		if r.Datagrams != want {
			t.Fatalf("%s: classes %v, want %v", name, r.Datagrams, want)
		}
		if r.Sizes.PathMTU != 1456 && r.Sizes.PathMTU != 1460 {
			t.Fatalf("%s: path MTU %d", name, r.Sizes.PathMTU)
		}
	}
}
