package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/logdoctor/logdoctor/internal/reopen"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/pkg/esclient"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/smoke/lab"
)

// Finding ids of `pipeline run`.
const (
	FindingPipelineLeftInBuffer = "pipeline.left_in_buffer"
	FindingPipelineDeadLetters  = "pipeline.dead_letters"
	FindingPipelineUDPDrops     = "pipeline.udp_kernel_drops"
	FindingPipelineRefused      = "pipeline.forward_refused"
	FindingPipelineBroken       = "pipeline.forward_broken_requests"
	FindingPipelineMemoryBuffer = "pipeline.memory_buffer"

	FindingPipelineBufferCorrupt     = "pipeline.buffer_corrupt"
	FindingPipelineBufferWriteFailed = "pipeline.buffer_write_failed"
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

	ES             []string
	ESData         string
	ESMaxDocs      int64
	ESUser         string
	ESPassword     string
	ESAPIKey       string
	ESCA           string
	ESInsecure     bool
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

func newPipelineCmd(g *Globals) *cobra.Command {
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
	intVar(f, &o.MaxConns, "max-conns", 1024, 1, 1<<20, "a number from 1 to 1048576", "maximum concurrent forward connections")
	durVar(f, &o.ReadTimeout, "read-timeout", 60*time.Second, time.Nanosecond, wantPositiveDur, "close a forward connection that takes longer to send one request (slowloris)")
	durVar(f, &o.IdleTimeout, "idle-timeout", 0, 0, wantDurOrZero("never"), "close a forward connection idle between requests this long (0: never, as in_forward)")
	sizeVar(f, &o.MaxRequest, "max-request-size", "32MiB", parseSize, 1, false, "a size of 1 byte or more, like 32MiB", "largest forward request on the wire")
	sizeVar(f, &o.MaxDecompressed, "max-decompressed-size", "128MiB", parseSize, 1, false, "a size of 1 byte or more, like 128MiB", "largest CompressedPackedForward request after gunzip")
	addrVar(f, &o.UDP, "udp", "", true, true, "UDP JSON listen address (one JSON object per datagram), e.g. 127.0.0.1:5160")
	nonEmptyVar(f, &o.UDPTag, "udp-tag", "udp", "a non-empty tag", "tag of events received over UDP")
	intVar(f, &o.UDPMaxDatagram, "udp-max-datagram", 65507, 1, 65507, "a number of bytes from 1 to 65507 (the largest UDP payload)", "largest UDP datagram accepted (larger ones are dead-lettered)")
	f.StringVar(&o.UDPTimeKey, "udp-time-key", "time", `field with a UDP event's time (epoch seconds or RFC 3339), removed from the record; "-": arrival time`)
	f.BoolVar(&o.UDPKeepTimeKey, "udp-keep-time-key", false, "keep the --udp-time-key field in the record")
	sizeVar(f, &o.UDPRcvBuf, "udp-rcvbuf", "", parseSize, 1, true, `a size like 8MiB, or "" for the kernel default`, "SO_RCVBUF of the UDP socket, e.g. 8MiB (kernel default when empty)")
	f.StringVar(&o.BufferDir, "buffer-dir", "", "buffer directory (default $XDG_STATE_HOME/logdoctor/buffer, else ~/.local/state/logdoctor/buffer, else the temp dir)")
	f.BoolVar(&o.MemoryBuffer, "memory-buffer", false, "keep the buffer in memory: LOSES EVENTS ON A CRASH (benchmarks only)")
	sizeVar(f, &o.BufferMax, "buffer-max", "1GiB", parseSize, minBufferMax, false, "a size of 64KiB or more, like 1GiB", "buffer size limit; when full, forward requests get no ack and UDP reading pauses")
	durVar(f, &o.FullWait, "buffer-full-wait", 5*time.Second, time.Nanosecond, wantPositiveDur, "how long a forward request waits for buffer space before it is refused")
	f.StringSliceVar(&o.ES, "es", []string{"embedded"}, `Elasticsearch/OpenSearch URL(s), comma-separated or repeated; "embedded" starts an in-process stand-in`)
	int64Var(f, &o.ESMaxDocs, "es-max-docs", 4_000_000, 0, 1<<62, "0 (no bound) or more documents", "with --es embedded: documents it holds at most (about 43 bytes of memory each); past that writes get 429 as at Elasticsearch's flood-stage watermark (0: no bound)")
	f.StringVar(&o.ESData, "es-data", "", "with --es embedded: keep the documents in this directory across restarts (default: <buffer-dir>/embedded-es, removed at exit)")
	f.StringVar(&o.ESUser, "es-user", "", "basic auth user (or in the URL)")
	f.StringVar(&o.ESPassword, "es-password", "", "basic auth password (or $LOGDOCTOR_ES_PASSWORD)")
	f.StringVar(&o.ESAPIKey, "es-api-key", "", "API key, sent as 'Authorization: ApiKey ...' (or $LOGDOCTOR_ES_API_KEY)")
	f.StringVar(&o.ESCA, "es-ca", "", "CA certificate file for HTTPS Elasticsearch")
	f.BoolVar(&o.ESInsecure, "es-insecure", false, "do not verify the Elasticsearch certificate")
	f.BoolVar(&o.Gzip, "es-gzip", false, "gzip bulk request bodies")
	intVar(f, &o.Workers, "es-workers", 2, 1, 256, "a number from 1 to 256", "concurrent bulk requests")
	intVar(f, &o.BatchCount, "batch-count", 2000, 1, 1_000_000, "a number of events from 1 to 1000000", "events per bulk request")
	sizeVar(f, &o.BatchBytes, "batch-size", "8MiB", parseSize, 1024, false, "a size of 1KiB or more, like 8MiB", "bulk body size (kept under the cluster's http.max_content_length)")
	durVar(f, &o.FlushInterval, "flush-interval", 100*time.Millisecond, time.Nanosecond, wantPositiveDur, "how long a bulk request waits to fill")
	durVar(f, &o.RequestTimeout, "es-timeout", 30*time.Second, time.Nanosecond, wantPositiveDur, "timeout of one bulk request")
	durCheckVar(f, &o.RetryTimeout, "retry-timeout", time.Hour, func(d time.Duration) bool { return d != 0 },
		"a positive duration like 1h, or a negative one (-1s) for never", "give up on an event (dead-letter it) after retrying this long; negative: never")
	f.BoolVar(&o.Sniff, "es-sniff", false, "discover nodes from _nodes/http (only addresses reachable from here are used)")
	f.StringVar(&o.Index, "index", esout.DefaultIndex, "index name template over {tag} and the event's UTC date ({yyyy.MM.dd}, {yyyy.MM}, ...)")
	f.StringVar(&o.IDKey, "id-key", "", "take the _id from this record field when present (default: hash of tag, time and record)")
	f.StringVar(&o.TagKey, "tag-key", "tag", `document field that receives the tag ("-" for none)`)
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

// PipelineData is the report's data: what the run did.
type PipelineData struct {
	Forward     string         `json:"forward,omitempty"`
	UDP         string         `json:"udp,omitempty"`
	ES          []string       `json:"es"`
	BufferDir   string         `json:"buffer_dir,omitempty"`
	DeadLetter  string         `json:"dead_letter_file"`
	Stats       pipeline.Stats `json:"stats"`
	UDPDrops    uint64         `json:"udp_kernel_drops"`
	LeftOver    int64          `json:"left_in_buffer"`
	MemoryOnly  bool           `json:"memory_buffer"`
	ShutdownErr string         `json:"shutdown_error,omitempty"`
}

// Sections shows the counters as a table.
func (d *PipelineData) Sections() []report.Section {
	s := d.Stats
	row := func(k string, v any) []string { return []string{k, fmt.Sprint(v)} }
	return []report.Section{{
		Title:  "pipeline",
		Header: []string{"counter", "value"},
		Rows: [][]string{
			row("forward events", s.ForwardEvents), row("forward acks", s.ForwardAcks),
			row("forward refused (no ack)", s.ForwardRefused), row("forward connections refused", s.ForwardServer.Refused),
			row("forward broken requests", s.ForwardServer.Dropped), row("udp events", s.UDPEvents),
			row("udp bad datagrams", s.UDPBad), row("udp kernel drops", d.UDPDrops),
			row("indexed", s.Output.Indexed), row("already indexed (409)", s.Output.Duplicates),
			row("retried", s.Output.Retried), row("dead letters", s.DeadLetters),
			row("gave up", s.Output.GaveUp), row("bulk requests", s.Output.Requests),
			row("left in buffer", d.LeftOver), row("buffer dir", d.BufferDir),
		},
	}}
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
	var maxReq, maxDec, bufMax, rcv, batch int64
	sizes["--max-request-size"], sizes["--max-decompressed-size"], sizes["--buffer-max"], sizes["--udp-rcvbuf"], sizes["--batch-size"] = &maxReq, &maxDec, &bufMax, &rcv, &batch
	vals := map[string]string{"--max-request-size": o.MaxRequest, "--max-decompressed-size": o.MaxDecompressed,
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
		Username: o.ESUser, Password: o.ESPassword, APIKey: o.ESAPIKey, Index: o.Index, Gzip: o.Gzip,
		Workers: o.Workers, BatchCount: o.BatchCount, BatchBytes: int(batch), FlushInterval: o.FlushInterval,
		RequestTimeout: o.RequestTimeout, RetryTimeout: o.RetryTimeout, Sniff: o.Sniff,
	}
	if es.Password, err = esPassword(es.Password, "", ""); err != nil {
		return cfg, err
	}
	if es.APIKey == "" {
		es.APIKey = os.Getenv("LOGDOCTOR_ES_API_KEY")
	}
	if o.ESCA != "" || o.ESInsecure {
		var roots *x509.CertPool
		if o.ESCA != "" {
			if roots, err = certPool("--es-ca", o.ESCA); err != nil {
				return cfg, err
			}
		}
		es.TLS = esclient.TLSConfig(roots, o.ESInsecure)
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

// addrAsText logs network addresses as "ip:port": the JSON handler would
// otherwise encode a *net.TCPAddr as {"IP":...,"Port":...,"Zone":""}.
func addrAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindAny {
		if addr, ok := a.Value.Any().(net.Addr); ok {
			return slog.String(a.Key, addr.String())
		}
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
	hopts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: addrAsText}
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
	urls, embedded, err := esURLs(o.ES, &cfg.ES)
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

	// Signals: TERM/INT stop, HUP reopens files.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var stopES func() error
	if embedded {
		url, dir, stop, err := lab.StartES(ctx, o.ESData, cfg.BufferDir, o.ESMaxDocs)
		if err != nil {
			return nil, fmt.Errorf("embedded elasticsearch: %w", err)
		}
		stopES = stop
		urls = []string{url}
		log.Info("embedded elasticsearch started", "url", url, "data", dir, "kept", o.ESData != "", "max_docs", o.ESMaxDocs)
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
	// The one line a person needs at start, whatever the log settings.
	fmt.Fprintf(g.IO.Err, "logdoctor pipeline: forward=%s udp=%s es=%s buffer=%s dead-letter=%s metrics=%s\n",
		addrOrOff(p.ForwardAddr()), addrOrOff(p.UDPAddr()), report.Redact(strings.Join(urls, ",")),
		orMemory(p.BufferDir()), p.DeadLetterPath(), addrOrOff(p.MetricsAddr()))

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
			break wait
		case <-timer:
			break wait
		case s := <-sigs:
			if s == syscall.SIGHUP {
				if logw != nil {
					if err := logw.Reopen(); err != nil {
						fmt.Fprintf(g.IO.Err, "logdoctor pipeline: reopening log file: %v\n", err)
					}
				}
				if err := p.Reopen(); err != nil {
					log.Error("reopening dead-letter file", "err", err)
				}
				log.Info("SIGHUP: reopened log and dead-letter files")
				continue
			}
			log.Info("signal: shutting down", "signal", s.String(), "timeout", o.ShutdownTimeout.String())
			break wait
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
	data := &PipelineData{
		Forward: addrOrOff(p.ForwardAddr()), UDP: addrOrOff(p.UDPAddr()), ES: redactAll(urls), BufferDir: p.BufferDir(),
		DeadLetter: p.DeadLetterPath(), Stats: st, UDPDrops: p.UDPKernelDrops(), LeftOver: st.Buffer.Records,
		MemoryOnly: cfg.MemoryBuffer,
	}
	if closeErr != nil {
		data.ShutdownErr = closeErr.Error()
	}
	rep := report.New("pipeline run", started)
	rep.Data = data
	rep.Add(pipelineFindings(data)...)
	rep.Finish(g.Now())
	return rep, nil
}

func pipelineFindings(d *PipelineData) []report.Finding {
	var fs []report.Finding
	st := d.Stats
	if d.LeftOver > 0 {
		sev := report.Warning
		if d.MemoryOnly {
			sev = report.Critical
		}
		fs = append(fs, report.Finding{ID: FindingPipelineLeftInBuffer, Severity: sev,
			Summary:  fmt.Sprintf("%d events were not indexed before the shutdown timeout", d.LeftOver),
			Evidence: map[string]any{"events": d.LeftOver, "buffer_dir": d.BufferDir, "memory_buffer": d.MemoryOnly},
			Remedy:   "they are replayed on the next start from --buffer-dir; raise --shutdown-timeout or check Elasticsearch (rejections, latency)"})
	}
	if st.DeadLetters > 0 {
		fs = append(fs, report.Finding{ID: FindingPipelineDeadLetters, Severity: report.Warning,
			Summary:  fmt.Sprintf("%d events were written to the dead-letter file", st.DeadLetters),
			Evidence: map[string]any{"file": d.DeadLetter, "udp_bad": st.UDPBad, "es_refused": st.Output.DeadLetters, "gave_up": st.Output.GaveUp},
			Remedy:   "read the reason on each line: fix the sender's JSON (UDP), the index mapping (400 mapper_parsing_exception), or raise --retry-timeout"})
	}
	if d.UDPDrops > 0 {
		fs = append(fs, report.Finding{ID: FindingPipelineUDPDrops, Severity: report.Warning,
			Summary:  fmt.Sprintf("the kernel dropped %d datagrams for the UDP input socket", d.UDPDrops),
			Evidence: map[string]any{"drops": d.UDPDrops, "udp": d.UDP},
			Remedy:   "raise --udp-rcvbuf (and net.core.rmem_max), or send over forward/TCP with require_ack_response"})
	}
	if f, ok := forwardRefused(st); ok {
		fs = append(fs, f)
	}
	if n := st.ForwardServer.Dropped; n > 0 {
		fs = append(fs, report.Finding{ID: FindingPipelineBroken, Severity: report.Warning,
			Summary: fmt.Sprintf("%d forward messages were well-formed but not requests (in_forward's \"incoming chunk is broken\") and were dropped", n),
			Evidence: map[string]any{"broken_requests": n, "connections_closed_on_error": st.ForwardServer.Errors,
				"connections": st.ForwardServer.Accepted},
			Remedy: "something that does not speak the forward protocol writes to the forward port: a health check sending text, a " +
				"sender configured for another format (in_tcp/in_udp JSON lines, syslog), or a scanner. Find it from the peer in " +
				"the WARN log lines (logdoctor_pipeline_forward_broken_requests_total counts them) and point it at the right port"})
	}
	fs = append(fs, forwardInputFindings(d.Forward, d.Stats.ForwardServer)...)
	if d.MemoryOnly {
		fs = append(fs, report.Finding{ID: FindingPipelineMemoryBuffer, Severity: report.Warning,
			Summary: "the memory buffer was used: acked events would have been lost on a crash",
			Remedy:  "drop --memory-buffer outside benchmarks"})
	}
	if len(st.BufferCorrupt) > 0 {
		fs = append(fs, bufferCorruptFinding(d))
	}
	if wf := st.BufferWriteFailures; wf != nil {
		fs = append(fs, bufferWriteFailedFinding(wf))
	}
	return fs
}

// forwardRefused reports what the forward input turned away: requests
// refused without ack (buffer full or failing) and connections refused
// over --max-conns. Both are retried by a sender with acks, and both mean
// delay the operator should know about.
func forwardRefused(st pipeline.Stats) (report.Finding, bool) {
	reqs, conns := st.ForwardRefused, st.ForwardServer.Refused
	if reqs == 0 && conns == 0 {
		return report.Finding{}, false
	}
	var what, remedies []string
	if reqs > 0 {
		what = append(what, fmt.Sprintf("%d forward requests were refused without ack (buffer full or failing)", reqs))
		remedies = append(remedies, "raise --buffer-max or fix what slows Elasticsearch (see the buffer_error/buffer_full reasons in logdoctor_pipeline_forward_refused_total and the ERROR log)")
	}
	if conns > 0 {
		what = append(what, fmt.Sprintf("%d forward connections were refused over the --max-conns limit", conns))
		remedies = append(remedies, "raise --max-conns, or find the clients holding connections without sending (the WARN lines name the peers)")
	}
	return report.Finding{ID: FindingPipelineRefused, Severity: report.Warning,
		Summary:  strings.Join(what, "; "),
		Evidence: map[string]any{"refused": reqs, "refused_connections": conns, "buffer_bytes": st.Buffer.Bytes},
		Remedy:   "senders with require_ack_response retry them, later; " + strings.Join(remedies, "; ")}, true
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

// bufferCorruptFinding: damaged bytes in the buffer cost the events in
// them; every intact one was delivered and the bytes were kept.
func bufferCorruptFinding(d *PipelineData) report.Finding {
	cs := d.Stats.BufferCorrupt
	lost, size := 0, int64(0)
	segs := map[string]bool{}
	for _, c := range cs {
		lost += c.Records
		size += c.Bytes
		segs[c.Segment] = true
	}
	where := fmt.Sprintf("%d damaged ranges in %d segments (%d bytes); copies in %s", len(cs), len(segs), size,
		filepath.Join(d.BufferDir, "corrupt"))
	if c := cs[0]; len(cs) == 1 {
		where = fmt.Sprintf("%s was damaged at bytes %d-%d (%d bytes); copy in %s", c.Segment, c.From, c.To, c.Bytes, c.Quarantine)
	}
	return report.Finding{ID: FindingPipelineBufferCorrupt, Severity: report.Critical,
		Summary: fmt.Sprintf("buffer %s: %d acked event(s) lost with it (estimated), every intact event delivered", where, lost),
		Evidence: map[string]any{"regions": cs[:min(len(cs), 20)], "regions_total": len(cs), "records_lost": lost, "bytes": size,
			"quarantine_dir": filepath.Join(d.BufferDir, "corrupt")},
		Remedy: "the disk or filesystem under --buffer-dir changed bytes after they were written: check dmesg, smartctl and fsck; " +
			"resend the lost events from the shipper's own buffer if it still holds them; the damaged bytes are kept for inspection"}
}

// bufferWriteFailedFinding: the disk refused buffer writes, so events were
// refused without ack meanwhile.
func bufferWriteFailedFinding(wf *pipeline.BufferWriteFailures) report.Finding {
	cause := "a disk error"
	if wf.DiskFull > 0 {
		cause = "a full disk"
	}
	state := "then succeeded again"
	if wf.Failing {
		state = "and were still failing at exit"
	}
	return report.Finding{ID: FindingPipelineBufferWriteFailed, Severity: report.Critical,
		Summary: fmt.Sprintf("%d buffer writes failed on %s (%s of %s) %s; their events were refused without ack", wf.Count, cause, wf.Op, wf.Path, state),
		Evidence: map[string]any{"failed_writes": wf.Count, "disk_full": wf.DiskFull, "op": wf.Op, "path": wf.Path,
			"error": wf.Error, "first": wf.First, "last": wf.Last, "still_failing": wf.Failing},
		Remedy: "free space or grow the filesystem under --buffer-dir, and set --buffer-max below its free space so the buffer pushes back (buffer_full) before the disk fills; " +
			"for I/O errors check dmesg. Senders with require_ack_response resend the refused chunks; senders without acks lost them"}
}
