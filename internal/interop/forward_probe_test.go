package interop

import (
	"fmt"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
)

// Fluentd's in_forward, optionally with a shared key and TLS, dropping
// what it receives.
const fluentdForwardInput = `
<system>
  workers 1
</system>
<source>
  @type forward
  bind 127.0.0.1
  port {{.Port}}
{{- if .TLS}}
  <transport tls>
    cert_path {{.TLS.CertFile}}
    private_key_path {{.TLS.KeyFile}}
  </transport>
{{- end}}
{{- if .SharedKey}}
  <security>
    self_hostname fluentd-input
    shared_key {{.SharedKey}}
  </security>
{{- end}}
</source>
<match **>
  @type null
</match>
`

// Fluent Bit's forward input, the same way.
const fluentBitForwardInput = `
[SERVICE]
    Flush     1
    Log_Level info
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   {{.Port}}
{{- if .TLS}}
    tls         on
    tls.verify  off
    tls.crt_file {{.TLS.CertFile}}
    tls.key_file {{.TLS.KeyFile}}
{{- end}}
{{- if .SharedKey}}
    Shared_Key    {{.SharedKey}}
    Self_Hostname fluent-bit-input
{{- end}}
[OUTPUT]
    Name  null
    Match *
`

// forwardInput starts a shipper's forward input and returns its address.
func forwardInput(t *testing.T, kind shippertest.Kind, sharedKey string, certs *forwardtest.Certs) string {
	t.Helper()
	peers := shippers.Require(t)
	port := shippertest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := fluentdForwardInput
	if kind == shippertest.FluentBit {
		conf = fluentBitForwardInput
	}
	shippertest.Start(t, peers, shippertest.Spec{
		Kind: kind, Config: conf, WaitTCP: []string{addr},
		Data: map[string]any{"Port": port, "SharedKey": sharedKey, "TLS": certs},
	})
	return addr
}

// TestForwardProbeAgainstShippers runs forward probe against each
// shipper's forward input: plain, with the shared key right and wrong, and
// over TLS (with and without a key).
func TestForwardProbeAgainstShippers(t *testing.T) {
	for _, kind := range []shippertest.Kind{shippertest.Fluentd, shippertest.FluentBit} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			t.Run("plain", func(t *testing.T) {
				addr := forwardInput(t, kind, "", nil)
				r := run(t, time.Minute, "forward", "probe", addr, "--ack-timeout", "10s", "-o", "json")
				rep := parseReport(t, r)
				if r.code != 0 || len(rep.Findings) != 0 {
					t.Fatalf("plain probe: findings %v\n%s", rep.ids(), r)
				}
			})
			t.Run("shared key", func(t *testing.T) {
				addr := forwardInput(t, kind, "s3cret-key", nil)
				r := run(t, time.Minute, "forward", "probe", addr, "--shared-key", "s3cret-key", "--hostname", "probe-host", "-o", "json")
				if rep := parseReport(t, r); r.code != 0 || len(rep.Findings) != 0 {
					t.Fatalf("right key: findings %v\n%s", rep.ids(), r)
				}
				r = run(t, time.Minute, "forward", "probe", addr, "--shared-key", "wrong-key", "--hostname", "probe-host", "-o", "json")
				if rep := parseReport(t, r); r.code != 3 || !rep.has("forward.auth_failed") {
					t.Fatalf("wrong key: want exit 3 with forward.auth_failed, got %v\n%s", rep.ids(), r)
				}
			})
			t.Run("tls", func(t *testing.T) {
				certs := forwardtest.NewCerts(t)
				addr := forwardInput(t, kind, "", certs)
				r := run(t, time.Minute, "forward", "probe", addr, "--ca", certs.CAFile, "-o", "json")
				if rep := parseReport(t, r); r.code != 0 || len(rep.Findings) != 0 {
					t.Fatalf("tls probe: findings %v\n%s", rep.ids(), r)
				}
			})
			t.Run("tls with shared key", func(t *testing.T) {
				certs := forwardtest.NewCerts(t)
				addr := forwardInput(t, kind, "tls-key", certs)
				r := run(t, time.Minute, "forward", "probe", addr, "--ca", certs.CAFile, "--shared-key", "tls-key", "--hostname", "probe-host", "-o", "json")
				if rep := parseReport(t, r); r.code != 0 || len(rep.Findings) != 0 {
					t.Fatalf("tls+key probe: findings %v\n%s", rep.ids(), r)
				}
			})
		})
	}
}
