package cli

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/pkg/esclient"
	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/smoke"
	"github.com/logdoctor/logdoctor/pkg/smoke/lab"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// SmokeOptions are the flags of `logdoctor smoke`.
type SmokeOptions struct {
	Count      int
	ChunkSize  int
	Tag        string
	Timeout    time.Duration
	Poll       time.Duration
	Settle     time.Duration
	AckTimeout time.Duration

	Forward   string
	SharedKey string
	ForwardTLS

	Index string
	ESConn
	ESPassword string // from the URL, LOGDOCTOR_ES_PASSWORD or the file, never a flag

	Chaos    bool
	NoProbes bool
	ProcRoot string
}

func defaultSmokeOptions() SmokeOptions {
	return SmokeOptions{
		Count: 1000, ChunkSize: smoke.DefaultChunkSize, Tag: smoke.DefaultTag,
		Timeout: smoke.DefaultTimeout, Poll: smoke.DefaultPoll, Settle: smoke.DefaultSettle,
		AckTimeout: smoke.DefaultAckTimeout, ProcRoot: "/proc",
	}
}

// newSmokeCmd builds `smoke`; runF, when set, gets the checked options
// instead of the canaries going out.
func newSmokeCmd(g *Globals, runF func(SmokeOptions) error) *cobra.Command {
	o := defaultSmokeOptions()
	cmd := &cobra.Command{
		Use:   "smoke",
		Short: "End-to-end canary: forward with acks -> pipeline -> Elasticsearch, each canary counted exactly once",
		Long: `smoke sends numbered canary events through the forward protocol with acks,
waits until they are searchable in Elasticsearch and checks that each one is
indexed exactly once, then runs sockets, forward probe and es probe on the
path and prints one report. With no flags everything is embedded: essim and
the pipeline run in process on loopback (this is 'make run'). With --forward
and --es it checks your own shipper. A lost canary is smoke.missing
(critical), a doubled one smoke.duplicated (warning).`,
		Example: `  logdoctor smoke                                   # everything embedded: make run
  logdoctor smoke --chaos --fail-on never           # 429s, late answers, idle closes: still exactly once
  logdoctor smoke --forward fluentd:24224 --es http://es:9200 --index 'logs-*'
  logdoctor smoke --forward fluent-bit:24224 --shared-key "$KEY" --tls-ca ca.pem \
      --es https://es:9200 --es-user ci --index 'fluent-bit-*' --timeout 3m -o json`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			if err := o.finish(); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			r, err := runSmoke(cmd.Context(), g, o)
			if err != nil {
				return err
			}
			return g.Emit(r)
		}),
	}
	f := cmd.Flags()
	intVar(f, &o.Count, "count", o.Count, 1, smoke.MaxCount, fmt.Sprintf("a number of canaries from 1 to %d (one terms aggregation bucket each)", smoke.MaxCount),
		fmt.Sprintf("canaries to send (1..%d)", smoke.MaxCount))
	intVar(f, &o.ChunkSize, "chunk-size", o.ChunkSize, 1, smoke.MaxCount, fmt.Sprintf("a number of canaries from 1 to %d", smoke.MaxCount), "canaries per forward chunk (one ack each)")
	nonEmptyVar(f, &o.Tag, "tag", o.Tag, "a non-empty tag", "forward tag of the canaries")
	durVar(f, &o.Timeout, "timeout", o.Timeout, time.Nanosecond, wantPositiveDur, "how long to wait for every canary to become searchable")
	durVar(f, &o.Poll, "poll", o.Poll, time.Nanosecond, wantPositiveDur, "search interval while waiting")
	durVar(f, &o.Settle, "settle", o.Settle, 0, wantDurOrZero("stop at the first complete count"), "once every canary was seen, wait until the count stayed unchanged this long (longer than the shipper's retry cycle), so its resends count")
	durVar(f, &o.AckTimeout, "ack-timeout", o.AckTimeout, time.Nanosecond, wantPositiveDur, "wait for each chunk's ack (Fluentd's ack_response_timeout default is 190s)")
	addrVar(f, &o.Forward, "forward", "", false, true, "HOST:PORT of a real forward input (default: the embedded pipeline); needs --es")
	f.StringVar(&o.SharedKey, "shared-key", "", "shared key of the forward input's <security> section (env LOGDOCTOR_FORWARD_SHARED_KEY)")
	o.ForwardTLS.addFlags(f, nil)
	f.StringVar(&o.Index, "index", "", "index or pattern to search for the canaries (required with --forward; default logs-*, where the embedded pipeline writes)")
	o.ESConn.addFlags(f, esURLFlag{usage: "Elasticsearch/OpenSearch URL the shipper writes to (default: embedded essim)"}, nil)
	f.BoolVar(&o.Chaos, "chaos", false, "embedded only: essim rejects items (429), indexes late and closes idle connections")
	f.BoolVar(&o.NoProbes, "no-probes", false, "skip the sockets, forward and es probes after the canary run")
	f.StringVar(&o.ProcRoot, "proc-root", o.ProcRoot, "proc tree for the sockets check")
	_ = f.MarkHidden("proc-root")
	return cmd
}

// finish validates the flags and reads secrets from the environment.
func (o *SmokeOptions) finish() error {
	if o.Count < 1 || o.Count > smoke.MaxCount {
		return usageErrorf("--count %d: want 1..%d (one aggregation bucket per canary, under ES's search.max_buckets)", o.Count, smoke.MaxCount)
	}
	if o.ChunkSize < 1 {
		return usageErrorf("--chunk-size %d: want at least 1", o.ChunkSize)
	}
	for name, d := range map[string]time.Duration{"--timeout": o.Timeout, "--poll": o.Poll, "--ack-timeout": o.AckTimeout} {
		if d <= 0 {
			return usageErrorf("%s must be positive", name)
		}
	}
	if o.Forward != "" {
		if _, _, err := net.SplitHostPort(o.Forward); err != nil {
			return usageErrorf("--forward %q: want HOST:PORT", o.Forward)
		}
		if len(o.URLs) == 0 {
			return usageErrorf("--forward needs --es and --index: where does that shipper write?")
		}
	}
	if len(o.URLs) > 1 {
		return usageErrorf("--es: %d URLs, want 1: the cluster the canaries are counted in", len(o.URLs))
	}
	if es := o.esURL(); es != "" {
		u, err := url.Parse(es)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErrorf("--es %q: want an http:// or https:// URL", report.Redact(es))
		}
		if o.Index == "" && o.Forward != "" {
			return usageErrorf("--forward and --es need --index: the index or pattern that shipper writes the canaries to")
		}
		if o.Chaos {
			return usageErrorf("--chaos injects faults into the embedded Elasticsearch; it cannot be used with --es")
		}
		if u.User != nil {
			o.User = u.User.Username()
			if p, ok := u.User.Password(); ok {
				o.ESPassword = p
			}
			u.User = nil
			o.URLs[0] = u.String()
		}
	}
	if (o.Cert == "") != (o.Key == "") {
		return usageErrorf("--tls-cert and --tls-key go together")
	}
	if o.SharedKey == "" {
		o.SharedKey = os.Getenv("LOGDOCTOR_FORWARD_SHARED_KEY")
	}
	if _, err := os.Stat(o.ProcRoot); err != nil {
		return fmt.Errorf("--proc-root: %w", err)
	}
	// A file that cannot be read is a failure to run (exit 1), as for
	// every file named by a flag.
	pw, err := o.password(o.ESPassword)
	if err != nil {
		return err
	}
	o.ESPassword = pw
	return nil
}

// smokeTarget is where canaries go and where they are looked for.
type smokeTarget struct {
	mode         string
	forward      string // HOST:PORT
	esURL, index string
	esRootCAs    *x509.CertPool // --es-ca, for the ES probe
	searcher     *smoke.ESSearcher
	forwardCfg   forward.ClientConfig
	// drained, for the embedded pipeline, returns once every acked event
	// was answered by Elasticsearch: canaries still missing then are lost.
	drained func(context.Context) error
	stats   func() *lab.Stats // embedded mode: what the pipeline and essim went through
	// beforeProbes, when set, runs once the canaries are counted.
	beforeProbes func()
	close        func(context.Context) error
}

func runSmoke(ctx context.Context, g *Globals, o SmokeOptions) (*report.Report, error) {
	rep := report.New("smoke", g.Now())
	if err := smokePreflight(ctx, o); err != nil {
		return nil, err
	}
	tgt, err := smokeSetup(ctx, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = tgt.close(cctx)
	}()

	sender := &smoke.ForwardSender{Addr: tgt.forward, Config: tgt.forwardCfg, AckTimeout: o.AckTimeout}
	defer sender.Close()
	res, err := smoke.Run(ctx, smoke.Config{
		Count: o.Count, ChunkSize: o.ChunkSize, Tag: o.Tag,
		Timeout: o.Timeout, Poll: o.Poll, Settle: o.Settle, Drained: tgt.drained, Now: g.Now,
		Progress: func(p smoke.Progress) {
			g.Progress("smoke: %-8s sent %d/%d  acked %d  indexed %d  %5.1fs ", p.Phase, p.Sent, p.Count, p.Acked, p.Indexed, p.Elapsed.Seconds())
		},
	}, sender, tgt.searcher)
	g.Progress("%-72s\r", "")
	if err != nil {
		return nil, err
	}
	// The sender's connection stays open through the probes: the sockets
	// check should see the path as it is used, ESTABLISHED, not a TIME_WAIT
	// we just made.
	rep.Add(res.Findings(o.Timeout)...)

	data := &smoke.Report{Mode: tgt.mode, Forward: tgt.forward, ES: report.Redact(tgt.esURL), Index: tgt.index, Result: res, Probes: []smoke.ProbeRun{}}
	if !o.NoProbes && ctx.Err() == nil { // interrupted: report the count, skip the probes
		if tgt.beforeProbes != nil {
			tgt.beforeProbes()
		}
		runs, fs := smokeProbes(g, o, tgt).Run(ctx, tgt.forward, tgt.esURL)
		data.Probes = append(data.Probes, runs...)
		rep.Add(fs...)
	}
	if tgt.stats != nil {
		data.Embedded = tgt.stats()
	}
	rep.Data = data
	rep.Finish(g.Now())
	return rep, nil
}

// smokePreflight connects once to each endpoint the flags name
// (smoke.Preflight), so one that refuses fails the run at once.
func smokePreflight(ctx context.Context, o SmokeOptions) error {
	var eps []smoke.Endpoint
	if o.Forward != "" {
		eps = append(eps, smoke.Endpoint{Name: "--forward " + o.Forward, Addr: o.Forward})
	}
	if es := o.esURL(); es != "" {
		addr, err := smoke.ESAddr(es)
		if err != nil {
			return usageErrorf("--es: %w", err)
		}
		eps = append(eps, smoke.Endpoint{Name: "--es " + report.Redact(es), Addr: addr})
	}
	return smoke.Preflight(ctx, min(smoke.PreflightTimeout, o.Timeout), eps...)
}

// smokeSetup starts the embedded essim and pipeline when asked, or points at
// the user's infrastructure.
func smokeSetup(ctx context.Context, o SmokeOptions) (*smokeTarget, error) {
	esRoots, err := o.ESConn.rootCAs()
	if err != nil {
		return nil, err
	}
	esTLS := esclient.TLSConfig(esRoots, o.ESConn.Insecure)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = esTLS
	searcher := &smoke.ESSearcher{User: o.User, Password: o.ESPassword, APIKey: o.APIKey,
		Client: smoke.NewHTTPClient(10*time.Second, tr)}
	fwdCfg := smokeClientConfig(o)
	if fwdCfg.TLSConfig, err = o.ForwardTLS.config(""); err != nil {
		return nil, err
	}
	if o.Forward != "" {
		searcher.URL, searcher.Index = o.esURL(), o.Index
		return &smokeTarget{mode: "external", forward: o.Forward, esURL: o.esURL(), index: o.Index, esRootCAs: esRoots,
			searcher: searcher, forwardCfg: fwdCfg, close: func(context.Context) error { tr.CloseIdleConnections(); return nil }}, nil
	}
	return embeddedSetup(ctx, o, searcher, tr)
}

// smokeClientConfig is the forward client's handshake identity. Fluentd's
// in_forward rejects a PING carrying its own hostname ("same hostname
// between input and output"), which is what a smoke run on the shipper's
// own host (or against the embedded pipeline) would send by default.
func smokeClientConfig(o SmokeOptions) forward.ClientConfig {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return forward.ClientConfig{SharedKey: o.SharedKey, Hostname: "logdoctor-smoke." + host}
}

// embeddedSetup starts the embedded lab: essim (unless --es names a real
// cluster) and the pipeline in process.
func embeddedSetup(ctx context.Context, o SmokeOptions, searcher *smoke.ESSearcher, tr *http.Transport) (*smokeTarget, error) {
	l, err := lab.Start(ctx, lab.Config{ES: o.esURL(), Index: o.Index, Username: o.User, Password: o.ESPassword, APIKey: o.APIKey,
		TLS: tr.TLSClientConfig, SharedKey: o.SharedKey, Chaos: o.Chaos, ProcRoot: o.ProcRoot, Refresh: searcher.Refresh})
	if err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	searcher.URL, searcher.Index = l.ESURL(), l.Index()
	return &smokeTarget{mode: "embedded", forward: l.ForwardAddr(), esURL: l.ESURL(), index: l.Index(),
		searcher: searcher, forwardCfg: smokeClientConfig(o), drained: l.Drained, stats: l.Stats, beforeProbes: l.Calm,
		close: func(ctx context.Context) error {
			err := l.Close(ctx)
			tr.CloseIdleConnections()
			return err
		}}, nil
}

// smokeProbes wires the probes smoke runs on the path (smoke.Probes
// says in which order and what a failing one means).
func smokeProbes(g *Globals, o SmokeOptions, tgt *smokeTarget) smoke.Probes {
	return smoke.Probes{
		Sockets: func(ctx context.Context, peers []string) ([]report.Finding, error) {
			var fs []report.Finding
			err := runSockets(ctx, SocketsOptions{ProcRoot: o.ProcRoot, Peers: peers, NoProcesses: true,
				Thresholds: sockstat.DefaultThresholds(), Now: g.Now}, func(r *report.Report) error {
				fs = r.Findings
				return nil
			})
			return fs, err
		},
		Forward: func(ctx context.Context, addr string) ([]report.Finding, error) {
			_, fs, err := forwardprobe.Run(ctx, forwardprobe.Options{Addr: addr, AckTimeout: o.AckTimeout,
				Client: tgt.forwardCfg, Sockets: socketInspector(o.ProcRoot)})
			return fs, err
		},
		ES: func(ctx context.Context, url string) ([]report.Finding, error) {
			eo := esprobe.Options{URLs: []string{url}, Username: o.User, Password: o.ESPassword, APIKey: o.APIKey,
				RootCAs: tgt.esRootCAs, Insecure: o.ESConn.Insecure}
			if o.Chaos {
				eo.IdleWait = 2 * lab.ChaosIdleClose // long enough to see essim hang up idle connections
			}
			_, fs, err := esprobe.Run(ctx, eo)
			return fs, err
		},
	}
}
