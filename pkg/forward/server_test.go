package forward_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
)

func record(t testing.TB, m map[string]any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dial(t *testing.T, addr string, cfg forward.ClientConfig) *forward.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := forward.Dial(ctx, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServerAcksEveryMode(t *testing.T) {
	rec := forwardtest.NewRecorder()
	srv := &forward.Server{Handler: rec}
	addr := forwardtest.Start(t, srv)
	c := dial(t, addr, forward.ClientConfig{})
	want := 0
	for _, mode := range forward.Modes() {
		req := &forward.Request{Tag: "t." + mode.String(), Mode: mode, Chunk: forward.NewChunkID()}
		n := 3
		if mode == forward.ModeMessage {
			n = 1
		}
		for i := 0; i < n; i++ {
			req.Entries = append(req.Entries, forward.Entry{Time: forward.EventTime{Sec: 100, Nsec: uint32(i)}, Record: record(t, map[string]any{"i": i})})
		}
		if err := c.Send(req, 5*time.Second); err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		want += n
	}
	// A request without chunk gets no ack; the next one with chunk still
	// matches its own ack.
	noAck := &forward.Request{Tag: "t.noack", Mode: forward.ModeMessage, Entries: []forward.Entry{{Record: record(t, map[string]any{"x": 1})}}}
	if err := c.Send(noAck, time.Second); err != nil {
		t.Fatal(err)
	}
	noAck.Chunk = forward.NewChunkID()
	if err := c.Send(noAck, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	want += 2
	ev := rec.WaitFor(want, 5*time.Second)
	if len(ev) != want {
		t.Fatalf("got %d events, want %d", len(ev), want)
	}
	if ev[0].Tag != "t.message" || ev[1].Tag != "t.forward" || ev[1].Time != (forward.EventTime{Sec: 100}) || ev[2].Time.Nsec != 1 {
		t.Fatalf("events %+v", ev[:3])
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.Acks == 5 && st.Requests == 6 && st.Events == int64(want) })
}

func TestMalformedRequestClosesOnlyItsConnection(t *testing.T) {
	rec := forwardtest.NewRecorder()
	srv := &forward.Server{Handler: rec}
	addr := forwardtest.Start(t, srv)
	good := dial(t, addr, forward.ClientConfig{})
	bad, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	// A frame declaring a 4 GiB array.
	bad.Write([]byte{0x93, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff})
	bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("bad connection: read %v, want EOF", err)
	}
	req := &forward.Request{Tag: "ok", Mode: forward.ModeForward, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	if err := good.Send(req, 5*time.Second); err != nil {
		t.Fatalf("good connection after bad one: %v", err)
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.Errors == 1 })
}

// waitStats waits (bounded) for the server's counters to satisfy ok: the
// client can see an ack before the server has counted it.
func waitStats(t *testing.T, srv *forward.Server, ok func(forward.Stats) bool) {
	t.Helper()
	for i := 0; i < 500 && !ok(srv.Stats()); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if st := srv.Stats(); !ok(st) {
		t.Fatalf("stats %+v", st)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

func TestHandlerErrorWithholdsAck(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	h := forward.HandlerFunc(func(ctx context.Context, peer net.Addr, req *forward.Request) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch calls {
		case 1:
			return errors.New("buffer full")
		case 3:
			return forward.ErrCloseConnection
		}
		return nil
	})
	addr := forwardtest.Start(t, &forward.Server{Handler: h})
	c := dial(t, addr, forward.ClientConfig{})
	req := &forward.Request{Tag: "t", Mode: forward.ModeMessage, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	if err := c.Send(req, 300*time.Millisecond); !errors.Is(err, forward.ErrNoAck) {
		t.Fatalf("first send: %v, want ErrNoAck", err)
	}
	// The retry on the same connection (same chunk, as a sender would) is acked.
	if err := c.Send(req, 5*time.Second); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if err := c.Send(req, 5*time.Second); !errors.Is(err, forward.ErrClosedBeforeAck) {
		t.Fatalf("third send: %v, want ErrClosedBeforeAck", err)
	}
}

func TestAckMismatch(t *testing.T) {
	srv := &forward.Server{Handler: forwardtest.NewRecorder(), AckFor: func(r *forward.Request) string { return r.Chunk + "x" }}
	addr := forwardtest.Start(t, srv)
	c := dial(t, addr, forward.ClientConfig{})
	req := &forward.Request{Tag: "t", Mode: forward.ModePacked, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	var me *forward.AckMismatchError
	if err := c.Send(req, 5*time.Second); !errors.As(err, &me) || me.Got != req.Chunk+"x" {
		t.Fatalf("got %v", err)
	}
}

func TestJSONRequestGetsJSONAck(t *testing.T) {
	rec := forwardtest.NewRecorder()
	srv := &forward.Server{Handler: rec}
	addr := forwardtest.Start(t, srv)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A bare JSON object first: Fluentd logs it as a broken chunk and keeps
	// the connection, and so does the server.
	c.Write([]byte(`{"not":"a request"}` + "\n" + `["json.tag",1700000000,{"k":"v"},{"chunk":"abc="}]`))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != `{"ack":"abc="}` {
		t.Fatalf("ack %q %v", buf[:n], err)
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.Dropped == 1 && st.Errors == 0 && st.Acks == 1 })
}

func TestSharedKeyAndUserAuth(t *testing.T) {
	rec := forwardtest.NewRecorder()
	srv := &forward.Server{Handler: rec, SharedKey: "s3cret", Users: map[string]string{"alice": "pw"}, Hostname: "server-host"}
	addr := forwardtest.Start(t, srv)
	ctx := context.Background()
	ok := forward.ClientConfig{SharedKey: "s3cret", Username: "alice", Password: "pw", Hostname: "client-host"}
	c, err := forward.Dial(ctx, addr, ok)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Trace.Handshook || c.Trace.ServerHostname != "server-host" {
		t.Fatalf("trace %+v", c.Trace)
	}
	req := &forward.Request{Tag: "t", Mode: forward.ModeMessage, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	if err := c.Send(req, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Close()

	cases := map[string]struct {
		cfg    forward.ClientConfig
		reason string
	}{
		"wrong key":      {forward.ClientConfig{SharedKey: "nope", Username: "alice", Password: "pw", Hostname: "h"}, "shared_key mismatch"},
		"wrong password": {forward.ClientConfig{SharedKey: "s3cret", Username: "alice", Password: "x", Hostname: "h"}, "username/password mismatch"},
		"same hostname":  {forward.ClientConfig{SharedKey: "s3cret", Username: "alice", Password: "pw", Hostname: "server-host"}, "same hostname between input and output: invalid configuration"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := forward.Dial(ctx, addr, tc.cfg)
			var ae *forward.AuthError
			if !errors.As(err, &ae) || ae.Reason != tc.reason || !errors.Is(err, forward.ErrAuth) {
				t.Fatalf("got %v, want reason %q", err, tc.reason)
			}
		})
	}
	// No key given but the server sends HELO.
	_, err = forward.Dial(ctx, addr, forward.ClientConfig{HeloWait: 2 * time.Second})
	if !errors.Is(err, forward.ErrHandshakeRequired) {
		t.Fatalf("no key: %v", err)
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.AuthFailed == 3 })
}

func TestTLS(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	rec := forwardtest.NewRecorder()
	addr := forwardtest.Start(t, &forward.Server{Handler: rec, TLSConfig: certs.ServerTLS(true), SharedKey: "k", Hostname: "srv"})
	cfg := forward.ClientConfig{SharedKey: "k", Hostname: "cli", TLSConfig: &tls.Config{RootCAs: certs.CAPool, Certificates: []tls.Certificate{certs.ClientCert}}}
	c := dial(t, addr, cfg)
	if c.Trace.TLS <= 0 || !c.Trace.Handshook {
		t.Fatalf("trace %+v", c.Trace)
	}
	req := &forward.Request{Tag: "tls", Mode: forward.ModeCompressed, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	if err := c.Send(req, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Without the CA the server certificate is refused.
	_, err := forward.Dial(context.Background(), addr, forward.ClientConfig{TLSConfig: &tls.Config{}})
	var se *forward.StepError
	if !errors.As(err, &se) || se.Step != "tls" {
		t.Fatalf("untrusted: %v", err)
	}
}

func TestHeartbeatUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&forward.Server{}).ServeHeartbeat(ctx, pc) }()
	defer func() { cancel(); <-done }()
	if _, err := forward.HeartbeatUDP(ctx, pc.LocalAddr().String(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A closed UDP port: ICMP unreachable or silence, either way an error.
	closed, _ := net.ListenPacket("udp", "127.0.0.1:0")
	closedAddr := closed.LocalAddr().String()
	closed.Close()
	if _, err := forward.HeartbeatUDP(ctx, closedAddr, 300*time.Millisecond); err == nil {
		t.Fatal("heartbeat to a closed port succeeded")
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&forward.Server{Handler: forwardtest.NewRecorder()}).Serve(ctx, ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x93}) // half a request: the server is blocked reading
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open")
	}
}

// TestTCPHeartbeatIsNotAnError: out_forward's heartbeat_type tcp/transport
// connects and closes; the server must treat that as a clean close, with
// and without the handshake.
func TestTCPHeartbeatIsNotAnError(t *testing.T) {
	for _, key := range []string{"", "k"} {
		srv := &forward.Server{Handler: forwardtest.NewRecorder(), SharedKey: key}
		addr := forwardtest.Start(t, srv)
		for i := 0; i < 3; i++ {
			if _, err := forward.HeartbeatTCP(context.Background(), nil, addr); err != nil {
				t.Fatal(err)
			}
		}
		waitStats(t, srv, func(st forward.Stats) bool { return st.Accepted == 3 && st.Active == 0 })
		if st := srv.Stats(); st.Errors != 0 {
			t.Fatalf("key %q: %+v", key, st)
		}
	}
}

// At MaxConns a new connection is admitted by closing the one with no
// complete request for the longest time; it is refused only when every
// connection is busy with a request.
func TestMaxConnsEvictsTheIdlest(t *testing.T) {
	release := make(chan struct{})
	h := forward.HandlerFunc(func(ctx context.Context, _ net.Addr, req *forward.Request) error {
		if req.Tag == "block" {
			<-release
		}
		return nil
	})
	srv := &forward.Server{Handler: h, MaxConns: 2}
	addr := forwardtest.Start(t, srv)
	req := func(tag string) *forward.Request {
		return &forward.Request{Tag: tag, Mode: forward.ModeMessage, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	}
	rawDial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	silent := rawDial() // never sends
	waitStats(t, srv, func(st forward.Stats) bool { return st.Active == 1 })
	sender := dial(t, addr, forward.ClientConfig{})
	if err := sender.Send(req("t"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Full: the newcomer replaces the silent connection, not the sender.
	newcomer := rawDial()
	if !closed(silent) {
		t.Fatal("the silent connection was not closed")
	}
	if err := sender.Send(req("t"), 5*time.Second); err != nil {
		t.Fatalf("sender after the newcomer: %v", err)
	}
	// The sender's last request is now more recent than the newcomer's
	// accept: the next one replaces the newcomer.
	rawDial()
	if !closed(newcomer) {
		t.Fatal("the newcomer was not closed")
	}
	if err := sender.Send(req("t"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.Evicted == 2 && st.Active == 2 && st.Errors == 0 })

	// Every slot busy: a new connection is refused.
	busy := dial(t, addr, forward.ClientConfig{}) // replaces the last raw connection
	blocked := req("block")
	if err := busy.Write(blocked); err != nil {
		t.Fatal(err)
	}
	if err := sender.Write(req("block")); err != nil {
		t.Fatal(err)
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.Requests == 5 })
	if !closed(rawDial()) {
		t.Fatal("connection admitted while every slot was busy")
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.Refused == 1 })
	close(release)
	if err := busy.WaitAck(time.Now().Add(5*time.Second), blocked.Chunk); err != nil {
		t.Fatal(err)
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.Acks == 5 })
}

// FirstRequestTimeout closes a connection that sends nothing, or only part
// of its first request, in time; not one whose first request came in.
func TestFirstRequestTimeout(t *testing.T) {
	const ft = 300 * time.Millisecond
	srv := &forward.Server{Handler: forwardtest.NewRecorder(), FirstRequestTimeout: ft}
	addr := forwardtest.Start(t, srv)
	start := time.Now()
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	partial, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	partial.Write([]byte{0x93, 0xa1, 't'})
	sender := dial(t, addr, forward.ClientConfig{})
	req := func() *forward.Request {
		return &forward.Request{Tag: "t", Mode: forward.ModeMessage, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	}
	if err := sender.Send(req(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{silent, partial} {
		c.SetReadDeadline(time.Now().Add(20 * ft))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection not closed: %v", err)
		}
	}
	if el := time.Since(start); el < ft {
		t.Fatalf("closed after %v, before the %v deadline", el, ft)
	}
	time.Sleep(2 * ft)
	if err := sender.Send(req(), 5*time.Second); err != nil {
		t.Fatalf("a connection that sent a request was closed: %v", err)
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.NoFirstRequest == 2 && st.Errors == 0 })
}

// 200 KB of 0x01 are 200,000 msgpack integers, none a request: a few log
// lines, and the connection closed after MaxBrokenValues of them. A
// connection with a few such values among its requests is kept.
func TestBrokenValuesAggregatedAndBounded(t *testing.T) {
	var logs testenv.SyncBuffer
	srv := &forward.Server{Handler: forwardtest.NewRecorder(), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	addr := forwardtest.Start(t, srv)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Write(bytes.Repeat([]byte{0x01}, 200_000)) // the server closes first: the write may fail
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("connection sending only broken values kept open")
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.ClosedBroken == 1 && st.Active == 0 })
	if st := srv.Stats(); st.Dropped != 100 || st.Errors != 0 {
		t.Fatalf("%+v", st)
	}
	out := logs.String()
	if n := strings.Count(out, "\n"); n > 4 {
		t.Fatalf("%d log lines:\n%s", n, out)
	}
	if !strings.Contains(out, "repeated=99") || !strings.Contains(out, "too many values that are not forward requests") {
		t.Fatalf("logs:\n%s", out)
	}
	t.Logf("logs:\n%s", out)

	// A few broken values between requests: logged once, connection kept.
	conn := dial(t, addr, forward.ClientConfig{})
	for i := 0; i < 3; i++ {
		if err := conn.WriteRaw([]byte{0x01, 0x02}); err != nil {
			t.Fatal(err)
		}
		req := &forward.Request{Tag: "t", Mode: forward.ModeMessage, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"i": i})}}}
		if err := conn.Send(req, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.Dropped == 106 && st.ClosedBroken == 1 })
}

// TestReadAndIdleTimeouts: ReadTimeout bounds one request from its first
// byte (a trickled request is cut off), but a connection idle between
// requests stays open as in_forward's do unless IdleTimeout is set.
func TestReadAndIdleTimeouts(t *testing.T) {
	const rt = 200 * time.Millisecond
	req := func() *forward.Request {
		return &forward.Request{Tag: "t", Mode: forward.ModeMessage, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	}
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}

	t.Run("idle kept", func(t *testing.T) {
		srv := &forward.Server{Handler: forwardtest.NewRecorder(), ReadTimeout: rt}
		addr := forwardtest.Start(t, srv)
		c := dial(t, addr, forward.ClientConfig{})
		if err := c.Send(req(), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * rt) // idle well past the read timeout
		if err := c.Send(req(), 5*time.Second); err != nil {
			t.Fatalf("send after idling %v with ReadTimeout %v: %v", 4*rt, rt, err)
		}
		// A request trickled: its first bytes, then nothing.
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.Write([]byte{0x93, 0xa1})
		if !closedWithin(raw, 20*rt) {
			t.Fatalf("trickled request not closed within %v (ReadTimeout %v)", 20*rt, rt)
		}
		waitStats(t, srv, func(st forward.Stats) bool { return st.Errors == 1 && st.Acks == 2 })
	})

	t.Run("idle closed", func(t *testing.T) {
		srv := &forward.Server{Handler: forwardtest.NewRecorder(), IdleTimeout: rt}
		addr := forwardtest.Start(t, srv)
		// The clock starts before the dial: the server may accept, and
		// start its idle timer, before Dial returns here.
		start := time.Now()
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if !closedWithin(raw, 20*rt) {
			t.Fatalf("idle connection not closed within %v (IdleTimeout %v)", 20*rt, rt)
		}
		if el := time.Since(start); el < rt {
			t.Fatalf("closed after %v, before IdleTimeout %v", el, rt)
		}
		// An idle close is the server's choice, not a peer error.
		waitStats(t, srv, func(st forward.Stats) bool { return st.Active == 0 && st.Errors == 0 })
	})
}
