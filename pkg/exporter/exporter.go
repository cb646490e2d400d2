// Package exporter runs logdoctor's diagnoses continuously and serves what
// they find as Prometheus metrics: socket states per peer, the kernel's UDP
// counters, a shipper's own buffer metrics, configuration findings, and
// periodic forward and Elasticsearch probes.
//
// Each Source does its work on its own interval, in node_exporter's spirit
// of one collector per source, but never at scrape time: a scrape only
// copies the last sample of every source, so it answers in microseconds
// however slow or stuck a source is. Every source also reports when it
// last succeeded and why it failed (logdoctor_source_* metrics).
package exporter

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Source is one piece of work the exporter repeats: read a socket table,
// the kernel's counters, a configuration, a shipper's metrics endpoint, or
// probe an endpoint.
type Source interface {
	// Name is the kind of source (sockets, udp, config, shipper,
	// forward_probe, es_probe); Target says which one ("" for a source of
	// which there is only one). Together they label logdoctor_source_*.
	Name() string
	Target() string
	// Describe sends the descriptors of every metric Collect may return.
	Describe(ch chan<- *prometheus.Desc)
	// Collect does the work once. It must give up when ctx is done; the
	// engine stops waiting for it at the deadline either way.
	Collect(ctx context.Context) (*Sample, error)
}

// Sample is what one run of a source found.
type Sample struct {
	Metrics  []prometheus.Metric
	Findings []Finding
}

// Finding is a report finding and what it is about, for
// logdoctor_finding{id,severity,target,shipper}.
type Finding struct {
	report.Finding
	// Target is what the finding is about: a peer, a file and line, a
	// probed endpoint. Shipper names the shipper it belongs to, if any.
	Target, Shipper string
}

// Schedule says how often a source runs and how long a run may take.
type Schedule struct {
	Interval time.Duration
	Timeout  time.Duration
}

// Error kinds of logdoctor_source_errors_total.
const (
	ErrorKindTimeout = "timeout"
	ErrorKindError   = "error"
)

// Engine runs sources and is the prometheus.Collector that serves their
// last samples.
type Engine struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	runners []*runner
	ctx     context.Context // Run's, once it runs
	stopped bool            // Run's ctx is done: start nothing more
	wg      sync.WaitGroup

	findingDesc  *prometheus.Desc
	upDesc       *prometheus.Desc
	successDesc  *prometheus.Desc
	durationDesc *prometheus.Desc
	errorsDesc   *prometheus.Desc
}

// Options configure an Engine.
type Options struct {
	// Logger receives a line when a source starts failing and when it
	// recovers; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// New returns an Engine without sources.
func New(o Options) *Engine {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	src := []string{"source", "target"}
	return &Engine{
		log: o.Logger, now: o.Now,
		findingDesc: prometheus.NewDesc("logdoctor_finding",
			"1 while a logdoctor finding holds; id is the stable finding id documented in docs/, target what it is about.",
			[]string{"id", "severity", "target", "shipper"}, nil),
		upDesc: prometheus.NewDesc("logdoctor_source_up",
			"1 when the source's last run succeeded, 0 when it failed or timed out.", src, nil),
		successDesc: prometheus.NewDesc("logdoctor_source_last_success_timestamp_seconds",
			"When the source last ran successfully (Unix time); 0 before its first success.", src, nil),
		durationDesc: prometheus.NewDesc("logdoctor_source_duration_seconds",
			"How long the source's last run took.", src, nil),
		errorsDesc: prometheus.NewDesc("logdoctor_source_errors_total",
			"Failed runs of the source: kind timeout (it did not finish within its timeout) or error.", append(src, "kind"), nil),
	}
}

// Add registers a source. It runs once Run is called, or at once when
// Run is running.
func (e *Engine) Add(s Source, sch Schedule) {
	r := &runner{src: s, sch: sch, errs: map[string]float64{}}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.runners = append(e.runners, r)
	if e.ctx != nil && !e.stopped {
		e.start(e.ctx, r)
	}
}

// Remove stops a source and drops its metrics (a shipper that went away).
func (e *Engine) Remove(s Source) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, r := range e.runners {
		if r.src == s {
			if r.cancel != nil {
				r.cancel()
			}
			e.runners = append(e.runners[:i:i], e.runners[i+1:]...)
			return
		}
	}
}

// start runs r's loop; e.mu is held.
func (e *Engine) start(ctx context.Context, r *runner) {
	rctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer cancel()
		e.loop(rctx, r)
	}()
}

// Run runs every source on its schedule until ctx is done, then waits for
// the runs in progress that honour ctx.
func (e *Engine) Run(ctx context.Context) {
	e.mu.Lock()
	e.ctx = ctx
	for _, r := range e.runners {
		e.start(ctx, r)
	}
	e.mu.Unlock()
	<-ctx.Done()
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	e.wg.Wait()
}

// RunOnce runs every source once, one after another, and returns when all
// are done: for tests and for the first sample before serving.
func (e *Engine) RunOnce(ctx context.Context) {
	e.mu.Lock()
	runners := append([]*runner(nil), e.runners...)
	e.mu.Unlock()
	for _, r := range runners {
		if !e.runOne(ctx, r) {
			return
		}
	}
}

// loop runs r every interval. A run that overstays its timeout is counted
// as failed, and the next run waits until it returns, so a source that
// hangs (an NFS-backed /proc, a server that never answers and a client
// that ignores its context) holds one goroutine, not one per interval.
func (e *Engine) loop(ctx context.Context, r *runner) {
	for {
		start := e.now()
		if !e.runOne(ctx, r) {
			return
		}
		wait := r.sch.Interval - e.now().Sub(start)
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runOne runs r once and records the outcome; false means ctx ended.
func (e *Engine) runOne(ctx context.Context, r *runner) bool {
	type outcome struct {
		s   *Sample
		err error
	}
	timeout := r.sch.Timeout
	if timeout <= 0 {
		timeout = r.sch.Interval
	}
	start := e.now()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan outcome, 1)
	go func() {
		s, err := r.src.Collect(rctx)
		done <- outcome{s, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case o := <-done:
		if ctx.Err() != nil {
			return false
		}
		err := o.err
		if err == nil && o.s == nil {
			err = errNoSample
		}
		e.record(r, start, o.s, err)
		return true
	case <-t.C:
		e.record(r, start, nil, context.DeadlineExceeded)
		cancel()
		select {
		case <-done: // late: its sample is stale already
			return true
		case <-ctx.Done():
			return false
		}
	case <-ctx.Done():
		return false
	}
}

var errNoSample = errors.New("source returned no sample")

func (e *Engine) record(r *runner, start time.Time, s *Sample, err error) {
	end := e.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.duration = end.Sub(start)
	r.ran = true
	wasUp := r.up
	if err != nil {
		kind := ErrorKindError
		if errors.Is(err, context.DeadlineExceeded) {
			kind = ErrorKindTimeout
		}
		r.errs[kind]++
		r.up, r.last = false, nil
		if wasUp || r.lastErr == "" {
			e.log.Warn("source failed", "source", r.src.Name(), "target", r.src.Target(), "kind", kind, "error", report.Redact(err.Error()))
		}
		r.lastErr = err.Error()
		return
	}
	if !wasUp && r.lastErr != "" {
		e.log.Info("source recovered", "source", r.src.Name(), "target", r.src.Target())
	}
	r.up, r.last, r.lastErr = true, s, ""
	r.success = end
}

// runner is one source's schedule and last outcome.
type runner struct {
	src    Source
	sch    Schedule
	cancel context.CancelFunc // stops its loop (Remove); set under Engine.mu

	mu       sync.Mutex
	ran      bool
	up       bool
	last     *Sample
	lastErr  string
	success  time.Time
	duration time.Duration
	errs     map[string]float64
}

// Describe implements prometheus.Collector.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	ch <- e.findingDesc
	ch <- e.upDesc
	ch <- e.successDesc
	ch <- e.durationDesc
	ch <- e.errorsDesc
	e.mu.Lock()
	runners := append([]*runner(nil), e.runners...)
	e.mu.Unlock()
	// Sources of one kind describe equal descriptors; the registry wants
	// each once.
	seen := map[string]bool{}
	for _, r := range runners {
		dc := make(chan *prometheus.Desc, 16)
		go func() {
			r.src.Describe(dc)
			close(dc)
		}()
		for d := range dc {
			if !seen[d.String()] {
				seen[d.String()] = true
				ch <- d
			}
		}
	}
}

// Collect implements prometheus.Collector: it copies the last samples, and
// never waits for a source.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	runners := append([]*runner(nil), e.runners...)
	e.mu.Unlock()
	findings := map[[4]string]bool{}
	sources := make(map[[2]string]bool, len(runners))
	for _, r := range runners {
		name, target := r.src.Name(), r.src.Target()
		// Two sources of one name and target would make the scrape
		// fail as a whole; sources are built not to, and this keeps a
		// mistake to one source's series.
		if sources[[2]string{name, target}] {
			continue
		}
		sources[[2]string{name, target}] = true
		r.mu.Lock()
		last, up, ran, success, dur := r.last, r.up, r.ran, r.success, r.duration
		errs := make(map[string]float64, len(r.errs))
		for k, v := range r.errs {
			errs[k] = v
		}
		r.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(e.upDesc, prometheus.GaugeValue, b2f(up), name, target)
		ts := 0.0
		if !success.IsZero() {
			ts = float64(success.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(e.successDesc, prometheus.GaugeValue, ts, name, target)
		if ran {
			ch <- prometheus.MustNewConstMetric(e.durationDesc, prometheus.GaugeValue, dur.Seconds(), name, target)
		}
		for _, k := range []string{ErrorKindError, ErrorKindTimeout} {
			ch <- prometheus.MustNewConstMetric(e.errorsDesc, prometheus.CounterValue, errs[k], name, target, k)
		}
		if last == nil {
			continue
		}
		for _, m := range last.Metrics {
			ch <- m
		}
		for _, f := range last.Findings {
			findings[[4]string{f.ID, f.Severity.String(), f.Target, f.Shipper}] = true
		}
	}
	keys := make([][4]string, 0, len(findings))
	for k := range findings {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		for n := range keys[i] {
			if keys[i][n] != keys[j][n] {
				return keys[i][n] < keys[j][n]
			}
		}
		return false
	})
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(e.findingDesc, prometheus.GaugeValue, 1, k[0], k[1], k[2], k[3])
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SourceStatus is how one source's last run went, for a report of what
// the exporter holds (the logdoctor_source_* series as data).
type SourceStatus struct {
	Source      string    `json:"source"`
	Target      string    `json:"target,omitempty"`
	Up          bool      `json:"up"`
	LastSuccess time.Time `json:"last_success,omitempty"`
	Error       string    `json:"error,omitempty"`
}

// Status returns every source's state and the findings their last samples
// hold, each once, as a scrape would show them.
func (e *Engine) Status() ([]SourceStatus, []Finding) {
	e.mu.Lock()
	runners := append([]*runner(nil), e.runners...)
	e.mu.Unlock()
	var sources []SourceStatus
	var findings []Finding
	seen := map[[4]string]bool{}
	for _, r := range runners {
		r.mu.Lock()
		st := SourceStatus{Source: r.src.Name(), Target: r.src.Target(), Up: r.up, LastSuccess: r.success, Error: report.Redact(r.lastErr)}
		last := r.last
		r.mu.Unlock()
		sources = append(sources, st)
		if last == nil {
			continue
		}
		for _, f := range last.Findings {
			k := [4]string{f.ID, f.Severity.String(), f.Target, f.Shipper}
			if !seen[k] {
				seen[k] = true
				findings = append(findings, f)
			}
		}
	}
	sort.Slice(sources, func(i, j int) bool {
		if sources[i].Source != sources[j].Source {
			return sources[i].Source < sources[j].Source
		}
		return sources[i].Target < sources[j].Target
	})
	return sources, findings
}
