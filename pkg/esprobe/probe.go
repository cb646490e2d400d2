// Package esprobe checks an Elasticsearch or OpenSearch cluster the way a
// log shipper meets it: reachability and version, DNS, cluster health, the
// addresses a sniffing client would switch to (_nodes/http publish_address),
// keep-alive and connection pool behaviour counted from real connections
// (net/http/httptrace), write pressure (thread_pool.write and
// indexing_pressure rejections as deltas), bulk idempotency with create and
// a deterministic _id, max_content_length against the shipper's bulk size,
// and bulk latency against the shipper's request timeout.
//
// Each check is a function in a file of its own (check_*.go) that takes
// what it reads as arguments (a client, stats snapshots, the options it
// needs) and returns its result and an outcome: its timed steps, its
// findings and its request latencies. Run is the sequence that calls them
// and the only place results are put together.
//
// It talks to the cluster through pkg/esclient and does not insist on the
// X-Elastic-Product header, so OpenSearch 1 and 2 work too. It returns a
// Result and findings; it prints nothing.
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

	"sync"
	"time"

	"github.com/logdoctor/logdoctor/pkg/esclient"
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

// The probe's own defaults, used when an Options field is zero (and by
// the command's flags).
const (
	DefaultSequential  = 10               // requests in the keep-alive check
	DefaultConcurrent  = 4                // requests per round in the pool check
	DefaultBulkSamples = 5                // canary bulks with Index
	DefaultTimeout     = 10 * time.Second // each request and TCP connect
	DefaultIdleWait    = 500 * time.Millisecond
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

	// Resolver answers the DNS check and, unless Dialer is given,
	// resolves every name the probe dials (URLs and published node
	// names); Dialer and Transport are injectable for tests.
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
		o.Sequential = DefaultSequential
	}
	if o.Concurrent <= 0 {
		o.Concurrent = DefaultConcurrent
	}
	if o.IdleWait < 0 {
		o.IdleWait = 0
	}
	if o.BulkSamples <= 1 {
		o.BulkSamples = DefaultBulkSamples
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MinInterval <= 0 {
		o.MinInterval = 200 * time.Millisecond
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second, Resolver: o.Resolver}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (o *Options) auth() esclient.Auth {
	return esclient.Auth{Username: o.Username, Password: o.Password, APIKey: o.APIKey}
}

// parseURLs normalises the URL arguments; credentials in a URL's userinfo
// fill the options' when those are empty.
func (o *Options) parseURLs() ([]string, error) {
	var bases []string
	for _, u := range o.URLs {
		b, fromURL, err := esclient.ParseURL(u)
		if err != nil {
			return nil, err
		}
		a := o.auth()
		a.Fill(fromURL)
		o.Username, o.Password = a.Username, a.Password
		bases = append(bases, b)
	}
	return bases, nil
}

// outcome is what a check hands back besides its own result: its timed
// steps (Result.Checks), its findings, and the latencies of the requests
// it made, for the request timeout advice.
type outcome struct {
	checks   []Check
	findings []report.Finding
	lats     []time.Duration
}

// check records a step that began at start; its detail is redacted, since
// it may quote a URL or an error.
func (o *outcome) check(c Check, start time.Time) {
	c.DurationMS = time.Since(start).Milliseconds()
	c.Detail = report.Redact(c.Detail)
	o.checks = append(o.checks, c)
}

func (o *outcome) add(f report.Finding) { o.findings = append(o.findings, f) }

func (o *outcome) latency(d time.Duration) { o.lats = append(o.lats, d) }

func (o *outcome) merge(x outcome) {
	o.checks = append(o.checks, x.checks...)
	o.findings = append(o.findings, x.findings...)
	o.lats = append(o.lats, x.lats...)
}

func (o *outcome) has(id string) bool {
	for _, f := range o.findings {
		if f.ID == id {
			return true
		}
	}
	return false
}

// conn makes the probe's clients: each check gets its own pool, all of
// them dialling through one counting dialer.
type conn struct {
	o   *Options
	d   *dialer
	tls *tls.Config
}

func (c conn) client(base string, maxIdle int) *client {
	return newClient(c.o, base, c.d, c.tls, maxIdle)
}

// Run probes o.URLs and returns the data and findings. An error means the
// probe could not run at all (bad options); an unreachable cluster is a
// finding, not an error.
//
// The sequence: every URL at once (DNS, GET /); then, on the first
// reachable one, a stats snapshot, the keep-alive pool, the idle
// connection (in the background, for IdleWait), health and sniffing at
// once, the canary bulk, the bulk size, a second stats snapshot at least
// MinInterval after the first (write pressure, other clients' churn), and
// the request timeout advice over every latency seen.
func Run(ctx context.Context, o Options) (*Result, []report.Finding, error) {
	o.defaults()
	if len(o.URLs) == 0 {
		return nil, nil, errors.New("no URL given")
	}
	bases, err := o.parseURLs()
	if err != nil {
		return nil, nil, err
	}
	cn := conn{o: &o, d: newDialer(&o), tls: esclient.TLSConfig(o.RootCAs, o.Insecure)}
	res := &Result{BulkSize: o.BulkSize, RequestTimeoutMS: o.RequestTimeout.Milliseconds(), Nodes: []Node{}, Checks: []Check{}}
	var all outcome
	done := func() (*Result, []report.Finding, error) {
		res.Checks = append(res.Checks, all.checks...)
		return res, all.findings, nil
	}

	// 1. Every URL at once: DNS and GET /.
	res.Targets = make([]Target, len(bases))
	outs := make([]outcome, len(bases))
	var wg sync.WaitGroup
	for i, b := range bases {
		wg.Go(func() {
			cl := cn.client(b, 1)
			defer cl.close()
			res.Targets[i], outs[i] = checkTarget(ctx, o.Resolver, cl)
		})
	}
	wg.Wait()
	for _, out := range outs {
		all.merge(out)
	}
	all.merge(targetFindings(res.Targets, o.auth()))
	base := ""
	for _, t := range res.Targets {
		if t.Reachable {
			base = t.URL
			break
		}
	}
	if base == "" {
		return done()
	}

	// 2. The cluster, through the first reachable URL.
	stats := cn.client(base, 2)
	defer stats.close()
	start := o.Now()
	before, out, statsErr := nodeStats(ctx, stats, "before")
	all.merge(out)
	ownBefore := cn.d.opened.Load()

	poolCl := cn.client(base, o.Concurrent)
	res.Pool, out = checkPool(ctx, poolCl, stats, cn.d, before, o.Sequential, o.Concurrent)
	poolCl.close()
	all.merge(out)

	var idle *idleResult
	var idleOut outcome
	idleDone := make(chan struct{})
	go func() {
		defer close(idleDone)
		cl := cn.client(base, 1)
		defer cl.close()
		idle, idleOut = checkIdle(ctx, cl, o.IdleWait)
	}()

	var healthOut, sniffOut outcome
	wg.Go(func() {
		cl := cn.client(base, 1)
		defer cl.close()
		res.Health, healthOut = checkHealth(ctx, cl)
	})
	wg.Go(func() {
		cl := cn.client(base, 1)
		defer cl.close()
		res.Nodes, res.MaxContentLength, sniffOut = checkSniff(ctx, cl, cn.d.DialContext, o.Timeout)
	})
	wg.Wait()
	all.merge(healthOut)
	all.merge(sniffOut)

	if o.Index != "" {
		cl := cn.client(base, 1)
		res.Bulk, out = checkBulk(ctx, cl, o.Index, o.BulkSamples, o.RequestTimeout)
		cl.close()
		all.merge(out)
	}
	all.merge(checkBulkSize(o.BulkSize, res.MaxContentLength))

	if wait := o.MinInterval - o.Now().Sub(start); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	after, out, err := nodeStats(ctx, stats, "after")
	all.merge(out)
	if statsErr == nil && err == nil {
		res.Pressure, out = checkPressure(before, after, o.Now().Sub(start), all.has(FindingWriteRejections))
		all.merge(out)
		var others otherClients
		others, out = checkOtherClients(before, after, cn.d.opened.Load()-ownBefore)
		others.apply(res.Pool)
		all.merge(out)
	}

	<-idleDone
	all.merge(idleOut)
	if idle != nil {
		idle.apply(res.Pool)
	}
	res.LatencyP99MS, out = checkTimeout(res.Bulk, all.lats, o.RequestTimeout)
	all.merge(out)
	return done()
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

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
