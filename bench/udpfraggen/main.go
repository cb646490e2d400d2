// Command udpfraggen makes load for bench/udpfrag.sh: a pcap of a realistic
// mix of UDP log traffic (small datagrams, fragmented ones, ones whose
// later fragments were lost, other ports), written with logdoctor's own
// pcap writer, or live UDP traffic at a fixed packet rate.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/logdoctor/logdoctor/pkg/pcap"
)

func main() {
	out := flag.String("o", "", "write a pcap here")
	n := flag.Int("n", 1_000_000, "packets to write")
	send := flag.String("send", "", "send UDP datagrams to HOST:PORT instead")
	pps := flag.Int("pps", 100_000, "packets per second with -send")
	dur := flag.Duration("duration", 10*time.Second, "how long to send")
	size := flag.Int("size", 200, "datagram payload with -send")
	flag.Parse()
	var err error
	switch {
	case *out != "":
		err = writeMix(*out, *n)
	case *send != "":
		err = sendRate(*send, *pps, *dur, *size)
	default:
		err = errors.New("give -o FILE or -send HOST:PORT")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpfraggen:", err)
		os.Exit(1)
	}
}

// writeMix writes at least n packets: 75% small datagrams (60-960 bytes),
// 15% fragmented (1500-4500 bytes) and complete, 5% fragmented with the
// later fragments lost, 5% to another port; 64 sources, MTU 1500, 100k
// packets per second of capture time.
func writeMix(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := pcap.NewWriter(bw, 262144, pcap.LinkEthernet)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ts := time.Unix(1700000000, 0)
	dst := netip.MustParseAddr("10.99.0.1")
	written := 0
	for id := uint32(1); written < n; id++ {
		src := netip.AddrFrom4([4]byte{10, 98, 0, byte(rng.IntN(64) + 1)})
		d := pcap.Datagram{Src: src, Dst: dst, SrcPort: uint16(30000 + rng.IntN(1000)), DstPort: 5160, ID: id & 0xffff, MTU: 1500}
		r := rng.IntN(100)
		lost := false
		switch {
		case r < 75:
			d.Payload = 60 + rng.IntN(900)
		case r < 90:
			d.Payload = 1500 + rng.IntN(3000)
		case r < 95:
			d.Payload = 1500 + rng.IntN(3000)
			lost = true
		default:
			d.Payload = 60 + rng.IntN(600)
			d.DstPort = 514
		}
		for i, fr := range d.Frames() {
			if lost && i > 0 {
				break
			}
			ts = ts.Add(10 * time.Microsecond)
			if err := w.WritePacket(ts, fr, len(fr)); err != nil {
				return err
			}
			written++
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// sendRate sends size-byte datagrams at pps for dur, in 1 ms batches.
func sendRate(addr string, pps int, dur time.Duration, size int) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	payload := make([]byte, size)
	start := time.Now()
	sent := 0
	for time.Since(start) < dur {
		due := int(time.Since(start).Seconds() * float64(pps))
		for ; sent < due; sent++ {
			_, _ = c.Write(payload) // ICMP errors from a closed port are not the point
		}
		time.Sleep(200 * time.Microsecond)
	}
	fmt.Printf("sent %d datagrams in %s (%.0f pps)\n", sent, time.Since(start).Round(time.Millisecond), float64(sent)/time.Since(start).Seconds())
	return nil
}
