package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/logdoctor/logdoctor/internal/reopen"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/pkg/pipeline"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// Finding ids of `pipeline run`.
const (
	FindingPipelineLeftInBuffer = "pipeline.left_in_buffer"
	FindingPipelineDeadLetters  = "pipeline.dead_letters"
	FindingPipelineUDPDrops     = "pipeline.udp_kernel_drops"
	FindingPipelineRefused      = "pipeline.forward_refused"
	FindingPipelineMemoryBuffer = "pipeline.memory_buffer"
)

// PipelineOptions are the flags of `pipeline run`.
type PipelineOptions struct {
	Forward          string
	ForwardSharedKey string
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
	f.StringVar(&o.Forward, "forward", "127.0.0.1:24224", `forward protocol listen address (TCP; heartbeat on the same UDP port); "" disables`)
	f.StringVar(&o.ForwardSharedKey, "forward-shared-key", "", "require the forward handshake with this shared key (or $LOGDOCTOR_FORWARD_SHARED_KEY)")
	f.StringVar(&o.ForwardTLSCert, "forward-tls-cert", "", "TLS certificate file for the forward input")
	f.StringVar(&o.ForwardTLSKey, "forward-tls-key", "", "TLS key file for the forward input")
	f.IntVar(&o.MaxConns, "max-conns", 1024, "maximum concurrent forward connections")
	f.DurationVar(&o.ReadTimeout, "read-timeout", 60*time.Second, "close a forward connection that takes longer to send one request (slowloris)")
	f.DurationVar(&o.IdleTimeout, "idle-timeout", 0, "close a forward connection idle between requests this long (0: never, as in_forward)")
	f.StringVar(&o.MaxRequest, "max-request-size", "32MiB", "largest forward request on the wire")
	f.StringVar(&o.MaxDecompressed, "max-decompressed-size", "128MiB", "largest CompressedPackedForward request after gunzip (inflated as it is decoded; a bigger one is refused)")
	f.StringVar(&o.MaxInFlight, "max-in-flight", "256MiB", "memory for forward requests being read, decoded and buffered, all connections together: past it requests wait unread, a larger one is refused without ack (0: no bound)")
	f.DurationVar(&o.FirstRequest, "first-request-timeout", 60*time.Second, "close a forward connection that has not sent a complete request this long after connecting (0: never)")
	f.StringVar(&o.UDP, "udp", "", "UDP JSON listen address (one JSON object per datagram), e.g. 127.0.0.1:5160")
	f.StringVar(&o.UDPTag, "udp-tag", "udp", "tag of events received over UDP")
	f.IntVar(&o.UDPMaxDatagram, "udp-max-datagram", 65507, "largest UDP datagram accepted (larger ones are dead-lettered)")
	f.StringVar(&o.UDPTimeKey, "udp-time-key", "time", `field with a UDP event's time (epoch seconds or RFC 3339), removed from the record; "-": arrival time`)
	f.BoolVar(&o.UDPKeepTimeKey, "udp-keep-time-key", false, "keep the --udp-time-key field in the record")
	f.StringVar(&o.UDPRcvBuf, "udp-rcvbuf", "", "SO_RCVBUF of the UDP socket, e.g. 8MiB (kernel default when empty)")
	f.StringVar(&o.BufferDir, "buffer-dir", "", "buffer directory (default $XDG_STATE_HOME/logdoctor/buffer, else the temp dir)")
	f.BoolVar(&o.MemoryBuffer, "memory-buffer", false, "keep the buffer in memory: LOSES EVENTS ON A CRASH (benchmarks only)")
	f.StringVar(&o.BufferMax, "buffer-max", "1GiB", "buffer size limit; when full, forward requests get no ack and UDP reading pauses")
	f.DurationVar(&o.FullWait, "buffer-full-wait", 5*time.Second, "how long a forward request waits for buffer space before it is refused")
	f.StringSliceVar(&o.ES, "es", []string{"embedded"}, `Elasticsearch/OpenSearch URL(s), comma-separated or repeated; "embedded" starts an in-process stand-in`)
	f.Int64Var(&o.ESMaxDocs, "es-max-docs", 4_000_000, "with --es embedded: documents it holds at most (about 43 bytes of memory each); past that writes get 429 as at Elasticsearch's flood-stage watermark (0: no bound)")
	f.StringVar(&o.ESData, "es-data", "", "with --es embedded: keep the documents in this directory across restarts (default: <buffer-dir>/embedded-es, removed at exit)")
	f.StringVar(&o.ESUser, "es-user", "", "basic auth user (or in the URL)")
	f.StringVar(&o.ESPassword, "es-password", "", "basic auth password (or $LOGDOCTOR_ES_PASSWORD)")
	f.StringVar(&o.ESAPIKey, "es-api-key", "", "API key, sent as 'Authorization: ApiKey ...' (or $LOGDOCTOR_ES_API_KEY)")
	f.StringVar(&o.ESCA, "es-ca", "", "CA certificate file for HTTPS Elasticsearch")
	f.BoolVar(&o.ESInsecure, "es-insecure", false, "do not verify the Elasticsearch certificate")
	f.BoolVar(&o.Gzip, "es-gzip", false, "gzip bulk request bodies")
	f.IntVar(&o.Workers, "es-workers", 2, "concurrent bulk requests")
	f.IntVar(&o.BatchCount, "batch-count", 2000, "events per bulk request")
	f.StringVar(&o.BatchBytes, "batch-size", "8MiB", "bulk body size (kept under the cluster's http.max_content_length)")
	f.DurationVar(&o.FlushInterval, "flush-interval", 100*time.Millisecond, "how long a bulk request waits to fill")
	f.DurationVar(&o.RequestTimeout, "es-timeout", 30*time.Second, "timeout of one bulk request")
	f.DurationVar(&o.RetryTimeout, "retry-timeout", time.Hour, "give up on an event (dead-letter it) after retrying this long; negative: never")
	f.BoolVar(&o.Sniff, "es-sniff", false, "discover nodes from _nodes/http (only addresses reachable from here are used)")
	f.StringVar(&o.Index, "index", esout.DefaultIndex, "index name template over {tag} and the event's UTC date ({yyyy.MM.dd}, {yyyy.MM}, ...)")
	f.StringVar(&o.IDKey, "id-key", "", "take the _id from this record field when present (default: hash of tag, time and record)")
	f.StringVar(&o.TagKey, "tag-key", "tag", `document field that receives the tag ("-" for none)`)
	f.StringVar(&o.DeadLetter, "dead-letter", "", "dead-letter file (default BUFFER_DIR/deadletter.jsonl)")
	f.StringVar(&o.Metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:24231")
	f.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM/SIGINT, flush for at most this long")
	f.DurationVar(&o.Duration, "duration", 0, "stop by itself after this long (0: run until a signal)")
	f.StringVar(&o.LogFile, "log-file", "", "write logs here instead of stderr (reopened on SIGHUP)")
	f.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
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
			row("forward refused (no ack)", s.ForwardRefused), row("udp events", s.UDPEvents),
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

// offIfZero maps a flag's 0 ("off") to the negative value a Config reads
// as off, since a zero Config field means "the default".
func offIfZero[T int64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

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
	if o.FirstRequest < 0 {
		return cfg, usageErrorf("--first-request-timeout must not be negative (0 turns it off)")
	}
	cfg = pipeline.Config{
		ForwardAddr: o.Forward, ForwardSharedKey: o.ForwardSharedKey, MaxConns: o.MaxConns,
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
		tc := &tls.Config{InsecureSkipVerify: o.ESInsecure, MinVersion: tls.VersionTLS12}
		if o.ESCA != "" {
			if tc.RootCAs, err = certPool("--es-ca", o.ESCA); err != nil {
				return cfg, err
			}
		}
		es.TLS = tc
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
	hopts := &slog.HandlerOptions{Level: lvl}
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

	var (
		stopES func() error
		esDocs func() int
	)
	if embedded {
		// Not ctx: a signal cancels it, and the pipeline still flushes into
		// this Elasticsearch before stopES.
		url, dir, stop, docs, err := startEmbeddedES(context.WithoutCancel(ctx), o.ESData, cfg.BufferDir, o.ESMaxDocs)
		if err != nil {
			return nil, fmt.Errorf("embedded elasticsearch: %w", err)
		}
		stopES, esDocs = stop, docs
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
	// The runtime's soft memory limit follows the in-flight budget plus
	// what the embedded Elasticsearch's index and a memory buffer hold.
	if limit, restore := setMemoryLimit(cfg.MaxInFlightBytes, func() int64 {
		var extra int64
		if esDocs != nil {
			extra += int64(esDocs()) * embeddedESBytesPerDoc
		}
		if cfg.MemoryBuffer {
			extra += p.Stats().Buffer.Bytes
		}
		return extra
	}); limit > 0 {
		defer restore()
		log.Info("go memory limit set from the in-flight budget", "limit_bytes", limit, "max_in_flight", cfg.MaxInFlightBytes)
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
	if st.ForwardRefused > 0 {
		fs = append(fs, report.Finding{ID: FindingPipelineRefused, Severity: report.Warning,
			Summary:  fmt.Sprintf("%d forward requests were refused without ack (buffer full or failing)", st.ForwardRefused),
			Evidence: map[string]any{"refused": st.ForwardRefused, "buffer_bytes": st.Buffer.Bytes},
			Remedy:   "senders with require_ack_response retry them; raise --buffer-max or fix what slows Elasticsearch"})
	}
	if d.MemoryOnly {
		fs = append(fs, report.Finding{ID: FindingPipelineMemoryBuffer, Severity: report.Warning,
			Summary: "the memory buffer was used: acked events would have been lost on a crash",
			Remedy:  "drop --memory-buffer outside benchmarks"})
	}
	return fs
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
