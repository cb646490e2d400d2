package pipeline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
)

func forwardRequest(t *testing.T, mode forward.Mode, tag string, from, n int) *forward.Request {
	t.Helper()
	req := &forward.Request{Tag: tag, Mode: mode, Chunk: forward.NewChunkID()}
	for i := from; i < from+n; i++ {
		rec, err := msgpack.Marshal(map[string]any{"msg": fmt.Sprintf("%s-%d", tag, i)})
		if err != nil {
			t.Fatal(err)
		}
		req.Entries = append(req.Entries, forward.Entry{Time: forward.EventTime{Sec: uint32(1763719200 + i), Nsec: 5}, Record: rec})
	}
	return req
}

// TestForwardModesTLSSharedKey: Message, Forward, PackedForward and
// CompressedPackedForward over TLS with the shared-key handshake are all
// acked after fsync and indexed once; the UDP heartbeat is answered on the
// forward port; a wrong key gets nothing in.
func TestForwardModesTLSSharedKey(t *testing.T) {
	es := startES(t, "", essim.Config{})
	certs := forwardtest.NewCerts(t)
	p := startPipeline(t, Config{ES: esConfig(es), ForwardSharedKey: "k3y", ForwardTLS: certs.ServerTLS(false)})
	addr := p.ForwardAddr().String()
	ctx := context.Background()
	ccfg := forward.ClientConfig{SharedKey: "k3y", Hostname: "test", TLSConfig: &tls.Config{RootCAs: certs.CAPool}}
	c, err := forward.Dial(ctx, addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := map[string]bool{}
	for _, mode := range forward.Modes() {
		n := 1
		if mode != forward.ModeMessage {
			n = 25
		}
		req := forwardRequest(t, mode, "mode."+mode.String(), 0, n)
		if err := c.Send(req, 5*time.Second); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		for i := 0; i < n; i++ {
			want[fmt.Sprintf("mode.%s-%d", mode, i)] = true
		}
	}
	flush(t, p, 10*time.Second)
	byKey := checkExactlyOnce(t, esDocs(t, es.URL(), "logs-*", 1000), "msg", want)
	if d := byKey["mode.packed-3"]; d["@timestamp"] != "2025-11-21T10:00:03.000000005Z" || d["tag"] != "mode.packed" {
		t.Fatalf("document %v", d)
	}

	bad := ccfg
	bad.SharedKey = "wrong"
	if _, err := forward.Dial(ctx, addr, bad); !errors.Is(err, forward.ErrAuth) {
		t.Fatalf("wrong shared key: %v", err)
	}

	// Heartbeat: a 0x00 datagram is answered on the same port.
	hb, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	hb.Write([]byte{0})
	hb.SetReadDeadline(time.Now().Add(3 * time.Second))
	b := make([]byte, 8)
	if n, err := hb.Read(b); err != nil || n != 1 || b[0] != 0 {
		t.Fatalf("heartbeat answer %x %v", b[:n], err)
	}
}

// TestMaxConns: at the limit a new connection is admitted by closing the
// one idle the longest; senders keep being served, and the closing is
// counted.
func TestMaxConns(t *testing.T) {
	es := startES(t, "", essim.Config{})
	p := startPipeline(t, Config{ES: esConfig(es), MaxConns: 2})
	addr := p.ForwardAddr().String()
	ctx := context.Background()
	var conns []*forward.Conn
	for i := 0; i < 2; i++ {
		c, err := forward.Dial(ctx, addr, forward.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	waitFor(t, "2 connections", 5*time.Second, func() bool { return p.fwdStats().Active == 2 })
	if err := conns[1].Send(forwardRequest(t, forward.ModeForward, "inside", 0, 3), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	extra, err := forward.Dial(ctx, addr, forward.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if err := extra.Send(forwardRequest(t, forward.ModeForward, "over", 0, 1), 5*time.Second); err != nil {
		t.Fatalf("a sender over the limit was not served: %v", err)
	}
	if err := conns[1].Send(forwardRequest(t, forward.ModeForward, "inside", 3, 3), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := conns[0].Send(forwardRequest(t, forward.ModeForward, "idle", 0, 1), 2*time.Second); err == nil {
		t.Fatal("the connection idle the longest was kept")
	}
	if got := p.fwdStats().Evicted; got != 1 {
		t.Fatalf("evicted connections %v", got)
	}
}

// TestShutdownLeavesRestInBuffer: Close with Elasticsearch failing gives
// up flushing at the deadline and leaves the events on disk; the next
// pipeline on the same directory delivers them, once.
func TestShutdownLeavesRestInBuffer(t *testing.T) {
	es := startES(t, "", essim.Config{Faults: essim.Faults{FailRate: 1, FailStatus: 503}})
	dir := t.TempDir()
	cfg := Config{BufferDir: dir, ForwardAddr: "127.0.0.1:0", Logger: testLogger(t),
		ES: esout.Config{URLs: []string{es.URL()}, RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := forward.Dial(context.Background(), p.ForwardAddr().String(), forward.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		if err := c.Send(forwardRequest(t, forward.ModePacked, "shut", i*20, 20), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		want[fmt.Sprintf("shut-%d", i)] = true
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	if st := p.Stats(); st.Buffer.Records != 100 {
		t.Fatalf("left %d events, want 100", st.Buffer.Records)
	}
	es.SetFaults(essim.Faults{})
	cfg.ES.URLs = []string{es.URL()}
	p2 := startPipeline(t, cfg)
	if rc := p2.Stats().Recovery; rc.Replay != 100 {
		t.Fatalf("recovery %+v", rc)
	}
	flush(t, p2, 10*time.Second)
	checkExactlyOnce(t, esDocs(t, es.URL(), "logs-*", 1000), "msg", want)
}

// TestForwardJSON: Fluentd also accepts a request as bare JSON on the
// forward port and acks it in JSON; so does the pipeline.
func TestForwardJSON(t *testing.T) {
	es := startES(t, "", essim.Config{})
	p := startPipeline(t, Config{ES: esConfig(es)})
	c, err := net.Dial("tcp", p.ForwardAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`["json.tag", 1763719200, {"msg":"j-1","n":[1,2]}, {"chunk":"YWJj"}]`)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	ack := make([]byte, 64)
	n, err := c.Read(ack)
	if err != nil || !strings.Contains(string(ack[:n]), `"ack":"YWJj"`) {
		t.Fatalf("ack %q %v", ack[:n], err)
	}
	flush(t, p, 5*time.Second)
	d := checkExactlyOnce(t, esDocs(t, es.URL(), "logs-*", 10), "msg", map[string]bool{"j-1": true})["j-1"]
	if d["tag"] != "json.tag" || d["@timestamp"] != "2025-11-21T10:00:00.000000000Z" || fmt.Sprint(d["n"]) != "[1 2]" {
		t.Fatalf("document %v", d)
	}
}

// TestStartFailure: a forward address in use fails Start with a clear
// error, releases the buffer, and Close afterwards is harmless.
func TestStartFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := New(Config{ForwardAddr: ln.Addr().String(), BufferDir: t.TempDir(), ES: esout.Config{URLs: []string{"http://127.0.0.2:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "forward listener") {
		t.Fatalf("Start: %v", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("Close after failed Start: %v", err)
	}
}
