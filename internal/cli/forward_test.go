package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardserve"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// startServe runs `forward serve` in process on a free loopback port and
// returns its address and a function that stops it and returns its report.
func startServe(t *testing.T, o ForwardServeOptions) (string, func() *forwardserve.Result) {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Ack == "" {
		o.Ack = "always"
	}
	if o.Hostname == "" {
		o.Hostname = "logdoctor-serve"
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	type result struct {
		r   *report.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := runForwardServe(ctx, time.Now, o, slog.New(slog.DiscardHandler), func(a net.Addr) { addrc <- a.String() })
		done <- result{r, err}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case res := <-done:
		t.Fatalf("serve did not start: %v", res.err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	var data *forwardserve.Result
	stop := func() *forwardserve.Result {
		if data != nil {
			return data
		}
		cancel()
		res := <-done
		if res.err != nil {
			t.Fatalf("serve: %v", res.err)
		}
		data = res.r.Data.(*forwardserve.Result)
		return data
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

func probe(t *testing.T, o ForwardProbeOptions) (*report.Report, *forwardprobe.Result) {
	t.Helper()
	if o.AckTimeout == 0 {
		o.AckTimeout = 5 * time.Second
	}
	if o.SlowAck == 0 {
		o.SlowAck = 5 * time.Second
	}
	if o.Tag == "" {
		o.Tag = "logdoctor.probe"
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.ChunkEvents == 0 {
		o.ChunkEvents = 1000
	}
	if o.HeloWait == 0 {
		o.HeloWait = 300 * time.Millisecond
	}
	if o.Hostname == "" {
		o.Hostname = "logdoctor-probe"
	}
	if o.Sockets == nil {
		o.Sockets = procSocketInspector()
	}
	r, err := runForwardProbe(context.Background(), time.Now, o)
	if err != nil {
		t.Fatal(err)
	}
	return r, r.Data.(*forwardprobe.Result)
}

func forwardIDs(r *report.Report) []string {
	var ids []string
	for _, f := range r.Findings {
		ids = append(ids, f.ID)
	}
	return ids
}

func wantFindings(t *testing.T, r *report.Report, ids ...string) {
	t.Helper()
	got := forwardIDs(r)
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		b, _ := json.MarshalIndent(r, "", " ")
		t.Fatalf("findings %v, want %v\n%s", got, ids, b)
	}
}

func forwardFinding(r *report.Report, id string) report.Finding {
	for _, f := range r.Findings {
		if f.ID == id {
			return f
		}
	}
	return report.Finding{}
}

func TestProbeHealthyServe(t *testing.T) {
	addr, stop := startServe(t, ForwardServeOptions{Heartbeat: true})
	r, res := probe(t, ForwardProbeOptions{Addr: addr, Heartbeat: true, HeartbeatTimeout: 2 * time.Second})
	wantFindings(t, r)
	if len(res.Canaries) != 4 {
		t.Fatalf("canaries %+v", res.Canaries)
	}
	for _, c := range res.Canaries {
		if c.Outcome != "acked" {
			t.Fatalf("canary %+v", c)
		}
	}
	if res.Heartbeat == nil || !res.Heartbeat.OK {
		t.Fatalf("heartbeat %+v", res.Heartbeat)
	}
	d := stop()
	if len(d.Tags) != 1 || d.Tags[0].Tag != "logdoctor.probe" || d.Tags[0].Events != 1+3+3+3 || d.Stats.Acks != 4 {
		t.Fatalf("serve saw %+v", d)
	}
	for _, m := range []string{"message", "forward", "packed", "compressed"} {
		if d.Modes[m] != 1 {
			t.Fatalf("modes %v", d.Modes)
		}
	}
}

func TestProbeMisbehavingServe(t *testing.T) {
	cases := []struct {
		name  string
		serve ForwardServeOptions
		probe ForwardProbeOptions
		want  string
		check func(t *testing.T, f report.Finding, res *forwardprobe.Result)
	}{
		{"ack never", ForwardServeOptions{Ack: "never"}, ForwardProbeOptions{AckTimeout: 300 * time.Millisecond}, forwardprobe.FindingNoAck,
			func(t *testing.T, f report.Finding, res *forwardprobe.Result) {
				if res.Canaries[0].Outcome != "no_ack" || res.Canaries[1].Outcome != "skipped" || f.Severity != report.Critical {
					t.Fatalf("%+v %+v", res.Canaries, f)
				}
				if !strings.Contains(f.Summary, "require_ack_response") || !strings.Contains(f.Remedy, "Require_ack_response") {
					t.Fatalf("%+v", f)
				}
			}},
		{"ack wrong", ForwardServeOptions{Ack: "wrong"}, ForwardProbeOptions{Modes: []string{"packed"}}, forwardprobe.FindingAckMismatch,
			func(t *testing.T, f report.Finding, res *forwardprobe.Result) {
				if f.Evidence["got_ack"] != "logdoctor-wrong-"+res.Canaries[0].Chunk {
					t.Fatalf("%+v", f.Evidence)
				}
			}},
		{"ack delay", ForwardServeOptions{Ack: "delay=300ms"}, ForwardProbeOptions{Modes: []string{"forward"}, SlowAck: 100 * time.Millisecond}, forwardprobe.FindingSlowAck,
			func(t *testing.T, f report.Finding, res *forwardprobe.Result) {
				if f.Severity != report.Warning || f.Evidence["p99_ms"].(float64) < 300 || res.Canaries[0].Outcome != "acked" {
					t.Fatalf("%+v", f)
				}
			}},
		{"drop-rate 1", ForwardServeOptions{Ack: "drop-rate=1"}, ForwardProbeOptions{Modes: []string{"compressed"}, AckTimeout: 300 * time.Millisecond}, forwardprobe.FindingNoAck, nil},
		{"close-after 1", ForwardServeOptions{CloseAfter: 1}, ForwardProbeOptions{}, forwardprobe.FindingClosedBeforeAck,
			func(t *testing.T, f report.Finding, res *forwardprobe.Result) {
				// Every mode is retried on a new connection and each is closed.
				for _, c := range res.Canaries {
					if c.Outcome != "closed_before_ack" {
						t.Fatalf("%+v", res.Canaries)
					}
				}
			}},
		{"close-after 2", ForwardServeOptions{CloseAfter: 2}, ForwardProbeOptions{Modes: []string{"message", "packed"}}, forwardprobe.FindingClosedBeforeAck,
			func(t *testing.T, f report.Finding, res *forwardprobe.Result) {
				if res.Canaries[0].Outcome != "acked" || res.Canaries[1].Outcome != "closed_before_ack" {
					t.Fatalf("%+v", res.Canaries)
				}
			}},
		{"no heartbeat", ForwardServeOptions{Heartbeat: false}, ForwardProbeOptions{Modes: []string{"message"}, Heartbeat: true, HeartbeatTimeout: 300 * time.Millisecond}, forwardprobe.FindingHeartbeatFailed, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := startServe(t, tc.serve)
			tc.probe.Addr = addr
			r, res := probe(t, tc.probe)
			wantFindings(t, r, tc.want)
			if tc.check != nil {
				tc.check(t, forwardFinding(r, tc.want), res)
			}
		})
	}
}

func TestProbeBlackhole(t *testing.T) {
	addr, stop := startServe(t, ForwardServeOptions{Blackhole: true})
	r, res := probe(t, ForwardProbeOptions{Addr: addr, Modes: []string{"message"}, AckTimeout: 300 * time.Millisecond})
	wantFindings(t, r, forwardprobe.FindingNoAck)
	if res.Canaries[0].Outcome != "no_ack" {
		t.Fatalf("%+v", res.Canaries)
	}
	if last := res.Steps[len(res.Steps)-1]; last.Name != "ack" || last.OK || !strings.HasPrefix(last.Error, "no_ack") {
		t.Fatalf("steps %+v", res.Steps)
	}
	// The canary is small: it fits in the receiver's Recv-Q, which the
	// probe sees because the receiver is on this host.
	f := forwardFinding(r, forwardprobe.FindingNoAck)
	if f.Evidence["peer_recv_q"] != res.Canaries[0].Bytes || f.Evidence["socket_state"] != "ESTABLISHED" {
		t.Fatalf("%+v", f.Evidence)
	}
	// Chunks of ~1 MB overflow the receiver's buffer and back up into the
	// probe's own Send-Q: the evidence of logs lost without errors
	// (docs/troubleshooting.md).
	r, res = probe(t, ForwardProbeOptions{Addr: addr, Count: 2000, ChunkEvents: 1000, RecordSize: 1000, AckTimeout: 300 * time.Millisecond})
	wantFindings(t, r, forwardprobe.FindingNoAck)
	f = forwardFinding(r, forwardprobe.FindingNoAck)
	if sq, _ := f.Evidence["send_q_max"].(int); sq <= 0 || res.Load.MaxSendQ != sq || !strings.Contains(f.Summary, "Send-Q") {
		t.Fatalf("%+v", f)
	}
	// One canary connection, then one per load chunk (each failure reconnects).
	if d := stop(); d.Blackholed != 3 {
		t.Fatalf("blackholed %d", d.Blackholed)
	}
}

func TestProbeClosedPort(t *testing.T) {
	addr := freeTCPAddr(t, "127.0.0.2")
	r, res := probe(t, ForwardProbeOptions{Addr: addr})
	wantFindings(t, r, forwardprobe.FindingConnectFailed)
	if f := forwardFinding(r, forwardprobe.FindingConnectFailed); f.Evidence["step"] != "connect" || !strings.Contains(f.Evidence["error"].(string), "refused") {
		t.Fatalf("%+v", f)
	}
	if len(res.Steps) != 2 || res.Steps[1].OK {
		t.Fatalf("steps %+v", res.Steps)
	}
	// Through Main: critical finding, exit 3, and the id in the JSON.
	code, out, _ := runCLI(t, "forward", "probe", addr, "-o", "json")
	if code != ExitFindings || !strings.Contains(out, `"id":"forward.connect_failed"`) {
		t.Fatalf("exit %d out %s", code, out)
	}
}

func TestProbeSharedKey(t *testing.T) {
	addr, stop := startServe(t, ForwardServeOptions{SharedKey: "s3cret", Users: []string{"alice:pw"}})
	r, res := probe(t, ForwardProbeOptions{Addr: addr, SharedKey: "s3cret", Username: "alice", Password: "pw"})
	wantFindings(t, r)
	var steps []string
	for _, s := range res.Steps {
		steps = append(steps, s.Name)
	}
	if !res.Handshake || res.ServerHostname != "logdoctor-serve" || strings.Join(steps, ",") != "dns,connect,handshake,send,ack" {
		t.Fatalf("%+v", res)
	}
	r, _ = probe(t, ForwardProbeOptions{Addr: addr, SharedKey: "wrong", Username: "alice", Password: "pw"})
	wantFindings(t, r, forwardprobe.FindingAuthFailed)
	if f := forwardFinding(r, forwardprobe.FindingAuthFailed); f.Evidence["reason"] != "shared_key mismatch" || strings.Contains(f.Summary, "wrong") {
		t.Fatalf("%+v", f)
	}
	r, _ = probe(t, ForwardProbeOptions{Addr: addr, SharedKey: "s3cret", Username: "alice", Password: "nope"})
	wantFindings(t, r, forwardprobe.FindingAuthFailed)
	if f := forwardFinding(r, forwardprobe.FindingAuthFailed); f.Evidence["reason"] != "username/password mismatch" {
		t.Fatalf("%+v", f)
	}
	r, _ = probe(t, ForwardProbeOptions{Addr: addr})
	wantFindings(t, r, forwardprobe.FindingHandshakeRequired)
	if d := stop(); d.Stats.AuthFailed != 2 || d.Stats.Acks != 4 {
		t.Fatalf("%+v", d.Stats)
	}
}

func TestProbeTLS(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	addr, _ := startServe(t, ForwardServeOptions{TLSCert: certs.CertFile, TLSKey: certs.KeyFile, TLSClientCA: certs.CAFile})
	r, res := probe(t, ForwardProbeOptions{Addr: addr, ForwardTLS: ForwardTLS{CA: certs.CAFile, Cert: certs.ClientCertFile, Key: certs.ClientKeyFile}})
	wantFindings(t, r)
	if !res.TLS || res.Steps[2].Name != "tls" || !res.Steps[2].OK {
		t.Fatalf("%+v", res.Steps)
	}
	// Without a client certificate the server refuses the TLS handshake
	// (TLS 1.3 reports it on the first read, so it shows as a closed
	// connection or a failed TLS step).
	r, _ = probe(t, ForwardProbeOptions{Addr: addr, ForwardTLS: ForwardTLS{Insecure: true}, Modes: []string{"message"}})
	if len(r.Findings) == 0 || r.Findings[0].Severity != report.Critical {
		t.Fatalf("no client cert: %v", forwardIDs(r))
	}
	// An untrusted server certificate.
	r, _ = probe(t, ForwardProbeOptions{Addr: addr, ForwardTLS: ForwardTLS{TLS: true}})
	wantFindings(t, r, forwardprobe.FindingConnectFailed)
	if forwardFinding(r, forwardprobe.FindingConnectFailed).Evidence["step"] != "tls" {
		t.Fatalf("%+v", r.Findings)
	}
}

func TestProbeLoadMode(t *testing.T) {
	addr, stop := startServe(t, ForwardServeOptions{})
	for _, newConn := range []bool{false, true} {
		// The rate cap is high enough not to slow the test, but exercised.
		r, res := probe(t, ForwardProbeOptions{Addr: addr, Count: 5500, ChunkEvents: 1000, Concurrency: 2, NewConnection: newConn, Modes: []string{"packed"}, Rate: 1e6})
		wantFindings(t, r)
		l := res.Load
		if l.EventsAcked != 5500 || l.ChunksAcked != 6 || l.AckLatency.N != 6 || l.AckedPerSecond <= 0 || len(l.Errors) != 0 {
			t.Fatalf("%+v", l)
		}
		if newConn && l.Connections != 6 {
			t.Fatalf("new connection per chunk: %d connections", l.Connections)
		}
	}
	// The other batched modes are built apart from PackedForward's
	// in-place chunks: each still arrives whole.
	for _, mode := range []string{"forward", "compressed"} {
		r, res := probe(t, ForwardProbeOptions{Addr: addr, Count: 25, ChunkEvents: 10, Modes: []string{mode}})
		wantFindings(t, r)
		if l := res.Load; l.Mode != mode || l.EventsAcked != 25 || l.ChunksAcked != 3 || len(l.Errors) != 0 {
			t.Fatalf("%s: %+v", mode, l)
		}
	}
	if d := stop(); d.Tags[0].Events != 11050 {
		t.Fatalf("%+v", d.Tags)
	}
	// Load against a receiver that drops every ack: errors by kind.
	addr, _ = startServe(t, ForwardServeOptions{Ack: "never"})
	r, res := probe(t, ForwardProbeOptions{Addr: addr, Count: 20, ChunkEvents: 10, Concurrency: 2, AckTimeout: 200 * time.Millisecond})
	wantFindings(t, r, forwardprobe.FindingNoAck)
	if res.Load.Errors["no_ack"] != 2 || res.Load.EventsAcked != 0 {
		t.Fatalf("%+v", res.Load)
	}
}

// TestProbeLoadWarmup: the warm-up's chunks are sent on the same
// connections and schedule, reach the receiver with records of their
// own, and count neither toward --count nor the figures.
func TestProbeLoadWarmup(t *testing.T) {
	addr, stop := startServe(t, ForwardServeOptions{})
	const rate = 20000
	r, res := probe(t, ForwardProbeOptions{Addr: addr, Count: 3000, ChunkEvents: 100, Concurrency: 2, Modes: []string{"packed"},
		Rate: rate, Warmup: 150 * time.Millisecond})
	wantFindings(t, r)
	l, w := res.Load, res.Load.Warmup
	if w == nil || w.Seconds != 0.15 || w.ChunksAcked == 0 || w.ChunksAcked != w.ChunksSent || w.EventsAcked != w.ChunksAcked*100 || w.AckLatency.N != int(w.ChunksAcked) {
		t.Fatalf("warm-up %+v", w)
	}
	if l.EventsAcked != 3000 || l.EventsSent != 3000 || l.ChunksAcked != 30 || l.AckLatency.N != 30 || len(l.Errors) != 0 {
		t.Fatalf("load %+v", l)
	}
	// Counting starts where the warm-up ends, on the pacer's schedule:
	// no burst of chunks held back, no warm-up time in the rate.
	if l.AckedPerSecond <= 0 || l.AckedPerSecond > 2*rate {
		t.Fatalf("acked %.0f events/s at a %d/s rate", l.AckedPerSecond, rate)
	}
	// The flag, end to end, and the warm-up's lines in the text report.
	code, out, errOut := runCLI(t, "forward", "probe", addr, "--mode", "packed", "--count", "300", "--chunk-events", "100",
		"--rate", "20000", "--warmup", "50ms")
	if code != ExitOK || !strings.Contains(out, "warm-up (not counted above)") || !strings.Contains(out, "warm-up ack latency") {
		t.Fatalf("exit %d out %s err %s", code, out, errOut)
	}
	if d := stop(); d.Tags[0].Events < 3000+w.EventsAcked+300 {
		t.Fatalf("receiver got %+v, want at least %d events", d.Tags, 3000+w.EventsAcked+300)
	}
}

func TestForwardUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"forward", "probe"},
		{"forward", "probe", "nohostport"},
		{"forward", "probe", "127.0.0.1:1", "--mode", "bogus"},
		{"forward", "probe", "127.0.0.1:1", "--count", "10", "--mode", "packed,message"},
		{"forward", "probe", "127.0.0.1:1", "--warmup", "1s"},
		{"forward", "probe", "127.0.0.1:1", "--count", "10", "--warmup", "-1s"},
		{"forward", "serve", "--ack", "sometimes"},
		{"forward", "serve", "--ack", "drop-rate=2"},
		{"forward", "serve", "--user", "alice:pw"},
	} {
		if code, _, errOut := runCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
}

// TestServeBinaryWithPythonSender runs the real binary, sends with Debian's
// python3-fluent-logger, stops it with SIGINT and reads the JSON report.
func TestServeBinaryWithPythonSender(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/python3", "/usr/lib/python3/dist-packages/fluent/sender.py")
	bin := testenv.BuildLogdoctor(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "forward", "serve", "--listen", addr, "-o", "json")
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Wait for the "listening" line, then keep draining stderr.
	sc := bufio.NewScanner(stderr)
	if !sc.Scan() || !strings.Contains(sc.Text(), "listening") {
		t.Fatalf("serve did not start: %q", sc.Text())
	}
	var errText strings.Builder
	drained := make(chan struct{})
	go func() {
		for sc.Scan() {
			errText.WriteString(sc.Text() + "\n")
		}
		close(drained)
	}()
	host, port, _ := net.SplitHostPort(addr)
	script := `
import sys
from fluent import sender
s = sender.FluentSender("py", host=sys.argv[1], port=int(sys.argv[2]), nanosecond_precision=True)
for i in range(25):
    assert s.emit("a" if i % 5 else "b", {"i": i}), s.last_error
s.close()
`
	if b, err := exec.Command("/usr/bin/python3", "-c", script, host, port).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, b)
	}
	// Events are counted once the server read them; give it a moment.
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(interruptSignal)
	<-drained
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exit: %v\n%s", err, errText.String())
	}
	var r struct {
		Data forwardserve.Result `json:"data"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	got := map[string]int64{}
	for _, tc := range r.Data.Tags {
		got[tc.Tag] = tc.Events
	}
	if got["py.a"] != 20 || got["py.b"] != 5 || len(got) != 2 {
		t.Fatalf("tags %v", got)
	}
	_ = strconv.Itoa
}

// forward serve's connection limits reach the server: at --max-conns a
// new connection replaces the one idle the longest, and --idle-timeout
// closes an idle one (as a load balancer would).
func TestForwardServeConnectionLimits(t *testing.T) {
	addr, stop := startServe(t, ForwardServeOptions{MaxConns: 1, IdleTimeout: time.Second, ReadTimeout: 5 * time.Second})
	// The idle clock starts when the server accepts, which can be before
	// Dial returns here: start counting before dialling, or a descheduled
	// test reads an on-time close as an early one.
	start := time.Now()
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.Write([]byte{0xc0}) // a heartbeat: the first connection is surely accepted before the second
	time.Sleep(50 * time.Millisecond)
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	// The accept loop takes connections in order: the second replaces
	// the first, which is closed at once.
	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := first.Read(make([]byte, 1)); err == nil {
		t.Fatal("first connection answered")
	}
	if el := time.Since(start); el >= time.Second {
		t.Fatalf("first connection closed after %v: idle-closed, not replaced", el)
	}
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = second.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("idle connection not closed by --idle-timeout 1s")
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("idle connection closed after %v", el)
	}
	if d := stop(); d.Stats.Evicted != 1 || d.Stats.Errors != 0 {
		t.Fatalf("stats %+v: want one replaced connection and no errors", d.Stats)
	}
}

// TestServeSelfHostname: --self-hostname is what PONG carries; the old
// --hostname still sets it, without a notice that would break -o json.
func TestServeSelfHostname(t *testing.T) {
	for _, flag := range []string{"--self-hostname", "--hostname"} {
		addr := freeBindAddr(t)
		stop := startCLIStoppable("forward", "serve", "--listen", addr, "--shared-key", "k", flag, "aggregator-7", "-o", "json")
		c := dialFluentRaw(t, addr)
		c.Close()
		_, res := probe(t, ForwardProbeOptions{Addr: addr, SharedKey: "k", Hostname: "sender-1"})
		_, out, _ := stop()
		if res.ServerHostname != "aggregator-7" || !res.Handshake {
			t.Errorf("%s: server hostname %q, handshake %v", flag, res.ServerHostname, res.Handshake)
		}
		if !strings.HasPrefix(out, `{"command":"forward serve"`) {
			t.Errorf("%s: stdout is not the JSON report: %q", flag, out)
		}
	}
}
