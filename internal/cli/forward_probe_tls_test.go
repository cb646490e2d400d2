package cli

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
	"github.com/logdoctor/logdoctor/pkg/report"
)

func findingOf(t *testing.T, r *report.Report, id string) report.Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.ID == id {
			return f
		}
	}
	b, _ := json.MarshalIndent(r, "", " ")
	t.Fatalf("no %s in\n%s", id, b)
	return report.Finding{}
}

// The TLS rough edges of issue 17: a plaintext probe against a TLS port
// says the port expects TLS; a probe with a key against a TLS input without one says the
// server asks for none; a certificate error is not "tls: tls:".
func TestProbeTLSRoughEdges(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	addr, _ := startServe(t, ForwardServeOptions{TLSCert: certs.CertFile, TLSKey: certs.KeyFile})

	r, res := probe(t, ForwardProbeOptions{Addr: addr})
	wantFindings(t, r, forwardprobe.FindingTLSRequired)
	var outcomes []string
	for _, c := range res.Canaries {
		outcomes = append(outcomes, c.Outcome)
	}
	if strings.Join(outcomes, ",") != "tls_required,skipped,skipped,skipped" {
		t.Fatalf("outcomes %v", outcomes)
	}
	if f := r.Findings[0]; f.Severity != report.Critical || !strings.Contains(f.Summary, "--tls") {
		t.Fatalf("%+v", f)
	}

	// With a key, plaintext: the HELO wait ends the same way.
	r, _ = probe(t, ForwardProbeOptions{Addr: addr, SharedKey: "x", HandshakeTimeout: 500 * time.Millisecond})
	wantFindings(t, r, forwardprobe.FindingTLSRequired)

	// --insecure --shared-key against a TLS input without a key.
	start := time.Now()
	r, res = probe(t, ForwardProbeOptions{Addr: addr, ForwardTLS: ForwardTLS{Insecure: true}, SharedKey: "x", HandshakeTimeout: 500 * time.Millisecond})
	wantFindings(t, r, forwardprobe.FindingHandshakeNotRequired)
	for _, c := range res.Canaries {
		if c.Outcome != "acked" {
			t.Fatalf("canaries after the missing HELO: %+v", res.Canaries)
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v", el)
	}

	// An untrusted certificate: one "tls:" prefix, in the summary and
	// the step.
	r, res = probe(t, ForwardProbeOptions{Addr: addr, ForwardTLS: ForwardTLS{TLS: true}})
	wantFindings(t, r, forwardprobe.FindingConnectFailed)
	f := r.Findings[0]
	if strings.Contains(f.Summary, "tls: tls:") || strings.Contains(res.Steps[len(res.Steps)-1].Error, "tls: tls:") ||
		!strings.Contains(f.Summary, "TLS handshake with") {
		t.Fatalf("%q / %q", f.Summary, res.Steps[len(res.Steps)-1].Error)
	}
}

// --tls against a plaintext port fails the TLS step within
// --handshake-timeout, with a hint, instead of hanging.
func TestProbeTLSAgainstPlaintext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		// Like Fluentd's in_forward: read the ClientHello, answer nothing.
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Read(make([]byte, 4096))
				time.Sleep(3 * time.Second)
			}()
		}
	}()
	start := time.Now()
	r, _ := probe(t, ForwardProbeOptions{Addr: ln.Addr().String(), ForwardTLS: ForwardTLS{Insecure: true}, HandshakeTimeout: 300 * time.Millisecond})
	wantFindings(t, r, forwardprobe.FindingConnectFailed)
	if f := r.Findings[0]; f.Evidence["step"] != "tls" || !strings.Contains(f.Summary, "may not speak TLS") {
		t.Fatalf("%+v", f)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v", el)
	}
}

// The heartbeat verdict depends on what the probe knows of the peer.
func TestProbeHeartbeatVerdict(t *testing.T) {
	addr, _ := startServe(t, ForwardServeOptions{Heartbeat: false})
	for _, tc := range []struct {
		kind string
		want report.Severity
		text string
	}{
		{"", report.Info, "Expected if it is Fluent Bit"},
		{forwardprobe.PeerFluentBit, report.Info, "as expected"},
		{forwardprobe.PeerFluentd, report.Warning, "nothing listens on its UDP port"},
	} {
		r, res := probe(t, ForwardProbeOptions{Addr: addr, Modes: []string{"message"}, Heartbeat: true, HeartbeatTimeout: 300 * time.Millisecond, PeerKind: tc.kind})
		wantFindings(t, r, forwardprobe.FindingHeartbeatFailed)
		f := r.Findings[0]
		if f.Severity != tc.want || !strings.Contains(f.Summary, tc.text) || !res.Heartbeat.Refused || f.Evidence["udp_port_closed"] != true {
			t.Fatalf("peer kind %q: %+v", tc.kind, f)
		}
	}
	// Without acks (nothing listens at all) it stays a warning.
	closed := freeTCPAddr(t, "127.0.0.2")
	r, _ := probe(t, ForwardProbeOptions{Addr: closed, Heartbeat: true, HeartbeatTimeout: 300 * time.Millisecond})
	if f := findingOf(t, r, forwardprobe.FindingHeartbeatFailed); f.Severity != report.Warning {
		t.Fatalf("%+v", f)
	}
	if code, _, _ := runCLI(t, "forward", "probe", addr, "--peer-kind", "vector"); code != ExitUsage {
		t.Fatalf("--peer-kind vector: exit %d", code)
	}
}
