package pipeline

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
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

// TestUDPBackpressure: with Elasticsearch refusing everything and the
// buffer full, the UDP input stops reading (the kernel queue overflows
// and its drops are counted) instead of growing; once Elasticsearch is
// back, what was buffered drains.
func TestUDPBackpressure(t *testing.T) {
	es := startES(t, "", essim.Config{Faults: essim.Faults{FailRate: 1, FailStatus: 503}})
	const maxBuf = 64 << 10
	p := startPipeline(t, Config{UDPAddr: "127.0.0.1:0", UDPReadBuffer: 4096, BufferMaxBytes: maxBuf,
		ES: esout.Config{URLs: []string{es.URL()}, RetryInitial: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}})
	c, err := net.Dial("udp", p.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pad := strings.Repeat("p", 400)
	const n = 3000
	for i := 0; i < n; i++ {
		fmt.Fprintf(c, `{"msg":"bp-%d","pad":%q}`, i, pad)
	}
	waitFor(t, "kernel drops", 10*time.Second, func() bool { return p.UDPKernelDrops() > 0 })
	st := p.Stats()
	if st.Buffer.Bytes > maxBuf {
		t.Fatalf("buffer holds %d bytes, over %d", st.Buffer.Bytes, maxBuf)
	}
	if st.UDPEvents >= n {
		t.Fatalf("all %d datagrams buffered despite the limit", st.UDPEvents)
	}
	es.SetFaults(essim.Faults{})
	waitFor(t, "drain", 20*time.Second, func() bool {
		s := p.Stats()
		return s.Buffer.Records == 0 && s.Output.Indexed > 0 && s.Output.Indexed == s.UDPEvents
	})
	got := metric(t, p, "logdoctor_pipeline_udp_kernel_drops_total", nil)
	if got == 0 {
		t.Fatal("kernel drops metric is 0")
	}
	t.Logf("buffered %d of %d datagrams; kernel dropped %d", p.Stats().UDPEvents, n, p.UDPKernelDrops())

	// The kernel forgets the counter with the socket: after Close the
	// pipeline still says what the metric said, for the exit report.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := p.UDPKernelDrops(); float64(d) != got {
		t.Fatalf("after Close: %d drops, the metric said %v", d, got)
	}
	if after := metric(t, p, "logdoctor_pipeline_udp_kernel_drops_total", nil); after != got {
		t.Fatalf("metric after Close %v, before %v", after, got)
	}
}

// TestUDPEventTime: the time field sets the event time (and so
// @timestamp and the daily index) as Fluentd's json parser does, and is
// removed from the record; without it the arrival time is used; a value
// that is no time dead-letters the datagram.
func TestUDPEventTime(t *testing.T) {
	es := startES(t, "", essim.Config{})
	p := startPipeline(t, Config{UDPAddr: "127.0.0.1:0", ES: esConfig(es)})
	c, err := net.Dial("udp", p.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := []string{
		`{"msg":"frac","time":1700000000.123456789}`,
		`{"msg":"frac","time":1700000000.123456789}`, // the same event again: one document
		`{"time":1700000001,"msg":"int"}`,
		`{"msg":"rfc3339","time":"2024-02-29T12:00:00.5+02:00","n":1}`,
		`{"msg":"exp","time":1.7e9}`,
		`{"msg":"none"}`,
	}
	bad := []string{`{"msg":"words","time":"yesterday"}`, `{"msg":"neg","time":-5}`, `{"msg":"bool","time":true}`, `{"msg":"far","time":1e12}`}
	for _, d := range append(good, bad...) {
		if _, err := c.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().UDPEvents+p.Stats().UDPBad < uint64(len(good)+len(bad)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	flush(t, p, 10*time.Second)
	// The arrival-time event lands in today's index (yesterday's if the
	// test straddled midnight UTC).
	today := time.Now().UTC().Format("2006.01.02")
	if es.Count("logs-udp-"+today) == 0 {
		today = time.Now().UTC().Add(-time.Hour).Format("2006.01.02")
	}
	want := map[string]struct{ index, ts string }{
		"frac":    {"logs-udp-2023.11.14", "2023-11-14T22:13:20.123456789Z"},
		"int":     {"logs-udp-2023.11.14", "2023-11-14T22:13:21.000000000Z"},
		"rfc3339": {"logs-udp-2024.02.29", "2024-02-29T10:00:00.500000000Z"},
		"exp":     {"logs-udp-2023.11.14", "2023-11-14T22:13:20.000000000Z"},
		"none":    {"logs-udp-" + today, ""},
	}
	wantKeys := map[string]bool{}
	for k := range want {
		wantKeys[k] = true
	}
	checkExactlyOnce(t, esDocs(t, es.URL(), "logs-udp-*", 100), "msg", wantKeys)
	for msg, w := range want {
		docs := esDocs(t, es.URL(), w.index, 100)
		var d map[string]any
		for _, x := range docs {
			if x["msg"] == msg {
				d = x
			}
		}
		if d == nil {
			t.Fatalf("%s: not in %s (%v)", msg, w.index, docs)
		}
		if _, ok := d["time"]; ok {
			t.Fatalf("%s: time field kept: %v", msg, d)
		}
		if w.ts != "" && d["@timestamp"] != w.ts {
			t.Fatalf("%s: @timestamp %v, want %s", msg, d["@timestamp"], w.ts)
		}
	}
	if st := p.Stats(); st.UDPBad != uint64(len(bad)) {
		t.Fatalf("stats %+v, want %d bad", st, len(bad))
	}
	for _, d := range readDeadLetters(t, p.DeadLetterPath()) {
		if !strings.HasPrefix(d.Reason, `field "time": `) {
			t.Fatalf("dead letter reason %q", d.Reason)
		}
	}
	if got := metric(t, p, "logdoctor_pipeline_udp_bad_total", map[string]string{"reason": "bad_time"}); got != float64(len(bad)) {
		t.Fatalf("udp_bad_total{reason=bad_time} %v", got)
	}
}

// With UDPKeepTimeKey the field stays; with UDPTimeKey "-" it is an
// ordinary field and the arrival time is used.
func TestUDPTimeKeyOptions(t *testing.T) {
	for _, tc := range []struct {
		key  string
		keep bool
	}{{"time", true}, {"-", false}} {
		// Never started: the URL is not contacted.
		p, err := New(Config{UDPAddr: "127.0.0.1:0", MemoryBuffer: true, UDPTimeKey: tc.key, UDPKeepTimeKey: tc.keep,
			ES: esout.Config{URLs: []string{"http://127.0.0.2:1"}}})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
		rec, _, err := p.udpRecord([]byte(`{"time":1700000000,"m":1}`), now)
		if err != nil {
			t.Fatal(err)
		}
		wantSec := int64(1700000000)
		if tc.key == "-" {
			wantSec = now.Unix()
		}
		if rec.Sec != wantSec || !strings.Contains(string(rec.Doc), `"time":1700000000`) {
			t.Fatalf("key %q keep %v: sec %d doc %s", tc.key, tc.keep, rec.Sec, rec.Doc)
		}
	}
}

func TestParseEventTime(t *testing.T) {
	for in, want := range map[string]string{
		`0`:                           "1970-01-01T00:00:00Z",
		`1700000000.5`:                "2023-11-14T22:13:20.5Z",
		`1700000000.1234567899`:       "2023-11-14T22:13:20.123456789Z",
		`1700000000.`:                 "2023-11-14T22:13:20Z",
		`"2023-11-14T22:13:20Z"`:      "2023-11-14T22:13:20Z",
		`"2023-11-15T07:13:20+09:00"`: "2023-11-14T22:13:20Z",
	} {
		got, err := parseEventTime([]byte(in))
		if err != nil || got.UTC().Format(time.RFC3339Nano) != want {
			t.Errorf("parseEventTime(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{`-1`, `"1700000000"`, `null`, `{}`, `253402300800`, `"10000-01-01T00:00:00Z"`, `1e400`, `"\u00"`} {
		if got, err := parseEventTime([]byte(in)); err == nil {
			t.Errorf("parseEventTime(%s) = %v, want an error", in, got)
		}
	}
}
