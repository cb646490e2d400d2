package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
	"github.com/logdoctor/logdoctor/pkg/smoke"
)

// startShipper runs pkg/pipeline as "the user's shipper": a forward input
// (with a shared key and TLS when asked) writing to sim, as a Fluentd would.
func startShipper(t *testing.T, sim *essim.Server, cfg pipeline.Config) *pipeline.Pipeline {
	t.Helper()
	cfg.ForwardAddr = "127.0.0.1:0"
	cfg.BufferDir = t.TempDir()
	cfg.ES = esout.Config{URLs: []string{sim.URL()}, FlushInterval: 20 * time.Millisecond}
	p, err := pipeline.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// TestSmokeExternalShipper is the CI use: --forward at a shipper and --es
// at the cluster it writes to, with the shipper's shared key and TLS.
func TestSmokeExternalShipper(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	sim := startEssim(t, essim.Faults{})
	p := startShipper(t, sim, pipeline.Config{ForwardSharedKey: "k3y", ForwardTLS: certs.ServerTLS(true)})
	addr := p.ForwardAddr().String()

	code, out, errOut := runCLI(t, "smoke", "-o", "json", "--forward", addr, "--shared-key", "k3y", "--tls-ca", certs.CAFile,
		"--tls-cert", certs.ClientCertFile, "--tls-key", certs.ClientKeyFile,
		"--es", sim.URL(), "--index", "logs-*", "--count", "300", "--chunk-size", "50", "--timeout", "30s", "--settle", "1s")
	if code != ExitOK {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	r := parseSmoke(t, out)
	r.exactlyOnce(t, 300)
	if r.Data.Mode != "external" || r.Data.Embedded != nil {
		t.Fatalf("data: mode %q embedded %+v", r.Data.Mode, r.Data.Embedded)
	}
	if strings.Contains(out, "k3y") {
		t.Fatal("the shared key is in the report")
	}

	// The wrong key: nothing can be sent, smoke could not run (exit 1), and
	// the error says why without repeating the key.
	code, _, errOut = runCLI(t, "smoke", "--forward", addr, "--shared-key", "wrong-key", "--tls-ca", certs.CAFile,
		"--tls-cert", certs.ClientCertFile, "--tls-key", certs.ClientKeyFile,
		"--es", sim.URL(), "--index", "logs-*", "--count", "10", "--timeout", "2s")
	if code != ExitError || !strings.Contains(errOut, "no canary could be sent") || strings.Contains(errOut, "wrong-key") {
		t.Fatalf("wrong key: exit %d: %s", code, errOut)
	}
}

// TestSmokeElasticsearchAuth: the embedded pipeline writing to a cluster
// with basic auth, the password from LOGDOCTOR_ES_PASSWORD as in CI; the
// searches, the pipeline and the ES probe all use it and it is never shown.
func TestSmokeElasticsearchAuth(t *testing.T) {
	sim := essimtest.Start(t, essim.Config{Username: "ci", Password: "pa55-w0rd"})
	t.Setenv("LOGDOCTOR_ES_PASSWORD", "pa55-w0rd")
	code, out, errOut := runCLI(t, "smoke", "-o", "json", "--count", "200", "--es", sim.URL(), "--es-user", "ci")
	if code != ExitOK {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	r := parseSmoke(t, out)
	r.exactlyOnce(t, 200)
	if r.has("es.auth_failed") || strings.Contains(out+errOut, "pa55-w0rd") {
		t.Fatalf("auth: findings %+v", r.Findings)
	}

	t.Setenv("LOGDOCTOR_ES_PASSWORD", "wrong")
	code, _, errOut = runCLI(t, "smoke", "--count", "10", "--es", sim.URL(), "--es-user", "ci", "--timeout", "2s")
	if code != ExitError || !strings.Contains(errOut, "401") {
		t.Fatalf("wrong password: exit %d: %s", code, errOut)
	}
}

// TestSmokeInterruptedStillReports: a cancelled CI job (SIGTERM) still gets
// the count so far instead of a bare "context canceled".
func TestSmokeInterruptedStillReports(t *testing.T) {
	sim := startEssim(t, essim.Faults{DropRate: 1, Seed: 1}) // acknowledges everything, stores nothing
	p := startShipper(t, sim, pipeline.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	started := time.Now()
	code := Main(ctx, []string{"smoke", "-o", "json", "--forward", p.ForwardAddr().String(), "--es", sim.URL(),
		"--index", "logs-*", "--count", "100", "--timeout", "60s"}, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	if took := time.Since(started); took > 30*time.Second {
		t.Fatalf("smoke ignored the cancellation for %s", took)
	}
	r := parseSmoke(t, out.String())
	if code != ExitFindings || !r.Data.Interrupted || r.Data.Sent == 0 || r.Data.Missing != r.Data.Sent || !r.has(smoke.FindingMissing) {
		t.Fatalf("exit %d, data %+v, findings %+v, stderr %s", code, r.Data.Result, r.Findings, errb.String())
	}
	if len(r.Data.Probes) != 0 {
		t.Fatalf("probes ran after the interrupt: %+v", r.Data.Probes)
	}
}
