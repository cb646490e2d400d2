package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/logdoctor/logdoctor/internal/buildinfo"
	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/exporter"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// ExporterOptions are the flags of `logdoctor exporter`.
type ExporterOptions struct {
	Listen        string
	WebConfig     string
	Interval      time.Duration
	Timeout       time.Duration
	ProbeInterval time.Duration
	Duration      time.Duration

	ProcRoot string
	PID      int
	Source   string
	Peers    []string
	Aliases  []string
	MaxPeers int
	UDPPorts []int

	Discover bool
	Shippers []string // --shipper-pid [NAME=]PID
	Configs  []string

	ForwardProbes     []string
	ForwardAckTimeout time.Duration
	ForwardTag        string
	ForwardSharedKey  string
	ForwardTLS        bool
	ForwardInsecure   bool

	// ES is --es (old name --es-probe): the clusters probed every
	// --probe-interval, and their credentials.
	ES ESConn

	// Set by tests, not flags.
	OpenDiag OpenDiag
	Resolver sockstat.Resolver
}

// newExporterCmd builds `exporter`; runF, when set, gets the parsed
// options instead of the exporter serving.
func newExporterCmd(g *Globals, runF func(ExporterOptions) error) *cobra.Command {
	o := &ExporterOptions{Listen: exporter.DefaultListen, ProcRoot: "/proc"}
	cmd := &cobra.Command{
		Use:   "exporter",
		Short: "Serve logdoctor's diagnoses as Prometheus metrics, refreshed on an interval",
		Long: `exporter runs what sockets, udp-frag's kernel counters, config check, forward probe
and es probe look at, every --interval, and serves the results on /metrics in
the Prometheus text format (with /healthz beside it), so that a fleet's
Prometheus can graph and alert on them: socket states and queues per peer
(logdoctor_tcp_*), UDP receive errors (logdoctor_udp_*, logdoctor_kernel_*),
forward acks (logdoctor_forward_*), Elasticsearch write rejections
(logdoctor_es_*), and every finding as logdoctor_finding{id,severity,target}.
A scrape never waits for the work: each source keeps its last sample and
reports when it last succeeded (logdoctor_source_*).

It listens on 127.0.0.1:9731 unless --listen says otherwise. TLS and basic
auth come from --web.config.file, the web configuration file of the
Prometheus exporter toolkit (tls_server_config, basic_auth_users).
docs/deploy/ has a DaemonSet, a PodMonitor and alerting rules.`,
		Example: `  logdoctor exporter --peer es --peer forward
  logdoctor exporter --listen 0.0.0.0:9731 --web.config.file web.yml --pid $(pidof fluentd) --config /etc/fluent/fluent.conf
  logdoctor exporter --forward-probe 127.0.0.1:24224 --es-probe http://es:9200 --probe-interval 1m`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string) error {
			// It prints no report and findings never set its exit code:
			// saying so beats serving metrics to someone who asked for
			// JSON.
			for _, name := range []string{"output", "fail-on"} {
				if cmd.Flags().Changed(name) {
					return usageErrorf("--%s does not apply to exporter: it prints no report and findings never change its exit code (they are served as logdoctor_finding on /metrics; --html writes a page of them)", name)
				}
			}
			if !cmd.Flags().Changed("timeout") {
				o.Timeout = min(o.Timeout, o.Interval)
			}
			if o.ForwardSharedKey == "" {
				o.ForwardSharedKey = os.Getenv("LOGDOCTOR_FORWARD_SHARED_KEY")
			}
			if runF != nil {
				return runF(*o)
			}
			return runExporter(cmd.Context(), *o, g.IO.Err, g.html)
		}),
	}
	f := cmd.Flags()
	addrVar(f, &o.Listen, "listen", o.Listen, true, false, "serve /metrics and /healthz on HOST:PORT")
	f.StringVar(&o.WebConfig, "web.config.file", "", "exporter-toolkit web configuration file for TLS and basic auth (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md)")
	durVar(f, &o.Interval, "interval", 15*time.Second, 100*time.Millisecond, "a duration of 100ms or more, like 15s", "how often sockets, UDP counters, configurations and shipper metrics are read")
	durVar(f, &o.Timeout, "timeout", 10*time.Second, time.Millisecond, wantPositiveDur, "how long one read of a source may take before it counts as failed (logdoctor_source_errors_total{kind=\"timeout\"})")
	durVar(f, &o.ProbeInterval, "probe-interval", time.Minute, 100*time.Millisecond, "a duration of 100ms or more, like 1m", "how often --forward-probe and --es-probe targets are probed")
	durVar(f, &o.Duration, "duration", 0, 0, wantDurOrZero("until SIGINT or SIGTERM"), "stop after this long (0: until SIGINT or SIGTERM)")

	f.StringVar(&o.ProcRoot, "proc-root", o.ProcRoot, "proc tree to read (the host's /proc mounted in a container, e.g. /host/proc)")
	intVar(f, &o.PID, "pid", 0, 0, math.MaxInt32, "a process id (0: this process's namespace)", "read the sockets and UDP counters of this process's network namespace (e.g. --pid 1 for the host's, from a pod with hostPID)")
	enumVar(f, &o.Source, "source", sourceAuto, []string{sourceAuto, sourceNetlink, sourceProc}, "where to read socket tables: netlink (sock_diag, with tcp_info), proc (/proc/PID/net/tcp{,6}), or auto")
	f.StringArrayVar(&o.Peers, "peer", nil, "export only sockets to this peer, and its socket count by state even when 0 (repeatable): "+sockstat.PeerForms)
	f.StringArrayVar(&o.Aliases, "alias", nil, "define a peer alias as name=port[,port] (repeatable; overrides a built-in of the same name)")
	intVar(f, &o.MaxPeers, "max-peers", exporter.DefaultMaxPeers, 1, 100000, "a number of peers from 1 to 100000", "peer label values per socket table; the peers with fewer sockets are summed into peer=\"other\"")
	portsVarP(f, &o.UDPPorts, "udp-port", "", nil, "export the drops and queue of the UDP sockets bound to this port (repeatable or comma-separated)")
	f.BoolVar(&o.Discover, "discover", true, "find Fluentd and Fluent Bit processes under --proc-root (as doctor does) and watch each one's sockets, UDP inputs, configuration and own metrics")
	addVar(f, &shipperList{p: &o.Shippers}, "shipper-pid", "", "also export the sockets and UDP counters of this shipper's network namespace, labelled shipper=NAME (repeatable; NAME defaults to the process's name)")
	f.StringArrayVar(&o.Configs, "config", nil, "a Fluentd or Fluent Bit configuration file whose config check findings are exported, read again when it changes (repeatable)")

	addVar(f, &listVar{p: &o.ForwardProbes, want: wantDial, typ: "host:port", check: func(s string) error { return checkHostPort(s, 1) }},
		"forward-probe", "", "send a canary chunk with an ack request to this forward input every --probe-interval (repeatable)")
	durVar(f, &o.ForwardAckTimeout, "forward-ack-timeout", 5*time.Second, time.Millisecond, wantPositiveDur, "how long a forward probe waits for the ack")
	nonEmptyVar(f, &o.ForwardTag, "forward-tag", "logdoctor.exporter", "a non-empty tag", "tag of the forward probe's canary events (route it to a null output on the receiver)")
	f.StringVar(&o.ForwardSharedKey, "forward-shared-key", "", "shared key for the forward probe's handshake (or LOGDOCTOR_FORWARD_SHARED_KEY)")
	f.BoolVar(&o.ForwardTLS, "forward-tls", false, "probe forward inputs over TLS")
	f.BoolVar(&o.ForwardInsecure, "forward-insecure", false, "with --forward-tls, do not verify the receiver's certificate")

	o.ES.addFlags(f, esURLFlag{usage: "probe this Elasticsearch or OpenSearch URL every --probe-interval (repeatable or comma-separated)"},
		map[string]string{"es": "es-probe"})
	return cmd
}

// runExporter builds the sources, takes a first sample of each, and serves
// until ctx is done or --duration passes.
// html, when set (--html), names a page rewritten after every --interval
// and at the end with the findings the exporter holds and its sources'
// state.
func runExporter(ctx context.Context, o ExporterOptions, stderr interface{ Write([]byte) (int, error) }, html string) (err error) {
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	if err := exporter.ValidateWebConfig(o.WebConfig); err != nil {
		return fmt.Errorf("--web.config.file: %w", err)
	}
	// The exporter's heap is small and grows in one burst per interval
	// (a 30,000-socket table is ~8 MB): collecting at 25% growth instead
	// of 100% keeps peak RSS about 10 MiB lower for a few ms of CPU per
	// sample (bench/exporter.sh). GOGC still wins when set.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(25))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng := exporter.New(exporter.Options{Logger: log})
	closers, err := addExporterSources(ctx, eng, o)
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(eng,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logdoctor_exporter_build_info", Help: "1, labelled with logdoctor's version and commit.",
			ConstLabels: prometheus.Labels{"version": buildinfo.Version, "commit": buildinfo.Commit}}, func() float64 { return 1 }))

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	scheme := "http"
	if o.WebConfig != "" {
		scheme = "http(s), as " + o.WebConfig + " says,"
	}
	fmt.Fprintf(stderr, "logdoctor exporter: serving %s on %s (/metrics, /healthz)\n", scheme, ln.Addr())
	// Serve at once: the first samples arrive as each source finishes,
	// and until then a scrape shows the sources without a success yet.
	done := make(chan struct{})
	go func() {
		defer close(done)
		eng.Run(ctx)
	}()
	if html != "" {
		started := time.Now()
		write := func() error {
			return writeHTMLFile(html, exporterReport(eng, ln.Addr().String(), started, time.Now()))
		}
		pageDone := make(chan struct{})
		go func() {
			defer close(pageDone)
			tick := time.NewTicker(o.Interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if err := write(); err != nil {
						log.Warn("cannot write the page", "error", err)
					}
				}
			}
		}()
		defer func() {
			<-pageDone
			if werr := write(); err == nil {
				err = werr
			}
		}()
	}
	err = exporter.Serve(ctx, ln, exporter.Handler(reg, log), o.WebConfig, log)
	<-done
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// addExporterSources turns the flags into sources. The closers release
// netlink sockets.
func addExporterSources(ctx context.Context, eng *exporter.Engine, o ExporterOptions) ([]func(), error) {
	var closers []func()
	if _, err := os.Stat(o.ProcRoot); err != nil {
		return nil, fmt.Errorf("--proc-root: %w", err)
	}
	if o.Timeout > o.Interval {
		return nil, usageErrorf("--timeout %s is longer than --interval %s", o.Timeout, o.Interval)
	}
	resolve := orSystemResolver(o.Resolver)
	aliases, specs, err := peerFlags(ctx, o.Peers, o.Aliases, resolve)
	if err != nil {
		return nil, err
	}
	udpPorts := make([]uint16, len(o.UDPPorts))
	for i, p := range o.UDPPorts {
		udpPorts[i] = uint16(p)
	}
	shippers, err := parseShippers(o.ProcRoot, o.Shippers)
	if err != nil {
		return nil, err
	}
	sched := exporter.Schedule{Interval: o.Interval, Timeout: o.Timeout}
	ephemeral := sockstat.ReadEphemeral(o.ProcRoot)
	addNetns := func(name string, pid int) error {
		src, err := openTableSource(SocketsOptions{ProcRoot: o.ProcRoot, PID: pid, Source: o.Source, OpenDiag: o.OpenDiag}, pidRoot(o.ProcRoot, pid))
		if err != nil {
			return err
		}
		closers = append(closers, src.close)
		read := func() ([]sockstat.Socket, error) {
			socks, _, err := src.read(nil)
			return socks, err
		}
		eng.Add(exporter.NewSockets(exporter.SocketsConfig{Shipper: name, Read: read, Peers: specs, Aliases: aliases,
			Ephemeral: ephemeral, Thresholds: sockstat.DefaultThresholds(), MaxPeers: o.MaxPeers}), sched)
		eng.Add(exporter.NewUDP(exporter.UDPConfig{Shipper: name, ProcRoot: o.ProcRoot, PID: pid, Ports: udpPorts}), sched)
		return nil
	}
	if o.PID > 0 {
		if _, err := os.Stat(pidRoot(o.ProcRoot, o.PID)); err != nil {
			return closers, fmt.Errorf("--pid %d: %w", o.PID, err)
		}
	}
	if err := addNetns("", o.PID); err != nil {
		return closers, err
	}
	for _, s := range shippers {
		if err := addNetns(s.name, s.pid); err != nil {
			return closers, fmt.Errorf("--shipper-pid %s=%d: %w", s.name, s.pid, err)
		}
	}

	mtu, mtuSource := hostMTU(net.Interfaces)
	if o.Discover {
		openTable := func(pid int) (exporter.TableReader, func(), error) {
			src, err := openTableSource(SocketsOptions{ProcRoot: o.ProcRoot, PID: pid, Source: o.Source, OpenDiag: o.OpenDiag}, pidRoot(o.ProcRoot, pid))
			if err != nil {
				return nil, nil, err
			}
			return func() ([]sockstat.Socket, error) {
				socks, _, err := src.read(nil)
				return socks, err
			}, src.close, nil
		}
		d := exporter.NewDiscovery(exporter.DiscoveryConfig{Engine: eng, ProcRoot: o.ProcRoot, Self: os.Getpid(), Schedule: sched,
			OpenTable: openTable, Peers: specs, Aliases: aliases, Ephemeral: ephemeral, Thresholds: sockstat.DefaultThresholds(),
			MaxPeers: o.MaxPeers, UDPPorts: udpPorts, Check: configcheck.Options{MTU: mtu, MTUSource: mtuSource},
			Resolver: resolve, MetricsTimeout: o.Timeout})
		closers = append(closers, d.Close)
		eng.Add(d, sched)
	}
	for _, file := range o.Configs {
		if _, err := os.Stat(file); err != nil {
			return closers, fmt.Errorf("--config: %w", err)
		}
		eng.Add(exporter.NewConfig(exporter.ConfigConfig{Main: file,
			Check: configcheck.Options{MTU: mtu, MTUSource: mtuSource}}), sched)
	}

	probeSched := exporter.Schedule{Interval: o.ProbeInterval, Timeout: o.ProbeInterval}
	if len(o.ForwardProbes) > 0 {
		client := forward.ClientConfig{SharedKey: o.ForwardSharedKey}
		if o.ForwardTLS {
			client.TLSConfig = &tls.Config{InsecureSkipVerify: o.ForwardInsecure}
		}
		if o.ForwardAckTimeout >= o.ProbeInterval {
			return closers, usageErrorf("--forward-ack-timeout %s must be shorter than --probe-interval %s", o.ForwardAckTimeout, o.ProbeInterval)
		}
		for _, addr := range o.ForwardProbes {
			eng.Add(exporter.NewForwardProbe(forwardprobe.Options{Addr: addr, Tag: o.ForwardTag, AckTimeout: o.ForwardAckTimeout, Client: client}), probeSched)
		}
	}
	// Credentials are read even without --es-probe: a wrong path is a
	// mistake to report now, not when a target is added.
	pw, err := o.ES.password("")
	if err != nil {
		return closers, err
	}
	eo := esprobe.Options{Username: o.ES.User, Password: pw, APIKey: o.ES.apiKey(), Insecure: o.ES.Insecure,
		Timeout: min(o.ProbeInterval/2, esprobe.DefaultTimeout)}
	if eo.RootCAs, err = o.ES.rootCAs(); err != nil {
		return closers, err
	}
	for _, u := range o.ES.URLs {
		po := eo
		po.URLs = []string{u}
		eng.Add(exporter.NewESProbe(po), probeSched)
	}
	return closers, nil
}

func pidRoot(procRoot string, pid int) string {
	if pid > 0 {
		return filepath.Join(procRoot, strconv.Itoa(pid))
	}
	return procRoot
}

type shipperPID struct {
	name string
	pid  int
}

// parseShippers resolves --shipper-pid values, naming each by the
// process's comm when no name is given; names must differ.
func parseShippers(procRoot string, vals []string) ([]shipperPID, error) {
	var out []shipperPID
	seen := map[string]bool{}
	for _, v := range vals {
		name, pidText, ok := strings.Cut(v, "=")
		if !ok {
			name, pidText = "", v
		}
		pid, _ := strconv.Atoi(pidText) // checked by shipperList
		dir := pidRoot(procRoot, pid)
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("--shipper-pid %d: %w", pid, err)
		}
		if name == "" {
			b, err := os.ReadFile(filepath.Join(dir, "comm"))
			if err != nil {
				return nil, fmt.Errorf("--shipper-pid %d: %w", pid, err)
			}
			name = strings.TrimSpace(string(b))
		}
		if seen[name] {
			return nil, usageErrorf("--shipper-pid: two shippers named %q: name them, as NAME=PID", name)
		}
		seen[name] = true
		out = append(out, shipperPID{name, pid})
	}
	return out, nil
}

// listVar is a repeatable string flag whose every value check accepts.
type listVar struct {
	p     *[]string
	check func(string) error
	want  string
	typ   string
}

func (l *listVar) Set(s string) error {
	s = strings.TrimSpace(s)
	if err := l.check(s); err != nil {
		return errWant(l.want)
	}
	*l.p = append(*l.p, s)
	return nil
}

func (l *listVar) String() string { return "[" + strings.Join(*l.p, ",") + "]" }
func (l *listVar) Type() string   { return l.typ }

// shipperList is --shipper-pid: repeatable [NAME=]PID.
type shipperList struct{ p *[]string }

const wantShipperPID = "[NAME=]PID with a process id of 1 or more, e.g. fluentd=1234"

func (l *shipperList) Set(s string) error {
	s = strings.TrimSpace(s)
	name, pid, ok := strings.Cut(s, "=")
	if !ok {
		pid = s
	}
	n, err := strconv.Atoi(pid)
	if err != nil || n < 1 || n > math.MaxInt32 || (ok && !validLabelValue(name)) {
		return errWant(wantShipperPID)
	}
	*l.p = append(*l.p, s)
	return nil
}

func (l *shipperList) String() string { return "[" + strings.Join(*l.p, ",") + "]" }
func (l *shipperList) Type() string   { return "[name=]pid" }

// validLabelValue accepts a short printable name for a shipper label.
func validLabelValue(s string) bool {
	return s != "" && len(s) <= 64 && !slices.ContainsFunc([]rune(s), func(r rune) bool { return r < 0x21 || r == 0x7f })
}

var _ pflag.Value = (*listVar)(nil)

// exporterData is the exporter's report data: where it serves and how
// each source is doing.
type exporterData struct {
	Listen  string                  `json:"listen"`
	Sources []exporter.SourceStatus `json:"sources"`
}

func (d exporterData) Sections() []report.Section {
	sec := report.Section{Title: "Sources (served on " + d.Listen + ")", Header: []string{"SOURCE", "TARGET", "UP", "LAST SUCCESS", "ERROR"}}
	for _, s := range d.Sources {
		up, last := "no", "never"
		if s.Up {
			up = "yes"
		}
		if !s.LastSuccess.IsZero() {
			last = s.LastSuccess.UTC().Format(time.RFC3339)
		}
		sec.Rows = append(sec.Rows, []string{s.Source, s.Target, up, last, s.Error})
	}
	return []report.Section{sec}
}

// exporterReport is what the exporter holds now, as a report: the
// findings of every source's last sample (those logdoctor_finding
// carries) and the sources' state.
func exporterReport(eng *exporter.Engine, listen string, started, now time.Time) *report.Report {
	sources, fs := eng.Status()
	r := report.New("exporter", started)
	for _, f := range fs {
		rf := f.Finding
		ev := make(map[string]any, len(rf.Evidence)+2)
		maps.Copy(ev, rf.Evidence)
		if _, ok := ev["target"]; !ok && f.Target != "" {
			ev["target"] = f.Target
		}
		if f.Shipper != "" {
			ev["shipper"] = f.Shipper
		}
		rf.Evidence = ev
		r.Add(rf)
	}
	r.Data = exporterData{Listen: listen, Sources: sources}
	r.Finish(now)
	return r
}
