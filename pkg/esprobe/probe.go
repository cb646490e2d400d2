// Package esprobe checks an Elasticsearch or OpenSearch cluster the way a
// log shipper meets it: reachability and version, DNS, cluster health, the
// addresses a sniffing client would switch to (_nodes/http publish_address),
// keep-alive and connection pool behaviour counted from real connections
// (net/http/httptrace), write pressure (thread_pool.write and
// indexing_pressure rejections as deltas), bulk idempotency with create and
// a deterministic _id, max_content_length against the shipper's bulk size,
// and bulk latency against the shipper's request timeout.
//
// It speaks raw HTTP and does not insist on the X-Elastic-Product header,
// so OpenSearch 1 and 2 work too. It returns a Result and findings; it
// prints nothing.
package esprobe

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Defaults a shipper would use; each names where it comes from.
const (
	// DefaultRequestTimeout is fluent-plugin-elasticsearch's request_timeout.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultBulkSize is Fluentd's memory buffer chunk_limit_size: one
	// chunk becomes one bulk request.
	DefaultBulkSize = 8 << 20
)

// Options configures a probe run.
type Options struct {
	URLs []string

	Username, Password string
	APIKey             string
	// RootCAs verifies the cluster's certificate (nil: the system roots).
	RootCAs  *x509.CertPool
	Insecure bool

	// Index enables the bulk idempotency check, which writes one canary
	// document (and deletes it afterwards).
	Index string
	// BulkSize is the largest bulk body the shipper sends, compared with
	// http.max_content_length.
	BulkSize int64
	// RequestTimeout is the shipper's request timeout, compared with the
	// observed bulk latency.
	RequestTimeout time.Duration
	// Sequential and Concurrent size the keep-alive and pool check: N
	// requests one after another, then two rounds of M at once.
	Sequential, Concurrent int
	// IdleWait is how long one idle keep-alive connection is watched for
	// the server (or a proxy) closing it. It runs alongside the other
	// checks; raise it above your load balancer's idle timeout.
	IdleWait time.Duration
	// BulkSamples is how many times the canary bulk is sent (the first
	// creates, the others must get 409).
	BulkSamples int
	// Timeout bounds every single request and TCP connect.
	Timeout time.Duration
	// MinInterval is the shortest span between the two write-pressure
	// snapshots, so the deltas mean something.
	MinInterval time.Duration

	// Resolver, Dialer and Transport are injectable for tests.
	Resolver *net.Resolver
	Dialer   *net.Dialer
	// DialContext, when set, opens every connection instead of Dialer:
	// logdoctor doctor dials from inside the shipper's network namespace,
	// where the shipper's own view of the cluster is.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	Transport   func(*http.Transport)
	Now         func() time.Time
}

func (o *Options) defaults() {
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.BulkSize <= 0 {
		o.BulkSize = DefaultBulkSize
	}
	if o.Sequential <= 0 {
		o.Sequential = 10
	}
	if o.Concurrent <= 0 {
		o.Concurrent = 4
	}
	if o.IdleWait < 0 {
		o.IdleWait = 0
	}
	if o.BulkSamples <= 1 {
		o.BulkSamples = 5
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MinInterval <= 0 {
		o.MinInterval = 200 * time.Millisecond
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Check is one timed step of the probe.
type Check struct {
	Name       string `json:"name"`
	Target     string `json:"target,omitempty"`
	OK         bool   `json:"ok"`
	DurationMS int64  `json:"duration_ms"`
	Detail     string `json:"detail"`
}

// Target is what one URL answered.
type Target struct {
	URL          string   `json:"url"`
	Reachable    bool     `json:"reachable"`
	Status       int      `json:"status,omitempty"`
	Product      string   `json:"product,omitempty"` // elasticsearch or opensearch
	ProductHdr   bool     `json:"x_elastic_product"`
	Version      string   `json:"version,omitempty"`
	ClusterName  string   `json:"cluster_name,omitempty"`
	NodeName     string   `json:"node_name,omitempty"`
	LatencyMS    float64  `json:"latency_ms"`
	DNSMS        float64  `json:"dns_ms,omitempty"`
	Addresses    []string `json:"addresses,omitempty"`
	Error        string   `json:"error,omitempty"`
	errKind      string
	unauthorized int
}

// Health is _cluster/health.
type Health struct {
	Status              string  `json:"status"`
	Nodes               int     `json:"number_of_nodes"`
	DataNodes           int     `json:"number_of_data_nodes"`
	ActiveShards        int     `json:"active_shards"`
	UnassignedShards    int     `json:"unassigned_shards"`
	PendingTasks        int     `json:"number_of_pending_tasks"`
	ActiveShardsPercent float64 `json:"active_shards_percent_as_number"`
}

// Node is one entry of _nodes/http and whether its published address
// accepts a TCP connection from here.
type Node struct {
	ID               string  `json:"id"`
	Name             string  `json:"name"`
	PublishAddress   string  `json:"publish_address"`
	Reachable        bool    `json:"reachable"`
	ConnectMS        float64 `json:"connect_ms"`
	Error            string  `json:"error,omitempty"`
	MaxContentLength int64   `json:"max_content_length_in_bytes"`
}

// Pool is the keep-alive and connection pool check.
type Pool struct {
	Requests        int     `json:"requests"`
	NewConnections  int     `json:"new_connections"`
	Reused          int     `json:"reused"`
	ReuseRatio      float64 `json:"reuse_ratio"`
	SequentialNew   int     `json:"sequential_new_connections"`
	ConcurrentNew   int     `json:"concurrent_new_connections"`
	NewPerRequest   float64 `json:"new_connections_per_request"`
	ServerOpened    int64   `json:"server_total_opened_delta"` // during the pool check; -1 when _nodes/stats was unavailable
	OwnOpened       int64   `json:"probe_opened"`              // connections the probe opened meanwhile
	OthersOpened    int64   `json:"other_clients_opened"`      // over the whole run
	OthersPerSecond float64 `json:"other_clients_opened_per_second"`
	WindowMS        int64   `json:"window_ms"`
	IdleWaitMS      int64   `json:"idle_wait_ms"`
	IdleClosed      bool    `json:"idle_closed"`
	IdleClosedAfter float64 `json:"idle_closed_after_ms,omitempty"`
}

// Pressure is the write pressure, summed over nodes, with deltas over the
// probe's run.
type Pressure struct {
	WriteQueue          int64 `json:"write_queue"`
	WriteActive         int64 `json:"write_active"`
	WriteRejected       int64 `json:"write_rejected"`
	WriteRejectedDelta  int64 `json:"write_rejected_delta"`
	PressureRejected    int64 `json:"indexing_pressure_rejections"`
	PressureRejectDelta int64 `json:"indexing_pressure_rejections_delta"`
	IntervalMS          int64 `json:"interval_ms"`
	IndexingPressure    bool  `json:"indexing_pressure_reported"`
}

// Bulk is the idempotency check.
type Bulk struct {
	Index        string   `json:"index"`
	ID           string   `json:"id"`
	Statuses     []int    `json:"statuses"`
	ItemErrors   []string `json:"item_errors,omitempty"`
	Count        int      `json:"count"`
	LatencyP50MS float64  `json:"latency_p50_ms"`
	LatencyP99MS float64  `json:"latency_p99_ms"`
	Idempotent   bool     `json:"idempotent"`
	Cleaned      bool     `json:"cleaned_up"`
}

// Result is the probe's data.
type Result struct {
	Targets          []Target  `json:"targets"`
	Health           *Health   `json:"health,omitempty"`
	Nodes            []Node    `json:"nodes"`
	Pool             *Pool     `json:"pool,omitempty"`
	Pressure         *Pressure `json:"pressure,omitempty"`
	Bulk             *Bulk     `json:"bulk,omitempty"`
	MaxContentLength int64     `json:"max_content_length_in_bytes,omitempty"`
	BulkSize         int64     `json:"bulk_size"`
	RequestTimeoutMS int64     `json:"request_timeout_ms"`
	LatencyP99MS     float64   `json:"latency_p99_ms"`
	Checks           []Check   `json:"checks"`
}

// probe carries one run's state.
type probe struct {
	o        Options
	res      *Result
	findings []report.Finding
	mu       sync.Mutex
	d        *dialer
	tlsCfg   *tls.Config
	lat      []time.Duration // all request latencies, for the timeout advice
}

// Run probes o.URLs and returns the data and findings. An error means the
// probe could not run at all (bad options); an unreachable cluster is a
// finding, not an error.
func Run(ctx context.Context, o Options) (*Result, []report.Finding, error) {
	o.defaults()
	if len(o.URLs) == 0 {
		return nil, nil, errors.New("no URL given")
	}
	var bases []string
	for _, u := range o.URLs {
		b, err := baseURL(u, &o)
		if err != nil {
			return nil, nil, err
		}
		bases = append(bases, b)
	}
	tc := tlsConfig(&o)
	p := &probe{o: o, res: &Result{BulkSize: o.BulkSize, RequestTimeoutMS: o.RequestTimeout.Milliseconds(), Nodes: []Node{}, Checks: []Check{}},
		d: newDialer(&o), tlsCfg: tc}

	// 1. Every URL: DNS and GET /.
	p.res.Targets = make([]Target, len(bases))
	var wg sync.WaitGroup
	for i, b := range bases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.res.Targets[i] = p.target(ctx, b)
		}()
	}
	wg.Wait()
	base := ""
	for _, t := range p.res.Targets {
		if t.Reachable {
			base = t.URL
			break
		}
	}
	p.targetFindings()
	if base == "" {
		return p.res, p.findings, nil
	}

	// 2. Cluster-wide checks on the first reachable URL.
	stats := newClient(&p.o, p.d, p.tlsCfg, 2)
	defer stats.close()
	start := o.Now()
	before, statsErr := p.nodeStats(ctx, stats, base, "before")
	ownBefore := p.d.opened.Load()

	p.poolCheck(ctx, base, stats, before, statsErr)

	idleDone := make(chan struct{})
	go func() {
		defer close(idleDone)
		p.idleCheck(ctx, base)
	}()
	wg.Add(2)
	go func() { defer wg.Done(); p.healthCheck(ctx, base) }()
	go func() { defer wg.Done(); p.sniffCheck(ctx, base) }()
	wg.Wait()
	if o.Index != "" {
		p.bulkCheck(ctx, base)
	}
	p.bulkSizeCheck()
	if wait := o.MinInterval - o.Now().Sub(start); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	after, err := p.nodeStats(ctx, stats, base, "after")
	if statsErr == nil && err == nil {
		p.pressureCheck(before, after, o.Now().Sub(start))
		p.otherClientsCheck(before, after, p.d.opened.Load()-ownBefore)
	}
	<-idleDone
	p.timeoutCheck()
	return p.res, p.findings, nil
}

func (p *probe) add(f report.Finding) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.findings = append(p.findings, f)
}

func (p *probe) check(c Check, start time.Time) {
	c.DurationMS = time.Since(start).Milliseconds()
	c.Detail = report.Redact(c.Detail)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.res.Checks = append(p.res.Checks, c)
}

func (p *probe) latency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lat = append(p.lat, d)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile of ds (nearest rank); ds is sorted in place.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	k := int(q*float64(len(ds))+0.999999) - 1
	k = max(0, min(k, len(ds)-1))
	return ds[k]
}

// canaryID is unique per run so reruns do not collide with old canaries.
func canaryID() string {
	var b [8]byte
	rand.Read(b[:])
	return "logdoctor-probe-" + hex.EncodeToString(b[:])
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return report.Redact(err.Error())
}

// errKind classifies a request error for the summary line.
func errKind(err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		return "dns"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout") || strings.Contains(err.Error(), "timeout"):
		return "timeout"
	case strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "tls:"):
		return "tls"
	case errors.As(err, &opErr):
		return "network"
	}
	return "error"
}
