package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// newESCmd is the `es` parent: probe and dups (clients of a real cluster)
// and serve (the simulated cluster).
func newESCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "es",
		Short: "Elasticsearch/OpenSearch as a log shipper sees it: probe, count duplicates, or run a misbehaving test cluster",
	}
	cmd.AddCommand(newESProbeCmd(g, nil), newESDupsCmd(g, nil), newESServeCmd(g, nil))
	return cmd
}

// ESConnOptions are the connection flags of es probe and es dups: the
// shared ESConn group (whose old spellings here, the URL as an argument,
// --user, --password-file, --api-key, --ca and --insecure, still work),
// plus an inline password and the request timeout.
type ESConnOptions struct {
	ESConn
	Password string
	Timeout  time.Duration

	rootCAs *x509.CertPool // read from CA by resolve
}

func (c *ESConnOptions) flags(cmd *cobra.Command, urlUsage string) {
	f := cmd.Flags()
	c.ESConn.addFlags(f, esURLFlag{usage: urlUsage}, map[string]string{"es-user": "user", "es-password-file": "password-file",
		"es-api-key": "api-key", "es-ca": "ca", "es-insecure": "insecure"})
	f.StringVar(&c.Password, "password", "", "basic auth password (prefer --es-password-file or LOGDOCTOR_ES_PASSWORD)")
	durVar(f, &c.Timeout, "timeout", esprobe.DefaultTimeout, time.Nanosecond, wantPositiveDur, "timeout of each request and TCP connect")
}

// resolve fills the password and API key from the file and environment.
func (c *ESConnOptions) resolve() error {
	if c.PasswordFile != "" && c.Password != "" {
		return usageErrorf("--password and %s are exclusive", c.flag("es-password-file"))
	}
	pw, err := c.password(c.Password)
	if err != nil {
		return err
	}
	c.Password = pw
	c.APIKey = c.apiKey()
	if c.Timeout <= 0 {
		return usageErrorf("--timeout must be positive")
	}
	if c.rootCAs, err = c.ESConn.rootCAs(); err != nil {
		return err
	}
	return nil
}

// takeArgs adds the URLs given as arguments (the old spelling, where the
// scheme may be left out and esprobe checks them) after --es's, and
// checks there are between 1 and most (0: any number).
func (c *ESConnOptions) takeArgs(args []string, most int) error {
	c.URLs = append(c.URLs, args...)
	switch {
	case len(c.URLs) == 0:
		return usageErrorf("no cluster: give --es URL")
	case most > 0 && len(c.URLs) > most:
		return usageErrorf("--es: %d URLs, want %d", len(c.URLs), most)
	}
	return nil
}

func (c *ESConnOptions) apply(o *esprobe.Options) {
	o.URLs = c.URLs
	o.Username, o.Password, o.APIKey = c.User, c.Password, c.APIKey
	o.RootCAs, o.Insecure, o.Timeout = c.rootCAs, c.Insecure, c.Timeout
}

// ESProbeOptions are the flags of `es probe`.
type ESProbeOptions struct {
	Conn ESConnOptions

	Index          string
	BulkSize       string
	RequestTimeout time.Duration
	Sequential     int
	Concurrent     int
	IdleWait       time.Duration
	BulkSamples    int
}

// newESProbeCmd builds `es probe`; runF, when set, gets the parsed
// options instead of the probe running.
func newESProbeCmd(g *Globals, runF func(ESProbeOptions) error) *cobra.Command {
	o := &ESProbeOptions{}
	cmd := &cobra.Command{
		Use:   "probe --es URL [--es URL...]",
		Short: "Check reachability, sniffing, keep-alive, write pressure and bulk idempotency the way a shipper meets the cluster",
		Long: `probe talks raw HTTP to each --es URL (Elasticsearch 7/8 or OpenSearch) and times
every check: DNS, GET /, _cluster/health, _nodes/http with a TCP connect to
every publish_address (what a sniffing shipper switches to), N sequential and
M concurrent requests counting new connections against the server's
http.total_opened, one idle keep-alive connection watched for --idle-wait,
thread_pool.write and indexing_pressure rejections as deltas, and with
--index a canary bulk sent with create and a fixed _id (201, then 409s,
exactly one document; deleted afterwards). Run it where the shipper runs.

The password may come from --es-password-file or LOGDOCTOR_ES_PASSWORD, the API
key from LOGDOCTOR_ES_API_KEY; neither is ever printed.`,
		Example: `  logdoctor es probe --es http://localhost:9200
  logdoctor es probe --es https://es-0:9200,https://es-1:9200 --es-user elastic --es-password-file pw --es-ca ca.pem --index logs-probe
  logdoctor es probe --es http://es:9200 --bulk-size 16MiB --request-timeout 5s --idle-wait 65s -o json`,
		Args: cobra.ArbitraryArgs,
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			if err := o.Conn.takeArgs(args, 0); err != nil {
				return err
			}
			if runF != nil {
				return runF(*o)
			}
			r, err := runESProbe(cmd.Context(), g.Now, *o)
			if err != nil {
				return err
			}
			return g.Emit(r)
		}),
	}
	o.Conn.flags(cmd, "Elasticsearch/OpenSearch URL to probe (repeatable or comma-separated)")
	f := cmd.Flags()
	f.StringVar(&o.Index, "index", "", "index for the bulk idempotency check (writes and deletes one canary document)")
	sizeVar(f, &o.BulkSize, "bulk-size", sizeText(esprobe.DefaultBulkSize), parseESBytes, 1, false, "a size like 8MiB, 100mb or 1048576, up to 1TiB", "largest bulk body the shipper sends (Fluentd chunk_limit_size), compared with http.max_content_length")
	durVar(f, &o.RequestTimeout, "request-timeout", esprobe.DefaultRequestTimeout, time.Nanosecond, wantPositiveDur, "the shipper's request timeout (fluent-plugin-elasticsearch request_timeout, default 5s)")
	intVar(f, &o.Sequential, "sequential", esprobe.DefaultSequential, 1, 10000, "a number of requests from 1 to 10000", "sequential requests in the keep-alive check")
	intVar(f, &o.Concurrent, "concurrent", esprobe.DefaultConcurrent, 1, 1000, "a number of requests from 1 to 1000", "concurrent requests per round (two rounds) in the pool check")
	durVar(f, &o.IdleWait, "idle-wait", esprobe.DefaultIdleWait, 0, wantDurOrZero("skip the check"), "watch one idle keep-alive connection this long for the server closing it (0 = skip; use more than your load balancer's idle timeout)")
	intVar(f, &o.BulkSamples, "bulk-samples", esprobe.DefaultBulkSamples, 2, 1000, "a number from 2 (one create, one replay) to 1000", "times the canary bulk is sent with --index (first creates, the rest must get 409)")
	return cmd
}

// runESProbe validates the options, runs the probe and builds the report.
func runESProbe(ctx context.Context, now func() time.Time, o ESProbeOptions) (*report.Report, error) {
	if err := o.Conn.resolve(); err != nil {
		return nil, err
	}
	bulk, err := parseESBytes(o.BulkSize)
	if err != nil {
		return nil, usageErrorf("--bulk-size: %v", err)
	}
	if o.Sequential < 1 || o.Concurrent < 1 || o.BulkSamples < 2 {
		return nil, usageErrorf("--sequential and --concurrent must be at least 1, --bulk-samples at least 2")
	}
	if o.RequestTimeout <= 0 {
		return nil, usageErrorf("--request-timeout must be positive")
	}
	po := esprobe.Options{Index: o.Index, BulkSize: bulk, RequestTimeout: o.RequestTimeout,
		Sequential: o.Sequential, Concurrent: o.Concurrent, IdleWait: o.IdleWait, BulkSamples: o.BulkSamples, Now: now}
	o.Conn.apply(&po)
	started := now()
	res, fs, err := esprobe.Run(ctx, po)
	if err != nil {
		return nil, &UsageError{Err: fmt.Errorf("%s", report.Redact(err.Error()))}
	}
	r := report.New("es probe", started)
	r.Data = res
	r.Add(fs...)
	r.Finish(now())
	return r, nil
}

// parseESBytes reads "8MiB", "100mb", "512k" or plain bytes.
func parseESBytes(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 || n*float64(mult) > 1<<40 {
		return 0, fmt.Errorf("%q is not a size like 8MiB, 100mb or 1048576", s)
	}
	return int64(n * float64(mult)), nil
}

// ESDupsOptions are the flags of `es dups`.
type ESDupsOptions struct {
	Conn     ESConnOptions
	Index    string
	Field    string
	Fields   []string
	MaxDocs  int
	Examples int
}

// newESDupsCmd builds `es dups`; runF, when set, gets the parsed options
// instead of the count running.
func newESDupsCmd(g *Globals, runF func(ESDupsOptions) error) *cobra.Command {
	o := &ESDupsOptions{}
	cmd := &cobra.Command{
		Use:   "dups --es URL --index PATTERN [--field F | --fields a,b]",
		Short: "Count events indexed more than once (resends without a stable _id: \"Duplicates in Elasticsearch\" in docs/troubleshooting.md)",
		Long: `dups counts duplicated events in an index, reading all of it (up to
--max-docs documents). With --field it pages a composite aggregation through
every value of the field and counts those present twice or more (use a
keyword field such as a hash or request id, e.g. request_id.keyword); with
--fields it fingerprints those fields' values over a scrolling search; with
neither it fingerprints the whole _source. A scan cut short (--max-docs, a
failed page) is the finding es.dups_incomplete, never a clean verdict.`,
		Example: `  logdoctor es dups --es http://localhost:9200 --index 'logs-*' --field request_id.keyword
  logdoctor es dups --es http://localhost:9200 --index logs-2026.11.21 --fields '@timestamp,message,kubernetes.pod_name'`,
		Args: cobra.MaximumNArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			if err := o.Conn.takeArgs(args, 1); err != nil {
				return err
			}
			if runF != nil {
				return runF(*o)
			}
			r, err := runESDups(cmd.Context(), g.Now, *o)
			if err != nil {
				return err
			}
			return g.Emit(r)
		}),
	}
	o.Conn.flags(cmd, "Elasticsearch/OpenSearch URL of the cluster holding the index")
	f := cmd.Flags()
	f.StringVar(&o.Index, "index", "", "index name or pattern (required)")
	f.StringVar(&o.Field, "field", "", "keyword field whose values should be unique (terms aggregation)")
	f.StringSliceVar(&o.Fields, "fields", nil, "fields fingerprinted together over a scroll through the index")
	intVar(f, &o.MaxDocs, "max-docs", esprobe.DefaultDupsMaxDocs, 1, math.MaxInt32, "a number of documents from 1", "documents read at most; a larger index is read in part and reported as es.dups_incomplete")
	intVar(f, &o.Examples, "examples", esprobe.DefaultDupsExamples, 0, 1000, "a number from 0 to 1000", "duplicated events shown as examples")
	return cmd
}

func runESDups(ctx context.Context, now func() time.Time, o ESDupsOptions) (*report.Report, error) {
	if o.Index == "" {
		return nil, usageErrorf("--index is required")
	}
	if o.Field != "" && len(o.Fields) > 0 {
		return nil, usageErrorf("--field and --fields are exclusive")
	}
	if o.MaxDocs < 1 {
		return nil, usageErrorf("--max-docs must be at least 1")
	}
	if err := o.Conn.resolve(); err != nil {
		return nil, err
	}
	po := esprobe.Options{Now: now}
	o.Conn.apply(&po)
	started := now()
	res, fs, err := esprobe.Dups(ctx, po, esprobe.DupsOptions{Index: o.Index, Field: o.Field, Fields: o.Fields, MaxDocs: o.MaxDocs, Examples: o.Examples})
	if err != nil {
		return nil, fmt.Errorf("es dups: %s", report.Redact(err.Error()))
	}
	r := report.New("es dups", started)
	r.Data = res
	r.Add(fs...)
	r.Finish(now())
	return r, nil
}

// ESServeOptions are the flags of `es serve`.
type ESServeOptions struct {
	Listen           string
	Version          string
	Distribution     string
	ClusterName      string
	Nodes            int
	Data             string
	MaxContentLength string
	InFlightLimit    string
	MaxDocs          int64
	User, Password   string
	APIKey           string
	TLSCert, TLSKey  string
	Duration         time.Duration

	RejectRate, FailRate, DropRate float64
	FailStatus                     int
	Latency, IdleClose, LateBy     time.Duration
	PublishAddress, Health         string
	IndexLate, NoKeepAlive         bool
	StripProductHeader             bool
	Seed                           int64
}

// newESServeCmd builds `es serve`; runF, when set, gets the parsed options
// instead of essim starting.
func newESServeCmd(g *Globals, runF func(ESServeOptions) error) *cobra.Command {
	o := &ESServeOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run essim, an Elasticsearch-compatible endpoint with fault injection, to watch what a shipper does",
		Long: `serve runs essim: the Elasticsearch REST subset a log pipeline uses (GET /,
_bulk, _count, _search, _refresh, _cluster/health, _nodes/http, _nodes/stats,
_cat/thread_pool), answering like Elasticsearch 8 (or 7 with --version 7.17.x),
with faults you choose. Faults also change at runtime:
  curl -XPOST localhost:9200/_essim/faults -d '{"reject_rate":0.2,"latency":"2s"}'
It runs until interrupted (or --duration) and then reports what it counted.`,
		Example: `  logdoctor es serve --listen 127.0.0.1:9200
  logdoctor es serve --reject-rate 0.3                     # 429 es_rejected_execution_exception items
  logdoctor es serve --nodes 3 --publish-address 127.0.0.2:1   # sniffing shippers lose their pool
  logdoctor es serve --index-late --late-by 6s             # answers after the shipper gave up: duplicates`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(*o)
			}
			r, err := runESServe(cmd.Context(), g.Now, *o, func(s *essim.Server) {
				fmt.Fprintf(g.IO.Err, "essim %s listening on %s\n", s.Version(), strings.Join(s.URLs(), " "))
			})
			if err != nil {
				return err
			}
			return g.Emit(r)
		}),
	}
	f := cmd.Flags()
	addrVar(f, &o.Listen, "listen", "127.0.0.1:9200", true, false, "address of the first node; further nodes use the following ports")
	f.StringVar(&o.Version, "version", essim.DefaultVersion, "Elasticsearch version to claim (7.17.x answers like 7)")
	enumVar(f, &o.Distribution, "distribution", "elasticsearch", []string{"elasticsearch", "opensearch"}, "elasticsearch or opensearch (then --version 1.x or 2.x, no X-Elastic-Product header)")
	f.StringVar(&o.ClusterName, "cluster-name", essim.DefaultClusterName, "cluster_name")
	intVar(f, &o.Nodes, "nodes", essim.DefaultNodes, 1, 64, "a number of nodes from 1 to 64", "nodes (listeners) sharing one store")
	f.StringVar(&o.Data, "data", "", "keep documents in this directory (survive restarts); memory only when empty")
	sizeVar(f, &o.MaxContentLength, "max-content-length", sizeText(essim.DefaultMaxContentLength), parseESBytes, 1, false, "a size like 100MiB, 100mb or 104857600, up to 1TiB", "http.max_content_length: larger bodies get 413")
	sizeVar(f, &o.InFlightLimit, "inflight-requests-limit", sizeText(essim.DefaultInFlightRequestsLimit), parseSize, 0, false, "0 (no limit) or a size like 256MiB", "network.breaker.inflight_requests.limit per node: request bodies, counted twice, past it get 429 circuit_breaking_exception (0: no limit)")
	int64Var(f, &o.MaxDocs, "max-docs", 0, 0, math.MaxInt64, "0 (no bound) or a number of documents", "documents held at most; past that writes get 429 cluster_block_exception, as past the flood-stage disk watermark (0: no bound)")
	f.StringVar(&o.User, "user", "", "require basic auth with this user")
	f.StringVar(&o.Password, "password", "", "basic auth password (or LOGDOCTOR_ES_PASSWORD)")
	f.StringVar(&o.APIKey, "api-key", "", "also accept 'Authorization: ApiKey <this>'")
	f.StringVar(&o.TLSCert, "tls-cert", "", "serve HTTPS with this PEM certificate (with --tls-key)")
	f.StringVar(&o.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	durVar(f, &o.Duration, "duration", 0, 0, wantDurOrZero("until interrupted"), "stop after this long (0 = until interrupted)")
	floatVar(f, &o.RejectRate, "reject-rate", 0, 0, 1, "a fraction from 0 to 1", "fraction of bulk items rejected with 429 es_rejected_execution_exception")
	floatVar(f, &o.FailRate, "fail-rate", 0, 0, 1, "a fraction from 0 to 1", "fraction of write requests failed whole (see --fail-status)")
	intCheckVar(f, &o.FailStatus, "fail-status", essim.DefaultFailStatus, func(n int) bool { return slices.Contains([]int{429, 500, 502, 503, 504}, n) },
		"429, 500, 502, 503 or 504", "status of whole-request failures: 429, 500, 502, 503 or 504")
	floatVar(f, &o.DropRate, "drop-rate", 0, 0, 1, "a fraction from 0 to 1", "fraction of bulk items acknowledged (201) but never stored")
	durVar(f, &o.Latency, "latency", 0, 0, wantDurOrZero("none"), "added to every request")
	durVar(f, &o.IdleClose, "idle-close", 0, 0, wantDurOrZero("never"), "close keep-alive connections idle this long")
	f.StringVar(&o.PublishAddress, "publish-address", "", "http.publish_address in _nodes/http (e.g. 127.0.0.2:1; 'none' publishes no http section)")
	enumVar(f, &o.Health, "health", "", []string{"", "green", "yellow", "red"}, "cluster health: green, yellow or red (red fails bulk items with 503)")
	f.BoolVar(&o.IndexLate, "index-late", false, "index bulks at once but answer after --late-by (the client times out and resends)")
	durVar(f, &o.LateBy, "late-by", essim.DefaultLateBy, time.Nanosecond, wantPositiveDur, "how long --index-late holds the answer")
	f.BoolVar(&o.NoKeepAlive, "no-keepalive", false, "answer with Connection: close (every request costs a new connection)")
	f.BoolVar(&o.StripProductHeader, "strip-product-header", false, "drop X-Elastic-Product, as some proxies do (Elastic's clients 7.14+ then refuse the server)")
	f.Int64Var(&o.Seed, "seed", essim.DefaultSeed, "random seed of the fault rates")
	return cmd
}

// runESServe runs essim until ctx ends or o.Duration passes.
func runESServe(ctx context.Context, now func() time.Time, o ESServeOptions, onListen func(*essim.Server)) (*report.Report, error) {
	mcl, err := parseESBytes(o.MaxContentLength)
	if err != nil {
		return nil, usageErrorf("--max-content-length: %v", err)
	}
	if o.MaxDocs < 0 {
		return nil, usageErrorf("--max-docs must not be negative")
	}
	inflightLimit, err := parseSize(o.InFlightLimit)
	if err != nil {
		return nil, usageErrorf("--inflight-requests-limit: %v", err)
	}
	if o.Nodes < 1 || o.Nodes > 64 {
		return nil, usageErrorf("--nodes must be between 1 and 64")
	}
	if o.Distribution == "opensearch" && o.Version == essim.DefaultVersion {
		o.Version = "" // essim picks an OpenSearch version
	}
	if err := essim.CheckVersion(o.Distribution, o.Version); err != nil {
		return nil, usageErrorf("--version/--distribution: %w", err)
	}
	switch o.PublishAddress {
	case "", "none":
	default:
		if err := checkHostPort(o.PublishAddress, 1); err != nil {
			return nil, usageErrorf("--publish-address %q: want %s, or none", o.PublishAddress, wantDial)
		}
	}
	if o.Password, err = esPassword(o.Password, "", ""); err != nil {
		return nil, err
	}
	if o.User != "" && o.Password == "" {
		return nil, usageErrorf("--user needs --password or LOGDOCTOR_ES_PASSWORD")
	}
	var tlsCfg *tls.Config
	cert, err := keyPair("--tls-cert", o.TLSCert, "--tls-key", o.TLSKey)
	if errors.Is(err, errPairIncomplete) {
		return nil, &UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	if cert != nil {
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
	}
	if o.Data != "" {
		if err := os.MkdirAll(o.Data, 0o700); err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
	}
	faults := essim.Faults{RejectRate: o.RejectRate, FailRate: o.FailRate, FailStatus: o.FailStatus, DropRate: o.DropRate,
		Latency: o.Latency, IdleClose: o.IdleClose, PublishAddress: o.PublishAddress, Health: o.Health,
		IndexLate: o.IndexLate, LateBy: o.LateBy, NoKeepAlive: o.NoKeepAlive, StripProductHeader: o.StripProductHeader, Seed: o.Seed}
	started := now()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := essim.Start(sctx, o.Listen, essim.Config{Version: o.Version, Distribution: o.Distribution, ClusterName: o.ClusterName, Nodes: o.Nodes,
		DataDir: o.Data, MaxContentLength: mcl, MaxDocs: o.MaxDocs, InFlightRequestsLimit: offIfZero(inflightLimit), Username: o.User, Password: o.Password, APIKey: o.APIKey, TLS: tlsCfg, Faults: faults})
	if err != nil {
		// The flags and CheckVersion refused every bad value already: what
		// is left (the port is taken, say) is a failure to run.
		return nil, err
	}
	defer s.Close()
	// With --data the documents are on disk and a node's memory is its
	// in-flight requests plus its document and id tables (about 35 bytes
	// a document): the runtime's soft limit follows both. In memory the
	// documents are what it holds, by design, so no limit is set.
	if o.Data != "" {
		if _, restore := setMemoryLimit(inflightLimit*int64(o.Nodes), func() int64 {
			return s.Stats().IndexBytes
		}); restore != nil {
			defer restore()
		}
	}
	if onListen != nil {
		onListen(s)
	}
	var timeout <-chan time.Time
	if o.Duration > 0 {
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-timeout:
	}
	data := &essim.Report{URLs: s.URLs(), Faults: s.Faults(), Stats: s.Stats()}
	if err := s.Close(); err != nil {
		return nil, fmt.Errorf("essim: %w", err)
	}
	r := report.New("es serve", started)
	r.Data = data
	r.Finish(now())
	return r, nil
}
