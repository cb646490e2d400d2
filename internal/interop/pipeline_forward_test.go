package interop

import (
	"fmt"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
)

// Each shipper tails a file of fwdEvents unique lines and sends every
// event to several receivers at once, one forward output per receiver:
// Fluentd through a copy output, Fluent Bit through one [OUTPUT] each. One
// shipper process per kind keeps the startups few (Fluentd takes 2-5 s).
const fwdEvents = 2000

// The outputs are in their default configuration apart from host, port
// and what each case is about. One exception, the same for every store:
// out_forward's flush_interval defaults to 60 s, and 1 s makes the chunks
// leave sooner without changing what is sent.
const fluentdForwardOutputs = `
<system>
  workers 1
</system>
<source>
  @type tail
  path {{.Path}}
  read_from_head true
  tag interop.fluentd
  <parse>
    @type none
  </parse>
</source>
<match interop.**>
  @type copy
  # acks, into pipeline run
  <store>
    @type forward
    require_ack_response true
    <server>
      host 127.0.0.1
      port {{.Ack}}
    </server>
    <buffer>
      flush_interval 1s
    </buffer>
  </store>
  # nothing set at all: compress defaults to text (issue 17, failure 1)
  <store>
    @type forward
    <server>
      host 127.0.0.1
      port {{.Plain}}
    </server>
    <buffer>
      flush_interval 1s
    </buffer>
  </store>
  <store>
    @type forward
    compress gzip
    <server>
      host 127.0.0.1
      port {{.Gzip}}
    </server>
    <buffer>
      flush_interval 1s
    </buffer>
  </store>
  # acks, into forward serve --ack never, then a healthy receiver: the
  # 190 s default ack_response_timeout would keep the test waiting.
  <store>
    @type forward
    require_ack_response true
    ack_response_timeout 2
    <server>
      host 127.0.0.1
      port {{.Never}}
    </server>
    <buffer>
      flush_interval 1s
    </buffer>
  </store>
{{- range .Keyed}}
  <store>
    @type forward
    require_ack_response {{.Ack}}
    <security>
      self_hostname fluentd-sender
      shared_key {{.Key}}
    </security>
    <server>
      host 127.0.0.1
      port {{.Port}}
    </server>
    <buffer>
      flush_interval 1s
    </buffer>
  </store>
{{- end}}
</match>
`

// Fluent Bit's forward output waits for an ack forever unless
// net.io_timeout is set (default 0), so the --ack never case sets it; and
// its Retry_Limit defaults to 1, which drops a chunk whose one retry also
// fails: that case is about acks, not about the retry budget, so it
// retries without limit.
const fluentBitForwardOutputs = `
[SERVICE]
    Flush     1
    Log_Level info
[INPUT]
    Name           tail
    Path           {{.Path}}
    Read_from_Head On
    Tag            interop.fluent-bit
[OUTPUT]
    Name                 forward
    Match                *
    Host                 127.0.0.1
    Port                 {{.Ack}}
    Require_ack_response On
[OUTPUT]
    Name  forward
    Match *
    Host  127.0.0.1
    Port  {{.Plain}}
[OUTPUT]
    Name     forward
    Match    *
    Host     127.0.0.1
    Port     {{.Gzip}}
    Compress gzip
[OUTPUT]
    Name                 forward
    Match                *
    Host                 127.0.0.1
    Port                 {{.Never}}
    Require_ack_response On
    net.io_timeout       2s
    Retry_Limit          no_limits
{{- range .Keyed}}
[OUTPUT]
    Name                 forward
    Match                *
    Host                 127.0.0.1
    Port                 {{.Port}}
    Shared_Key           {{.Key}}
    Self_Hostname        fluent-bit-sender
    Require_ack_response {{if eq .Ack "true"}}On{{else}}Off{{end}}
{{- end}}
`

// fwdKeyed is one output with a shared key.
type fwdKeyed struct {
	Port int
	Key  string
	Ack  string // "true" or "false"
}

// TestShipperForwardOutputs sends each shipper's forward output into
// logdoctor's receivers and checks what arrived:
//   - with acks into pipeline run: every event indexed exactly once;
//   - without any setting into forward serve (Fluentd sends compressed
//     "text"), and with gzip: every event counted;
//   - with acks into forward serve --ack never, then into pipeline run on
//     the same port: nothing lost;
//   - with a shared key into forward serve and pipeline run: the right key
//     delivers, the wrong one delivers nothing and our side reports
//     forward.input_auth_failed.
func TestShipperForwardOutputs(t *testing.T) {
	for _, kind := range []shippertest.Kind{shippertest.Fluentd, shippertest.FluentBit} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			testShipperForwardOutputs(t, kind)
		})
	}
}

func testShipperForwardOutputs(t *testing.T, kind shippertest.Kind) {
	peers := shippers.Require(t)
	began := time.Now()
	const key = "interop-key"
	field, conf := "message", fluentdForwardOutputs
	if kind == shippertest.FluentBit {
		field, conf = "log", fluentBitForwardOutputs
	}
	es := fwdESServe(t)

	ackAddr, ackPort := fwdAddr(t)
	pAck := fwdPipeline(t, ackAddr, es, "ack")
	plainAddr, plainPort := fwdAddr(t)
	sPlain := fwdServe(t, plainAddr)
	gzipAddr, gzipPort := fwdAddr(t)
	sGzip := fwdServe(t, gzipAddr)
	neverAddr, neverPort := fwdAddr(t)
	sNever := fwdServe(t, neverAddr, "--ack", "never")

	// Shared key: forward serve without acks (each chunk sent once, so
	// counts are exact), pipeline run with acks.
	keyServeAddr, keyServePort := fwdAddr(t)
	sKey := fwdServe(t, keyServeAddr, "--shared-key", key)
	badServeAddr, badServePort := fwdAddr(t)
	sBad := fwdServe(t, badServeAddr, "--shared-key", key)
	keyPipeAddr, keyPipePort := fwdAddr(t)
	pKey := fwdPipeline(t, keyPipeAddr, es, "key", "--forward-shared-key", key)
	badPipeAddr, badPipePort := fwdAddr(t)
	pBad := fwdPipeline(t, badPipeAddr, es, "badkey", "--forward-shared-key", key)

	sh := shippertest.Start(t, peers, shippertest.Spec{Kind: kind, Config: conf, WaitLog: startedLine(kind),
		Data: map[string]any{"Path": fwdLines(t, fwdEvents), "Ack": ackPort, "Plain": plainPort, "Gzip": gzipPort, "Never": neverPort,
			"Keyed": []fwdKeyed{{keyServePort, key, "false"}, {badServePort, "wrong-key", "false"}, {keyPipePort, key, "true"}, {badPipePort, "wrong-key", "true"}}}})
	t.Logf("%s started after %s", kind, time.Since(began).Round(time.Millisecond))

	// --ack never: wait for the shipper to give up on the ack, then put a
	// healthy receiver on the same port.
	if kind == shippertest.Fluentd {
		fwdWaitLog(t, sh, 60*time.Second, "no response from node", fmt.Sprintf("port=%d", neverPort))
	} else {
		fwdWaitLog(t, sh, 60*time.Second, fmt.Sprintf("127.0.0.1:%d timed out", neverPort))
	}
	rep, d := fwdServeReport(t, sNever.stop(t))
	if d.Stats.Events == 0 || d.AcksWithheld == 0 || len(rep.Findings) != 0 {
		t.Fatalf("forward serve --ack never: %d events, %d acks withheld, findings %v", d.Stats.Events, d.AcksWithheld, rep.ids())
	}
	t.Logf("--ack never withheld %d acks (%d events); switching to a healthy receiver after %s", d.AcksWithheld, d.Stats.Events, time.Since(began).Round(time.Millisecond))
	pNever := fwdPipeline(t, neverAddr, es, "never")

	for _, index := range []string{"ack", "key", "never"} {
		fwdWaitCount(t, es, index, fwdEvents, 90*time.Second)
		fwdLinesIndexed(t, es, index, field, fwdEvents)
	}
	t.Logf("every acked output indexed after %s", time.Since(began).Round(time.Millisecond))

	// Everything is in: stop the shipper, let the receivers read what it
	// wrote, and read their reports.
	sh.Stop(t)
	for _, p := range []int{plainPort, gzipPort, keyServePort, badServePort} {
		fwdDrained(t, p, 10*time.Second)
	}
	// Fluentd sends PackedForward (with compressed "text"), Fluent Bit
	// Forward mode; with gzip both send CompressedPackedForward.
	plainMode := "packed"
	if kind == shippertest.FluentBit {
		plainMode = "forward"
	}
	for name, tc := range map[string]struct {
		d    *daemon
		mode string
	}{"no settings": {sPlain, plainMode}, "gzip": {sGzip, "compressed"}, "right key": {sKey, ""}} {
		r := tc.d.stop(t)
		rep, d := fwdServeReport(t, r)
		if r.code != 0 || len(rep.Findings) != 0 || d.Stats.Events != fwdEvents || d.Stats.UnknownCompression != 0 {
			t.Errorf("forward serve, %s: exit %d, %d events (want %d), findings %v\n%s", name, r.code, d.Stats.Events, fwdEvents, rep.ids(), r)
		}
		if tc.mode != "" && (d.Modes[tc.mode] == 0 || int64(len(d.Modes)) != 1) {
			t.Errorf("forward serve, %s: modes %v, want only %s", name, d.Modes, tc.mode)
		}
	}
	r := sBad.stop(t)
	if rep, d := fwdServeReport(t, r); r.code != 3 || d.Stats.Events != 0 || d.Stats.AuthFailed == 0 || !rep.has("forward.input_auth_failed") {
		t.Errorf("forward serve, wrong key: exit %d, %d events, %d auth failures, findings %v", r.code, d.Stats.Events, d.Stats.AuthFailed, rep.ids())
	}

	for name, p := range map[string]*daemon{"acks": pAck, "after ack never": pNever, "right key": pKey} {
		r := p.stop(t)
		if rep := parseReport(t, r); r.code != 0 || len(rep.Findings) != 0 {
			t.Errorf("pipeline run, %s: exit %d, findings %v\n%s", name, r.code, rep.ids(), r)
		}
	}
	r = pBad.stop(t)
	if rep := parseReport(t, r); r.code != 3 || !rep.has("forward.input_auth_failed") || fwdCount(t, es, "badkey") != 0 {
		t.Errorf("pipeline run, wrong key: exit %d, findings %v, %d documents", r.code, rep.ids(), fwdCount(t, es, "badkey"))
	}
	t.Logf("%s: done after %s", kind, time.Since(began).Round(time.Millisecond))
}

// startedLine is a log line each shipper writes once its outputs run.
func startedLine(kind shippertest.Kind) string {
	if kind == shippertest.Fluentd {
		return "fluentd worker is now running"
	}
	return "[fluent bit] version="
}
