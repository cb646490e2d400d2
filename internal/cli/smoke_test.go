package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/smoke"
	"github.com/logdoctor/logdoctor/pkg/smoke/lab"
)

// smokeReport is the JSON report of a smoke run, as CI reads it.
type smokeReport struct {
	Command  string `json:"command"`
	Findings []struct {
		ID       string         `json:"id"`
		Severity string         `json:"severity"`
		Evidence map[string]any `json:"evidence"`
		Remedy   string         `json:"remedy"`
	} `json:"findings"`
	Data struct {
		Mode string `json:"mode"`
		*smoke.Result
		Probes   []smoke.ProbeRun `json:"probes"`
		Embedded *lab.Stats       `json:"embedded"`
	} `json:"data"`
}

func parseSmoke(t *testing.T, out string) smokeReport {
	t.Helper()
	var r smokeReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("smoke -o json: %v\n%s", err, out)
	}
	return r
}

// remedy is the remedy of finding id ("" when absent).
func (r smokeReport) remedy(id string) string {
	for _, f := range r.Findings {
		if f.ID == id {
			return f.Remedy
		}
	}
	return ""
}

func (r smokeReport) has(id string) bool {
	for _, f := range r.Findings {
		if f.ID == id {
			return true
		}
	}
	return false
}

// exactlyOnce fails unless every one of count canaries was sent, acked and
// indexed exactly once.
func (r smokeReport) exactlyOnce(t *testing.T, count int) {
	t.Helper()
	d := r.Data
	if d.Sent != count || d.Acked != count || d.Indexed != count || d.Documents != count ||
		d.Missing != 0 || d.Duplicated != 0 || len(d.MissingIDs) != 0 || len(d.DuplicatedIDs) != 0 {
		t.Fatalf("not exactly once: %+v", d)
	}
	if r.has(smoke.FindingMissing) || r.has(smoke.FindingDuplicated) {
		t.Fatalf("smoke findings on an exactly-once run: %+v", r.Findings)
	}
}

// TestSmokeAgainstForwardServeAckNever is "logs lost without
// errors" (docs/troubleshooting.md) in CI: the receiver
// takes the data and never acknowledges it. smoke must fail with
// smoke.missing (exit 3), and the forward probe names the cause.
func TestSmokeAgainstForwardServeAckNever(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() {
		_, err := runForwardServe(ctx, time.Now, ForwardServeOptions{Listen: "127.0.0.1:0", Ack: "never", Heartbeat: true,
			MaxRequestBytes: 32 << 20}, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a net.Addr) { addr <- a })
		served <- err
	}()
	var fwd net.Addr
	select {
	case fwd = <-addr:
	case err := <-served:
		t.Fatalf("forward serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("forward serve did not listen")
	}
	sim := startEssim(t, essim.Faults{})

	code, out, errOut := runCLI(t, "smoke", "-o", "json", "--forward", fwd.String(), "--es", sim.URL(), "--index", "*",
		"--count", "200", "--ack-timeout", "300ms", "--timeout", "1s")
	if code != ExitFindings {
		t.Fatalf("exit %d, want 3: %s\n%s", code, errOut, out)
	}
	r := parseSmoke(t, out)
	if !r.has(smoke.FindingMissing) || !r.has("forward.no_ack") {
		t.Fatalf("findings: %+v", r.Findings)
	}
	if r.Data.Mode != "external" || r.Data.Acked != 0 || r.Data.Sent == 0 || r.Data.Missing != r.Data.Sent || r.Data.Indexed != 0 ||
		r.Data.MissingUnacked != r.Data.Missing || r.Data.MissingAcked != 0 {
		t.Fatalf("data: %+v", r.Data)
	}
	// Nothing was acked: the remedy is about the forward hop only.
	if rem := r.remedy(smoke.FindingMissing); !strings.Contains(rem, "never acknowledged") || strings.Contains(rem, "acknowledged and still lost") {
		t.Fatalf("remedy does not follow the evidence: %s", rem)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("forward serve: %v", err)
	}
}

func TestSmokeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"smoke", "--count", "0"},
		{"smoke", "--count", "50001"},
		{"smoke", "--forward", "127.0.0.1:1"}, // no --es
		{"smoke", "--forward", "nonsense", "--es", "http://127.0.0.1:1", "--index", "x"},
		{"smoke", "--es", "ftp://127.0.0.1:1", "--forward", "127.0.0.1:1", "--index", "x"},
		{"smoke", "--forward", "127.0.0.1:1", "--es", "http://127.0.0.1:1"}, // no --index
		{"smoke", "--es", "http://127.0.0.1:1", "--index", "x", "--chaos"},
		{"smoke", "--tls-cert", "client.pem"}, // no --tls-key
		{"smoke", "--timeout", "0s"},
		{"smoke", "extra-arg"},
	} {
		code, _, errOut := runCLI(t, args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
}

// TestSmokeForwardRefused: nothing listens on the forward port, so no canary
// can be sent: that is "could not run" (exit 1), not a finding.
func TestSmokeForwardRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	sim := startEssim(t, essim.Faults{})
	code, _, errOut := runCLI(t, "smoke", "--forward", closed, "--es", sim.URL(), "--index", "*", "--timeout", "1s")
	if code != ExitError || !strings.Contains(errOut, "--forward "+closed+": nothing accepts connections there") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// TestSmokeFailsFastOnARefusedEndpoint: an Elasticsearch that refuses
// connections fails the run at once (exit 1, the flag named), embedded
// pipeline or not, instead of after the whole --timeout.
func TestSmokeFailsFastOnARefusedEndpoint(t *testing.T) {
	closed := "http://" + freeBindAddr(t)
	fwd, _ := startServe(t, ForwardServeOptions{})
	for _, args := range [][]string{
		{"smoke", "--es", closed},
		{"smoke", "--es", closed, "--forward", fwd, "--index", "x"},
	} {
		start := time.Now()
		code, out, errOut := runCLI(t, args...)
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("%v: took %s: it waited for the 60s --timeout", args, took)
		}
		if code != ExitError || out != "" || !strings.Contains(errOut, "--es "+closed+": nothing accepts connections there") ||
			!strings.Contains(errOut, "connection refused") {
			t.Errorf("%v: exit %d out %q err %q", args, code, out, errOut)
		}
	}
}

func startEssim(t *testing.T, f essim.Faults) *essim.Server {
	t.Helper()
	return essimtest.Start(t, essim.Config{Faults: f})
}
