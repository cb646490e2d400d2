package cli

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardserve"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// serveForReport runs forward serve in process like startServe, but stop
// hands back the whole report, findings included.
func serveForReport(t *testing.T, o ForwardServeOptions) (string, func() *report.Report) {
	t.Helper()
	o.Listen, o.Ack, o.Hostname = "127.0.0.1:0", "always", "logdoctor-serve"
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan *report.Report, 1)
	go func() {
		r, err := runForwardServe(ctx, time.Now, o, slog.New(slog.DiscardHandler), func(a net.Addr) { addrc <- a.String() })
		if err != nil {
			t.Errorf("serve: %v", err)
		}
		done <- r
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	var r *report.Report
	stop := func() *report.Report {
		if r == nil {
			cancel()
			r = <-done
		}
		return r
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

// packedWithCodec is a PackedForward request whose compressed option
// names codec.
func packedWithCodec(t *testing.T, codec string) []byte {
	t.Helper()
	entry, err := msgpack.Marshal([]any{1700000000, map[string]any{"a": 1}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := msgpack.Marshal([]any{"t", entry, map[string]any{"compressed": codec, "chunk": "c1", "size": 1}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendRefused writes b on a new connection and waits for the server to
// close it.
func sendRefused(t *testing.T, addr string, b []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 64)); err == nil {
		t.Fatal("the server answered a request it should refuse")
	}
}

// forward serve reports, as findings, what senders got wrong: the wrong
// key, an unknown compression, garbage.
func TestServeReportsSenderErrors(t *testing.T) {
	addr, stop := serveForReport(t, ForwardServeOptions{SharedKey: "s3cret", Heartbeat: true})
	r, _ := probe(t, ForwardProbeOptions{Addr: addr, SharedKey: "wrong"})
	wantFindings(t, r, forwardprobe.FindingAuthFailed)
	r, _ = probe(t, ForwardProbeOptions{Addr: addr, SharedKey: "s3cret", Modes: []string{"packed"}})
	wantFindings(t, r)
	rep := stop()
	f := findingOf(t, rep, forwardserve.FindingInputAuthFailed)
	if f.Severity != report.Critical || f.Evidence["count"] != int64(1) || !strings.Contains(f.Summary, "shared_key mismatch") ||
		strings.Contains(f.Summary, "wrong") || strings.Contains(f.Summary, "s3cret") {
		t.Fatalf("%+v", f)
	}
	if len(rep.Findings) != 1 {
		t.Fatalf("findings %v", forwardIDs(rep))
	}

	addr, stop = serveForReport(t, ForwardServeOptions{})
	sendRefused(t, addr, packedWithCodec(t, "zstd"))
	sendRefused(t, addr, []byte{0x93, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff})
	// Fluentd's default "text" is plain: acked, no finding.
	r, _ = probe(t, ForwardProbeOptions{Addr: addr, Modes: []string{"message"}})
	wantFindings(t, r)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(packedWithCodec(t, "text"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 64)); err != nil {
		t.Fatalf("no ack for compressed text: %v", err)
	}
	c.Close()
	rep = stop()
	f = findingOf(t, rep, forwardserve.FindingInputUnknownCompression)
	if f.Severity != report.Critical || f.Evidence["count"] != int64(1) || !strings.Contains(f.Summary, `"zstd"`) {
		t.Fatalf("%+v", f)
	}
	if f := findingOf(t, rep, forwardserve.FindingInputBadRequests); f.Severity != report.Warning || f.Evidence["count"] != int64(1) {
		t.Fatalf("%+v", f)
	}
	if d := rep.Data.(*forwardserve.Result); d.Stats.UnknownCompression != 1 || d.Stats.BadRequests != 1 || d.Stats.Events != 2 || len(d.Tags) != 2 {
		t.Fatalf("%+v", d)
	}
}

// pipeline run reports its forward input's sender errors too, and they
// make its exit code 3.
func TestPipelineReportsForwardInputErrors(t *testing.T) {
	addr := freeBindAddr(t)
	dir := t.TempDir()
	wait := startCLI("pipeline", "run", "--forward", addr, "--forward-shared-key", "k", "--buffer-dir", dir,
		"--duration", "3s", "--log-file", filepath.Join(dir, "log"), "-o", "json")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pipeline not listening")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r, _ := probe(t, ForwardProbeOptions{Addr: addr, SharedKey: "nope", Modes: []string{"message"}})
	wantFindings(t, r, forwardprobe.FindingAuthFailed)
	r, _ = probe(t, ForwardProbeOptions{Addr: addr, SharedKey: "k", Modes: []string{"message"}})
	wantFindings(t, r)
	// A codec it cannot read, after a good handshake: refused, counted.
	c, err := forward.Dial(context.Background(), addr, forward.ClientConfig{SharedKey: "k", Hostname: "sender"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRaw(packedWithCodec(t, "zstd")); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAck(time.Now().Add(5*time.Second), "c1"); !errors.Is(err, forward.ErrClosedBeforeAck) {
		t.Fatalf("zstd: %v", err)
	}
	c.Close()
	code, out, errOut := wait()
	var rep struct {
		Findings []report.Finding `json:"findings"`
		Data     pipeline.Report  `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	var ids []string
	for _, f := range rep.Findings {
		ids = append(ids, f.ID)
	}
	if code != ExitFindings || strings.Join(ids, ",") != forwardserve.FindingInputAuthFailed+","+forwardserve.FindingInputUnknownCompression ||
		rep.Data.Stats.ForwardServer.AuthFailed != 1 || rep.Data.Stats.ForwardServer.UnknownCompression != 1 || rep.Data.Stats.ForwardEvents != 1 {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// The receiver's side of a plaintext sender on its TLS port.
func TestServeReportsTLSFailures(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	addr, stop := serveForReport(t, ForwardServeOptions{TLSCert: certs.CertFile, TLSKey: certs.KeyFile})
	r, _ := probe(t, ForwardProbeOptions{Addr: addr, Modes: []string{"packed"}})
	wantFindings(t, r, forwardprobe.FindingTLSRequired)
	// A TCP health check is not a failed handshake.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
	}
	rep := stop()
	f := findingOf(t, rep, forwardserve.FindingInputTLSFailed)
	if f.Severity != report.Critical || f.Evidence["count"] != int64(1) ||
		!strings.Contains(f.Evidence["last_error"].(string), "the peer does not speak TLS (first bytes 93 ") {
		t.Fatalf("%+v", f)
	}
	if len(rep.Findings) != 1 {
		t.Fatalf("findings %v", forwardIDs(rep))
	}
}
