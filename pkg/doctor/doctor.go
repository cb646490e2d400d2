// Package doctor attaches to a running Fluentd or Fluent Bit and says
// which setting causes the symptom. It finds the shipper in /proc, reads
// its configuration through /proc/PID/root with its own environment,
// looks at its sockets in its network namespace with the configured
// endpoints as peers, samples its own metrics five times over an interval,
// probes every endpoint the configuration names with the configuration's
// credentials, and joins the evidence into one ranked diagnosis naming
// the file and line to change.
//
// It is composition: the configuration model and rules are pkg/shipconf
// and pkg/configcheck, the socket view pkg/sockstat, the probes
// pkg/esprobe and pkg/forwardprobe. Every step is time-bounded; a step
// that cannot run is recorded as skipped with its reason and the rest
// still runs. It prints nothing.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
	"github.com/logdoctor/logdoctor/pkg/udpfrag"
)

// Options configures Run.
type Options struct {
	// ProcRoot is the proc tree (/proc; a node's /proc mounted in a
	// debug container).
	ProcRoot string
	// PID diagnoses this process (a Fluentd supervisor or worker, or
	// Fluent Bit); 0 finds every shipper under ProcRoot.
	PID int
	// Shipper keeps only this kind (with PID: takes the process for this
	// kind even when its command line does not say so).
	Shipper Kind
	// ConfigFile overrides the configuration's discovery; it is read as
	// given, on this host.
	ConfigFile string
	// Interval is the time between the first and the last sample of the
	// shipper's metrics, sockets and kernel counters (default 5 s).
	Interval time.Duration
	// StepTimeout bounds each step (default 10 s).
	StepTimeout time.Duration
	// NoProbes skips the endpoint probes (they connect to the
	// configured Elasticsearch and forward servers and send one canary
	// chunk to each forward server).
	NoProbes bool
	// SelfPID is left out of discovery (logdoctor itself).
	SelfPID int
	// Sockets reads a namespace's TCP table; nil reads /proc/PID/net.
	Sockets SocketReader
	// Resolver resolves configured host names for the socket view.
	Resolver   sockstat.Resolver
	Thresholds sockstat.Thresholds
	Now        func() time.Time
}

// Defaults of a zero Options field (and of the command's flags).
const (
	DefaultProcRoot    = "/proc"
	DefaultInterval    = 5 * time.Second
	DefaultStepTimeout = 10 * time.Second
)

func (o *Options) defaults() {
	if o.ProcRoot == "" {
		o.ProcRoot = DefaultProcRoot
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.Sockets == nil {
		o.Sockets = procSockets(o.ProcRoot)
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver.LookupNetIP
	}
	if o.Thresholds == (sockstat.Thresholds{}) {
		o.Thresholds = sockstat.DefaultThresholds()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// ErrNoShipper is returned when discovery finds nothing to diagnose.
var ErrNoShipper = errors.New("no Fluentd or Fluent Bit process found")

// Step is one step of a target's diagnosis and how it went.
type Step struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, skipped or failed
	Detail string `json:"detail,omitempty"`
	MS     int64  `json:"duration_ms"`
}

// Step statuses.
const (
	StepOK      = "ok"
	StepSkipped = "skipped"
	StepFailed  = "failed"
)

// Target is everything doctor learned about one shipper.
type Target struct {
	Process   Process         `json:"process"`
	Net       *Net            `json:"network_namespace,omitempty"`
	Config    *ConfigSource   `json:"config,omitempty"`
	Files     []shipconf.File `json:"config_files,omitempty"`
	EnvUsed   []string        `json:"env_used,omitempty"`
	Endpoints Endpoints       `json:"endpoints"`
	Steps     []Step          `json:"steps"`
	Sockets   *SocketsView    `json:"sockets,omitempty"`
	Monitor   *MetricsView    `json:"metrics,omitempty"`
	Trends    []*OutputTrend  `json:"outputs,omitempty"`
	ES        []*ESProbe      `json:"es_probes,omitempty"`
	Forward   []*ForwardProbe `json:"forward_probes,omitempty"`
	UDP       []*UDPView      `json:"udp_inputs,omitempty"`
	Log       *shipperLog     `json:"log,omitempty"`
	LogEvents []logEvent      `json:"log_events,omitempty"`
	Ifaces    []Interface     `json:"interfaces,omitempty"`
	Causes    []*Cause        `json:"-"`
	cfg       *shipconf.Config
	files     TargetFiles
	sources   map[string][]string // configuration files' lines, redacted
}

// MetricsView is the shipper's monitoring endpoint and its samples.
type MetricsView struct {
	Kind    string   `json:"kind"`
	Addr    string   `json:"addr"`
	Reach   string   `json:"reach"`
	Samples []Sample `json:"samples"`
	Health  string   `json:"health,omitempty"`
}

// Result is doctor's data: the diagnosis and every target.
type Result struct {
	Diagnosis     []*Cause  `json:"diagnosis"`
	Targets       []*Target `json:"targets"`
	NotUnderstood []Process `json:"not_understood,omitempty"`
	IntervalMS    int64     `json:"interval_ms"`
}

// Run finds the shipper(s) and diagnoses each. The error is for what
// stops it before any diagnosis (no such process, nothing found);
// everything after is findings and steps.
func Run(ctx context.Context, o Options) (*Result, []report.Finding, error) {
	o.defaults()
	var procs []Process
	if o.PID > 0 {
		p, err := Find(o.ProcRoot, o.PID, o.Shipper)
		if err != nil {
			return nil, nil, err
		}
		procs = []Process{p}
	} else {
		all, err := Discover(o.ProcRoot, o.SelfPID)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range all {
			if o.Shipper == "" || p.Kind == o.Shipper {
				procs = append(procs, p)
			}
		}
	}
	res := &Result{IntervalMS: o.Interval.Milliseconds(), Targets: []*Target{}, Diagnosis: []*Cause{}}
	var findings []report.Finding
	var run []Process
	for _, p := range procs {
		if !p.Kind.Understood() {
			res.NotUnderstood = append(res.NotUnderstood, p)
			findings = append(findings, report.Finding{ID: FindingNotUnderstood, Severity: report.Info,
				Summary:  fmt.Sprintf("%s (pid %d) is %s, which logdoctor finds but does not diagnose yet", p.Comm, p.PID, kindName(p.Kind)),
				Evidence: map[string]any{"pid": p.PID, "kind": string(p.Kind), "cmdline": p.Cmdline},
				Remedy:   "Check its sockets with `logdoctor sockets --pid " + fmt.Sprint(p.PID) + "` and its Elasticsearch with `logdoctor es probe`."})
			continue
		}
		run = append(run, p)
	}
	if len(run) == 0 && len(res.NotUnderstood) == 0 {
		what := "Fluentd or Fluent Bit"
		if o.Shipper != "" {
			what = kindName(o.Shipper)
		}
		return nil, nil, fmt.Errorf("%w: no %s process under %s (give --pid, or --proc-root for a node's /proc)", ErrNoShipper, what, o.ProcRoot)
	}
	targets := make([]*Target, len(run))
	perTarget := make([][]report.Finding, len(run))
	var wg sync.WaitGroup
	for i, p := range run {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &targetRun{o: &o, proc: p, t: &Target{Process: p, Steps: []Step{}}}
			perTarget[i] = tr.run(ctx)
			targets[i] = tr.t
		}()
	}
	wg.Wait()
	for i, t := range targets {
		res.Targets = append(res.Targets, t)
		findings = append(findings, perTarget[i]...)
		res.Diagnosis = append(res.Diagnosis, t.Causes...)
	}
	sort.SliceStable(res.Diagnosis, func(i, j int) bool {
		a, b := res.Diagnosis[i], res.Diagnosis[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		return a.Live && !b.Live
	})
	for i, c := range res.Diagnosis {
		c.Rank = i + 1
	}
	return res, findings, nil
}

func kindName(k Kind) string {
	switch k {
	case Fluentd:
		return "Fluentd"
	case FluentBit:
		return "Fluent Bit"
	case Vector:
		return "Vector"
	case Logstash:
		return "Logstash"
	}
	return string(k)
}

// targetRun is one shipper's diagnosis in progress.
type targetRun struct {
	o     *Options
	proc  Process
	t     *Target
	net   *Net
	peers []*Peer
	env   map[string]string
	mu    sync.Mutex
}

// step runs fn with the step timeout and records how it went; fn returns
// a detail and an error, or errSkip-wrapped reasons for a skip.
func (tr *targetRun) step(ctx context.Context, name string, timeout time.Duration, fn func(ctx context.Context) (string, error)) bool {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := tr.o.Now()
	detail, err := fn(sctx)
	st := Step{Name: name, Status: StepOK, Detail: detail, MS: tr.o.Now().Sub(start).Milliseconds()}
	var sk *skip
	switch {
	case errors.As(err, &sk):
		st.Status, st.Detail = StepSkipped, sk.why
	case err != nil:
		st.Status, st.Detail = StepFailed, report.Redact(err.Error())
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(sctx.Err(), context.DeadlineExceeded) {
			st.Detail = fmt.Sprintf("did not finish within %s: %s", timeout, st.Detail)
		}
	}
	tr.mu.Lock()
	tr.t.Steps = append(tr.t.Steps, st)
	tr.mu.Unlock()
	return st.Status == StepOK
}

// skip marks a step that cannot run, with the reason.
type skip struct{ why string }

func (s *skip) Error() string { return s.why }

func skipped(format string, a ...any) error { return &skip{why: fmt.Sprintf(format, a...)} }

// run diagnoses one shipper and returns its findings.
func (tr *targetRun) run(ctx context.Context) []report.Finding {
	o, t := tr.o, tr.t
	netPID := tr.proc.NetPID()
	t.files = NewTargetFiles(o.ProcRoot, tr.proc.PID)
	var findings []report.Finding
	var cfgFindings func(opts configcheck.Options) []report.Finding

	// 1. Its configuration, read where it reads it.
	tr.step(ctx, "configuration", o.StepTimeout, func(ctx context.Context) (string, error) {
		env, envErr := readEnviron(o.ProcRoot, tr.proc.PID)
		if envErr != nil {
			env = map[string]string{}
		}
		tr.env = env
		if o.ConfigFile == "" {
			// /proc/PID/root and environ are open only to the shipper's
			// user or CAP_SYS_PTRACE: say so rather than "not found".
			if _, err := os.ReadDir(t.files.Root); errors.Is(err, fs.ErrPermission) || errors.Is(envErr, fs.ErrPermission) {
				return "", skipped("cannot read /proc/%d/root and environ (permission denied): run logdoctor as the shipper's user or as root (CAP_SYS_PTRACE), or give --config", tr.proc.PID)
			}
		}
		src := ConfigSource{Path: o.ConfigFile, From: "--config"}
		files := shipconf.Files(t.files)
		if o.ConfigFile != "" {
			files = shipconf.OSFiles{}
		} else {
			if commandLinePipeline(tr.proc) {
				return "", skipped("Fluent Bit was given its pipeline on the command line (-i/-o); logdoctor reads configuration files only")
			}
			var ok bool
			if src, ok = locateConfig(tr.proc, env, t.files); !ok {
				return "", skipped("no configuration found: no -c on its command line, no FLUENT_CONF, none of %s in its file system; give --config",
					strings.Join(src.Tried, ", "))
			}
		}
		t.Config = &src
		format := shipconf.Format("")
		if tr.proc.Kind == FluentBit {
			format = shipconf.FormatFluentBit
		} else {
			format = shipconf.FormatFluentd
		}
		rec := &recordingFiles{Files: files, read: map[string][]byte{}}
		cfg, err := shipconf.Load(src.Path, shipconf.Options{Format: format, Env: env, Files: rec})
		if err != nil {
			return "", err
		}
		t.cfg = cfg
		t.Files = cfg.Files
		t.EnvUsed = envNames(cfg)
		t.sources = redactSources(cfg, rec.read)
		t.Endpoints = FindEndpoints(cfg)
		cfgFindings = func(opts configcheck.Options) []report.Finding { return configcheck.Check(cfg, opts) }
		detail := fmt.Sprintf("%s (%s): %d file(s), %d plugin(s)", src.Path, src.From, len(cfg.Files), len(cfg.Plugins))
		if len(t.EnvUsed) > 0 {
			detail += fmt.Sprintf("; environment from /proc/%d/environ: %s", tr.proc.PID, strings.Join(t.EnvUsed, ", "))
		}
		return detail, nil
	})

	// 2. Its network namespace: how its addresses are reached, and the
	// MTU of its interfaces.
	mtu, iface := 0, ""
	tr.step(ctx, "network namespace", o.StepTimeout, func(ctx context.Context) (string, error) {
		tr.net = OpenNet(o.ProcRoot, netPID)
		t.Net = tr.net
		detail := fmt.Sprintf("%s (%s)", tr.net.ID, tr.net.Reach)
		ifs, err := tr.net.Interfaces()
		if err != nil {
			return detail + "; interface MTUs not read: " + err.Error(), nil
		}
		t.Ifaces = ifs
		for _, i := range ifs {
			if i.Up && i.MTU > 0 && (mtu == 0 || i.MTU < mtu) {
				mtu, iface = i.MTU, i.Name
			}
		}
		if mtu > 0 {
			detail += fmt.Sprintf("; smallest MTU %d (%s)", mtu, iface)
		}
		return detail, nil
	})
	if tr.net == nil {
		tr.net = &Net{Reach: ReachLoopback, mine: map[netip.AddrPort]bool{}}
	}

	// 3. The configured endpoints as socket peers.
	if t.cfg != nil {
		var skippedPeers []string
		tr.peers, skippedPeers = configuredPeers(ctx, t.Endpoints, o.Resolver)
		t.Sockets = &SocketsView{Peers: tr.peers, Skipped: skippedPeers}
	} else {
		t.Sockets = &SocketsView{Peers: []*Peer{}}
	}

	// 4. Sample, probe, sample again.
	findings = append(findings, tr.sampleAndProbe(ctx)...)

	// 5. The configuration rules, with what the probes and the
	// namespace told about the world.
	if cfgFindings != nil {
		opts := configcheck.Options{MTU: mtu, MTUSource: "interface " + iface + " in the shipper's network namespace"}
		if mtu == 0 {
			opts.MTU, opts.MTUSource = configcheck.DefaultMTU, "default (the namespace's interfaces could not be read)"
		}
		opts.ESVersion, opts.ESMaxContentLength = esFacts(t.ES)
		findings = append(findings, cfgFindings(opts)...)
	}
	for i := range findings {
		if findings[i].Evidence == nil {
			findings[i].Evidence = map[string]any{}
		}
		findings[i].Evidence["target"] = tr.proc.Name()
	}
	t.Causes = diagnose(t, findings)
	return findings
}

// sampleAndProbe takes the first sample of everything that moves, runs
// the probes while the interval passes, and takes the last sample.
func (tr *targetRun) sampleAndProbe(ctx context.Context) []report.Finding {
	o, t := tr.o, tr.t
	var findings []report.Finding
	netPID := tr.proc.NetPID()

	// The shipper's log: where it says why an output fails.
	tr.step(ctx, "shipper log", o.StepTimeout, func(ctx context.Context) (string, error) {
		t.Log = openLog(o.ProcRoot, tr.proc, t.files)
		if t.Log == nil {
			return "", skipped("no log file on its command line and its output is not a file (a container's log goes to the runtime)")
		}
		if err := t.Log.begin(); err != nil {
			t.Log = nil
			return "", err
		}
		return fmt.Sprintf("%s (%s)", t.Log.Path, t.Log.From), nil
	})

	// Metrics: the monitoring endpoint the configuration enables.
	var mv *MetricsView
	var hc *http.Client
	var fbEP fluentBitEndpoints
	mon := t.Endpoints.Monitor
	sampleMetrics := func(ctx context.Context, first bool) Sample {
		var s Sample
		var err error
		if mon.Kind == "monitor_agent" {
			s, _, err = sampleFluentd(ctx, hc, mon.Addr)
		} else {
			s, _, err = sampleFluentBit(ctx, hc, mon.Addr, &fbEP, first)
		}
		s.At = o.Now()
		if err != nil {
			s.Error = report.Redact(err.Error())
		}
		return s
	}
	metricsTimeout := min(o.StepTimeout, max(o.Interval/2, time.Second))
	tr.step(ctx, "metrics (first sample)", metricsTimeout, func(ctx context.Context) (string, error) {
		switch {
		case t.cfg == nil:
			return "", skipped("no configuration: the monitoring address is not known")
		case mon == nil && tr.proc.Kind == Fluentd:
			return "", skipped("monitoring is not enabled: no monitor_agent source in the configuration (config.no_monitoring)")
		case mon == nil:
			return "", skipped("monitoring is not enabled: HTTP_Server is off in [SERVICE] (config.no_monitoring)")
		}
		hc = &http.Client{Transport: &http.Transport{DialContext: tr.net.DialContext, DisableKeepAlives: true}, Timeout: metricsTimeout}
		mv = &MetricsView{Kind: mon.Kind, Addr: mon.Addr, Reach: tr.net.Reach}
		t.Monitor = mv
		s := sampleMetrics(ctx, true)
		mv.Samples = append(mv.Samples, s)
		if s.Error != "" {
			return "", fmt.Errorf("%s at %s (%s, configured at %s): %s", mon.Kind, mon.Addr, tr.net.Reach, at(mon.At), s.Error)
		}
		mv.Health = fbEP.health
		return fmt.Sprintf("%s at %s (configured at %s), reached %s: %d plugins", mon.Kind, mon.Addr, at(mon.At), tr.net.Reach, len(s.Plugins)), nil
	})
	metricsOK := mv != nil && len(mv.Samples) == 1 && mv.Samples[0].Error == ""

	// Sockets and kernel counters, first look.
	var kFirst *udpfrag.KernelSnapshot
	tr.step(ctx, "sockets (first sample)", o.StepTimeout, func(ctx context.Context) (string, error) {
		res, src, owned, err := tr.sampleSockets(ctx)
		if err != nil {
			return "", err
		}
		t.Sockets.first, t.Sockets.Source, t.Sockets.Owned = res, src, owned
		return fmt.Sprintf("%s: %d socket(s) held by pid %s", src.Why, owned, pidList(tr.proc.PIDs())), nil
	})
	if len(t.Endpoints.UDP) > 0 {
		tr.step(ctx, "udp counters (first sample)", o.StepTimeout, func(ctx context.Context) (string, error) {
			k, err := readKernelUDP(o.ProcRoot, netPID, t.Endpoints.UDP)
			if err != nil {
				return "", err
			}
			kFirst = k
			return fmt.Sprintf("/proc/%d/net/snmp and net/udp{,6}", netPID), nil
		})
	}
	fbStorage := tr.fluentBitStorage()
	storage := map[string][2]float64{}
	for id, v := range fbStorage() {
		storage[id] = [2]float64{v, 0}
	}
	start := o.Now()

	// Probes run while the interval passes.
	var pwg sync.WaitGroup
	if !o.NoProbes && t.cfg != nil {
		probeTimeout := o.StepTimeout + o.Interval
		for _, e := range t.Endpoints.ES {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				tr.step(ctx, "es probe "+strings.Join(e.URLs, ","), probeTimeout, func(ctx context.Context) (string, error) {
					p := probeES(ctx, e, tr.net, t.files, o.Interval, min(o.StepTimeout, 5*time.Second))
					tr.mu.Lock()
					t.ES = append(t.ES, p)
					tr.mu.Unlock()
					if p.Error != "" {
						return "", errors.New(p.Error)
					}
					return fmt.Sprintf("output %s (%s), reached %s: %d finding(s)", e.Name, e.At, tr.net.Reach, len(p.findings)), nil
				})
			}()
		}
		for _, f := range t.Endpoints.Forward {
			for _, s := range f.Servers {
				pwg.Add(1)
				go func() {
					defer pwg.Done()
					tr.step(ctx, "forward probe "+s.Addr, probeTimeout, func(ctx context.Context) (string, error) {
						p := probeForward(ctx, f, s, tr.net, t.files, min(o.StepTimeout, max(o.Interval/2, 2*time.Second)))
						p.pos = s.At
						tr.mu.Lock()
						t.Forward = append(t.Forward, p)
						tr.mu.Unlock()
						if p.Error != "" {
							return "", errors.New(p.Error)
						}
						return fmt.Sprintf("output %s (%s), reached %s: %d finding(s)", f.Name, p.At, tr.net.Reach, len(p.findings)), nil
					})
				}()
			}
		}
	} else if o.NoProbes {
		tr.step(ctx, "endpoint probes", o.StepTimeout, func(context.Context) (string, error) {
			return "", skipped("--no-probes")
		})
	}

	// Intermediate metric samples draw the chart; the first and the last
	// carry the findings.
	const steps = 4
	for i := 1; i <= steps; i++ {
		wait := start.Add(o.Interval * time.Duration(i) / steps).Sub(o.Now())
		if wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			break
		}
		if metricsOK && i < steps {
			sctx, cancel := context.WithTimeout(ctx, metricsTimeout)
			mv.Samples = append(mv.Samples, sampleMetrics(sctx, false))
			cancel()
		}
	}
	if metricsOK {
		tr.step(ctx, "metrics (last sample)", metricsTimeout, func(ctx context.Context) (string, error) {
			s := sampleMetrics(ctx, false)
			mv.Samples = append(mv.Samples, s)
			if s.Error != "" {
				return "", errors.New(s.Error)
			}
			return fmt.Sprintf("%d samples over %s", len(mv.Samples), o.Now().Sub(start).Round(time.Millisecond)), nil
		})
	}
	if t.Sockets.first != nil {
		tr.step(ctx, "sockets (last sample)", o.StepTimeout, func(ctx context.Context) (string, error) {
			res, _, _, err := tr.sampleSockets(ctx)
			if err != nil {
				return "", err
			}
			t.Sockets.last = res
			t.Sockets.Totals = res.Totals
			t.Sockets.attach()
			return fmt.Sprintf("%d configured peer(s)", len(t.Sockets.Peers)), nil
		})
	}
	if kFirst != nil {
		tr.step(ctx, "udp counters (last sample)", o.StepTimeout, func(ctx context.Context) (string, error) {
			k, err := readKernelUDP(o.ProcRoot, netPID, t.Endpoints.UDP)
			if err != nil {
				return "", err
			}
			mtu, iface := 0, ""
			for _, i := range t.Ifaces {
				if i.Up && i.MTU > 0 && (mtu == 0 || i.MTU < mtu) {
					mtu, iface = i.MTU, i.Name
				}
			}
			t.UDP = udpViews(t.Endpoints.UDP, kFirst.Delta(k), mtu, iface)
			return fmt.Sprintf("%d UDP input(s)", len(t.UDP)), nil
		})
	}
	for id, v := range fbStorage() {
		s := storage[id]
		s[1] = v
		storage[id] = s
	}
	if t.Log != nil {
		_ = t.Log.end()
		t.LogEvents = t.Log.events(tr.proc.Kind)
	}
	pwg.Wait()

	// Findings from what was sampled and probed.
	if mv != nil && t.cfg != nil {
		t.Trends = trends(t.cfg, mv.Samples, storage)
		attachLog(tr.proc.Kind, t.Trends, t.LogEvents)
		findings = append(findings, shipperFindings(tr.proc.Kind, t.Trends)...)
	}
	findings = append(findings, judgeSockets(t.Sockets.findings(o.Thresholds), t.Trends)...)
	findings = append(findings, udpFindings(t.UDP)...)
	sort.Slice(t.ES, func(i, j int) bool { return t.ES[i].Output < t.ES[j].Output })
	for _, p := range t.ES {
		findings = append(findings, p.esFindings(tr.net)...)
	}
	sort.Slice(t.Forward, func(i, j int) bool { return t.Forward[i].Addr < t.Forward[j].Addr })
	for _, p := range t.Forward {
		findings = append(findings, p.fwdFindings()...)
	}
	return findings
}

// judgeSockets weighs the socket findings of an output against its own
// counters: fluent-plugin-elasticsearch opens a connection per request,
// so between flushes a healthy output has no ESTABLISHED connection and a
// trail of TIME_WAIT. When the output delivered during the interval and
// did not retry (or delivered before, does not retry and has nothing
// queued), that is its pattern, not a stall: info, with the deliveries as
// evidence.
func judgeSockets(fs []report.Finding, ts []*OutputTrend) []report.Finding {
	for i := range fs {
		f := &fs[i]
		switch f.ID {
		case sockstat.FindingNoEstablished, sockstat.FindingNoConnection, sockstat.FindingTimeWaitChurn:
		default:
			continue
		}
		out, _ := f.Evidence["output"].(string)
		for _, t := range ts {
			if t.Output != out || t.Retrying || t.Stalled || t.Writes == nil {
				continue
			}
			idle := t.Writes.Last > 0 && (t.QueueLen == nil || t.QueueLen.Last == 0)
			if t.Writes.Change <= 0 && !idle {
				continue
			}
			f.Severity = report.Info
			f.Evidence["delivering"] = true
			f.Evidence["writes_during_interval"] = t.Writes.Change
			if t.Writes.Change > 0 {
				f.Summary += fmt.Sprintf("; the output delivered %.0f writes without a retry during the interval, so this is its connection-per-request pattern, not a stall", t.Writes.Change)
			} else {
				f.Summary += fmt.Sprintf("; the output has delivered (%.0f writes), does not retry and has no chunk waiting, so this is its connection-per-request pattern between flushes, not a stall", t.Writes.Last)
			}
		}
	}
	return fs
}

// fluentBitStorage returns a function measuring the chunk files of each
// Fluent Bit input that stores on disk, by input instance name.
func (tr *targetRun) fluentBitStorage() func() map[string]float64 {
	none := func() map[string]float64 { return nil }
	c := tr.t.cfg
	if c == nil || c.Shipper != shipconf.FluentBit || c.Service == nil {
		return none
	}
	sp := c.Service.Get("storage.path")
	if sp == nil || sp.State != shipconf.Known || sp.Value == "" {
		return none
	}
	var ids []string
	for _, in := range c.Inputs() {
		st := c.Setting(in, nil, "storage.type")
		if st == nil || !strings.EqualFold(st.Value, "filesystem") {
			continue
		}
		id := in.ID
		if id == "" {
			id = fmt.Sprintf("%s.%d", in.Type, in.Index)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return none
	}
	return func() map[string]float64 {
		out := map[string]float64{}
		for _, id := range ids {
			n, _, err := tr.t.files.DirSize(filepath.Join(sp.Value, id), 100000)
			if err == nil {
				out[id] = float64(n)
			}
		}
		return out
	}
}

func pidList(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ",")
}

// envNames lists the environment variables the configuration refers to.
func envNames(c *shipconf.Config) []string {
	seen := map[string]bool{}
	var walk func(s *shipconf.Section)
	walk = func(s *shipconf.Section) {
		if s == nil {
			return
		}
		for _, p := range s.Params {
			for _, e := range p.Env {
				seen[e] = true
			}
		}
		for _, sub := range s.Sections {
			walk(sub)
		}
	}
	for _, p := range c.Plugins {
		walk(p.Section)
	}
	walk(c.Service)
	out := make([]string, 0, len(seen))
	for e := range seen {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// recordingFiles keeps what the loader read, for the excerpts of the
// report (redacted before they are kept).
type recordingFiles struct {
	shipconf.Files
	mu   sync.Mutex
	read map[string][]byte
}

func (r *recordingFiles) ReadFile(name string, max int64) ([]byte, error) {
	b, err := r.Files.ReadFile(name, max)
	if err == nil {
		r.mu.Lock()
		r.read[name] = b
		r.mu.Unlock()
	}
	return b, err
}

// redactSources splits the files read into lines, hiding the value of
// every line that sets a secret (and anything Redact recognises).
func redactSources(c *shipconf.Config, read map[string][]byte) map[string][]string {
	secretLines := map[string]map[int]bool{}
	var walk func(s *shipconf.Section)
	walk = func(s *shipconf.Section) {
		if s == nil {
			return
		}
		for _, p := range s.Params {
			if configcheck.IsSecretName(p.Name) {
				if secretLines[p.Pos.File] == nil {
					secretLines[p.Pos.File] = map[int]bool{}
				}
				secretLines[p.Pos.File][p.Pos.Line] = true
			}
		}
		for _, sub := range s.Sections {
			walk(sub)
		}
	}
	for _, p := range c.Plugins {
		walk(p.Section)
	}
	walk(c.Service)
	out := map[string][]string{}
	for name, b := range read {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		for i, l := range lines {
			if secretLines[name][i+1] {
				lines[i] = maskValue(l)
				continue
			}
			lines[i] = report.Redact(l)
		}
		out[name] = lines
	}
	return out
}

// maskValue keeps a line's indentation and key and hides its value.
func maskValue(line string) string {
	trimmed := strings.TrimLeft(line, " \t")
	indent := line[:len(line)-len(trimmed)]
	key := trimmed
	if i := strings.IndexAny(trimmed, " \t:="); i >= 0 {
		key = trimmed[:i]
	}
	return indent + key + " xxxxx"
}
