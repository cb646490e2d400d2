package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/internal/reopen"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/pkg/esclient"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/smoke/lab"
)

// PipelineOptions are the flags of `pipeline run`.
type PipelineOptions struct {
	Forward          string
	ForwardSharedKey string
	SelfHostname     string
	ForwardTLSCert   string
	ForwardTLSKey    string
	MaxConns         int
	ReadTimeout      time.Duration
	IdleTimeout      time.Duration
	MaxRequest       string
	MaxDecompressed  string
	MaxInFlight      string
	FirstRequest     time.Duration

	UDP            string
	UDPTag         string
	UDPMaxDatagram int
	UDPTimeKey     string
	UDPKeepTimeKey bool
	UDPRcvBuf      string

	BufferDir    string
	MemoryBuffer bool
	BufferMax    string
	FullWait     time.Duration

	ESData    string
	ESMaxDocs int64
	ESConn
	ESPassword     string
	Gzip           bool
	Workers        int
	BatchCount     int
	BatchBytes     string
	FlushInterval  time.Duration
	RequestTimeout time.Duration
	RetryTimeout   time.Duration
	Sniff          bool

	Index      string
	IDKey      string
	TagKey     string
	DeadLetter string

	Metrics         string
	ShutdownTimeout time.Duration
	Duration        time.Duration
	LogFile         string
	LogFormat       string
	LogLevel        string
}

// newPipelineCmd builds `pipeline` and its `run`; runF, when set, gets
// run's parsed options instead of the pipeline starting.
func newPipelineCmd(g *Globals, runF func(*PipelineOptions) error) *cobra.Command {
	parent := &cobra.Command{
		Use:   "pipeline",
		Short: "The embedded forward/UDP -> durable buffer -> Elasticsearch pipeline",
	}
	o := &PipelineOptions{}
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline until SIGTERM/SIGINT (or --duration)",
		Long: `Receives Fluentd forward (TCP, every mode, ack after fsync) and UDP JSON,
keeps events in a durable on-disk buffer, and indexes them into Elasticsearch
with bulk "create" and a deterministic _id, so nothing acked is lost and
nothing is indexed twice. --es embedded (the default) starts an in-process
Elasticsearch stand-in. SIGTERM/SIGINT stop accepting and flush for up to
--shutdown-timeout; what is left stays in the buffer for the next start.
SIGHUP reopens --log-file and the dead-letter file.`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			rep, err := runPipeline(cmd.Context(), g, o)
			if rep != nil {
				if eerr := g.Emit(rep); eerr != nil && err == nil {
					err = eerr
				}
			}
			return err
		}),
	}
	f := run.Flags()
	addrVar(f, &o.Forward, "forward", "127.0.0.1:24224", true, true, `forward protocol listen address (TCP; heartbeat on the same UDP port); "" disables`)
	f.StringVar(&o.ForwardSharedKey, "forward-shared-key", "", "require the forward handshake with this shared key (or $LOGDOCTOR_FORWARD_SHARED_KEY)")
	f.StringVar(&o.SelfHostname, "self-hostname", "", "hostname sent in the handshake's PONG, Fluentd's <security> self_hostname; it must differ from the sender's (default logdoctor-pipeline.<this host>)")
	f.StringVar(&o.ForwardTLSCert, "forward-tls-cert", "", "TLS certificate file for the forward input")
	f.StringVar(&o.ForwardTLSKey, "forward-tls-key", "", "TLS key file for the forward input")
	intVar(f, &o.MaxConns, "max-conns", pipeline.DefaultMaxConns, 1, 1<<20, "a number from 1 to 1048576", "maximum concurrent forward connections; at the limit the connection idle the longest is closed to admit a new one")
	durVar(f, &o.ReadTimeout, "read-timeout", pipeline.DefaultReadTimeout, time.Nanosecond, wantPositiveDur, "close a forward connection that takes longer to send one request (slowloris)")
	durVar(f, &o.IdleTimeout, "idle-timeout", 0, 0, wantDurOrZero("never"), "close a forward connection idle between requests this long (0: never, as in_forward)")
	durVar(f, &o.FirstRequest, "first-request-timeout", pipeline.DefaultFirstRequestTimeout, 0, wantDurOrZero("never"), "close a forward connection that has not sent a complete request this long after connecting (0: never)")
	sizeVar(f, &o.MaxRequest, "max-request-size", sizeText(pipeline.DefaultMaxRequestBytes), parseSize, 1, false, "a size of 1 byte or more, like 32MiB", "largest forward request on the wire")
	sizeVar(f, &o.MaxDecompressed, "max-decompressed-size", sizeText(pipeline.DefaultMaxDecompressedBytes), parseSize, 1, false, "a size of 1 byte or more, like 128MiB", "largest CompressedPackedForward request after gunzip (inflated as it is decoded; a bigger one is refused)")
	sizeVar(f, &o.MaxInFlight, "max-in-flight", sizeText(pipeline.DefaultMaxInFlightBytes), parseSize, 0, false, "0 (no bound) or a size like 256MiB", "memory for forward requests being read, decoded and buffered, all connections together: past it requests wait unread, a larger one is refused without ack (0: no bound)")
	addrVar(f, &o.UDP, "udp", "", true, true, "UDP JSON listen address (one JSON object per datagram), e.g. 127.0.0.1:5160")
	nonEmptyVar(f, &o.UDPTag, "udp-tag", pipeline.DefaultUDPTag, "a non-empty tag", "tag of events received over UDP")
	intVar(f, &o.UDPMaxDatagram, "udp-max-datagram", pipeline.DefaultUDPMaxDatagram, 1, pipeline.DefaultUDPMaxDatagram, "a number of bytes from 1 to 65507 (the largest UDP payload)", "largest UDP datagram accepted (larger ones are dead-lettered)")
	f.StringVar(&o.UDPTimeKey, "udp-time-key", "time", `field with a UDP event's time (epoch seconds or RFC 3339), removed from the record; "-": arrival time`)
	f.BoolVar(&o.UDPKeepTimeKey, "udp-keep-time-key", false, "keep the --udp-time-key field in the record")
	sizeVar(f, &o.UDPRcvBuf, "udp-rcvbuf", "", parseSize, 1, true, `a size like 8MiB, or "" for the kernel default`, "SO_RCVBUF of the UDP socket, e.g. 8MiB (kernel default when empty)")
	f.StringVar(&o.BufferDir, "buffer-dir", "", "buffer directory (default $XDG_STATE_HOME/logdoctor/buffer, else ~/.local/state/logdoctor/buffer, else the temp dir)")
	f.BoolVar(&o.MemoryBuffer, "memory-buffer", false, "keep the buffer in memory: LOSES EVENTS ON A CRASH (benchmarks only)")
	sizeVar(f, &o.BufferMax, "buffer-max", sizeText(pipeline.DefaultBufferMaxBytes), parseSize, minBufferMax, false, "a size of 64KiB or more, like 1GiB", "buffer size limit; when full, forward requests get no ack and UDP reading pauses")
	durVar(f, &o.FullWait, "buffer-full-wait", pipeline.DefaultBufferFullWait, time.Nanosecond, wantPositiveDur, "how long a forward request waits for buffer space before it is refused")
	int64Var(f, &o.ESMaxDocs, "es-max-docs", 4_000_000, 0, 1<<62, "0 (no bound) or more documents", "with --es embedded: documents it holds at most (about 35 bytes of memory each); past that writes get 429 as at Elasticsearch's flood-stage watermark (0: no bound)")
	f.StringVar(&o.ESData, "es-data", "", "with --es embedded: keep the documents in this directory across restarts (default: <buffer-dir>/embedded-es, removed at exit)")
	o.ESConn.addFlags(f, esURLFlag{def: []string{"embedded"}, embedded: true,
		usage: `Elasticsearch/OpenSearch URL(s), comma-separated or repeated; "embedded" starts an in-process stand-in`}, nil)
	f.StringVar(&o.ESPassword, "es-password", "", "basic auth password (prefer --es-password-file or LOGDOCTOR_ES_PASSWORD)")
	f.BoolVar(&o.Gzip, "es-gzip", false, "gzip bulk request bodies")
	intVar(f, &o.Workers, "es-workers", esout.DefaultWorkers, 1, 256, "a number from 1 to 256", "concurrent bulk requests (with --es embedded: none while senders push a burst and the buffer holds less than three quarters of --buffer-max, at most 768 MiB)")
	intVar(f, &o.BatchCount, "batch-count", esout.DefaultBatchCount, 1, 1_000_000, "a number of events from 1 to 1000000", "events per bulk request")
	sizeVar(f, &o.BatchBytes, "batch-size", sizeText(esout.DefaultBatchBytes), parseSize, 1024, false, "a size of 1KiB or more, like 8MiB", "bulk body size (kept under the cluster's http.max_content_length)")
	durVar(f, &o.FlushInterval, "flush-interval", esout.DefaultFlushInterval, time.Nanosecond, wantPositiveDur, "how long a bulk request waits to fill")
	durVar(f, &o.RequestTimeout, "es-timeout", esout.DefaultRequestTimeout, time.Nanosecond, wantPositiveDur, "timeout of one bulk request")
	durCheckVar(f, &o.RetryTimeout, "retry-timeout", esout.DefaultRetryTimeout, func(d time.Duration) bool { return d != 0 },
		"a positive duration like 1h, or a negative one (-1s) for never", "give up on an event (dead-letter it) after retrying this long; negative: never")
	f.BoolVar(&o.Sniff, "es-sniff", false, "discover nodes from _nodes/http (only addresses reachable from here are used)")
	f.StringVar(&o.Index, "index", esout.DefaultIndex, "index name template over {tag} and the event's UTC date ({yyyy.MM.dd}, {yyyy.MM}, ...)")
	f.StringVar(&o.IDKey, "id-key", "", "take the _id from this record field when present (default: hash of tag, time and record)")
	f.StringVar(&o.TagKey, "tag-key", pipeline.DefaultTagKey, `document field that receives the tag ("-" for none)`)
	f.StringVar(&o.DeadLetter, "dead-letter", "", "dead-letter file (default BUFFER_DIR/deadletter.jsonl)")
	addrVar(f, &o.Metrics, "metrics", "", true, true, "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:24231")
	durVar(f, &o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, 0, wantDurOrZero("do not flush"), "on SIGTERM/SIGINT, flush for at most this long")
	durVar(f, &o.Duration, "duration", 0, 0, wantDurOrZero("run until a signal"), "stop by itself after this long (0: run until a signal)")
	f.StringVar(&o.LogFile, "log-file", "", "write logs here instead of stderr (reopened on SIGHUP)")
	enumVar(f, &o.LogFormat, "log-format", "text", []string{"text", "json"}, "log format: text or json")
	enumVar(f, &o.LogLevel, "log-level", "info", []string{"debug", "info", "warn", "error"}, "log level: debug, info, warn, error")
	parent.AddCommand(run)
	return parent
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suf  string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 512MiB)", s)
	}
	return int64(n * float64(mult)), nil
}

// offIfZero maps a flag's 0 ("off") to the negative value a Config reads
// as off, since a zero Config field means "the default".
func offIfZero[T int64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// selfHostname is the server's name in the forward handshake: the flag's
// value, else prefix.<this host>. Fluentd's in_forward and out_forward
// both refuse a PONG or PING carrying their own name ("same hostname
// between input and output"), so a sender on this host using its host
// name (forward probe, out_forward with self_hostname
// "#{Socket.gethostname}") would be refused by a server using it too.
func selfHostname(flag, prefix string) string {
	if flag != "" {
		return flag
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return prefix + "." + host
}

// minBufferMax is the smallest --buffer-max: below it a buffer cannot
// hold even a small chunk and every request would be refused.
const minBufferMax = 64 << 10

// defaultBufferDir is $XDG_STATE_HOME/logdoctor/buffer, else
// ~/.local/state/logdoctor/buffer, else a directory in the temp dir.
func defaultBufferDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "logdoctor", "buffer")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" && h != "/" {
		return filepath.Join(h, ".local", "state", "logdoctor", "buffer")
	}
	return filepath.Join(os.TempDir(), "logdoctor-buffer")
}

// pipelineConfig turns flags into a pipeline.Config (usage errors here).
func pipelineConfig(o *PipelineOptions) (pipeline.Config, error) {
	var cfg pipeline.Config
	sizes := map[string]*int64{}
	var maxReq, maxDec, maxInFlight, bufMax, rcv, batch int64
	sizes["--max-request-size"], sizes["--max-decompressed-size"], sizes["--max-in-flight"], sizes["--buffer-max"], sizes["--udp-rcvbuf"], sizes["--batch-size"] = &maxReq, &maxDec, &maxInFlight, &bufMax, &rcv, &batch
	vals := map[string]string{"--max-request-size": o.MaxRequest, "--max-decompressed-size": o.MaxDecompressed, "--max-in-flight": o.MaxInFlight,
		"--buffer-max": o.BufferMax, "--udp-rcvbuf": o.UDPRcvBuf, "--batch-size": o.BatchBytes}
	for flag, p := range sizes {
		n, err := parseSize(vals[flag])
		if err != nil {
			return cfg, usageErrorf("%s: %v", flag, err)
		}
		*p = n
	}
	if o.Forward == "" && o.UDP == "" {
		return cfg, usageErrorf("no input: give --forward and/or --udp")
	}
	if o.ESMaxDocs < 0 {
		return cfg, usageErrorf("--es-max-docs must not be negative")
	}
	if _, err := esout.ParseIndexTemplate(o.Index); err != nil {
		return cfg, usageErrorf("--index: %v", err)
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return cfg, usageErrorf("--log-format: want text or json")
	}
	cfg = pipeline.Config{
		ForwardAddr: o.Forward, ForwardSharedKey: o.ForwardSharedKey, ForwardHostname: selfHostname(o.SelfHostname, "logdoctor-pipeline"), MaxConns: o.MaxConns,
		ReadTimeout: o.ReadTimeout, IdleTimeout: o.IdleTimeout, MaxRequestBytes: maxReq, MaxDecompressedBytes: maxDec,
		MaxInFlightBytes: offIfZero(maxInFlight), FirstRequestTimeout: offIfZero(o.FirstRequest),
		UDPAddr: o.UDP, UDPTag: o.UDPTag, UDPMaxDatagram: o.UDPMaxDatagram, UDPReadBuffer: int(rcv),
		UDPTimeKey: o.UDPTimeKey, UDPKeepTimeKey: o.UDPKeepTimeKey,
		BufferDir: o.BufferDir, MemoryBuffer: o.MemoryBuffer, BufferMaxBytes: bufMax, BufferFullWait: o.FullWait,
		IDKey: o.IDKey, TagKey: o.TagKey, DeadLetterPath: o.DeadLetter, MetricsAddr: o.Metrics,
	}
	if cfg.ForwardSharedKey == "" {
		cfg.ForwardSharedKey = os.Getenv("LOGDOCTOR_FORWARD_SHARED_KEY")
	}
	if !cfg.MemoryBuffer && cfg.BufferDir == "" {
		cfg.BufferDir = defaultBufferDir()
	}
	cert, err := keyPair("--forward-tls-cert", o.ForwardTLSCert, "--forward-tls-key", o.ForwardTLSKey)
	if errors.Is(err, errPairIncomplete) {
		return cfg, &UsageError{Err: err}
	}
	if err != nil {
		return cfg, fmt.Errorf("forward TLS: %w", err)
	}
	if cert != nil {
		cfg.ForwardTLS = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	}
	es := esout.Config{
		Username: o.User, APIKey: o.apiKey(), Index: o.Index, Gzip: o.Gzip,
		Workers: o.Workers, BatchCount: o.BatchCount, BatchBytes: int(batch), FlushInterval: o.FlushInterval,
		RequestTimeout: o.RequestTimeout, RetryTimeout: o.RetryTimeout, Sniff: o.Sniff,
	}
	if es.Password, err = o.password(o.ESPassword); err != nil {
		return cfg, err
	}
	if o.CA != "" || o.Insecure {
		roots, err := o.ESConn.rootCAs()
		if err != nil {
			return cfg, err
		}
		es.TLS = esclient.TLSConfig(roots, o.Insecure)
	}
	cfg.ES = es
	return cfg, nil
}

// esURLs splits --es values and takes basic auth from the first URL's
// userinfo when no --es-user is given.
func esURLs(vals []string, es *esout.Config) ([]string, bool, error) {
	var out []string
	embedded := false
	for _, v := range vals {
		for _, u := range strings.Split(v, ",") {
			u = strings.TrimSpace(u)
			switch {
			case u == "":
			case u == "embedded":
				embedded = true
			default:
				out = append(out, u)
			}
		}
	}
	if embedded && len(out) > 0 {
		return nil, false, usageErrorf("--es: embedded and URLs do not mix")
	}
	if !embedded && len(out) == 0 {
		return nil, false, usageErrorf("--es: give a URL or embedded")
	}
	for _, u := range out {
		if err := checkHTTPURL(u); err != nil {
			return nil, false, usageErrorf("--es %q: want %s, or embedded", report.Redact(u), wantHTTPURL)
		}
		if i := strings.Index(u, "://"); i >= 0 {
			rest := u[i+3:]
			if at := strings.IndexByte(rest, '@'); at >= 0 && at < strings.IndexAny(rest+"/", "/") && es.Username == "" {
				user, pass, _ := strings.Cut(rest[:at], ":")
				es.Username, es.Password = user, pass
			}
		}
	}
	return out, embedded, nil
}

// checkPipelinePaths makes the directories and the dead-letter file the
// flags name before anything starts, so that one that cannot be used is
// reported under its flag's name (exit 1, like every unusable file).
func checkPipelinePaths(o *PipelineOptions, cfg *pipeline.Config) error {
	if !cfg.MemoryBuffer {
		if err := os.MkdirAll(cfg.BufferDir, 0o700); err != nil {
			return fmt.Errorf("--buffer-dir: %w", err)
		}
	}
	if o.ESData != "" {
		if err := os.MkdirAll(o.ESData, 0o700); err != nil {
			return fmt.Errorf("--es-data: %w", err)
		}
	}
	if o.DeadLetter != "" {
		f, err := os.OpenFile(o.DeadLetter, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("--dead-letter: %w", err)
		}
		f.Close()
	}
	return nil
}

// logAttrsAsText logs network addresses as "ip:port" and durations as
// "1.5s", as the text handler does: the JSON handler would otherwise
// encode a *net.TCPAddr as {"IP":...,"Port":...,"Zone":""} and a duration
// as a bare count of nanoseconds.
func logAttrsAsText(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindAny:
		if addr, ok := a.Value.Any().(net.Addr); ok {
			return slog.String(a.Key, addr.String())
		}
	case slog.KindDuration:
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

func newLogger(o *PipelineOptions, stderr io.Writer) (*slog.Logger, *reopen.File, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, nil, usageErrorf("--log-level: %v", err)
	}
	w := stderr
	var rw *reopen.File
	if o.LogFile != "" {
		var err error
		if rw, err = reopen.Open(o.LogFile); err != nil {
			return nil, nil, fmt.Errorf("--log-file: %w", err)
		}
		w = rw
	}
	hopts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: logAttrsAsText}
	var h slog.Handler = slog.NewTextHandler(w, hopts)
	if o.LogFormat == "json" {
		h = slog.NewJSONHandler(w, hopts)
	}
	return slog.New(h), rw, nil
}

// runPipeline runs until ctx ends, a signal, or --duration, then reports.
func runPipeline(ctx context.Context, g *Globals, o *PipelineOptions) (*report.Report, error) {
	started := g.Now()
	cfg, err := pipelineConfig(o)
	if err != nil {
		return nil, err
	}
	urls, embedded, err := esURLs(o.URLs, &cfg.ES)
	if err != nil {
		return nil, err
	}
	if err := checkPipelinePaths(o, &cfg); err != nil {
		return nil, err
	}
	log, logw, err := newLogger(o, g.IO.Err)
	if err != nil {
		return nil, err
	}
	if logw != nil {
		defer logw.Close()
	}
	cfg.Logger = log

	// Main cancels ctx on TERM/INT; HUP reopens files.
	var hups <-chan os.Signal
	if g.IO.Hangups != nil {
		c, stop := g.IO.Hangups()
		defer stop()
		hups = c
	}

	var (
		stopES  func() error
		esStats func() essim.Stats
	)
	if embedded {
		es, err := lab.StartES(ctx, o.ESData, cfg.BufferDir, o.ESMaxDocs)
		if err != nil {
			return nil, fmt.Errorf("embedded elasticsearch: %w", err)
		}
		stopES, esStats = es.Stop, es.Stats
		urls = []string{es.URL}
		cfg.ES.Transport = es.Transport
		cfg.YieldToIntake = true
		log.Info("embedded elasticsearch started", "url", es.URL, "data", es.Dir, "kept", o.ESData != "", "max_docs", o.ESMaxDocs)
	}
	cfg.ES.URLs = urls
	p, err := pipeline.New(cfg)
	if err == nil {
		err = p.Start(ctx)
	}
	if err != nil {
		if stopES != nil {
			stopES()
		}
		return nil, err
	}
	// Collect at 50% heap growth instead of 100%, and with the embedded
	// Elasticsearch 50% of what is not its index, the heap never
	// collected below minHeapGoal (tuneGC). 3M events, alternating: peak RSS 244-247
	// MiB at 50% against 267-270 at 70% with 32 senders, 230-231 against
	// 247-248 with 2, end to end within the runs' noise (70% against
	// 100% before: 228-243 against 256-276 MiB at 32 in
	// bench/pipeline.sh). GOGC still wins when set.
	if os.Getenv("GOGC") == "" {
		var fixed func() int64
		if esStats != nil {
			fixed = func() int64 { return esStats().IndexBytes }
		}
		defer tuneGC(pipelineGCPercent, fixed)()
	}
	// The runtime's soft memory limit follows the in-flight budget plus
	// what the embedded Elasticsearch's index and a memory buffer hold.
	// Without either there is nothing to follow after each collection.
	var held func() int64
	if esStats != nil || cfg.MemoryBuffer {
		held = func() int64 {
			var extra int64
			if esStats != nil {
				extra += esStats().IndexBytes
			}
			if cfg.MemoryBuffer {
				extra += p.Stats().Buffer.Bytes
			}
			return extra
		}
	}
	if limit, restore := setMemoryLimit(cfg.MaxInFlightBytes, held); limit > 0 {
		defer restore()
		log.Info("go memory limit set from the in-flight budget", "limit_bytes", limit, "max_in_flight", cfg.MaxInFlightBytes)
	}
	// The one line a person needs at start, whatever the log level; in
	// the log's format, so that a JSON log stays one object per line for
	// whatever parses it.
	if o.LogFormat == "json" {
		slog.New(slog.NewJSONHandler(g.IO.Err, nil)).Info("logdoctor pipeline",
			"forward", addrOrOff(p.ForwardAddr()), "udp", addrOrOff(p.UDPAddr()), "es", report.Redact(strings.Join(urls, ",")),
			"buffer", orMemory(p.BufferDir()), "dead_letter", p.DeadLetterPath(), "metrics", addrOrOff(p.MetricsAddr()))
	} else {
		fmt.Fprintf(g.IO.Err, "logdoctor pipeline: forward=%s udp=%s es=%s buffer=%s dead-letter=%s metrics=%s\n",
			addrOrOff(p.ForwardAddr()), addrOrOff(p.UDPAddr()), report.Redact(strings.Join(urls, ",")),
			orMemory(p.BufferDir()), p.DeadLetterPath(), addrOrOff(p.MetricsAddr()))
	}

	var timer <-chan time.Time
	if o.Duration > 0 {
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		timer = t.C
	}
wait:
	for {
		select {
		case <-ctx.Done():
			var se *SignalError
			if errors.As(context.Cause(ctx), &se) {
				log.Info("signal: shutting down", "signal", se.Signal.String(), "timeout", o.ShutdownTimeout.String())
			}
			break wait
		case <-timer:
			break wait
		case <-hups:
			if logw != nil {
				if err := logw.Reopen(); err != nil {
					fmt.Fprintf(g.IO.Err, "logdoctor pipeline: reopening log file: %v\n", err)
				}
			}
			if err := p.Reopen(); err != nil {
				log.Error("reopening dead-letter file", "err", err)
			}
			log.Info("SIGHUP: reopened log and dead-letter files")
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownTimeout)
	defer cancel()
	closeErr := p.Close(sctx)
	if stopES != nil {
		if err := stopES(); err != nil {
			log.Error("stopping the embedded elasticsearch", "err", err)
		}
	}
	st := p.Stats()
	data := &pipeline.Report{
		Forward: addrOrOff(p.ForwardAddr()), UDP: addrOrOff(p.UDPAddr()), ES: redactAll(urls), BufferDir: p.BufferDir(),
		DeadLetter: p.DeadLetterPath(), Stats: st, UDPDrops: p.UDPKernelDrops(), LeftOver: st.Buffer.Records,
		MemoryOnly: cfg.MemoryBuffer,
	}
	if closeErr != nil {
		data.ShutdownErr = closeErr.Error()
	}
	rep := report.New("pipeline run", started)
	rep.Data = data
	rep.Add(data.Findings()...)
	rep.Finish(g.Now())
	return rep, nil
}

func addrOrOff(a interface{ String() string }) string {
	if a == nil || fmt.Sprint(a) == "<nil>" {
		return "off"
	}
	return a.String()
}

func orMemory(dir string) string {
	if dir == "" {
		return "memory (LOSES EVENTS ON A CRASH)"
	}
	return dir
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = report.Redact(u)
	}
	return out
}
