package udpfrag

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/logdoctor/logdoctor/pkg/pcap"
)

// fuzzSeeds are small captures covering each class and both file formats.
func fuzzSeeds(t testing.TB) [][]byte {
	bad := dgram(200, 1)
	bad.UDPLenDelta = 40
	v6 := pcap.Datagram{Src: v6src, Dst: v6dst, DstPort: 5160, Payload: 2000, ID: 9, MTU: 1460}
	frames := append(dgram(2000, 2).Frames(), bad.Frames()...)
	frames = append(frames, v6.Frames()...)
	frames = append(frames, dgram(3000, 3).Frames()[1])
	whole := capture(t, 0, frames...)
	snap := capture(t, 100, dgram(1000, 4).Frames()...)
	cut := whole[:len(whole)-7]
	var ng bytes.Buffer
	// fixed section and interface options: the corpus must not depend on
	// the machine that wrote it
	ifc := pcapgo.NgInterface{Name: "eth0", OS: "linux", LinkType: layers.LinkTypeEthernet, TimestampResolution: 9}
	if w, err := pcapgo.NewNgWriterInterface(&ng, ifc, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "logdoctor"}}); err == nil {
		for _, f := range frames {
			_ = w.WritePacket(gopacketCI(time.Unix(1700000000, 0), len(f)), f)
		}
		_ = w.Flush()
	}
	return [][]byte{ng.Bytes(), whole, snap, cut, capture(t, 0), append([]byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a}, make([]byte, 16)...), []byte("not a pcap")}
}

func FuzzFileReader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := AnalyzeReader(context.Background(), bytes.NewReader(b), Config{MaxFlows: 64})
		if err != nil {
			if !errors.Is(err, pcap.ErrNotPcap) {
				t.Fatalf("error does not say the input is not a capture: %v", err)
			}
			return
		}
		if got := r.Datagrams.Total(); got > r.Packets.Packets {
			t.Fatalf("%d datagrams from %d packets", got, r.Packets.Packets)
		}
		if r.File.Records != r.Packets.Packets {
			t.Fatalf("records %d, packets %d", r.File.Records, r.Packets.Packets)
		}
	})
}

// FuzzAccounting feeds arbitrary frames to the datagram accounting: the
// first byte picks the link type, then frames follow, each preceded by a
// 2-byte length.
func FuzzAccounting(f *testing.F) {
	links := []uint32{pcap.LinkEthernet, pcap.LinkSLL, pcap.LinkSLL2, pcap.LinkRaw, pcap.LinkIPv4, pcap.LinkIPv6}
	for _, s := range accountingSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		link := links[int(b[0])%len(links)]
		a := NewAnalyzer(Config{MaxFlows: 4, MaxBytes: 8192, Ports: []uint16{5160}})
		b = b[1:]
		ts := int64(1e18)
		var n uint64
		for len(b) >= 2 {
			l := int(binary.BigEndian.Uint16(b))
			b = b[2:]
			l = min(l, len(b))
			orig := l
			if l > 0 {
				orig += int(b[0]) % 3 * 10 // sometimes a snap-cut record
			}
			a.Packet(b[:l], pcap.Meta{TimeNS: ts, CapLen: l, OrigLen: orig, Link: link})
			b = b[l:]
			ts += int64(time.Second)
			n++
		}
		a.Flush()
		if len(a.flows) != 0 || a.held != 0 || a.head != nil {
			t.Fatalf("state left after Flush: %d flows, %d bytes", len(a.flows), a.held)
		}
		r := a.Result()
		if r.Datagrams.Total() > n {
			t.Fatalf("%d datagrams from %d frames", r.Datagrams.Total(), n)
		}
	})
}

// encFrames is FuzzAccounting's input format.
func encFrames(link byte, frames [][]byte) []byte {
	b := []byte{link}
	for _, fr := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(fr)))
		b = append(b, fr...)
	}
	return b
}

func accountingSeeds() [][]byte {
	return [][]byte{
		encFrames(0, flat(seedFrames(v4src, v4dst, 1460, 1), nil)),
		encFrames(0, flat(seedFrames(v6src, v6dst, 1280, 1), nil)),
		encFrames(3, [][]byte{dgram(3000, 5).Frames()[1][14:]}),
	}
}

// TestFuzzCorpusUpToDate holds testdata/fuzz to the seeds in this file, so
// `make fuzz` starts from every case; UPDATE_FUZZ_CORPUS=1 rewrites it.
func TestFuzzCorpusUpToDate(t *testing.T) {
	update := os.Getenv("UPDATE_FUZZ_CORPUS") == "1"
	for name, seeds := range map[string][][]byte{"FuzzFileReader": fuzzSeeds(t), "FuzzAccounting": accountingSeeds()} {
		dir := filepath.Join("testdata", "fuzz", name)
		if update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range seeds {
			path := filepath.Join(dir, fmt.Sprintf("seed%d", i))
			body := []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n")
			if update {
				if err := os.WriteFile(path, body, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("%s is missing or stale (%v): run UPDATE_FUZZ_CORPUS=1 go test ./pkg/udpfrag -run TestFuzzCorpusUpToDate", path, err)
			}
		}
	}
}
