package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardserve"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
	"github.com/logdoctor/logdoctor/pkg/inflight"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// newForwardCmd is the `forward` parent: probe (a client) and serve (a
// receiver that can misbehave on purpose).
func newForwardCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "forward",
		Short: "Fluentd forward protocol: probe an endpoint's acks, or run a test receiver",
	}
	cmd.AddCommand(newForwardProbeCmd(g, nil), newForwardServeCmd(g, nil))
	return cmd
}

// ForwardProbeOptions are the flags of `forward probe`.
type ForwardProbeOptions struct {
	Addr                string
	Tag                 string
	Modes               []string
	AckTimeout, SlowAck time.Duration
	HeloWait            time.Duration
	SharedKey, Username string
	Password, Hostname  string
	ForwardTLS
	ServerName              string
	Count, Concurrency      int
	ChunkEvents, RecordSize int
	Rate                    float64
	Warmup                  time.Duration
	NewConnection           bool
	Heartbeat               bool
	HeartbeatTimeout        time.Duration

	HandshakeTimeout time.Duration
	PeerKind         string // "", fluentd or fluent-bit

	// Set by tests and the command layer, not flags.
	Dialer  forward.Dialer
	Sockets forwardprobe.SocketInspector
}

// newForwardProbeCmd builds `forward probe`; runF, when set, gets the
// parsed options instead of the probe running (the seam flag tests use).
func newForwardProbeCmd(g *Globals, runF func(ForwardProbeOptions) error) *cobra.Command {
	o := &ForwardProbeOptions{}
	cmd := &cobra.Command{
		Use:   "probe HOST:PORT",
		Short: "Send canary chunks with ack requests and report connect, handshake and ack health",
		Long: `probe connects to a Fluentd/Fluent Bit forward input the way out_forward does,
times DNS, connect, TLS and the shared-key handshake, sends one canary chunk
per mode with a chunk id and waits for each ack (--ack-timeout; out_forward's
own ack_response_timeout defaults to 190s). With --count it becomes a load
test reporting acked events per second and ack latency percentiles.

The shared key and password may also come from LOGDOCTOR_FORWARD_SHARED_KEY
and LOGDOCTOR_FORWARD_PASSWORD, which keeps them out of the process list.`,
		Args: cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			o.Addr = args[0]
			if o.SharedKey == "" {
				o.SharedKey = os.Getenv("LOGDOCTOR_FORWARD_SHARED_KEY")
			}
			if o.Password == "" {
				o.Password = os.Getenv("LOGDOCTOR_FORWARD_PASSWORD")
			}
			if runF != nil {
				return runF(*o)
			}
			o.Sockets = procSocketInspector()
			r, err := runForwardProbe(cmd.Context(), g.Now, *o)
			if err != nil {
				return err
			}
			return g.Emit(r)
		}),
	}
	f := cmd.Flags()
	nonEmptyVar(f, &o.Tag, "tag", forwardprobe.DefaultTag, "a non-empty tag", "tag of the canary events")
	f.StringSliceVar(&o.Modes, "mode", nil, "message, forward, packed or compressed (repeat or comma-separate; default: each once, packed in load mode)")
	durVar(f, &o.AckTimeout, "ack-timeout", forwardprobe.DefaultAckTimeout, time.Nanosecond, wantPositiveDur, "how long to wait for each ack (out_forward's ack_response_timeout defaults to 190s)")
	durVar(f, &o.SlowAck, "slow-ack", forwardprobe.DefaultSlowAck, time.Nanosecond, wantPositiveDur, "ack latency p99 above this is reported as forward.slow_ack")
	durVar(f, &o.HeloWait, "helo-wait", forwardprobe.DefaultHeloWait, time.Nanosecond, wantPositiveDur, "without --shared-key, how long to listen for a HELO after connecting")
	durVar(f, &o.HandshakeTimeout, "handshake-timeout", forward.DefaultHandshakeTimeout, time.Nanosecond, wantPositiveDur, "bound of the TLS handshake and, with --shared-key, of the wait for HELO and PONG")
	enumVar(f, &o.PeerKind, "peer-kind", "", []string{"", "fluentd", "fluent-bit"}, "what listens there, fluentd or fluent-bit (only the --heartbeat verdict depends on it: Fluent Bit does not answer UDP heartbeats)")
	f.StringVar(&o.SharedKey, "shared-key", "", "shared key for the HELO/PING/PONG handshake")
	f.StringVar(&o.Username, "username", "", "username for user_auth")
	f.StringVar(&o.Password, "password", "", "password for user_auth")
	f.StringVar(&o.Hostname, "hostname", "", "self hostname sent in PING (default: this host's name)")
	o.ForwardTLS.addFlags(f, map[string]string{"tls-ca": "ca", "tls-cert": "cert", "tls-key": "key", "tls-insecure": "insecure"})
	f.StringVar(&o.ServerName, "server-name", "", "TLS server name to verify (default: the host)")
	intVar(f, &o.Count, "count", 0, 0, math.MaxInt32, "0 (canary mode) or a number of events", "load mode: send this many events")
	floatVar(f, &o.Rate, "rate", 0, 0, math.MaxFloat64, "0 (as fast as acks come) or a positive number of events per second", "load mode: at most this many events per second (0: as fast as acks come)")
	durVar(f, &o.Warmup, "warmup", 0, 0, wantDurOrZero("none"), "load mode: send the same way for this long before counting, with the warm-up's acks reported apart (0 = none)")
	intVar(f, &o.Concurrency, "concurrency", forwardprobe.DefaultConcurrency, 1, 4096, "a number of connections from 1 to 4096", "load mode: connections sending in parallel")
	intVar(f, &o.ChunkEvents, "chunk-events", forwardprobe.DefaultChunkEvents, 1, 1_000_000, "a number of events from 1 to 1000000", "load mode: events per chunk")
	intVar(f, &o.RecordSize, "record-size", forwardprobe.DefaultRecordSize, 1, 16<<20, "a number of bytes from 1 to 16777216", "approximate bytes per record")
	f.BoolVar(&o.NewConnection, "new-connection", false, "load mode: a new connection per chunk (out_forward without keepalive) instead of keep-alive")
	f.BoolVar(&o.Heartbeat, "heartbeat", false, "also check that the port answers UDP heartbeats")
	durVar(f, &o.HeartbeatTimeout, "heartbeat-timeout", forwardprobe.DefaultHeartbeatTimeout, time.Nanosecond, wantPositiveDur, "how long to wait for the UDP heartbeat reply")
	return cmd
}

func runForwardProbe(ctx context.Context, now func() time.Time, o ForwardProbeOptions) (*report.Report, error) {
	if err := checkHostPort(o.Addr, 1); err != nil {
		return nil, usageErrorf("address %q: want %s", o.Addr, wantDial)
	}
	// The flags refuse these already; callers that build the options
	// themselves get the same answer.
	switch {
	case o.Count < 0:
		return nil, usageErrorf("--count %d: want 0 (canary mode) or a number of events", o.Count)
	case o.Rate < 0:
		return nil, usageErrorf("--rate %g: want 0 (as fast as acks come) or a positive number of events per second", o.Rate)
	case o.Concurrency < 1:
		return nil, usageErrorf("--concurrency %d: want a number of connections from 1 to 4096", o.Concurrency)
	case o.ChunkEvents < 1:
		return nil, usageErrorf("--chunk-events %d: want a number of events from 1 to 1000000", o.ChunkEvents)
	case o.AckTimeout <= 0:
		return nil, usageErrorf("--ack-timeout %s: want %s", o.AckTimeout, wantPositiveDur)
	case o.Warmup < 0:
		return nil, usageErrorf("--warmup %s: want %s", o.Warmup, wantDurOrZero("none"))
	case o.Warmup > 0 && o.Count == 0:
		return nil, usageErrorf("--warmup is for load mode: add --count")
	}
	var modes []forward.Mode
	for _, s := range o.Modes {
		m, err := forward.ParseMode(strings.TrimSpace(s))
		if err != nil {
			return nil, usageErrorf("--mode: %w", err)
		}
		modes = append(modes, m)
	}
	if o.Count > 0 && len(modes) > 1 {
		return nil, usageErrorf("load mode (--count) sends one --mode")
	}
	tc, err := o.ForwardTLS.config(o.ServerName)
	if err != nil {
		return nil, err
	}
	r := report.New("forward probe", now())
	res, findings, err := forwardprobe.Run(ctx, forwardprobe.Options{
		Addr: o.Addr, Tag: o.Tag, Modes: modes, AckTimeout: o.AckTimeout, SlowAck: o.SlowAck,
		Client: forward.ClientConfig{Dialer: o.Dialer, TLSConfig: tc, SharedKey: o.SharedKey, Username: o.Username,
			Password: o.Password, Hostname: o.Hostname, HeloWait: o.HeloWait, HandshakeTimeout: o.HandshakeTimeout},
		Count: o.Count, ChunkEvents: o.ChunkEvents, Rate: o.Rate, Warmup: o.Warmup, Concurrency: o.Concurrency,
		NewConnPerChunk: o.NewConnection, RecordSize: o.RecordSize,
		Heartbeat: o.Heartbeat, HeartbeatTimeout: o.HeartbeatTimeout, PeerKind: o.PeerKind, Sockets: o.Sockets,
	})
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	r.Data = res
	r.Add(findings...)
	r.Finish(now())
	return r, nil
}

// ForwardServeOptions are the flags of `forward serve`.
type ForwardServeOptions struct {
	Listen          string
	Ack             string
	CloseAfter      int
	Blackhole       bool
	SharedKey       string
	Users           []string
	Hostname        string
	TLSCert, TLSKey string
	TLSClientCA     string
	Duration        time.Duration
	Heartbeat       bool
	MaxRequestBytes int64
	MaxDecompressed string
	MaxInFlight     string
	ReadTimeout     time.Duration
	IdleTimeout     time.Duration
	FirstRequest    time.Duration
	MaxConns        int
}

// newForwardServeCmd builds `forward serve`; runF, when set, gets the
// parsed options instead of the receiver running.
func newForwardServeCmd(g *Globals, runF func(ForwardServeOptions) error) *cobra.Command {
	o := &ForwardServeOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a forward receiver that counts events per tag and can misbehave on purpose",
		Long: `serve accepts every forward mode (and JSON), optional shared-key/user auth and
TLS, counts events per tag and prints a report when it stops (SIGINT, SIGTERM
or --duration). To reproduce delivery failures against a real sender:
--ack never|wrong|delay=DURATION|drop-rate=P, --close-after N (close each
connection on its Nth request, unacked) and --blackhole (accept, never read).`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			if o.SharedKey == "" {
				o.SharedKey = os.Getenv("LOGDOCTOR_FORWARD_SHARED_KEY")
			}
			if runF != nil {
				return runF(*o)
			}
			ctx := cmd.Context()
			logger := slog.New(slog.NewTextHandler(g.IO.Err, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: logAttrsAsText}))
			r, err := runForwardServe(ctx, g.Now, *o, logger, func(addr net.Addr) {
				fmt.Fprintf(g.IO.Err, "logdoctor forward serve: listening on %s (ack %s)\n", addr, o.Ack)
			})
			if err != nil {
				return err
			}
			return g.Emit(r)
		}),
	}
	f := cmd.Flags()
	addrVar(f, &o.Listen, "listen", "127.0.0.1:24224", true, false, "address to listen on (TCP, and UDP for heartbeats)")
	f.StringVar(&o.Ack, "ack", "always", "always, never, wrong, delay=DURATION or drop-rate=P (0..1)")
	intVar(f, &o.CloseAfter, "close-after", 0, 0, math.MaxInt32, "0 (never) or a request number from 1", "close each connection, without ack, on its Nth request")
	f.BoolVar(&o.Blackhole, "blackhole", false, "accept connections and never read from them")
	f.StringVar(&o.SharedKey, "shared-key", "", "require the HELO/PING/PONG handshake with this key")
	f.StringSliceVar(&o.Users, "user", nil, "USER:PASSWORD for user_auth (repeatable; needs --shared-key)")
	f.StringVar(&o.Hostname, "self-hostname", "logdoctor-serve", "hostname sent in the handshake's PONG, Fluentd's <security> self_hostname; it must differ from the sender's")
	// The old name keeps working, silently: a deprecation notice would go
	// to stdout and break -o json.
	f.StringVar(&o.Hostname, "hostname", "logdoctor-serve", "old name of --self-hostname")
	_ = f.MarkHidden("hostname")
	f.StringVar(&o.TLSCert, "tls-cert", "", "PEM server certificate (turns on TLS)")
	f.StringVar(&o.TLSKey, "tls-key", "", "PEM server key")
	f.StringVar(&o.TLSClientCA, "tls-client-ca", "", "PEM CAs; require client certificates signed by them")
	durVar(f, &o.Duration, "duration", 0, 0, wantDurOrZero("until SIGINT"), "stop after this long (0: until SIGINT)")
	f.BoolVar(&o.Heartbeat, "heartbeat", true, "answer UDP heartbeats on the same port")
	int64Var(f, &o.MaxRequestBytes, "max-request-bytes", forward.DefaultLimits.MaxRequestBytes, 1, math.MaxInt64, "a number of bytes of 1 or more", "close connections sending a larger request")
	sizeVar(f, &o.MaxDecompressed, "max-decompressed-size", sizeText(forward.DefaultLimits.MaxDecompressedBytes), parseSize, 1, false, "a size of 1 byte or more, like 128MiB", "largest CompressedPackedForward request after gunzip (inflated as it is decoded; a bigger one closes the connection)")
	sizeVar(f, &o.MaxInFlight, "max-in-flight", sizeText(pipeline.DefaultMaxInFlightBytes), parseSize, 0, false, "0 (no bound) or a size like 256MiB", "memory for requests being read and decoded, all connections together: past it requests wait unread, a larger one is refused without ack (0: no bound)")
	durVar(f, &o.ReadTimeout, "read-timeout", 0, 0, wantDurOrZero("no limit"), "close a connection that takes longer to send one request (0: no limit)")
	durVar(f, &o.IdleTimeout, "idle-timeout", 0, 0, wantDurOrZero("never"), "close a connection idle between requests this long (0: never, as in_forward)")
	durVar(f, &o.FirstRequest, "first-request-timeout", pipeline.DefaultFirstRequestTimeout, 0, wantDurOrZero("never"), "close a connection that has not sent a complete request this long after connecting (0: never)")
	intVar(f, &o.MaxConns, "max-conns", 0, 0, 1<<20, "0 (no limit) or a number of connections up to 1048576", "at this many connections, close the one idle the longest to admit a new one (0: no limit)")
	return cmd
}

func serveTLSConfig(o ForwardServeOptions) (*tls.Config, error) {
	if o.TLSCert == "" && o.TLSKey == "" {
		if o.TLSClientCA != "" {
			return nil, usageErrorf("--tls-client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	pair, err := keyPair("--tls-cert", o.TLSCert, "--tls-key", o.TLSKey)
	if errors.Is(err, errPairIncomplete) {
		return nil, &UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{*pair}, MinVersion: tls.VersionTLS12}
	if o.TLSClientCA != "" {
		if cfg.ClientCAs, err = certPool("--tls-client-ca", o.TLSClientCA); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// runForwardServe checks the options, runs the receiver until ctx is done
// or --duration passes, and reports its tally. onListen is told the bound
// address.
func runForwardServe(ctx context.Context, now func() time.Time, o ForwardServeOptions, logger *slog.Logger, onListen func(net.Addr)) (*report.Report, error) {
	policy, err := forwardserve.ParseAckPolicy(o.Ack)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	if o.CloseAfter < 0 {
		return nil, usageErrorf("--close-after %d: want 0 (never) or a request number from 1", o.CloseAfter)
	}
	if err := checkHostPort(o.Listen, 0); err != nil {
		return nil, usageErrorf("--listen %q: want %s", o.Listen, wantListen)
	}
	maxDec, err := parseSize(o.MaxDecompressed)
	if err != nil {
		return nil, usageErrorf("--max-decompressed-size: %v", err)
	}
	maxInFlight, err := parseSize(o.MaxInFlight)
	if err != nil {
		return nil, usageErrorf("--max-in-flight: %v", err)
	}
	if o.FirstRequest < 0 {
		return nil, usageErrorf("--first-request-timeout must not be negative (0 turns it off)")
	}
	users := map[string]string{}
	for _, u := range o.Users {
		name, pw, ok := strings.Cut(u, ":")
		if !ok || name == "" {
			return nil, usageErrorf("--user wants USER:PASSWORD")
		}
		users[name] = pw
	}
	if len(users) > 0 && o.SharedKey == "" {
		return nil, usageErrorf("--user needs --shared-key (user auth is part of the handshake)")
	}
	tc, err := serveTLSConfig(o)
	if err != nil {
		return nil, err
	}
	var budget *inflight.Budget
	if maxInFlight > 0 {
		budget = inflight.New(maxInFlight)
		if limit, restore := setMemoryLimit(maxInFlight, nil); limit > 0 {
			defer restore()
		}
	}
	r := report.New("forward serve", now())
	data, err := forwardserve.Run(ctx, forwardserve.Options{
		Listen: o.Listen, Ack: policy, AckText: o.Ack, CloseAfter: o.CloseAfter, Blackhole: o.Blackhole,
		SharedKey: o.SharedKey, Users: users, TLSConfig: tc, Hostname: o.Hostname,
		Duration: o.Duration, Heartbeat: o.Heartbeat, MaxRequestBytes: o.MaxRequestBytes,
		MaxDecompressedBytes: maxDec, Budget: budget,
		ReadTimeout: o.ReadTimeout, IdleTimeout: o.IdleTimeout, FirstRequestTimeout: o.FirstRequest, MaxConns: o.MaxConns,
		Logger: logger, Now: now, OnListen: onListen,
	})
	if err != nil {
		return nil, err
	}
	r.Data = data
	if !data.Blackhole {
		r.Add(forwardserve.InputFindings(data.Listen, data.Stats)...)
	}
	r.Finish(now())
	return r, nil
}
