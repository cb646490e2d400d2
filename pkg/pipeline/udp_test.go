package pipeline

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
)

// TestUDPJSON: good datagrams are indexed once; garbage, arrays and
// oversize datagrams are counted and kept in the dead-letter file, and the
// input keeps serving.
func TestUDPJSON(t *testing.T) {
	es := startES(t, "", essim.Config{})
	p := startPipeline(t, Config{UDPAddr: "127.0.0.1:0", UDPMaxDatagram: 1000, UDPReadBuffer: 1 << 20, ES: esConfig(es)})
	c, err := net.Dial("udp", p.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 200
	want := map[string]bool{}
	bad := [][]byte{
		[]byte("not json at all"),
		[]byte(`{"half": `),
		[]byte(`[1,2,3]`),
		{0xff, 0xfe, 0x00, 0x01},
		[]byte(`{"big":"` + strings.Repeat("x", 1200) + `"}`),
	}
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("udp-%d", i)
		want[msg] = true
		if _, err := fmt.Fprintf(c, `{"msg":%q,"level":"info","n":%d}`, msg, i); err != nil {
			t.Fatal(err)
		}
		if i%40 == 0 {
			if _, err := c.Write(bad[i/40]); err != nil {
				t.Fatal(err)
			}
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // stay within the socket buffer
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().UDPEvents+p.Stats().UDPBad < n+uint64(len(bad)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	flush(t, p, 10*time.Second)
	byKey := checkExactlyOnce(t, esDocs(t, es.URL(), "logs-udp-*", 1000), "msg", want)
	if d := byKey["udp-3"]; d["tag"] != "udp" || fmt.Sprint(d["n"]) != "3" || d["@timestamp"] == nil {
		t.Fatalf("document %v", d)
	}
	st := p.Stats()
	if st.UDPBad != uint64(len(bad)) || st.UDPEvents != n {
		t.Fatalf("stats %+v", st)
	}
	dls := readDeadLetters(t, p.DeadLetterPath())
	if len(dls) != len(bad) {
		t.Fatalf("%d dead letters, want %d: %+v", len(dls), len(bad), dls)
	}
	reasons := map[string]bool{}
	for _, d := range dls {
		reasons[d.Reason] = true
		if d.Source != "udp" || d.Peer == "" || d.Data == "" && d.DataBase64 == "" {
			t.Fatalf("dead letter %+v", d)
		}
	}
	for _, r := range []string{"not a JSON object", "invalid JSON", "datagram over 1000 bytes"} {
		if !reasons[r] {
			t.Errorf("no dead letter with reason %q: %v", r, reasons)
		}
	}
	if got := metric(t, p, "logdoctor_pipeline_dead_letters_total", map[string]string{"source": "udp"}); got != float64(len(bad)) {
		t.Fatalf("dead_letters_total{source=udp} %v", got)
	}
	if got := metric(t, p, "logdoctor_pipeline_udp_bad_total", nil); got != float64(len(bad)) {
		t.Fatalf("udp_bad_total %v", got)
	}
	// The kernel drop counter is read from /proc/net/udp for this socket.
	if got := metric(t, p, "logdoctor_pipeline_udp_kernel_drops_total", nil); got != float64(p.UDPKernelDrops()) {
		t.Fatalf("kernel drops metric %v vs %d", got, p.UDPKernelDrops())
	}
}

// TestKernelDrops: a socket nobody reads, with the smallest receive
// buffer, overflows; the counter read from /proc/net/udp sees it.
func TestKernelDrops(t *testing.T) {
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.SetReadBuffer(1) // the kernel rounds up to its minimum
	local := ln.LocalAddr().(*net.UDPAddr)
	if d := kernelDrops("/proc", local); d != 0 {
		t.Fatalf("fresh socket has %d drops", d)
	}
	c, err := net.DialUDP("udp", nil, local)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 1000)
	for i := 0; i < 200; i++ {
		c.Write(payload)
	}
	if d := kernelDrops("/proc", local); d == 0 {
		t.Fatal("no drops counted after overflowing the socket")
	}
}
