package exporter

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/doctor"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// DiscoveryConfig configures the discovery of shippers (`logdoctor
// doctor`'s: Fluentd and Fluent Bit processes under the proc root) and the
// sources each one found gets.
type DiscoveryConfig struct {
	Engine   *Engine
	ProcRoot string
	// Self is left out of discovery (the exporter's own PID).
	Self int
	// Schedule is the schedule of each shipper's sources.
	Schedule Schedule
	// OpenTable opens a reader of pid's network namespace's TCP table;
	// the func it returns releases it.
	OpenTable func(pid int) (TableReader, func(), error)
	// Peers are added to each shipper's configured endpoints (--peer).
	Peers      []sockstat.PeerSpec
	Aliases    sockstat.Aliases
	Ephemeral  sockstat.PortRange
	Thresholds sockstat.Thresholds
	MaxPeers   int
	// UDPPorts are watched besides each shipper's UDP inputs.
	UDPPorts []uint16
	Check    configcheck.Options
	Resolver sockstat.Resolver
	// MetricsTimeout bounds one read of a shipper's monitoring endpoint.
	MetricsTimeout time.Duration
}

// Discovery is a source that finds the shippers on every run and gives
// each its own sources: its network namespace's sockets (with its
// configured Elasticsearch and forward endpoints as peers), its UDP
// inputs' counters, its configuration's findings, and its own monitoring
// endpoint's metrics. A shipper that goes away takes its sources along;
// one whose configuration changed gets them anew.
type Discovery struct {
	c        DiscoveryConfig
	watched  map[string]*watched // by kind/pid
	info     *prometheus.Desc
	count    *prometheus.Desc
	attached *prometheus.Desc
}

type watched struct {
	proc    doctor.Process
	name    string
	att     *doctor.Attached
	stamps  map[string]fileStamp
	sources []Source
	closers []func()
}

// NewDiscovery returns the discovery source; add it to c.Engine.
func NewDiscovery(c DiscoveryConfig) *Discovery {
	if c.MetricsTimeout <= 0 {
		c.MetricsTimeout = 5 * time.Second
	}
	return &Discovery{c: c, watched: map[string]*watched{},
		info: prometheus.NewDesc("logdoctor_shipper_info",
			"1 for each shipper discovered: its kind, process id and the configuration file it reads (\"\" when none was found).",
			[]string{"shipper", "kind", "pid", "config"}, nil),
		count: prometheus.NewDesc("logdoctor_shippers",
			"Shippers discovered, by kind (fluentd, fluent-bit, and vector or logstash, which are found but not watched).",
			[]string{"kind"}, nil),
		attached: prometheus.NewDesc("logdoctor_shipper_config_loaded",
			"1 when the shipper's configuration was found and read through its root, 0 when not (then only its sockets are watched).",
			[]string{"shipper"}, nil),
	}
}

func (d *Discovery) Name() string   { return "discovery" }
func (d *Discovery) Target() string { return "" }

func (d *Discovery) Describe(ch chan<- *prometheus.Desc) {
	ch <- d.info
	ch <- d.count
	ch <- d.attached
}

func (d *Discovery) Collect(ctx context.Context) (*Sample, error) {
	procs, err := doctor.Discover(d.c.ProcRoot, d.c.Self)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	var watch []doctor.Process
	for _, p := range procs {
		counts[string(p.Kind)]++
		if p.Kind.Understood() {
			watch = append(watch, p)
		}
	}
	// A shipper is named by its kind, and by kind[pid] when there are
	// several of one kind.
	name := func(p doctor.Process) string {
		if counts[string(p.Kind)] == 1 {
			return string(p.Kind)
		}
		return p.Name()
	}
	live := map[string]bool{}
	for _, p := range watch {
		key := string(p.Kind) + "/" + strconv.Itoa(p.PID)
		live[key] = true
		w := d.watched[key]
		if w != nil && (w.name != name(p) || w.configChanged()) {
			d.drop(w)
			w = nil
		}
		if w == nil {
			d.watched[key] = d.watch(ctx, p, name(p))
		}
	}
	for key, w := range d.watched {
		if !live[key] {
			d.drop(w)
			delete(d.watched, key)
		}
	}
	out := &Sample{}
	kinds := []string{string(doctor.Fluentd), string(doctor.FluentBit), string(doctor.Vector), string(doctor.Logstash)}
	for _, k := range kinds {
		out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(d.count, prometheus.GaugeValue, float64(counts[k]), k))
	}
	ws := make([]*watched, 0, len(d.watched))
	for _, w := range d.watched {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b *watched) int { return cmp.Compare(a.name, b.name) })
	for _, w := range ws {
		out.Metrics = append(out.Metrics,
			prometheus.MustNewConstMetric(d.info, prometheus.GaugeValue, 1, w.name, string(w.proc.Kind), strconv.Itoa(w.proc.PID), w.att.Source.Path),
			prometheus.MustNewConstMetric(d.attached, prometheus.GaugeValue, b2f(w.att.Config != nil), w.name))
	}
	return out, ctx.Err()
}

// watch attaches to p and adds its sources.
func (d *Discovery) watch(ctx context.Context, p doctor.Process, name string) *watched {
	att, _ := doctor.Attach(d.c.ProcRoot, p) // without a configuration, the sockets are still watched
	w := &watched{proc: p, name: name, att: att}
	if att.Config != nil {
		w.stamps = stampFiles(att.Files.Stat, append([]string{att.Source.Path}, filePaths(att)...))
	}
	netPID := p.NetPID()
	peers := slices.Clone(d.c.Peers)
	specs, _ := doctor.PeerSpecs(ctx, att.Endpoints, d.c.Resolver)
	peers = append(peers, specs...)
	if read, closer, err := d.c.OpenTable(netPID); err == nil {
		w.closers = append(w.closers, closer)
		w.add(d.c.Engine, NewSockets(SocketsConfig{Shipper: name, Read: read, Peers: peers, Aliases: d.c.Aliases,
			Ephemeral: d.c.Ephemeral, Thresholds: d.c.Thresholds, MaxPeers: d.c.MaxPeers}), d.c.Schedule)
	} else {
		w.add(d.c.Engine, &failing{name: "sockets", target: name, err: err}, d.c.Schedule)
	}
	ports := slices.Clone(d.c.UDPPorts)
	for _, u := range att.Endpoints.UDP {
		if u.Port > 0 && u.Port < 65536 {
			ports = append(ports, uint16(u.Port))
		}
	}
	w.add(d.c.Engine, NewUDP(UDPConfig{Shipper: name, ProcRoot: d.c.ProcRoot, PID: netPID, Ports: ports}), d.c.Schedule)
	if att.Config != nil {
		check := d.c.Check
		// The MTU that matters is the shipper's own interfaces'.
		if ifs, err := doctor.OpenNet(d.c.ProcRoot, netPID).Interfaces(); err == nil {
			mtu, name := 0, ""
			for _, i := range ifs {
				if i.Up && i.MTU > 0 && i.Name != "lo" && (mtu == 0 || i.MTU < mtu) {
					mtu, name = i.MTU, i.Name
				}
			}
			if mtu > 0 {
				check.MTU, check.MTUSource = mtu, "interface "+name+" in the shipper's network namespace"
			}
		}
		w.add(d.c.Engine, NewConfig(ConfigConfig{Shipper: name, Target: name, Main: att.Source.Path, Load: func(string) (*shipconf.Config, error) { return att.Load() },
			Stat: att.Files.Stat, Check: check}), d.c.Schedule)
	}
	if mon := att.Endpoints.Monitor; mon != nil {
		kind := KindFluentd
		if p.Kind == doctor.FluentBit {
			kind = KindFluentBit
		}
		w.add(d.c.Engine, NewShipper(ShipperConfig{Shipper: name, Kind: kind,
			Read: d.metricsReader(netPID, *mon, att)}), d.c.Schedule)
	}
	return w
}

// metricsReader reads the shipper's monitoring endpoint where it listens:
// inside its network namespace when the exporter may enter it, else
// through the port its container publishes on this host.
func (d *Discovery) metricsReader(netPID int, mon doctor.Monitor, att *doctor.Attached) ShipperReader {
	return func(ctx context.Context) ([]ShipperPlugin, error) {
		// A Net per read: it remembers every connection it opened.
		n := doctor.OpenNet(d.c.ProcRoot, netPID)
		hc := &http.Client{Timeout: d.c.MetricsTimeout, Transport: &http.Transport{DialContext: n.DialContext, DisableKeepAlives: true}}
		s, err := doctor.NewMetricsReader(mon, hc).Read(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s at %s (%s): %w", mon.Kind, mon.Addr, n.Reach, err)
		}
		limits := doctor.BufferLimits(att.Config, s)
		out := make([]ShipperPlugin, 0, len(s.Plugins))
		for _, p := range s.Plugins {
			out = append(out, ShipperPlugin{ID: p.ID, Category: p.Category, Values: p.Values, LimitBytes: limits[p.ID]})
		}
		return out, nil
	}
}

// Close drops every shipper's sources and releases what they hold.
func (d *Discovery) Close() {
	for key, w := range d.watched {
		d.drop(w)
		delete(d.watched, key)
	}
}

func (w *watched) add(e *Engine, s Source, sch Schedule) {
	w.sources = append(w.sources, s)
	e.Add(s, sch)
}

// drop removes w's sources.
func (d *Discovery) drop(w *watched) {
	for _, s := range w.sources {
		d.c.Engine.Remove(s)
	}
	for _, c := range w.closers {
		c()
	}
}

// configChanged reports whether a file of the shipper's configuration
// changed, or one appeared where none was found.
func (w *watched) configChanged() bool {
	if w.att.Config == nil {
		return false // found again when the process restarts
	}
	for name, old := range w.stamps {
		fi, err := w.att.Files.Stat(name)
		if err != nil || stampOf(fi) != old {
			return true
		}
	}
	return false
}

func filePaths(a *doctor.Attached) []string {
	out := make([]string, 0, len(a.Config.Files))
	for _, f := range a.Config.Files {
		out = append(out, f.Path)
	}
	return out
}

// failing is a source that reports why a shipper's source could not be
// set up (a namespace that cannot be read), as logdoctor_source_up 0.
type failing struct {
	name, target string
	err          error
}

func (f *failing) Name() string                             { return f.name }
func (f *failing) Target() string                           { return f.target }
func (f *failing) Describe(chan<- *prometheus.Desc)         {}
func (f *failing) Collect(context.Context) (*Sample, error) { return nil, f.err }
