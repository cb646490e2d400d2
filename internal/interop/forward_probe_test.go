package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
)

// Fluentd's in_forward, optionally with a shared key and TLS, dropping
// what it receives or, with .ESPort, writing it to that es serve.
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
{{- if .ESPort}}
# Fluentd's own log events (its "Shared key mismatch" warning) are not
# what the tests count.
<match fluent.**>
  @type null
</match>
{{- end}}
<match **>
{{- if .ESPort}}
  @type elasticsearch
  host 127.0.0.1
  port {{.ESPort}}
  index_name interop-key
  <buffer>
    flush_interval 1s
  </buffer>
{{- else}}
  @type null
{{- end}}
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
{{- if .ESPort}}
    Name               es
    Match              *
    Host               127.0.0.1
    Port               {{.ESPort}}
    Index              interop-key
    Suppress_Type_Name On
{{- else}}
    Name  null
    Match *
{{- end}}
`

// forwardInput starts a shipper's forward input and returns its address;
// esPort, when not "", is an es serve the shipper writes what it receives to.
func forwardInput(t *testing.T, kind shippertest.Kind, sharedKey string, certs *forwardtest.Certs, esPort string) string {
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
		Data: map[string]any{"Port": port, "SharedKey": sharedKey, "TLS": certs, "ESPort": esPort},
	})
	return addr
}

// TestForwardProbeAgainstShippers runs forward probe against each
// shipper's forward input: plain, with the shared key right and wrong, and
// over TLS (with and without a key). On the plain and TLS inputs it also
// checks the probe's reading of the wrong combinations (issue 17, §7): the
// heartbeat, --tls against plaintext, plaintext against TLS, a key the
// server does not ask for, a certificate for another name.
func TestForwardProbeAgainstShippers(t *testing.T) {
	for _, kind := range []shippertest.Kind{shippertest.Fluentd, shippertest.FluentBit} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			t.Run("plain", func(t *testing.T) {
				addr := forwardInput(t, kind, "", nil, "")
				r := run(t, time.Minute, "forward", "probe", addr, "--ack-timeout", "10s", "-o", "json")
				rep := parseReport(t, r)
				if r.code != 0 || len(rep.Findings) != 0 {
					t.Fatalf("plain probe: findings %v\n%s", rep.ids(), r)
				}
				checkHeartbeat(t, kind, addr)
				// --tls against plaintext: Fluent Bit closes, Fluentd reads
				// the ClientHello as a broken chunk and waits; either way
				// the TLS step fails in bounded time with a hint.
				began := time.Now()
				r = run(t, time.Minute, "forward", "probe", addr, "--insecure", "--handshake-timeout", "2s", "-o", "json")
				rep = parseReport(t, r)
				if r.code != 3 || !rep.has("forward.connect_failed") || !strings.Contains(rep.Findings[0].Summary, "may not speak TLS") || time.Since(began) > 20*time.Second {
					t.Fatalf("--tls against plaintext: %v after %s\n%s", rep.ids(), time.Since(began), r)
				}
			})
			t.Run("shared key", func(t *testing.T) {
				es := esServe(t)
				addr := forwardInput(t, kind, "s3cret-key", nil, esPort(t, es))
				r := run(t, time.Minute, "forward", "probe", addr, "--shared-key", "s3cret-key", "--hostname", "probe-host", "-o", "json")
				if rep := parseReport(t, r); r.code != 0 || len(rep.Findings) != 0 {
					t.Fatalf("right key: findings %v\n%s", rep.ids(), r)
				}
				r = run(t, time.Minute, "forward", "probe", addr, "--shared-key", "wrong-key", "--hostname", "probe-host", "-o", "json")
				if rep := parseReport(t, r); r.code != 3 || !rep.has("forward.auth_failed") {
					t.Fatalf("wrong key: want exit 3 with forward.auth_failed, got %v\n%s", rep.ids(), r)
				}
				// smoke's canaries go through the same handshake (issue 17,
				// failure 2 named smoke --shared-key too): with the right
				// key each is indexed once; with a wrong one smoke cannot
				// run and says why, and nothing more reaches the index.
				r = run(t, 2*time.Minute, smokeArgs(addr, es, "interop-key", "smoke.key", 50,
					"--shared-key", "s3cret-key", "--settle", "3s", "--timeout", "60s")...)
				rep, s := parseSmoke(t, r)
				if r.code != 0 || len(rep.Findings) != 0 || s.Sent != 50 || s.Acked != 50 || s.Indexed != 50 || s.Documents != 50 {
					t.Fatalf("smoke with the right key: %+v, findings %v\n%s", s, rep.ids(), r)
				}
				// The probes' events are in the index too: count what is there.
				before := getStats(t, es).Docs
				r = run(t, time.Minute, smokeArgs(addr, es, "interop-key", "smoke.key", 50,
					"--shared-key", "wrong-key", "--settle", "0", "--timeout", "20s")...)
				if r.code != 1 || !strings.Contains(r.stderr, "handshake") || r.stdout != "" {
					t.Fatalf("smoke with a wrong key: want exit 1 naming the handshake\n%s", r)
				}
				time.Sleep(2 * time.Second) // a flush interval: what was accepted would be indexed by now
				if st := getStats(t, es); st.Docs != before {
					t.Fatalf("after smoke with a wrong key the index holds %d documents, %d before it", st.Docs, before)
				}
			})
			t.Run("tls", func(t *testing.T) {
				certs := forwardtest.NewCerts(t)
				addr := forwardInput(t, kind, "", certs, "")
				r := run(t, time.Minute, "forward", "probe", addr, "--ca", certs.CAFile, "-o", "json")
				if rep := parseReport(t, r); r.code != 0 || len(rep.Findings) != 0 {
					t.Fatalf("tls probe: findings %v\n%s", rep.ids(), r)
				}
				// Plaintext against TLS: the shippers close without a byte
				// (Fluentd resets, Fluent Bit closes after 0.5 s); the probe
				// must say the port expects TLS, not closed_before_ack per
				// mode. With a key the wait for HELO ends the same way.
				for _, extra := range [][]string{nil, {"--shared-key", "x", "--handshake-timeout", "2s"}} {
					r = run(t, time.Minute, append([]string{"forward", "probe", addr, "-o", "json"}, extra...)...)
					if rep := parseReport(t, r); r.code != 3 || len(rep.Findings) != 1 || !rep.has("forward.tls_required") {
						t.Fatalf("plaintext against TLS %v: findings %v\n%s", extra, rep.ids(), r)
					}
				}
				// A key against a TLS input without one: the server is
				// reachable and asks for none, and acks without it.
				r = run(t, time.Minute, "forward", "probe", addr, "--insecure", "--shared-key", "x", "--handshake-timeout", "2s", "-o", "json")
				rep := parseReport(t, r)
				if r.code != 3 || len(rep.Findings) != 1 || !rep.has("forward.handshake_not_required") || !strings.Contains(r.stdout, `"outcome":"acked"`) ||
					strings.Contains(r.stdout, `"outcome":"closed_before_ack"`) {
					t.Fatalf("key against a keyless TLS input: findings %v\n%s", rep.ids(), r)
				}
				// A certificate for another name: one "tls:" prefix.
				r = run(t, time.Minute, "forward", "probe", addr, "--ca", certs.CAFile, "--server-name", "elsewhere.example", "-o", "json")
				rep = parseReport(t, r)
				if r.code != 3 || !rep.has("forward.connect_failed") || strings.Contains(r.stdout, "tls: tls:") || !strings.Contains(rep.Findings[0].Summary, "failed to verify certificate") {
					t.Fatalf("wrong server name: findings %v\n%s", rep.ids(), r)
				}
			})
			t.Run("tls with shared key", func(t *testing.T) {
				certs := forwardtest.NewCerts(t)
				addr := forwardInput(t, kind, "tls-key", certs, "")
				r := run(t, time.Minute, "forward", "probe", addr, "--ca", certs.CAFile, "--shared-key", "tls-key", "--hostname", "probe-host", "-o", "json")
				if rep := parseReport(t, r); r.code != 0 || len(rep.Findings) != 0 {
					t.Fatalf("tls+key probe: findings %v\n%s", rep.ids(), r)
				}
			})
		})
	}
}

// checkHeartbeat: Fluentd's in_forward answers UDP heartbeats, Fluent
// Bit's forward input does not (nothing listens on UDP), which the probe
// reports as info, not as a failure, unless told the peer is Fluentd.
func checkHeartbeat(t *testing.T, kind shippertest.Kind, addr string) {
	t.Helper()
	probe := func(extra ...string) (result, report) {
		r := run(t, time.Minute, append([]string{"forward", "probe", addr, "--heartbeat", "--mode", "message", "-o", "json"}, extra...)...)
		return r, parseReport(t, r)
	}
	if kind == shippertest.Fluentd {
		if r, rep := probe(); r.code != 0 || len(rep.Findings) != 0 || !strings.Contains(r.stdout, `"heartbeat":{"ok":true`) {
			t.Fatalf("Fluentd heartbeat: findings %v\n%s", rep.ids(), r)
		}
		return
	}
	for _, tc := range []struct {
		peerKind, severity string
		code               int
	}{{"", "info", 0}, {"fluent-bit", "info", 0}, {"fluentd", "warning", 0}} {
		r, rep := probe("--peer-kind", tc.peerKind)
		if r.code != tc.code || len(rep.Findings) != 1 || !rep.has("forward.heartbeat_failed") || rep.Findings[0].Severity != tc.severity ||
			rep.Findings[0].Evidence["udp_port_closed"] != true {
			t.Fatalf("Fluent Bit heartbeat, --peer-kind %q: findings %v\n%s", tc.peerKind, rep.ids(), r)
		}
	}
	// A warning still fails a CI job that asks for it.
	if r, _ := probe("--peer-kind", "fluentd", "--fail-on", "warning"); r.code != 3 {
		t.Fatalf("--fail-on warning: exit %d", r.code)
	}
	if r, _ := probe("--fail-on", "warning"); r.code != 0 {
		t.Fatalf("unknown peer, acks fine, --fail-on warning: exit %d", r.code)
	}
}
