// Package pipeline is logdoctor's embedded log pipeline: forward (TCP) and
// UDP JSON inputs, a durable on-disk buffer, and an Elasticsearch bulk
// output. A forward chunk is acknowledged only once its events are
// fsync'd in the buffer; every event carries a deterministic _id and is
// sent with `create`, so replays after a crash or a timeout are answered
// 409 instead of indexed twice. The pipeline talks HTTP to any
// Elasticsearch; the command layer is what starts an embedded one.
package pipeline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/inflight"
	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
)

// Defaults of a zero Config field (and of `pipeline run`'s flags).
const (
	DefaultMaxInFlightBytes     = 256 << 20
	DefaultMaxConns             = 1024
	DefaultReadTimeout          = 60 * time.Second
	DefaultMaxRequestBytes      = 32 << 20
	DefaultMaxDecompressedBytes = 128 << 20
	DefaultFirstRequestTimeout  = 60 * time.Second
	DefaultBufferMaxBytes       = 1 << 30
	DefaultBufferFullWait       = 5 * time.Second
	DefaultUDPTag               = "udp"
	DefaultUDPMaxDatagram       = 65507 // the largest UDP payload over IPv4
	DefaultTagKey               = "tag"
)

// Config configures a Pipeline. Zero values take the documented defaults.
type Config struct {
	// ForwardAddr is the forward (TCP) listen address; the UDP heartbeat
	// is answered on the same port. "" disables the input.
	ForwardAddr      string
	ForwardTLS       *tls.Config
	ForwardSharedKey string
	ForwardHostname  string
	// MaxConns caps concurrent forward connections (default 1024).
	MaxConns int
	// ReadTimeout bounds reading one forward request from its first byte
	// (default 60s; slowloris guard).
	ReadTimeout time.Duration
	// IdleTimeout closes a forward connection with no request started for
	// this long; 0 (the default) keeps it, as in_forward does.
	IdleTimeout time.Duration
	// MaxRequestBytes caps one forward request on the wire (default 32 MiB).
	MaxRequestBytes int64
	// MaxDecompressedBytes caps one CompressedPackedForward stream after
	// gunzip (default 128 MiB): the gzip-bomb guard.
	MaxDecompressedBytes int64
	// MaxInFlightBytes bounds the memory of the forward requests being
	// read, decoded and buffered, all connections together (default 256
	// MiB): past it requests wait with their connection unread, and one
	// that alone needs more is refused without an ack. Negative: no bound.
	MaxInFlightBytes int64
	// FirstRequestTimeout closes a forward connection that has not sent a
	// complete request this long after connecting (default 60s; negative:
	// never), so connections that never send cannot hold MaxConns slots.
	FirstRequestTimeout time.Duration

	// UDPAddr is the UDP JSON listen address; "" disables the input.
	UDPAddr string
	// UDPTag is the tag given to UDP events (default "udp").
	UDPTag string
	// UDPMaxDatagram is the largest datagram accepted (default 65507);
	// larger ones are dead-lettered.
	UDPMaxDatagram int
	// UDPReadBuffer sets SO_RCVBUF (0: the kernel default).
	UDPReadBuffer int
	// UDPTimeKey names the field holding a UDP event's time, as Fluentd's
	// json parser's time_key (default "time"): epoch seconds as a number
	// (fractions kept to the nanosecond) or an RFC 3339 string. Datagrams
	// without it get the arrival time; "-" always uses the arrival time.
	UDPTimeKey string
	// UDPKeepTimeKey keeps that field in the record (keep_time_key);
	// by default it is removed, as Fluentd does.
	UDPKeepTimeKey bool

	// BufferDir holds the durable buffer (required unless MemoryBuffer).
	BufferDir string
	// MemoryBuffer keeps the buffer in memory: it LOSES DATA ON A CRASH,
	// and acks then only mean "in memory". For benchmarks.
	MemoryBuffer bool
	// BufferMaxBytes caps the buffer (default 1 GiB); past it inputs stop
	// acking, then stop reading.
	BufferMaxBytes int64
	// BufferFullWait is how long a forward request waits for buffer space
	// (not reading its connection meanwhile) before it is refused without
	// an ack (default 5s).
	BufferFullWait time.Duration
	SegmentBytes   int64

	// IDKey takes the _id from this record field when present.
	IDKey string
	// TagKey is the document field holding the tag (default "tag"; "-"
	// for none). TimeKey holds the event time (default "@timestamp").
	TagKey, TimeKey string

	// ES configures the output; its DeadLetter, Logger and Registerer are
	// set by the pipeline.
	ES esout.Config
	// YieldToIntake is for an Elasticsearch that shares this machine's
	// cores (the embedded one): while senders push hard, delivery waits
	// and the buffer absorbs the burst (yield.go).
	YieldToIntake bool

	// DeadLetterPath is the dead-letter file (default
	// BufferDir/deadletter.jsonl, or a file in the temp dir in memory mode).
	DeadLetterPath string

	// MetricsAddr serves Prometheus metrics at /metrics ("" disables).
	MetricsAddr string

	Logger *slog.Logger
	// ProcRoot is where /proc is (for the UDP kernel drop counter).
	ProcRoot string
	Now      func() time.Time
}

// Stats is a snapshot of what the pipeline did since Start.
type Stats struct {
	// BufferCorrupt lists damaged bytes found in the buffer (at recovery or
	// when read); their records are lost, their bytes quarantined.
	BufferCorrupt []buffer.Corruption `json:"buffer_corrupt,omitempty"`
	// BufferWriteFailures tells about buffer writes the disk failed (nil
	// when none did).
	BufferWriteFailures *BufferWriteFailures `json:"buffer_write_failures,omitempty"`

	ForwardEvents   uint64          `json:"forward_events"`   // events accepted into the buffer
	ForwardRequests uint64          `json:"forward_requests"` // requests made durable
	ForwardAcks     uint64          `json:"forward_acks"`     // of those, with a chunk to ack
	ForwardRefused  uint64          `json:"forward_refused"`  // requests refused (no ack): buffer full or failing
	UDPEvents       uint64          `json:"udp_events"`
	UDPBad          uint64          `json:"udp_bad"` // datagrams dead-lettered
	DeadLetters     uint64          `json:"dead_letters"`
	Buffer          buffer.Stats    `json:"buffer"`
	Output          esout.Stats     `json:"output"`
	Recovery        buffer.Recovery `json:"recovery"`
	// ForwardServer is the forward input's connection-level tally:
	// connections refused over the limit, closed on bad input, broken
	// requests dropped, failed handshakes, evicted at the limit or closed
	// for sending no request or only broken values.
	ForwardServer forward.Stats `json:"forward_server"`
	// InFlight is the memory budget of forward requests.
	InFlight inflight.Stats `json:"in_flight"`
}

// Pipeline is one running pipeline.
type Pipeline struct {
	cfg Config
	log *slog.Logger
	reg *prometheus.Registry

	intake intakeMeter // how hard senders push, under YieldToIntake

	bufEvents *bufferEvents // logs, metrics and report data of buffer trouble

	buf  *buffer.Buffer
	out  *esout.Output
	dead *deadLetters
	docs docBuilder
	// prep holds the scratch buffers of prepareRaw (*rawScratch).
	prep sync.Pool

	fwdLn   net.Listener
	fwdPC   net.PacketConn
	udpConn *net.UDPConn
	metLn   net.Listener
	metSrv  *http.Server
	metWG   sync.WaitGroup // the metrics server's Serve
	metErr  error          // why Serve stopped, if not Close; read after metWG.Wait

	inCtx     context.Context
	inCancel  context.CancelFunc
	drainCtx  context.Context // inputs finishing what they read; ends at the shutdown deadline
	drainStop context.CancelFunc
	outCancel context.CancelFunc
	inWG      sync.WaitGroup
	outWG     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	fwdEvents, fwdReqs, fwdAcks, fwdRefused, udpEvents, udpBad, deadCount atomic.Uint64

	// The kernel forgets a socket's drop counter when it is closed: the
	// last reading is kept so the exit report agrees with the metric.
	udpMu         sync.Mutex
	udpClosed     bool
	udpFinalDrops uint64

	mEvents  *prometheus.CounterVec
	mAcks    prometheus.Counter
	mRefused *prometheus.CounterVec
	mBad     *prometheus.CounterVec
	mDead    *prometheus.CounterVec
	fwdStats func() forward.Stats
	budget   *inflight.Budget
}

// New checks cfg. Nothing is opened until Start.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UDPTag == "" {
		cfg.UDPTag = DefaultUDPTag
	}
	if cfg.UDPMaxDatagram <= 0 || cfg.UDPMaxDatagram > DefaultUDPMaxDatagram {
		cfg.UDPMaxDatagram = DefaultUDPMaxDatagram
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxDecompressedBytes <= 0 {
		cfg.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	if cfg.MaxInFlightBytes == 0 {
		cfg.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if cfg.FirstRequestTimeout == 0 {
		cfg.FirstRequestTimeout = DefaultFirstRequestTimeout
	}
	if cfg.BufferMaxBytes <= 0 {
		cfg.BufferMaxBytes = DefaultBufferMaxBytes
	}
	if cfg.BufferFullWait == 0 {
		cfg.BufferFullWait = DefaultBufferFullWait
	}
	if cfg.TagKey == "" {
		cfg.TagKey = DefaultTagKey
	} else if cfg.TagKey == "-" {
		cfg.TagKey = ""
	}
	if cfg.UDPTimeKey == "" {
		cfg.UDPTimeKey = "time"
	} else if cfg.UDPTimeKey == "-" {
		cfg.UDPTimeKey = ""
	}
	if cfg.TimeKey == "" {
		cfg.TimeKey = "@timestamp"
	} else if cfg.TimeKey == "-" {
		cfg.TimeKey = ""
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if !cfg.MemoryBuffer && cfg.BufferDir == "" {
		return nil, errors.New("pipeline: no buffer directory (or choose the memory buffer)")
	}
	if cfg.ForwardAddr == "" && cfg.UDPAddr == "" {
		return nil, errors.New("pipeline: no input: set a forward or UDP address")
	}
	if len(cfg.ES.URLs) == 0 {
		return nil, errors.New("pipeline: no Elasticsearch URL")
	}
	if _, err := esout.ParseIndexTemplate(cfg.ES.Index); err != nil {
		return nil, err
	}
	if cfg.DeadLetterPath == "" {
		if cfg.MemoryBuffer {
			cfg.DeadLetterPath = filepath.Join(os.TempDir(), fmt.Sprintf("logdoctor-deadletter-%d.jsonl", os.Getpid()))
		} else {
			cfg.DeadLetterPath = filepath.Join(cfg.BufferDir, "deadletter.jsonl")
		}
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry(),
		docs: docBuilder{timeKey: cfg.TimeKey, tagKey: cfg.TagKey, idKey: cfg.IDKey}}
	p.bufEvents = newBufferEvents(p)
	return p, nil
}

// Registry is the pipeline's own Prometheus registry (no global state).
func (p *Pipeline) Registry() *prometheus.Registry { return p.reg }

// Start opens the buffer (recovering what a previous run left), binds the
// inputs and the metrics listener, and starts delivering.
func (p *Pipeline) Start(ctx context.Context) (err error) {
	cfg := p.cfg
	defer func() {
		if err != nil {
			err = errors.Join(err, p.abort())
		}
	}()
	p.registerMetrics()
	if cfg.MemoryBuffer {
		p.log.Warn("MEMORY BUFFER: events are acked once in memory and are LOST on a crash or kill; use only for benchmarks")
	}
	p.buf, err = buffer.Open(buffer.Options{Dir: cfg.BufferDir, Memory: cfg.MemoryBuffer, MaxBytes: cfg.BufferMaxBytes,
		SegmentBytes: cfg.SegmentBytes, FullWait: cfg.BufferFullWait,
		OnCorrupt: p.bufEvents.corrupt, OnWriteError: p.bufEvents.writeError, OnCommit: p.committed})
	if err != nil {
		return err
	}
	if rc := p.buf.Recovery(); rc.Segments > 0 || rc.TruncatedBytes > 0 || rc.CorruptRegions > 0 {
		p.log.Info("buffer recovered", "dir", cfg.BufferDir, "segments", rc.Segments, "replay", rc.Replay,
			"truncated_bytes", rc.TruncatedBytes, "removed_segments", rc.Removed, "kept_for_reuse", rc.KeptForReuse,
			"corrupt_regions", rc.CorruptRegions, "corrupt_records", rc.CorruptRecords)
	}
	p.dead, err = openDeadLetters(cfg.DeadLetterPath, cfg.Now)
	if err != nil {
		return err
	}
	esc := cfg.ES
	esc.Logger = p.log.With("component", "elasticsearch")
	esc.Registerer = p.reg
	esc.Prepare = p.prepareRaw
	if cfg.YieldToIntake {
		esc.Busy = p.intakeBusy
	}
	esc.DeadLetter = func(rec buffer.Record, reason string) error {
		// A Raw record is dead-lettered before it became a document: its
		// forward record could not be converted.
		source := "elasticsearch"
		if rec.Raw {
			source = "forward"
		}
		p.deadCount.Add(1)
		p.mDead.WithLabelValues(source).Inc()
		return p.dead.write(DeadLetter{Source: source, Reason: reason, Tag: rec.Tag, ID: rec.ID}, rec.Doc)
	}
	p.out, err = esout.New(p.buf, esc)
	if err != nil {
		return err
	}
	p.registerBufferMetrics()

	if cfg.MetricsAddr != "" {
		if p.metLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("pipeline: metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg}))
		p.metSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		p.metWG.Add(1)
		go func() {
			defer p.metWG.Done()
			if err := p.metSrv.Serve(p.metLn); !errors.Is(err, http.ErrServerClosed) {
				p.log.Error("metrics server stopped", "err", err)
				p.metErr = fmt.Errorf("pipeline: metrics server: %w", err)
			}
		}()
	}

	p.inCtx, p.inCancel = context.WithCancel(context.WithoutCancel(ctx))
	p.drainCtx, p.drainStop = context.WithCancel(context.WithoutCancel(ctx))
	if cfg.ForwardAddr != "" {
		if err := p.startForward(p.inCtx); err != nil {
			return err
		}
	}
	if cfg.UDPAddr != "" {
		if err := p.startUDP(p.inCtx); err != nil {
			return err
		}
	}
	var outCtx context.Context
	outCtx, p.outCancel = context.WithCancel(context.WithoutCancel(ctx))
	p.outWG.Add(1)
	go func() { defer p.outWG.Done(); p.out.Run(outCtx) }()
	p.log.Info("pipeline started", "forward", addrString(p.ForwardAddr()), "udp", addrString(p.UDPAddr()),
		"buffer", p.BufferDir(), "memory_buffer", cfg.MemoryBuffer, "metrics", addrString(p.MetricsAddr()))
	return nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// abort releases what a failed Start opened and returns what failed to
// close.
func (p *Pipeline) abort() error {
	if p.inCancel != nil {
		p.inCancel()
		p.drainStop()
	}
	p.closeListeners()
	p.inWG.Wait()
	var errs []error
	errs = append(errs, p.stopMetrics())
	if p.buf != nil {
		errs = append(errs, p.buf.Close())
	}
	if p.dead != nil {
		errs = append(errs, p.dead.Close())
	}
	// Close after a failed Start has nothing left to do.
	p.buf, p.dead = nil, nil
	return errors.Join(errs...)
}

// stopMetrics closes the metrics server, waits for its Serve to return
// and reports why it stopped if Close was not the reason.
func (p *Pipeline) stopMetrics() error {
	if p.metSrv == nil {
		return nil
	}
	err := p.metSrv.Close()
	p.metWG.Wait()
	return errors.Join(err, p.metErr)
}

func (p *Pipeline) closeListeners() {
	if p.fwdLn != nil {
		p.fwdLn.Close()
	}
	if p.fwdPC != nil {
		p.fwdPC.Close()
	}
	if p.udpConn != nil {
		p.closeUDP()
	}
}

// ForwardAddr is the bound forward address (nil when disabled).
func (p *Pipeline) ForwardAddr() net.Addr {
	if p.fwdLn == nil {
		return nil
	}
	return p.fwdLn.Addr()
}

// UDPAddr is the bound UDP JSON address (nil when disabled).
func (p *Pipeline) UDPAddr() net.Addr {
	if p.udpConn == nil {
		return nil
	}
	return p.udpConn.LocalAddr()
}

// MetricsAddr is the bound metrics address (nil when disabled).
func (p *Pipeline) MetricsAddr() net.Addr {
	if p.metLn == nil {
		return nil
	}
	return p.metLn.Addr()
}

// BufferDir is the buffer directory ("" for the memory buffer).
func (p *Pipeline) BufferDir() string {
	if p.cfg.MemoryBuffer {
		return ""
	}
	return p.cfg.BufferDir
}

// DeadLetterPath is the dead-letter file.
func (p *Pipeline) DeadLetterPath() string { return p.cfg.DeadLetterPath }

// Reopen reopens the dead-letter file (SIGHUP, after log rotation).
func (p *Pipeline) Reopen() error {
	if p.dead == nil {
		return nil
	}
	return p.dead.Reopen()
}

// Stats returns counters since Start.
func (p *Pipeline) Stats() Stats {
	s := Stats{
		ForwardEvents: p.fwdEvents.Load(), ForwardRequests: p.fwdReqs.Load(), ForwardAcks: p.fwdAcks.Load(),
		ForwardRefused: p.fwdRefused.Load(), UDPEvents: p.udpEvents.Load(), UDPBad: p.udpBad.Load(),
		DeadLetters: p.deadCount.Load(),
	}
	if p.buf != nil {
		s.Buffer = p.buf.Stats()
		s.Recovery = p.buf.Recovery()
		s.BufferCorrupt = p.buf.Corruptions()
	}
	s.BufferWriteFailures = p.bufEvents.failures()
	if p.out != nil {
		s.Output = p.out.Stats()
	}
	if p.fwdStats != nil {
		s.ForwardServer = p.fwdStats()
	}
	if p.budget != nil {
		s.InFlight = p.budget.Stats()
	}
	return s
}

// Flush waits until every event accepted so far has been answered by
// Elasticsearch (indexed, already there, or dead-lettered), or ctx ends.
func (p *Pipeline) Flush(ctx context.Context) error {
	if p.buf == nil {
		return errors.New("pipeline: not started")
	}
	return p.buf.Wait(ctx)
}

// Close stops accepting (listeners closed, open connections closed once
// their current request is handled), flushes to Elasticsearch until ctx
// ends, and leaves what is left in the buffer for the next start. It
// returns context.DeadlineExceeded (wrapped) when events were left behind.
func (p *Pipeline) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.closeErr = p.close(ctx) })
	return p.closeErr
}

func (p *Pipeline) close(ctx context.Context) error {
	if p.buf == nil {
		return nil
	}
	p.inCancel()
	p.closeListeners()
	stopDrain := context.AfterFunc(ctx, p.drainStop)
	p.inWG.Wait()
	stopDrain()
	p.drainStop()
	p.log.Info("inputs stopped; flushing to elasticsearch")
	flushErr := p.buf.Wait(ctx)
	p.outCancel()
	p.outWG.Wait()
	st := p.buf.Stats()
	if flushErr != nil {
		p.log.Warn("shutdown timeout: events left in the buffer for the next start", "events", st.Records, "dir", p.BufferDir())
		flushErr = fmt.Errorf("pipeline: %d events left in the buffer: %w", st.Records, flushErr)
	}
	// A buffer or dead-letter file that fails to close may not have
	// reached the disk: that is the caller's to know, with the flush result.
	errs := []error{flushErr}
	if err := p.buf.Close(); err != nil {
		errs = append(errs, fmt.Errorf("pipeline: closing the buffer: %w", err))
	}
	if err := p.dead.Close(); err != nil {
		errs = append(errs, fmt.Errorf("pipeline: closing the dead-letter file: %w", err))
	}
	errs = append(errs, p.stopMetrics())
	p.log.Info("pipeline stopped", "buffered", st.Records)
	return errors.Join(errs...)
}

func (p *Pipeline) registerMetrics() {
	p.mEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_events_in_total", Help: "Events made durable in the buffer, by input.",
	}, []string{"input"})
	p.mAcks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_forward_acks_total", Help: "Forward chunks acknowledged (after fsync).",
	})
	p.mRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_forward_refused_total", Help: "Forward requests not acknowledged, by reason.",
	}, []string{"reason"})
	p.mBad = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_udp_bad_total", Help: "UDP datagrams dead-lettered, by reason.",
	}, []string{"reason"})
	p.mDead = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_dead_letters_total", Help: "Events written to the dead-letter file, by source (udp, forward, elasticsearch).",
	}, []string{"source"})
	p.reg.MustRegister(p.mEvents, p.mAcks, p.mRefused, p.mBad, p.mDead, p.bufEvents.mWriteErrors, p.bufEvents.mCommit,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

func (p *Pipeline) registerBufferMetrics() {
	g := func(name, help string, f func(buffer.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(p.buf.Stats()) })
	}
	p.reg.MustRegister(
		g("logdoctor_pipeline_buffer_bytes", "Bytes held by the buffer.", func(s buffer.Stats) float64 { return float64(s.Bytes) }),
		g("logdoctor_pipeline_buffer_segments", "Live buffer segments.", func(s buffer.Stats) float64 { return float64(s.Segments) }),
		g("logdoctor_pipeline_buffer_events", "Events in the buffer not yet acknowledged by Elasticsearch.", func(s buffer.Stats) float64 { return float64(s.Records) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_buffer_commits_total", Help: "Group commits (fsyncs)."},
			func() float64 { return float64(p.buf.Stats().Commits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_buffer_full_total", Help: "Appends refused because the buffer was full."},
			func() float64 { return float64(p.buf.Stats().Full) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_buffer_plain_segments_total",
			Help: "Buffer segments started without preallocated blocks (the next one was not ready at a rotation, or preallocating failed): their commits extend the file, which slows every ack until the next segment."},
			func() float64 { return float64(p.buf.Stats().PlainSegments) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_buffer_reused_segments_total",
			Help: "Buffer segments started in the file of a fully acknowledged one instead of a new file: their commits overwrite blocks the disk already holds, and no file was unlinked for them."},
			func() float64 { return float64(p.buf.Stats().ReusedSegments) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_buffer_direct_commits_total",
			Help: "Group commits written around the page cache (O_DIRECT), durable when the write returns (RWF_DSYNC flushes only the disk's cache); the rest (a segment's last commits, a filesystem that refuses O_DIRECT) go through the page cache, slower."},
			func() float64 { return float64(p.buf.Stats().DirectCommits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_buffer_corrupt_records_total",
			Help: "Records lost to damaged bytes in the buffer (estimated), found at recovery or when read; the bytes are kept in <buffer-dir>/corrupt."},
			func() float64 { return float64(p.buf.Stats().CorruptRecords) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logdoctor_pipeline_buffer_max_bytes", Help: "Buffer size limit."},
			func() float64 { return float64(p.cfg.BufferMaxBytes) }),
	)
}
