package pipeline

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/essim"
)

// TestBadForwardInput: each kind of bad input costs only its own
// connection (closed, no ack, counted); a well-behaved sender keeps
// getting acks throughout.
func TestBadForwardInput(t *testing.T) {
	es := startES(t, "", essim.Config{})
	p := startPipeline(t, Config{ES: esConfig(es), ReadTimeout: 500 * time.Millisecond,
		MaxRequestBytes: 1 << 20, MaxDecompressedBytes: 1 << 20, MaxConns: 32})
	addr := p.ForwardAddr().String()
	host, port := hostPort(t, p.ForwardAddr())
	lg, err := fluent.New(fluent.Config{FluentHost: host, FluentPort: port, RequestAck: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	good := 0
	sendGood := func() {
		t.Helper()
		if err := lg.Post("good", map[string]any{"msg": fmt.Sprintf("good-%d", good)}); err != nil {
			t.Fatalf("good sender after bad input: %v", err)
		}
		good++
	}

	// A gzip bomb against a 1 MiB limit: 64 MiB of zeros as 64 concatenated
	// gzip members (CompressedPackedForward allows several).
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestSpeed)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	gz := bytes.Repeat(member.Bytes(), 64)
	bomb, _ := msgpack.Marshal([]any{"bomb", gz, map[string]any{"compressed": "gzip", "chunk": "bomb-chunk"}})

	cases := []struct {
		name string
		data []byte
	}{
		{"malformed msgpack", []byte{0x93, 0xc1, 0xc1, 0xc1, 0xc1}},
		{"2 GiB declared length", []byte{0x93, 0xa3, 'b', 'i', 'g', 0xc6, 0x80, 0x00, 0x00, 0x00}},
		{"2 GiB array", []byte{0x93, 0xa3, 'b', 'i', 'g', 0xdd, 0x7f, 0xff, 0xff, 0xff}},
		{"gzip bomb", bomb},
	}
	for _, c := range cases {
		before := p.fwdStats().Errors
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(c.data)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(conn)
		conn.Close()
		if len(got) > 0 {
			t.Errorf("%s: server answered %q", c.name, got)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: connection not closed by the server", c.name)
		}
		deadline := time.Now().Add(2 * time.Second)
		for p.fwdStats().Errors == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if p.fwdStats().Errors == before {
			t.Errorf("%s: not counted as a connection error", c.name)
		}
		sendGood()
	}

	// A well-formed value that is not a request: in_forward logs
	// "incoming chunk is broken", drops it and keeps the connection; so
	// does the pipeline, counting it. The next request on the same
	// connection is acked.
	broken, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer broken.Close()
	broken.Write([]byte{0xa5, 'h', 'e', 'l', 'l', 'o'})
	okReq, _ := msgpack.Marshal([]any{"good", []any{[]any{time.Now().Unix(), map[string]any{"msg": fmt.Sprintf("good-%d", good)}}}, map[string]any{"chunk": "after-broken"}})
	broken.Write(okReq)
	good++
	broken.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ack map[string]any
	if err := msgpack.NewDecoder(broken).Decode(&ack); err != nil || ack["ack"] != "after-broken" {
		t.Fatalf("request after a broken one on the same connection: ack %v, %v", ack, err)
	}
	if got := metric(t, p, "logdoctor_pipeline_forward_broken_requests_total", nil); got != 1 {
		t.Fatalf("forward_broken_requests_total %v, want 1", got)
	}

	// Half-open requests (slowloris): a request's first bytes and then
	// nothing. They hold a connection each until the read deadline.
	var half []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0x93, 0xa4, 'h', 'a'})
		half = append(half, c)
	}
	sendGood()
	for _, c := range half {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("half-open connection not closed after the read timeout")
			}
		}
	}
	sendGood()

	flush(t, p, 10*time.Second)
	want := map[string]bool{}
	for i := 0; i < good; i++ {
		want[fmt.Sprintf("good-%d", i)] = true
	}
	checkExactlyOnce(t, esDocs(t, es.URL(), "logs-*", 1000), "msg", want)
	if got := metric(t, p, "logdoctor_pipeline_forward_errors_total", nil); got < float64(len(cases)+len(half)) {
		t.Fatalf("forward_errors_total %v, want >= %d", got, len(cases)+len(half))
	}
	if p.Stats().ForwardEvents != uint64(good) {
		t.Fatalf("stats %+v", p.Stats())
	}
}
