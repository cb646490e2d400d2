// Package lab is the embedded delivery path `smoke` runs its canaries
// through when no shipper is named: the pipeline (forward input, durable
// buffer, bulk output) in process, writing to essim on a loopback port or
// to the user's cluster, and with Chaos essim's faults switched on in
// phases. It also starts the embedded Elasticsearch `pipeline run` uses.
// The command layer wires it; the lab prints nothing.
package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// Config says what to start.
type Config struct {
	// ES is a real cluster's URL; empty starts essim on a loopback port.
	ES                         string
	Index                      string // where the canaries are looked for; default logs-*
	Username, Password, APIKey string
	TLS                        *tls.Config // the cluster's TLS
	SharedKey                  string      // the forward input's shared key
	// Chaos (essim only) turns on the faults that make exactly-once work
	// for its result: 429s, idle closes and, in a first phase, late bulk
	// answers.
	Chaos    bool
	ProcRoot string // the pipeline's /proc
	// Refresh, with a real cluster, makes what is indexed searchable once
	// the pipeline has drained (essim needs none).
	Refresh func(context.Context) error
}

// Stats shows what exactly-once took: the pipeline's retries and 409s,
// essim's rejections and dropped connections.
type Stats struct {
	Pipeline pipeline.Stats `json:"pipeline"`
	ES       *ESStats       `json:"essim,omitempty"`
}

// ESStats are the essim counters a reader of the smoke report cares about.
type ESStats struct {
	BulkRequests    int64 `json:"bulk_requests"`
	Rejected        int64 `json:"rejected_429"`
	RequestFailures int64 `json:"request_failures"`
	Conflicts       int64 `json:"conflicts_409"`
	Dropped         int64 `json:"dropped"`
	OpenedConns     int64 `json:"connections_opened"`
	IdleClosed      int64 `json:"idle_closed"`
}

// Lab is a running embedded path.
type Lab struct {
	p       *pipeline.Pipeline
	sim     *essim.Server
	esURL   string
	index   string
	refresh func(context.Context) error
	calm    func()
	closers []func(context.Context) error
}

// Chaos faults: enough 429s that every bulk has rejected items to retry,
// idle keep-alive closes shorter than the pipeline's pauses, and until the
// first bulk is answered every bulk answered after the pipeline's request
// timeout. The pipeline then retries documents that are already stored,
// the way duplicates reach Elasticsearch (docs/troubleshooting.md,
// "Duplicates in Elasticsearch"), and they are answered 409 thanks to
// create and a stable _id.
const (
	chaosRejectRate = 0.2
	// ChaosIdleClose is exported for the probes that wait to see essim
	// hang up an idle connection.
	ChaosIdleClose      = 300 * time.Millisecond
	chaosLateBy         = time.Second
	chaosRequestTimeout = 500 * time.Millisecond
	chaosLatePhase      = 10 * time.Second
)

// endLatePhase turns late answers off once essim has answered its first
// bulk: that answer came after the pipeline's timeout, so the pipeline has
// given up on documents that are stored and will resend them. Ending the
// phase on that event rather than on a clock keeps the demo (and its test)
// the same on a slow machine. chaosLatePhase caps it.
func endLatePhase(sim *essim.Server, stop <-chan struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	limit := time.NewTimer(chaosLatePhase)
	defer limit.Stop()
	for {
		select {
		case <-stop:
			return
		case <-limit.C:
		case <-tick.C:
			if sim.Stats().BulkRequests == 0 {
				continue
			}
		}
		_ = sim.SetFaults(chaosFaults(false))
		return
	}
}

func chaosFaults(late bool) essim.Faults {
	return essim.Faults{RejectRate: chaosRejectRate, IdleClose: ChaosIdleClose, IndexLate: late, LateBy: chaosLateBy}
}

// Start starts essim (unless c.ES names a real cluster) and the pipeline
// in process, its durable buffer in a temp dir that Close removes.
func Start(ctx context.Context, c Config) (_ *Lab, err error) {
	l := &Lab{index: c.Index, refresh: c.Refresh}
	defer func() {
		if err != nil {
			_ = l.Close(context.WithoutCancel(ctx))
		}
	}()

	// A smoke run lives seconds, not days: retry and resurrect on that
	// scale (the pipeline's defaults back off to 10 s and 30 s).
	esCfg := esout.Config{URLs: []string{c.ES}, Username: c.Username, Password: c.Password, APIKey: c.APIKey,
		TLS: c.TLS, FlushInterval: 20 * time.Millisecond,
		RetryInitial: 50 * time.Millisecond, RetryMax: time.Second,
		HealthInterval: 250 * time.Millisecond, DeadMin: 100 * time.Millisecond, DeadMax: time.Second}
	if c.ES == "" {
		var faults essim.Faults
		if c.Chaos {
			faults = chaosFaults(true)
			esCfg.RequestTimeout = chaosRequestTimeout
		}
		sim, err := essim.Start(ctx, "127.0.0.1:0", essim.Config{Faults: faults})
		if err != nil {
			return nil, fmt.Errorf("embedded elasticsearch: %w", err)
		}
		l.sim = sim
		l.closers = append(l.closers, func(context.Context) error { return sim.Close() })
		if c.Chaos {
			stop := make(chan struct{})
			var once sync.Once
			stopLate := func() { once.Do(func() { close(stop) }) }
			go endLatePhase(sim, stop)
			l.closers = append(l.closers, func(context.Context) error { stopLate(); return nil })
			// The probes look at a cluster that has stopped rejecting:
			// es.write_rejections then reports the rejections the run
			// caused (a warning), not the forward probe's own canaries
			// being rejected while the ES probe watches (critical), so
			// the verdict of --chaos does not depend on that timing.
			l.calm = func() {
				stopLate()
				_ = sim.SetFaults(essim.Faults{IdleClose: ChaosIdleClose})
			}
		}
		esCfg.URLs = []string{sim.URL()}
	}
	if l.index == "" {
		l.index = "logs-*" // what esout.DefaultIndex writes to
	}
	l.esURL = esCfg.URLs[0]
	dir, err := os.MkdirTemp("", "logdoctor-smoke-")
	if err != nil {
		return nil, fmt.Errorf("buffer dir: %w", err)
	}
	l.closers = append(l.closers, func(context.Context) error { return os.RemoveAll(dir) })
	p, err := pipeline.New(pipeline.Config{ForwardAddr: "127.0.0.1:0", ForwardSharedKey: c.SharedKey,
		BufferDir: dir, ES: esCfg, ProcRoot: c.ProcRoot})
	if err != nil {
		return nil, fmt.Errorf("embedded pipeline: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		return nil, fmt.Errorf("embedded pipeline: %w", err)
	}
	l.p = p
	l.closers = append(l.closers, func(ctx context.Context) error {
		// Whatever is still buffered goes with the temp dir: nothing to
		// flush for, so a failing ES does not hold the verdict up.
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return p.Close(cctx)
	})
	return l, nil
}

// ForwardAddr is the pipeline's forward input.
func (l *Lab) ForwardAddr() string { return l.p.ForwardAddr().String() }

// ESURL is the cluster the pipeline writes to.
func (l *Lab) ESURL() string { return l.esURL }

// Index is where the canaries are looked for.
func (l *Lab) Index() string { return l.index }

// Drained returns once every acked event was answered by Elasticsearch
// and, with a real cluster, made searchable: canaries still missing then
// are lost.
func (l *Lab) Drained(ctx context.Context) error {
	if err := l.p.Flush(ctx); err != nil {
		return err
	}
	// essim makes documents searchable at once; a real cluster only
	// after its refresh interval, unless we may ask for a refresh. If
	// not, the wait runs until every canary is seen or the timeout.
	if l.sim == nil && l.refresh != nil {
		return l.refresh(ctx)
	}
	return nil
}

// Calm ends the chaos before the probes look at the path (a no-op without
// Chaos).
func (l *Lab) Calm() {
	if l.calm != nil {
		l.calm()
	}
}

// Stats is what the pipeline and essim went through.
func (l *Lab) Stats() *Stats {
	st := &Stats{Pipeline: l.p.Stats()}
	if l.sim != nil {
		s := l.sim.Stats()
		st.ES = &ESStats{BulkRequests: s.BulkRequests, Rejected: s.Rejected, RequestFailures: s.RequestFailures,
			Conflicts: s.Conflicts, Dropped: s.Dropped, OpenedConns: s.OpenedConns, IdleClosed: s.IdleClosed}
	}
	return st
}

// Close stops the pipeline and essim and removes the buffer, in the
// reverse order of starting.
func (l *Lab) Close(ctx context.Context) error {
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		errs = append(errs, l.closers[i](ctx))
	}
	l.closers = nil
	return errors.Join(errs...)
}

// Section renders the stats as smoke's "What exactly-once took" table.
func (e *Stats) Section() report.Section {
	out := e.Pipeline.Output
	sec := report.Section{Title: "What exactly-once took (embedded)", Header: []string{"pipeline", "count"},
		Rows: [][]string{{"bulk requests", fmt.Sprint(out.Requests)}, {"item retries (429, 5xx, transport)", fmt.Sprint(out.Retried)},
			{"already indexed (409 on replay)", fmt.Sprint(out.Duplicates)}, {"transport errors", fmt.Sprint(out.TransportErr)},
			{"dead letters", fmt.Sprint(out.DeadLetters)}}}
	if es := e.ES; es != nil {
		sec.Rows = append(sec.Rows, []string{"essim: items rejected 429", fmt.Sprint(es.Rejected)},
			[]string{"essim: idle connections closed", fmt.Sprint(es.IdleClosed)})
	}
	return sec
}
