package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// Doctor's discovery, for callers that watch shippers over time rather
// than diagnose them once (logdoctor exporter): the same steps Run takes
// first, each usable again on every interval.

// Attached is what is known of a shipper from its process: its
// configuration, read where and as it reads it, and the endpoints the
// configuration names.
type Attached struct {
	Process Process
	// Source says where the configuration was found; Config is nil when
	// none was (ErrNoConfig).
	Source ConfigSource
	Config *shipconf.Config
	// Files reads through the shipper's root; Env is its environment
	// (secrets: never print it).
	Files     TargetFiles
	Env       map[string]string
	Endpoints Endpoints
}

// ErrNoConfig is wrapped when a shipper's configuration cannot be found
// (a pipeline on the command line, no file at any default path).
var ErrNoConfig = errors.New("no configuration found")

// Attach finds p's configuration from its command line, environment and
// default paths, reads it through /proc/PID/root with its environment, and
// lists its endpoints. The Attached is returned even with an error, with
// what could be read.
func Attach(procRoot string, p Process) (*Attached, error) {
	a := &Attached{Process: p, Files: NewTargetFiles(procRoot, p.PID)}
	env, err := readEnviron(procRoot, p.PID)
	if err != nil {
		env = map[string]string{}
	}
	a.Env = env
	if commandLinePipeline(p) {
		return a, fmt.Errorf("%w: %s was given its pipeline on the command line (-i/-o)", ErrNoConfig, p.Name())
	}
	src, ok := locateConfig(p, env, a.Files)
	a.Source = src
	if !ok {
		return a, fmt.Errorf("%w for %s: tried %v", ErrNoConfig, p.Name(), src.Tried)
	}
	cfg, err := a.Load()
	if err != nil {
		return a, err
	}
	a.Config, a.Endpoints = cfg, FindEndpoints(cfg)
	return a, nil
}

// Load reads the configuration again (after a change).
func (a *Attached) Load() (*shipconf.Config, error) {
	format := shipconf.FormatFluentd
	if a.Process.Kind == FluentBit {
		format = shipconf.FormatFluentBit
	}
	return shipconf.Load(a.Source.Path, shipconf.Options{Format: format, Env: a.Env, Files: a.Files})
}

// Stat looks at name as the shipper sees it (to tell when its
// configuration changed).
func (f TargetFiles) Stat(name string) (fs.FileInfo, error) {
	fh, err := f.open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return fh.Stat()
}

// PeerSpecs are the configured Elasticsearch and forward endpoints as
// socket peers (alias es or forward); the endpoints that cannot be
// resolved are returned as skipped, with the reason.
func PeerSpecs(ctx context.Context, e Endpoints, resolve sockstat.Resolver) ([]sockstat.PeerSpec, []string) {
	peers, skipped := configuredPeers(ctx, e, resolve)
	out := make([]sockstat.PeerSpec, len(peers))
	for i, p := range peers {
		out[i] = p.spec
	}
	return out, skipped
}

// MetricsReader reads a shipper's monitoring endpoint again and again:
// Fluentd's monitor_agent, or Fluent Bit's HTTP server (v1 metrics, with
// v2 and storage where they answer).
type MetricsReader struct {
	mon   Monitor
	hc    *http.Client
	ep    fluentBitEndpoints
	first bool
}

// NewMetricsReader reads m through hc (whose transport reaches the
// shipper's namespace: OpenNet's DialContext).
func NewMetricsReader(m Monitor, hc *http.Client) *MetricsReader {
	return &MetricsReader{mon: m, hc: hc, first: true}
}

// Read takes one look.
func (r *MetricsReader) Read(ctx context.Context) (Sample, error) {
	if r.mon.Kind == "monitor_agent" {
		s, _, err := sampleFluentd(ctx, r.hc, r.mon.Addr)
		return s, err
	}
	s, _, err := sampleFluentBit(ctx, r.hc, r.mon.Addr, &r.ep, r.first)
	if err == nil {
		r.first = false
	}
	return s, err
}

// BufferLimits are the buffer limits the configuration gives each Fluentd
// output, by the name the monitoring endpoint uses for it (as in s).
func BufferLimits(c *shipconf.Config, s Sample) map[string]float64 {
	out := map[string]float64{}
	if c == nil || c.Shipper != shipconf.Fluentd {
		return out
	}
	for _, o := range c.Outputs() {
		if o.Parent != nil {
			continue
		}
		id := metricsID(c, o, &s)
		if id == "" {
			continue
		}
		if n, _ := configcheck.BufferLimit(c, o); n > 0 {
			out[id] = float64(n)
		}
	}
	return out
}
