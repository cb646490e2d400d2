package udpfrag

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/pcap"
)

// BenchmarkAnalyzeReader measures the offline path on an in-memory mix of
// small and fragmented datagrams.
func BenchmarkAnalyzeReader(b *testing.B) {
	var buf bytes.Buffer
	w, _ := pcap.NewWriter(&buf, 0, pcap.LinkEthernet)
	ts := time.Unix(1700000000, 0)
	packets := 0
	for i := 0; packets < 100000; i++ {
		size := 100 + i%900
		if i%5 == 0 {
			size = 1500 + i%3000
		}
		d := pcap.Datagram{Src: netip.AddrFrom4([4]byte{10, 98, 0, byte(i % 64)}), Dst: v4dst, DstPort: 5160, Payload: size, ID: uint32(i), MTU: 1500}
		for _, f := range d.Frames() {
			ts = ts.Add(10 * time.Microsecond)
			_ = w.WritePacket(ts, f, len(f))
			packets++
		}
	}
	_ = w.Flush()
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := AnalyzeReader(context.Background(), bytes.NewReader(data), Config{Ports: []uint16{5160}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(packets)*float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
