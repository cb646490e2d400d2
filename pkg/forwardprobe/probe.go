// Package forwardprobe checks a forward protocol endpoint the way a sender
// depends on it: can it connect and authenticate, does every chunk come
// back acknowledged, how fast, and (in load mode) how many acked events per
// second it sustains. It returns data and findings; it prints nothing.
package forwardprobe

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/logdoctor/logdoctor/internal/mpenc"
	"github.com/logdoctor/logdoctor/internal/stats"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// SocketSample is the kernel's view of the probe's own TCP socket.
type SocketSample struct {
	SendQ int    `json:"send_q"`
	RecvQ int    `json:"recv_q"`
	State string `json:"state"`
	// PeerRecvQ is the receiver's Recv-Q when it runs on this host
	// (bytes its kernel holds that the process has not read), -1 otherwise.
	PeerRecvQ int `json:"peer_recv_q"`
}

// SocketInspector reads a TCP socket by its local and remote addresses.
// The command layer backs it with /proc (pkg/sockstat); nil disables it.
type SocketInspector func(local, remote netip.AddrPort) (SocketSample, bool)

// Options configures Run.
type Options struct {
	Addr       string
	Tag        string
	Modes      []forward.Mode // default: each mode once
	AckTimeout time.Duration  // default 10s
	SlowAck    time.Duration  // p99 above this is forward.slow_ack; default 1s
	Client     forward.ClientConfig
	// Load mode, when Count > 0: Count events in chunks of ChunkEvents,
	// Concurrency connections, at most Rate events/s (0: as fast as acks allow).
	Count       int
	ChunkEvents int
	Rate        float64
	// Warmup sends chunks the same way for this long before the Count
	// events; their acks are summarised apart (Load.Warmup), so the
	// figures measure connections that are open and a receiver that is
	// warm, as a shipper's persistent connections see it.
	Warmup          time.Duration
	Concurrency     int
	NewConnPerChunk bool
	RecordSize      int // approximate bytes per record; default 200
	// Heartbeat also sends a UDP heartbeat to the port.
	Heartbeat        bool
	HeartbeatTimeout time.Duration
	// PeerKind is what the user says listens there: PeerFluentd,
	// PeerFluentBit or "" (unknown). Only the heartbeat verdict depends on
	// it: Fluent Bit's forward input does not implement UDP heartbeats.
	PeerKind string
	Sockets  SocketInspector
	// SampleEvery is how often Send-Q is read while waiting (default 100ms).
	SampleEvery time.Duration
	RunID       string
}

// Step is one timed step of connecting.
type Step struct {
	Name  string  `json:"name"`
	MS    float64 `json:"ms"`
	OK    bool    `json:"ok"`
	Error string  `json:"error,omitempty"`
}

// Canary is one chunk sent with chunk id and its outcome.
type Canary struct {
	Mode    string         `json:"mode"`
	Chunk   string         `json:"chunk"`
	Events  int            `json:"events"`
	Bytes   int            `json:"bytes"`
	Outcome string         `json:"outcome"` // acked, no_ack, ack_mismatch, closed_before_ack, error, skipped
	SendMS  float64        `json:"send_ms"`
	AckMS   float64        `json:"ack_ms,omitempty"` // write to ack: what a sender waits
	GotAck  string         `json:"got_ack,omitempty"`
	Error   string         `json:"error,omitempty"`
	Socket  []SocketSample `json:"socket,omitempty"`
}

// Latency summarises ack round trips in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	N   int     `json:"n"`
}

// Load is the outcome of load mode.
type Load struct {
	Mode           string         `json:"mode"`
	ChunkEvents    int            `json:"chunk_events"`
	Concurrency    int            `json:"concurrency"`
	KeepAlive      bool           `json:"keepalive"`
	RateLimit      float64        `json:"rate_limit,omitempty"`
	EventsSent     int64          `json:"events_sent"`
	EventsAcked    int64          `json:"events_acked"`
	ChunksSent     int64          `json:"chunks_sent"`
	ChunksAcked    int64          `json:"chunks_acked"`
	Bytes          int64          `json:"bytes"`
	Seconds        float64        `json:"seconds"`
	AckedPerSecond float64        `json:"acked_events_per_second"`
	AckLatency     Latency        `json:"ack_latency"`
	Errors         map[string]int `json:"errors"`
	Connections    int64          `json:"connections"`
	MaxSendQ       int            `json:"max_send_q"`
	Warmup         *Warmup        `json:"warmup,omitempty"`
	firstErr       map[string]string
}

// Warmup is what load mode sent before it started counting
// (Options.Warmup): the cost of opening the connections and of a cold
// receiver, which the figures above leave out.
type Warmup struct {
	Seconds     float64 `json:"seconds"`
	ChunksSent  int64   `json:"chunks_sent"`
	ChunksAcked int64   `json:"chunks_acked"`
	EventsAcked int64   `json:"events_acked"`
	AckLatency  Latency `json:"ack_latency"`
}

// Peer kinds for Options.PeerKind.
const (
	PeerFluentd   = "fluentd"
	PeerFluentBit = "fluent-bit"
)

// Heartbeat is the UDP heartbeat check.
type Heartbeat struct {
	OK    bool    `json:"ok"`
	RTTMS float64 `json:"rtt_ms,omitempty"`
	Error string  `json:"error,omitempty"`
	// Refused: an ICMP port unreachable came back, so nothing listens on
	// the UDP port (Fluentd's in_forward always does).
	Refused bool `json:"refused,omitempty"`
	err     error
}

// Result is the probe's data.
type Result struct {
	Addr           string     `json:"addr"`
	Resolved       string     `json:"resolved,omitempty"`
	RunID          string     `json:"run_id"`
	TLS            bool       `json:"tls"`
	Handshake      bool       `json:"handshake"`
	ServerHostname string     `json:"server_hostname,omitempty"`
	AckTimeoutMS   int64      `json:"ack_timeout_ms"`
	Steps          []Step     `json:"steps"`
	Canaries       []Canary   `json:"canaries,omitempty"`
	AckLatency     *Latency   `json:"ack_latency,omitempty"`
	Load           *Load      `json:"load,omitempty"`
	Heartbeat      *Heartbeat `json:"heartbeat,omitempty"`
}

// Defaults of Options, which the command's flags use too, so each lives
// in one place.
const (
	DefaultTag              = "logdoctor.probe"
	DefaultAckTimeout       = 10 * time.Second
	DefaultSlowAck          = time.Second
	DefaultRecordSize       = 200
	DefaultChunkEvents      = 1000
	DefaultHeartbeatTimeout = 2 * time.Second
	DefaultConcurrency      = 1
	// DefaultHeloWait is how long, without a shared key, the probe listens
	// for a HELO after connecting.
	DefaultHeloWait = 300 * time.Millisecond
)

func (o *Options) defaults() {
	if o.Tag == "" {
		o.Tag = DefaultTag
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.SlowAck <= 0 {
		o.SlowAck = DefaultSlowAck
	}
	if o.RecordSize <= 0 {
		o.RecordSize = DefaultRecordSize
	}
	if o.ChunkEvents <= 0 {
		o.ChunkEvents = DefaultChunkEvents
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 100 * time.Millisecond
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if o.RunID == "" {
		o.RunID = forward.NewChunkID()[:12]
	}
	if len(o.Modes) == 0 {
		if o.Count > 0 {
			o.Modes = []forward.Mode{forward.ModePacked}
		} else {
			o.Modes = forward.Modes()
		}
	}
	if o.Client.HeloWait <= 0 && o.Client.SharedKey == "" {
		o.Client.HeloWait = DefaultHeloWait
	}
}

// Run probes opts.Addr. The error is for misuse only; everything the
// endpoint does wrong is a finding.
func Run(ctx context.Context, opts Options) (*Result, []report.Finding, error) {
	opts.defaults()
	if opts.Count > 0 && len(opts.Modes) != 1 {
		return nil, nil, fmt.Errorf("load mode sends one --mode, got %d", len(opts.Modes))
	}
	if opts.PeerKind != "" && opts.PeerKind != PeerFluentd && opts.PeerKind != PeerFluentBit {
		return nil, nil, fmt.Errorf("peer kind %q: want %s or %s", opts.PeerKind, PeerFluentd, PeerFluentBit)
	}
	p := &prober{opts: opts, res: &Result{Addr: opts.Addr, RunID: opts.RunID, TLS: opts.Client.TLSConfig != nil, AckTimeoutMS: opts.AckTimeout.Milliseconds()}}
	if opts.Heartbeat {
		p.heartbeat(ctx)
	}
	conn, ok := p.dialFirst(ctx)
	if ok {
		if opts.Count > 0 {
			p.load(ctx, conn)
		} else {
			p.canaries(ctx, conn)
		}
	}
	if opts.Heartbeat {
		p.heartbeatFinding()
	}
	return p.res, p.findings, nil
}

type prober struct {
	opts     Options
	res      *Result
	findings []report.Finding
	seq      int
	// noHelo: a key was given but the server sent no HELO; later
	// connections go without the handshake.
	noHelo bool
	// tlsChecked: SniffTLS ran already.
	tlsChecked bool
}

func (p *prober) add(f report.Finding) { p.findings = append(p.findings, f) }

// dialFirst connects once with every step timed, turning failures into
// findings.
func (p *prober) dialFirst(ctx context.Context) (*forward.Conn, bool) {
	c, err := forward.Dial(ctx, p.opts.Addr, p.opts.Client)
	if err != nil && p.plaintextRefused(err) && p.speaksTLS(ctx) {
		err = fmt.Errorf("%w (it answered a TLS ClientHello): %w", forward.ErrSpeaksTLS, err)
	}
	if errors.Is(err, forward.ErrNoHelo) && !errors.Is(err, forward.ErrSpeaksTLS) {
		// The server is reachable and simply has no key: say so, then
		// see whether it acks without the handshake.
		p.add(noHeloFinding(p.opts.Addr, err))
		p.noHelo = true
		c, err = forward.Dial(ctx, p.opts.Addr, p.redialConfig())
	}
	if err != nil {
		var se *forward.StepError
		step := "connect"
		if errors.As(err, &se) {
			step = se.Step
		}
		for _, s := range []string{"dns", "connect", "tls", "handshake"} {
			if s == "tls" && p.opts.Client.TLSConfig == nil {
				continue
			}
			if s == step {
				p.res.Steps = append(p.res.Steps, Step{Name: s, Error: report.Redact(err.Error())})
				break
			}
			p.res.Steps = append(p.res.Steps, Step{Name: s, OK: true})
		}
		p.add(dialFinding(p.opts.Addr, step, err))
		return nil, false
	}
	t := c.Trace
	p.res.Resolved = t.Resolved
	p.res.Steps = append(p.res.Steps, Step{Name: "dns", MS: stats.MS(t.DNS), OK: true}, Step{Name: "connect", MS: stats.MS(t.Connect), OK: true})
	if p.opts.Client.TLSConfig != nil {
		p.res.Steps = append(p.res.Steps, Step{Name: "tls", MS: stats.MS(t.TLS), OK: true})
	}
	if t.Handshook {
		p.res.Handshake = true
		p.res.ServerHostname = t.ServerHostname
		p.res.Steps = append(p.res.Steps, Step{Name: "handshake", MS: stats.MS(t.Handshake), OK: true})
	}
	return c, true
}

// dialFinding classifies a Dial error.
func dialFinding(addr, step string, err error) report.Finding {
	msg := report.Redact(err.Error())
	ev := map[string]any{"addr": addr, "step": step, "error": msg}
	var ae *forward.AuthError
	switch {
	case errors.Is(err, forward.ErrSpeaksTLS):
		return tlsRequiredFinding(addr, ev)
	case errors.Is(err, forward.ErrHandshakeRequired):
		return report.Finding{ID: FindingHandshakeRequired, Severity: report.Critical,
			Summary:  fmt.Sprintf("%s requires the shared-key handshake (it sent HELO) and no --shared-key was given", addr),
			Evidence: ev, Remedy: remedyHandshake}
	case errors.As(err, &ae):
		ev["reason"] = ae.Reason
		return report.Finding{ID: FindingAuthFailed, Severity: report.Critical,
			Summary:  fmt.Sprintf("%s rejected the handshake: %s", addr, ae.Reason),
			Evidence: ev, Remedy: remedyAuth}
	case step == "handshake" && errors.Is(err, forward.ErrAuth):
		return report.Finding{ID: FindingAuthFailed, Severity: report.Critical,
			Summary: fmt.Sprintf("handshake with %s failed: %s", addr, msg), Evidence: ev, Remedy: remedyAuth}
	}
	sum := fmt.Sprintf("cannot reach %s (%s): %s", addr, step, msg)
	if step == "tls" {
		sum = fmt.Sprintf("TLS handshake with %s failed: %s", addr, strings.TrimPrefix(msg, "tls: "))
		var rh tls.RecordHeaderError
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.As(err, &rh) || errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			// A plaintext forward input closes on a ClientHello (Fluent
			// Bit) or reads it as a broken chunk and waits (Fluentd).
			sum += "; the port may not speak TLS: try the probe without --tls"
		}
	}
	return report.Finding{ID: FindingConnectFailed, Severity: report.Critical, Summary: sum, Evidence: ev, Remedy: remedyConnect}
}

// tlsRequiredFinding: a plaintext probe reached a port that expects TLS.
func tlsRequiredFinding(addr string, ev map[string]any) report.Finding {
	return report.Finding{ID: FindingTLSRequired, Severity: report.Critical,
		Summary: fmt.Sprintf("%s expects TLS: it closed the plaintext connection and answered a TLS ClientHello; probe with --tls "+
			"(and --tls-ca, or --tls-insecure to skip verification)", addr),
		Evidence: ev, Remedy: remedyTLSRequired}
}

func noHeloFinding(addr string, err error) report.Finding {
	return report.Finding{ID: FindingHandshakeNotRequired, Severity: report.Critical,
		Summary: fmt.Sprintf("%s does not ask for a shared key: it sent no HELO, so the handshake a sender with a shared key waits for never starts "+
			"(the probe carries on without it)", addr),
		Evidence: map[string]any{"addr": addr, "error": report.Redact(err.Error())}, Remedy: remedyNoHelo}
}

// plaintextRefused: a plaintext connection failed in a way a TLS port
// causes (closed, garbage back, or silent while we wait for HELO).
func (p *prober) plaintextRefused(err error) bool {
	if p.opts.Client.TLSConfig != nil || p.tlsChecked || errors.Is(err, forward.ErrSpeaksTLS) {
		return false
	}
	var se *forward.StepError
	if errors.As(err, &se) && (se.Step == "dns" || se.Step == "connect") {
		return false
	}
	return !errors.Is(err, forward.ErrNoAck) && !errors.Is(err, forward.ErrAckMismatch) && !errors.Is(err, forward.ErrAuth) &&
		!errors.Is(err, forward.ErrHandshakeRequired)
}

// speaksTLS asks the port in TLS, once per run.
func (p *prober) speaksTLS(ctx context.Context) bool {
	p.tlsChecked = true
	ok, _ := forward.SniffTLS(ctx, p.opts.Client.Dialer, p.opts.Addr, min(p.opts.AckTimeout, 3*time.Second))
	return ok
}

// canaries sends one chunk per mode, redialing after a failure so that one
// bad outcome does not hide the next mode's behaviour. After no_ack the
// remaining modes are skipped: each would wait the full ack timeout again.
func (p *prober) canaries(ctx context.Context, c *forward.Conn) {
	var lat []time.Duration
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	skip, firstDone := false, false
	for _, mode := range p.opts.Modes {
		if skip || ctx.Err() != nil {
			p.res.Canaries = append(p.res.Canaries, Canary{Mode: mode.String(), Outcome: "skipped"})
			continue
		}
		if c == nil {
			var err error
			if c, err = forward.Dial(ctx, p.opts.Addr, p.redialConfig()); err != nil {
				p.res.Canaries = append(p.res.Canaries, Canary{Mode: mode.String(), Outcome: "error", Error: report.Redact(err.Error())})
				continue
			}
		}
		n := 1
		if mode != forward.ModeMessage {
			n = 3
		}
		req := p.canaryRequest(mode, n)
		cn := Canary{Mode: mode.String(), Chunk: req.Chunk, Events: n}
		var wire []byte
		wire, _ = forward.AppendRequest(wire, req)
		cn.Bytes = len(wire)
		sent, d, err := p.sendAndWait(ctx, c, wire, req.Chunk, &cn.Socket)
		if err != nil && p.plaintextRefused(err) && p.speaksTLS(ctx) {
			err = fmt.Errorf("%w (it answered a TLS ClientHello): %w", forward.ErrSpeaksTLS, err)
		}
		outcome := classify(err)
		cn.Outcome = outcome
		cn.SendMS = stats.MS(sent)
		if !firstDone {
			// The first canary's write and ack wait are the last two steps.
			firstDone = true
			send, ack := Step{Name: "send", MS: stats.MS(sent), OK: true}, Step{Name: "ack", MS: stats.MS(d - sent), OK: err == nil}
			if err != nil {
				ack.Error = outcome + ": " + report.Redact(err.Error())
				if errors.Is(err, errWrite) {
					send.OK, send.Error, ack = false, ack.Error, Step{}
				}
			}
			p.res.Steps = append(p.res.Steps, send)
			if ack.Name != "" {
				p.res.Steps = append(p.res.Steps, ack)
			}
		}
		if err == nil {
			cn.AckMS = stats.MS(d)
			lat = append(lat, d)
		} else {
			cn.Error = report.Redact(err.Error())
			var me *forward.AckMismatchError
			if errors.As(err, &me) {
				cn.GotAck = me.Got
			}
			c.Close()
			c = nil
			// After no_ack each mode would wait the full timeout again;
			// after tls_required each would fail the same way.
			skip = outcome == "no_ack" || outcome == "tls_required"
		}
		p.res.Canaries = append(p.res.Canaries, cn)
	}
	for _, cn := range p.res.Canaries {
		if f, ok := p.outcomeFinding(cn.Outcome, 1, []Canary{cn}); ok {
			p.add(f)
		}
	}
	if len(lat) > 0 {
		l := summarize(lat)
		p.res.AckLatency = &l
		p.slowAck(l)
	}
}

// redialConfig is the client config for connections after the first: when
// that one showed no HELO, later ones need not listen for it.
func (p *prober) redialConfig() forward.ClientConfig {
	cfg := p.opts.Client
	if p.noHelo {
		cfg.SharedKey, cfg.Username, cfg.Password = "", "", ""
	}
	if !p.res.Handshake && cfg.SharedKey == "" {
		cfg.HeloWait = 0
	}
	return cfg
}

func classify(err error) string {
	switch {
	case err == nil:
		return "acked"
	case errors.Is(err, forward.ErrSpeaksTLS):
		return "tls_required"
	case errors.Is(err, forward.ErrNoAck):
		return "no_ack"
	case errors.Is(err, forward.ErrAckMismatch):
		return "ack_mismatch"
	case errors.Is(err, forward.ErrClosedBeforeAck):
		return "closed_before_ack"
	}
	var se *forward.StepError
	if errors.As(err, &se) {
		return se.Step + "_failed"
	}
	return "error"
}

// outcomeFinding turns a canary outcome into a finding (once per id).
func (p *prober) outcomeFinding(outcome string, count int, cns []Canary) (report.Finding, bool) {
	for _, f := range p.findings {
		if f.ID == outcomeIDs[outcome] {
			return report.Finding{}, false
		}
	}
	ev := map[string]any{"addr": p.opts.Addr, "count": count, "ack_timeout_ms": p.opts.AckTimeout.Milliseconds()}
	if len(cns) == 1 {
		cn := cns[0]
		ev["mode"] = cn.Mode
		if cn.Chunk != "" {
			ev["chunk"], ev["bytes"] = cn.Chunk, cn.Bytes
		}
		if cn.Error != "" {
			ev["error"] = cn.Error
		}
		if cn.GotAck != "" {
			ev["got_ack"] = cn.GotAck
		}
		addSocketEvidence(ev, cn.Socket)
	}
	switch outcome {
	case "no_ack":
		sum := fmt.Sprintf("%s accepted the data over TCP but sent no ack within %s: a sender without require_ack_response would lose this chunk silently", p.opts.Addr, p.opts.AckTimeout)
		if sq, ok := ev["send_q_max"].(int); ok && sq > 0 {
			sum += fmt.Sprintf("; %d bytes sat unacknowledged in our Send-Q (nothing takes them: a receiver that stopped reading, or packets dropped on the way)", sq)
		} else if pq, ok := ev["peer_recv_q"].(int); ok && pq > 0 {
			sum += fmt.Sprintf("; the receiver's kernel holds %d unread bytes in its Recv-Q (the process is not reading)", pq)
		}
		return report.Finding{ID: FindingNoAck, Severity: report.Critical, Summary: sum, Evidence: ev, Remedy: remedyNoAck}, true
	case "ack_mismatch":
		return report.Finding{ID: FindingAckMismatch, Severity: report.Critical,
			Summary:  fmt.Sprintf("%s answered with an ack for a different chunk than the one sent", p.opts.Addr),
			Evidence: ev, Remedy: remedyMismatch}, true
	case "tls_required":
		return tlsRequiredFinding(p.opts.Addr, ev), true
	case "closed_before_ack":
		return report.Finding{ID: FindingClosedBeforeAck, Severity: report.Critical,
			Summary:  fmt.Sprintf("%s closed the connection before acknowledging the chunk", p.opts.Addr),
			Evidence: ev, Remedy: remedyClosed}, true
	case "connect_failed", "dns_failed", "tls_failed":
		return report.Finding{ID: FindingConnectFailed, Severity: report.Critical,
			Summary: fmt.Sprintf("reconnecting to %s failed", p.opts.Addr), Evidence: ev, Remedy: remedyConnect}, true
	case "handshake_failed":
		return report.Finding{ID: FindingAuthFailed, Severity: report.Critical,
			Summary: fmt.Sprintf("handshake with %s failed on reconnect", p.opts.Addr), Evidence: ev, Remedy: remedyAuth}, true
	}
	return report.Finding{}, false
}

var outcomeIDs = map[string]string{
	"tls_required": FindingTLSRequired,
	"no_ack":       FindingNoAck, "ack_mismatch": FindingAckMismatch, "closed_before_ack": FindingClosedBeforeAck,
	"connect_failed": FindingConnectFailed, "dns_failed": FindingConnectFailed, "tls_failed": FindingConnectFailed,
	"handshake_failed": FindingAuthFailed,
}

func addSocketEvidence(ev map[string]any, samples []SocketSample) {
	if len(samples) == 0 {
		return
	}
	maxQ, peer := 0, -1
	var qs []int
	for _, s := range samples {
		maxQ = max(maxQ, s.SendQ)
		peer = max(peer, s.PeerRecvQ)
		qs = append(qs, s.SendQ)
	}
	last := samples[len(samples)-1]
	ev["send_q_max"] = maxQ
	ev["send_q_samples"] = qs
	ev["socket_state"] = last.State
	if peer >= 0 {
		ev["peer_recv_q"] = peer
	}
}

func (p *prober) slowAck(l Latency) {
	if l.P99 <= stats.MS(p.opts.SlowAck) {
		return
	}
	p.add(report.Finding{ID: FindingSlowAck, Severity: report.Warning,
		Summary: fmt.Sprintf("acks from %s are slow: p99 %.0f ms, max %.0f ms (threshold %s)", p.opts.Addr, l.P99, l.Max, p.opts.SlowAck),
		Evidence: map[string]any{"addr": p.opts.Addr, "p50_ms": l.P50, "p90_ms": l.P90, "p99_ms": l.P99, "max_ms": l.Max,
			"samples": l.N, "threshold_ms": p.opts.SlowAck.Milliseconds()},
		Remedy: remedySlowAck})
}

// errWrite marks a failure while writing the chunk, before any ack wait.
var errWrite = errors.New("write")

// sendAndWait writes wire and waits for the ack of chunk, sampling the
// socket while it waits. The write itself is bounded by the ack timeout:
// against a receiver that never reads, the write blocks once the buffers
// are full, which is the same failure.
// It returns how long the write took and the whole round trip.
func (p *prober) sendAndWait(ctx context.Context, c *forward.Conn, wire []byte, chunk string, samples *[]SocketSample) (sent, total time.Duration, err error) {
	stopSampling := p.sample(c, samples)
	start := time.Now()
	defer func() { stopSampling(err != nil) }()
	deadline := start.Add(p.opts.AckTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetWriteDeadline(deadline)
	if werr := c.WriteRaw(wire); werr != nil {
		var ne net.Error
		if errors.As(werr, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: %w: blocked for %s (the receiver is not reading): %w", forward.ErrNoAck, errWrite, p.opts.AckTimeout, werr)
		} else {
			err = fmt.Errorf("%w: %w: %w", forward.ErrClosedBeforeAck, errWrite, werr)
		}
		return time.Since(start), time.Since(start), err
	}
	c.SetWriteDeadline(time.Time{})
	sent = time.Since(start)
	if chunk == "" {
		return sent, sent, nil
	}
	err = c.WaitAck(deadline, chunk)
	return sent, time.Since(start), err
}

// sample reads the socket every SampleEvery until stopped. stop takes the
// outcome: after a failure or a wait of a sampling period or more it takes
// one last look, so a short wait still leaves evidence; a quick ack costs
// no /proc read and no goroutine (the sampler starts when the first
// period ends), which keeps load mode fast.
func (p *prober) sample(c *forward.Conn, out *[]SocketSample) func(failed bool) {
	if p.opts.Sockets == nil || out == nil {
		return func(bool) {}
	}
	local, ok1 := addrPort(c.NetConn().LocalAddr())
	remote, ok2 := addrPort(c.NetConn().RemoteAddr())
	if !ok1 || !ok2 {
		return func(bool) {}
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	timer := time.AfterFunc(p.opts.SampleEvery, func() {
		defer wg.Done()
		t := time.NewTicker(p.opts.SampleEvery)
		defer t.Stop()
		for i := 0; i < maxSamples; i++ {
			if s, ok := p.opts.Sockets(local, remote); ok {
				*out = append(*out, s)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func(failed bool) {
		if timer.Stop() {
			wg.Done() // the sampler never started
		} else {
			close(done)
		}
		wg.Wait()
		if !failed && time.Since(start) < p.opts.SampleEvery {
			return
		}
		if s, ok := p.opts.Sockets(local, remote); ok {
			*out = append(*out, s)
		}
	}
}

// addrPort is a socket address as netip, without formatting and parsing
// it for the TCP addresses it always is here.
func addrPort(a net.Addr) (netip.AddrPort, bool) {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap, err == nil
}

// maxSamples bounds the samples kept for one wait.
const maxSamples = 600

func (p *prober) heartbeat(ctx context.Context) {
	hb := &Heartbeat{}
	p.res.Heartbeat = hb
	rtt, err := forward.HeartbeatUDP(ctx, p.opts.Addr, p.opts.HeartbeatTimeout)
	if err != nil {
		hb.Error, hb.err = err.Error(), err
		hb.Refused = errors.Is(err, syscall.ECONNREFUSED)
		return
	}
	hb.OK, hb.RTTMS = true, stats.MS(rtt)
}

// heartbeatFinding judges an unanswered heartbeat once the TCP side is
// known. Fluentd's in_forward answers UDP heartbeats on its port; Fluent
// Bit's forward input does not implement them (nothing listens on UDP),
// so silence there is expected and matters only to a Fluentd sender with
// heartbeat_type udp. Without --peer-kind the probe cannot tell the two
// apart, so when TCP works and acks arrive it says both and reports info.
func (p *prober) heartbeatFinding() {
	hb := p.res.Heartbeat
	if hb == nil || hb.OK {
		return
	}
	ev := map[string]any{"addr": p.opts.Addr, "timeout_ms": p.opts.HeartbeatTimeout.Milliseconds(), "error": hb.Error,
		"udp_port_closed": hb.Refused}
	why := "no answer within " + p.opts.HeartbeatTimeout.String()
	if hb.Refused {
		why = "nothing listens on its UDP port, ICMP port unreachable"
	}
	acked := p.res.AckLatency != nil || p.res.Load != nil && p.res.Load.ChunksAcked > 0
	switch {
	case p.opts.PeerKind == PeerFluentBit:
		ev["peer_kind"] = PeerFluentBit
		p.add(report.Finding{ID: FindingHeartbeatFailed, Severity: report.Info,
			Summary:  fmt.Sprintf("%s does not answer UDP heartbeats (%s), as expected: Fluent Bit's forward input does not implement them", p.opts.Addr, why),
			Evidence: ev, Remedy: remedyHeartbeatFluentBit})
	case p.opts.PeerKind == "" && acked:
		p.add(report.Finding{ID: FindingHeartbeatFailed, Severity: report.Info,
			Summary: fmt.Sprintf("%s acks over TCP but does not answer UDP heartbeats (%s). Expected if it is Fluent Bit, whose forward input "+
				"does not implement them; if it is Fluentd's in_forward, UDP to the port is blocked. --peer-kind tells the probe which", p.opts.Addr, why),
			Evidence: ev, Remedy: remedyHeartbeatEither})
	default:
		if p.opts.PeerKind != "" {
			ev["peer_kind"] = p.opts.PeerKind
		}
		p.add(report.Finding{ID: FindingHeartbeatFailed, Severity: report.Warning,
			Summary:  fmt.Sprintf("%s does not answer UDP heartbeats (%s)", p.opts.Addr, why),
			Evidence: ev, Remedy: remedyHeartbeat})
	}
}

// canaryRequest builds a chunk whose records name themselves as probe
// events: run id, sequence number, mode.
func (p *prober) canaryRequest(mode forward.Mode, n int) *forward.Request {
	req := &forward.Request{Tag: p.opts.Tag, Mode: mode, Chunk: forward.NewChunkID()}
	newProbeRecords(p.opts.RunID, mode, p.opts.RecordSize).fill(req, nil, nil, p.seq, n)
	p.seq += n
	return req
}

// probeRecords appends {"logdoctor":"probe","run_id":..,"seq":..,
// "mode":..,"message":padding} records sized to about size bytes. It
// encodes the parts every record shares once, because load mode builds
// hundreds of thousands a second: building them field by field, and the
// padding byte by byte, was most of the load generator's time a chunk.
type probeRecords struct {
	head []byte // map header, logdoctor, run_id, the seq key and uint64 code
	mid  []byte // the mode pair and the message key
	size int
}

func newProbeRecords(runID string, mode forward.Mode, size int) *probeRecords {
	r := &probeRecords{size: size}
	r.head = mpenc.AppendMapHeader(nil, 5)
	r.head = mpenc.AppendStr(r.head, "logdoctor")
	r.head = mpenc.AppendStr(r.head, "probe")
	r.head = mpenc.AppendStr(r.head, "run_id")
	r.head = mpenc.AppendStr(r.head, runID)
	r.head = mpenc.AppendStr(r.head, "seq")
	r.head = append(r.head, 0xcf)
	r.mid = mpenc.AppendStr(nil, "mode")
	r.mid = mpenc.AppendStr(r.mid, mode.String())
	r.mid = mpenc.AppendStr(r.mid, "message")
	return r
}

func (r *probeRecords) append(dst []byte, seq int) []byte {
	const prefix = "logdoctor forward probe canary "
	dst = append(dst, r.head...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(seq))
	dst = append(dst, r.mid...)
	var digits [20]byte
	num := strconv.AppendInt(digits[:0], int64(seq), 10)
	// 5: the longest string header the message may need.
	n := max(r.size-len(r.head)-8-len(r.mid)-5, len(prefix)+len(num))
	dst = mpenc.AppendStrHeader(dst, n)
	dst = append(dst, prefix...)
	dst = append(dst, num...)
	for pad := n - len(prefix) - len(num); pad > 0; {
		k := min(pad, len(padding))
		dst = append(dst, padding[:k]...)
		pad -= k
	}
	return dst
}

// fill makes req's entries n records numbered from first+1, stamped now,
// built in buf and offs (reused: the previous request's entries point
// into them), which it returns.
func (r *probeRecords) fill(req *forward.Request, buf []byte, offs []int, first, n int) ([]byte, []int) {
	now := forward.NewEventTime(time.Now())
	buf, offs = buf[:0], offs[:0]
	for j := 1; j <= n; j++ {
		offs = append(offs, len(buf))
		buf = r.append(buf, first+j)
	}
	offs = append(offs, len(buf))
	req.Entries = req.Entries[:0]
	for j := 0; j < n; j++ {
		req.Entries = append(req.Entries, forward.Entry{Time: now, Record: buf[offs[j]:offs[j+1]]})
	}
	return buf, offs
}

const padding = "................................................................" +
	"................................................................"

func summarize(d []time.Duration) Latency {
	slices.Sort(d)
	pct := func(q float64) float64 { return stats.MS(stats.PercentileSorted(d, q)) }
	return Latency{P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: stats.MS(d[len(d)-1]), N: len(d)}
}
