// Package esout is the pipeline's Elasticsearch output: bulk `create`
// requests with each event's deterministic _id, batching by count, bytes
// and time, per-item result handling (done, retry with backoff and jitter,
// or dead letter), bounded retries, and a pool over several nodes with
// keep-alive, health checks, dead-node backoff and resurrection, and
// opt-in sniffing. It speaks plain HTTP to ES 7/8 and OpenSearch and never
// requires the X-Elastic-Product header.
package esout

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logdoctor/logdoctor/internal/clip"
	"github.com/logdoctor/logdoctor/internal/jsonenc"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/esclient"
	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
)

// Config configures the output. Zero values take the documented defaults.
type Config struct {
	URLs     []string
	Username string
	Password string
	APIKey   string // sent as "Authorization: ApiKey <key>"
	TLS      *tls.Config

	Index string // index name template, DefaultIndex when empty

	Workers       int           // concurrent bulk requests (default 2)
	BatchCount    int           // events per bulk request (default 2000)
	BatchBytes    int           // bulk body bytes (default 8 MiB; capped under http.max_content_length)
	FlushInterval time.Duration // how long a batch waits to fill (default 100ms)
	Gzip          bool

	RequestTimeout time.Duration // one bulk request (default 30s)
	RetryInitial   time.Duration // first backoff (default 100ms)
	RetryMax       time.Duration // backoff cap (default 10s)
	// RetryTimeout bounds how long an event is retried before it is given
	// up (written to the dead-letter file and counted). Default 1h; negative
	// retries forever.
	RetryTimeout time.Duration

	HealthInterval time.Duration // how often dead nodes are checked (default 2s)
	DeadMin        time.Duration // first dead-node backoff (default 1s)
	DeadMax        time.Duration // dead-node backoff cap (default 30s)

	// Sniff replaces the pool's non-seed nodes with the addresses
	// _nodes/http publishes that accept a connection from here (default
	// off). A "name/ip:port" address is dialled by its name, as
	// elasticsearch-transport and elasticsearch-py do and as es probe
	// checks (esclient.DialAddress).
	Sniff         bool
	SniffInterval time.Duration // default 5m
	// Resolver resolves the names the output dials, published node names
	// included (net.DefaultResolver when nil).
	Resolver *net.Resolver

	// DeadLetter stores an event Elasticsearch refused for good, or gave up
	// on, with the reason. An error keeps the event in the buffer.
	DeadLetter func(rec buffer.Record, reason string) error

	// Prepare makes the document and the _id of a Raw record (stored as the
	// shipper sent it), appending the document to dst and returning dst
	// extended by it. It must be deterministic, a function of the record's
	// stored bytes only: a record delivered again after a crash or a
	// timeout must get the same id. An error dead-letters the record, which
	// then still has Raw set. Without Prepare, Raw records are
	// dead-lettered.
	Prepare func(dst []byte, rec buffer.Record) (out []byte, id string, err error)

	// Busy reports that the output should leave the cores to intake for
	// now: while it does, every worker waits before its next bulk request,
	// checking again every BusyPoll. Nil: workers never wait.
	Busy func() bool

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Transport overrides the HTTP transport: tests, and the embedded
	// Elasticsearch, which serves requests in process.
	Transport http.RoundTripper
}

// Defaults of a zero Config field (and of `pipeline run`'s flags).
const (
	DefaultWorkers        = 2
	DefaultBatchCount     = 2000
	DefaultBatchBytes     = 8 << 20
	DefaultFlushInterval  = 100 * time.Millisecond
	DefaultRequestTimeout = 30 * time.Second
	DefaultRetryTimeout   = time.Hour
)

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.BatchCount <= 0 {
		c.BatchCount = DefaultBatchCount
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.RetryTimeout == 0 {
		c.RetryTimeout = DefaultRetryTimeout
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 2 * time.Second
	}
	if c.DeadMin <= 0 {
		c.DeadMin = time.Second
	}
	if c.DeadMax <= 0 {
		c.DeadMax = 30 * time.Second
	}
	if c.SniffInterval <= 0 {
		c.SniffInterval = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats counts what the output did since it started.
type Stats struct {
	Indexed      uint64 `json:"indexed"`       // items answered 200/201
	Duplicates   uint64 `json:"duplicates"`    // items answered 409: already indexed
	Retried      uint64 `json:"retried"`       // item retries (429, 5xx, transport)
	DeadLetters  uint64 `json:"dead_letters"`  // items refused for good
	GaveUp       uint64 `json:"gave_up"`       // items given up after RetryTimeout
	Requests     uint64 `json:"requests"`      // bulk requests sent
	TransportErr uint64 `json:"transport_err"` // bulk requests without an HTTP answer
	MaxBatch     int    `json:"max_batch_bytes"`
}

// Output delivers buffer records to Elasticsearch.
type Output struct {
	cfg    Config
	buf    *buffer.Buffer
	pool   *pool
	hc     *http.Client
	auth   esclient.Auth
	index  *IndexTemplate
	dialer *net.Dialer
	log    *slog.Logger
	gz     *esclient.Gzipper // nil without Config.Gzip

	maxBody atomic.Int64
	failing atomic.Bool

	indexed, dups, retried, dead, gaveUp, requests, transportErr atomic.Uint64

	mRequests *prometheus.CounterVec
	mItems    *prometheus.CounterVec
	mRetries  prometheus.Counter
	mDead     prometheus.Counter
	mGaveUp   prometheus.Counter
	mLatency  prometheus.Histogram
	mBulkDur  prometheus.Histogram
	mAside    prometheus.Gauge

	bodyPool sync.Pool // bulk bodies (*[]byte)
	docPool  sync.Pool // documents made from Raw records, one buffer per batch (*[]byte)
	respPool sync.Pool // bulk responses (*[]byte)
}

// New checks cfg and builds an output reading from buf.
func New(buf *buffer.Buffer, cfg Config) (*Output, error) {
	cfg.defaults()
	idx, err := ParseIndexTemplate(cfg.Index)
	if err != nil {
		return nil, err
	}
	p, fromURL, err := newPool(cfg.URLs, cfg.DeadMin, cfg.DeadMax)
	if err != nil {
		return nil, err
	}
	auth := esclient.Auth{Username: cfg.Username, Password: cfg.Password, APIKey: cfg.APIKey}
	auth.Fill(fromURL)
	o := &Output{cfg: cfg, buf: buf, pool: p, index: idx, log: cfg.Logger, auth: auth,
		dialer: &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Resolver: cfg.Resolver}}
	if cfg.Gzip {
		o.gz = &esclient.Gzipper{}
	}
	o.maxBody.Store(int64(cfg.BatchBytes))
	rt := cfg.Transport
	if rt == nil {
		rt = &http.Transport{
			DialContext:           o.dialer.DialContext,
			TLSClientConfig:       cfg.TLS,
			MaxIdleConns:          4 * cfg.Workers * len(cfg.URLs),
			MaxIdleConnsPerHost:   2 * cfg.Workers,
			IdleConnTimeout:       60 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     false,
		}
	}
	o.hc = &http.Client{Transport: rt}
	p.onChange = func(base string, alive bool, retryIn time.Duration, err error) {
		if alive {
			o.log.Info("elasticsearch node alive", "node", base)
		} else {
			o.log.Warn("elasticsearch node dead", "node", base, "err", errString(err), "retry_in", retryIn.Round(time.Millisecond).String())
		}
	}
	o.mRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_bulk_requests_total", Help: "Bulk requests by HTTP status (transport_error when there was no answer).",
	}, []string{"status"})
	o.mItems = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_bulk_items_total", Help: "Bulk item results by status (409 = already indexed).",
	}, []string{"status"})
	o.mRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_retries_total", Help: "Events sent again after a 429, 5xx or transport error.",
	})
	o.mDead = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_es_dead_letters_total", Help: "Events Elasticsearch refused for good (written to the dead-letter file).",
	})
	o.mGaveUp = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_gave_up_total", Help: "Events given up after the retry timeout (written to the dead-letter file).",
	})
	o.mLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "logdoctor_pipeline_end_to_end_seconds", Help: "From entering the pipeline to Elasticsearch's answer for the event.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
	})
	o.mBulkDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "logdoctor_pipeline_bulk_duration_seconds", Help: "Duration of bulk requests.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	})
	o.mAside = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "logdoctor_pipeline_es_workers_yielding", Help: "Output workers waiting while intake has the cores (the embedded Elasticsearch shares them).",
	})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{o.mRequests, o.mItems, o.mRetries, o.mDead, o.mGaveUp, o.mLatency, o.mBulkDur, o.mAside,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logdoctor_pipeline_es_nodes_alive", Help: "Elasticsearch nodes considered alive."},
				func() float64 { a, _ := o.pool.counts(); return float64(a) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logdoctor_pipeline_es_nodes", Help: "Elasticsearch nodes in the pool."},
				func() float64 { _, n := o.pool.counts(); return float64(n) }),
		} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("esout: metrics: %w", err)
			}
		}
	}
	return o, nil
}

// Stats returns the counters.
func (o *Output) Stats() Stats {
	return Stats{Indexed: o.indexed.Load(), Duplicates: o.dups.Load(), Retried: o.retried.Load(),
		DeadLetters: o.dead.Load(), GaveUp: o.gaveUp.Load(), Requests: o.requests.Load(),
		TransportErr: o.transportErr.Load(), MaxBatch: int(o.maxBody.Load())}
}

// Run delivers until ctx ends. Records in flight when ctx ends stay in the
// buffer unacknowledged and are replayed on the next start.
func (o *Output) Run(ctx context.Context) error {
	o.discover(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); o.healthLoop(ctx) }()
	for range o.cfg.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); o.worker(ctx) }()
	}
	wg.Wait()
	return nil
}

// BusyPoll is how often a worker stepping aside asks Config.Busy again.
const BusyPoll = 5 * time.Millisecond

// worker delivers batch after batch, first waiting while Config.Busy
// says so.
func (o *Output) worker(ctx context.Context) {
	// A batch is delivered (or given up on) before the next is taken, and
	// nothing keeps its records past deliver: the buffer reads each batch
	// into the memory of the one before.
	var sc buffer.Scratch
	var ds deliverScratch
	for {
		if o.cfg.Busy != nil && !o.waitWhileBusy(ctx) {
			return
		}
		recs, err := o.buf.NextInto(ctx, &sc, o.cfg.BatchCount, int(o.maxBody.Load())*9/10, o.cfg.FlushInterval)
		if err != nil {
			return
		}
		o.deliver(ctx, recs, &ds)
	}
}

// waitWhileBusy returns once Config.Busy says no, asking every BusyPoll;
// false when ctx ended first.
func (o *Output) waitWhileBusy(ctx context.Context) bool {
	if !o.cfg.Busy() {
		return true
	}
	o.mAside.Inc()
	defer o.mAside.Dec()
	t := time.NewTicker(BusyPoll)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if !o.cfg.Busy() {
				return true
			}
		case <-ctx.Done():
			return false
		}
	}
}

// item is one record on its way, with the state of its retries.
type item struct {
	rec     buffer.Record
	index   string
	lastErr string
}

// deliverScratch is a worker's memory for the items of the batch it
// delivers, reused batch after batch (a batch's were the largest thing
// the output allocated after the batch itself).
type deliverScratch struct {
	items   []item
	pending []*item
}

// deliver sends recs until each one is done, dead-lettered, given up, or
// ctx ends. Its items live in ds until the next call.
func (o *Output) deliver(ctx context.Context, recs []buffer.Record, ds *deliverScratch) {
	start := time.Now()
	if cap(ds.items) < len(recs) {
		ds.items, ds.pending = make([]item, len(recs)), make([]*item, 0, len(recs))
	}
	items, pending := ds.items[:len(recs)], ds.pending[:0]
	clear(items) // nothing of the batch before stays reachable through them
	// Events of a batch mostly share tag and hour: resolve the index name
	// once per (tag, hour), the finest unit a template can use.
	var lastTag, lastName string
	lastHour := int64(-1 << 62)
	// Documents of Raw records are made into one buffer per batch; their
	// spans are resolved once it stops growing.
	dp, _ := o.docPool.Get().(*[]byte)
	if dp == nil {
		dp = new([]byte)
	}
	docs := (*dp)[:0]
	defer func() {
		if cap(docs) <= 32<<20 {
			*dp = docs[:0]
			o.docPool.Put(dp)
		}
	}()
	type span struct{ item, from, to int }
	var spans []span
	for i, r := range recs {
		if r.Corrupt != nil {
			o.deadLetter(r, "corrupt in buffer: "+r.Corrupt.Error(), false)
			continue
		}
		if r.Raw {
			if o.cfg.Prepare == nil {
				o.deadLetter(r, "record stored as sent, and no converter to a document", false)
				continue
			}
			from := len(docs)
			out, id, err := o.cfg.Prepare(docs, r)
			if err != nil {
				o.deadLetter(r, err.Error(), false)
				continue
			}
			docs = out
			spans = append(spans, span{i, from, len(docs)})
			r.ID, r.Raw = id, false
		}
		if h := floorDiv(r.Sec, 3600); h != lastHour || r.Tag != lastTag {
			lastTag, lastHour, lastName = r.Tag, h, o.index.Name(r.Tag, r.Sec)
		}
		items[i] = item{rec: r, index: lastName}
		pending = append(pending, &items[i])
	}
	for _, sp := range spans {
		items[sp.item].rec.Doc = docs[sp.from:sp.to:sp.to]
	}
	backoff := o.cfg.RetryInitial
	for len(pending) > 0 && ctx.Err() == nil {
		pending = o.attempt(ctx, pending)
		if ctx.Err() != nil {
			return
		}
		if len(pending) == 0 {
			if o.failing.CompareAndSwap(true, false) {
				o.log.Info("bulk requests succeeding again")
			}
			return
		}
		if o.failing.CompareAndSwap(false, true) {
			// One line per state change, not per retry.
			o.log.Warn("bulk requests failing; retrying with backoff", "events", len(pending), "reason", pending[0].lastErr)
		}
		if o.cfg.RetryTimeout > 0 && time.Since(start) > o.cfg.RetryTimeout {
			o.log.Error("giving up on events after retry timeout", "events", len(pending),
				"retry_timeout", o.cfg.RetryTimeout.String(), "last_error", pending[0].lastErr)
			for _, it := range pending {
				o.gaveUp.Add(1)
				o.mGaveUp.Inc()
				o.deadLetter(it.rec, "gave up after "+o.cfg.RetryTimeout.String()+": "+it.lastErr, true)
			}
			return
		}
		o.retried.Add(uint64(len(pending)))
		o.mRetries.Add(float64(len(pending)))
		// Full jitter: wait a random time up to the backoff. With every
		// node dead the next attempt goes to the one whose backoff ends
		// first anyway: the retry backoff (at most RetryMax) spaces those
		// attempts, not the longer dead-node backoff, so a cluster that
		// comes back is used within RetryMax.
		d := rand.N(backoff) + 1
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, o.cfg.RetryMax)
	}
}

// attempt sends one bulk request for items and returns those to retry.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func (o *Output) attempt(ctx context.Context, items []*item) []*item {
	size := 0
	for _, it := range items {
		size += len(it.rec.Doc) + len(it.index) + len(it.rec.ID) + 40
	}
	bp, _ := o.bodyPool.Get().(*[]byte)
	if bp == nil || cap(*bp) < size {
		b := make([]byte, 0, size)
		bp = &b
	}
	body := buildBulk((*bp)[:0], items)
	// The transport may still hold the body after a failed or early
	// answered request; only a fully answered 2xx returns it to the pool.
	reuse := false
	defer func() {
		if reuse && cap(body) <= 32<<20 {
			*bp = body[:0]
			o.bodyPool.Put(bp)
		}
	}()
	if len(body) > int(o.maxBody.Load()) && len(items) > 1 {
		// Over the cluster's limit (it may have shrunk since the batch was
		// cut): send in halves.
		h := len(items) / 2
		return append(o.attempt(ctx, items[:h]), o.attempt(ctx, items[h:])...)
	}
	status, resp, err := o.send(ctx, body)
	if err != nil {
		for _, it := range items {
			it.lastErr = err.Error()
		}
		return items
	}
	switch {
	case status == http.StatusRequestEntityTooLarge && len(items) == 1:
		// One event larger than the cluster accepts can never succeed.
		o.deadLetter(items[0].rec, "413: event larger than http.max_content_length", true)
		return nil
	case status == http.StatusRequestEntityTooLarge && len(items) > 1:
		o.maxBody.Store(max(int64(len(body))/2, 1<<16))
		h := len(items) / 2
		return append(o.attempt(ctx, items[:h]), o.attempt(ctx, items[h:])...)
	case status < 200 || status > 299:
		for _, it := range items {
			it.lastErr = "bulk request answered " + strconv.Itoa(status) + ": " + clip.Bytes(bytes.TrimSpace(resp), 200)
		}
		return items
	}
	reuse = true
	retry := o.handleItems(items, resp)
	o.putResp(resp)
	return retry
}

func (o *Output) putResp(b []byte) {
	if cap(b) <= 16<<20 {
		b = b[:0]
		o.respPool.Put(&b)
	}
}

type bulkItem struct {
	Status int             `json:"status"`
	Error  json.RawMessage `json:"error"`
}

func (o *Output) handleItems(items []*item, resp []byte) []*item {
	now := time.Now()
	// Fast path: Elasticsearch and OpenSearch put "errors" right after
	// "took" at the top of the answer; false means every item succeeded
	// and the rest need not be parsed.
	if head := resp[:min(len(resp), 64)]; bytes.HasPrefix(head, []byte(`{"took":`)) && bytes.Contains(head, []byte(`,"errors":false,`)) {
		o.ackDone(items, now, 0)
		return nil
	}
	var fast struct {
		Errors bool `json:"errors"`
		Items  []json.RawMessage
	}
	if err := json.Unmarshal(resp, &fast); err != nil || len(fast.Items) != len(items) {
		reason := "bulk response does not match the request"
		if err != nil {
			reason = "bulk response unreadable: " + err.Error()
		}
		for _, it := range items {
			it.lastErr = reason
		}
		return items
	}
	if !fast.Errors {
		o.ackDone(items, now, 0)
		return nil
	}
	var retry []*item
	done := items[:0:0]
	for i, raw := range fast.Items {
		it := items[i]
		var wrap map[string]bulkItem
		if err := json.Unmarshal(raw, &wrap); err != nil || len(wrap) != 1 {
			it.lastErr = "bulk item unreadable"
			retry = append(retry, it)
			continue
		}
		var bi bulkItem
		for _, v := range wrap {
			bi = v
		}
		st := bi.Status
		o.mItems.WithLabelValues(strconv.Itoa(st)).Inc()
		switch {
		case st == 200 || st == 201:
			o.indexed.Add(1)
			done = append(done, it)
		case st == http.StatusConflict:
			o.dups.Add(1)
			done = append(done, it)
		case st == http.StatusTooManyRequests || st >= 500:
			it.lastErr = fmt.Sprintf("item %d: %s", st, errType(bi.Error))
			retry = append(retry, it)
		default:
			o.deadLetter(it.rec, fmt.Sprintf("item %d: %s", st, string(bi.Error)), true)
		}
	}
	o.ackDone(done, now, -1)
	return retry
}

// ackDone acknowledges items to the buffer. status > 0 also counts them as
// indexed with that status (the errors:false fast path).
func (o *Output) ackDone(items []*item, now time.Time, status int) {
	if len(items) == 0 {
		return
	}
	if status == 0 {
		o.indexed.Add(uint64(len(items)))
		o.mItems.WithLabelValues("201").Add(float64(len(items)))
	}
	pos := make([]buffer.Pos, len(items))
	for i, it := range items {
		pos[i] = it.rec.Pos
		if it.rec.Ingest > 0 {
			o.mLatency.Observe(now.Sub(time.Unix(0, it.rec.Ingest)).Seconds())
		}
	}
	o.buf.Ack(pos...)
}

func (o *Output) deadLetter(rec buffer.Record, reason string, count bool) {
	if count {
		o.dead.Add(1)
		o.mDead.Inc()
	}
	if o.cfg.DeadLetter != nil {
		if err := o.cfg.DeadLetter(rec, reason); err != nil {
			o.log.Error("dead-letter write failed; event stays in the buffer", "err", err)
			return
		}
	}
	o.buf.Ack(rec.Pos)
}

func errType(raw json.RawMessage) string {
	var e struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Type != "" {
		return e.Type
	}
	return string(raw)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// buildBulk writes the NDJSON body: a create action with _index and _id,
// then the document, per item.
func buildBulk(dst []byte, items []*item) []byte {
	for _, it := range items {
		dst = append(dst, `{"create":{"_index":`...)
		dst = jsonenc.AppendString(dst, it.index)
		dst = append(dst, `,"_id":`...)
		dst = jsonenc.AppendString(dst, it.rec.ID)
		dst = append(dst, "}}\n"...)
		dst = append(dst, it.rec.Doc...)
		dst = append(dst, '\n')
	}
	return dst
}

// maxResponse caps how much of a bulk answer is read: some 100 bytes per
// item, so far above any batch's.
const maxResponse = 256 << 20

// client is the esclient.Client of one node.
func (o *Output) client(nd *node, maxBody int64) *esclient.Client {
	return &esclient.Client{Base: nd.base, Auth: o.auth, HTTP: o.hc, MaxBody: maxBody, Gzip: o.gz}
}

// send posts one bulk body to a node. err is a transport error: no HTTP
// answer (connection refused or reset, timeout) or one whose body broke
// off; the node is then marked dead. An answer too large to read is an
// error too, but the node stays alive. Any other HTTP answer returns its
// status and body.
func (o *Output) send(ctx context.Context, body []byte) (int, []byte, error) {
	nd := o.pool.pick()
	rctx, cancel := context.WithTimeout(ctx, o.cfg.RequestTimeout)
	defer cancel()
	rp, _ := o.respPool.Get().(*[]byte)
	if rp == nil {
		b := make([]byte, 0, 64<<10)
		rp = &b
	}
	o.requests.Add(1)
	r, err := o.client(nd, maxResponse).DoInto(rctx, http.MethodPost, "/_bulk", body, "application/x-ndjson", (*rp)[:0])
	if r != nil {
		o.mBulkDur.Observe(r.Elapsed.Seconds())
	}
	switch {
	case r != nil && errors.Is(err, esclient.ErrBodyTooLarge):
		o.mRequests.WithLabelValues(strconv.Itoa(r.Status)).Inc()
		o.pool.markAlive(nd)
		return 0, nil, fmt.Errorf("%s: %w", nd.base, err)
	case err != nil:
		o.transportErr.Add(1)
		o.mRequests.WithLabelValues("transport_error").Inc()
		if ctx.Err() == nil {
			o.pool.markDead(nd, err)
		}
		return 0, nil, fmt.Errorf("POST %s/_bulk: %w", nd.base, err)
	}
	o.mRequests.WithLabelValues(strconv.Itoa(r.Status)).Inc()
	o.pool.markAlive(nd)
	return r.Status, r.Body, nil
}

// get fetches a JSON document from a node (v nil: only the status
// matters).
func (o *Output) get(ctx context.Context, nd *node, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := o.client(nd, 16<<20).GetJSON(ctx, path, v); err != nil {
		return fmt.Errorf("GET %s%s: %w", nd.base, path, err)
	}
	return nil
}

// discover reads http.max_content_length from _nodes/http to keep bulk
// bodies under it, and sniffs nodes when asked to.
func (o *Output) discover(ctx context.Context) {
	nd := o.pool.pick()
	var nh esclient.NodesHTTP
	if err := o.get(ctx, nd, "/_nodes/http", &nh); err != nil {
		o.log.Info("could not read _nodes/http; keeping the configured bulk size", "node", nd.base, "err", err, "batch_bytes", o.cfg.BatchBytes)
		return
	}
	if minMCL := nh.MinMaxContentLength(); minMCL > 0 && minMCL < int64(o.cfg.BatchBytes) {
		o.maxBody.Store(minMCL)
		o.log.Info("bulk size capped by http.max_content_length", "max_content_length", minMCL)
	}
	if o.cfg.Sniff {
		o.sniff(ctx, nd, &nh)
	}
}

// sniff replaces the sniffed part of the pool with the published
// addresses that accept a connection from here.
func (o *Output) sniff(ctx context.Context, from *node, nh *esclient.NodesHTTP) {
	scheme := "http"
	if len(from.base) > 5 && from.base[:5] == "https" {
		scheme = "https"
	}
	var ok, bad []string
	for _, n := range nh.Nodes {
		if n.HTTP == nil {
			bad = append(bad, n.Name+": no http publish_address")
			continue
		}
		base, err := esclient.PublishedBase(scheme, n.HTTP.PublishAddress)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		if reachable(ctx, o.dialer.DialContext, base, 2*time.Second) {
			ok = append(ok, base)
		} else {
			bad = append(bad, base)
		}
	}
	if len(bad) > 0 {
		o.log.Warn("sniffed nodes not reachable from here; not using them", "nodes", bad)
	}
	o.pool.replaceSniffed(ok)
	a, n := o.pool.counts()
	o.log.Info("sniffed elasticsearch nodes", "reachable", len(ok), "pool", n, "alive", a)
}

// healthLoop checks dead nodes once their backoff has passed, and
// re-sniffs when sniffing is on.
func (o *Output) healthLoop(ctx context.Context) {
	t := time.NewTicker(o.cfg.HealthInterval)
	defer t.Stop()
	lastSniff := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, nd := range o.pool.due() {
			if err := o.get(ctx, nd, "/", nil); err != nil {
				if ctx.Err() != nil {
					return
				}
				o.pool.markDead(nd, err)
			} else {
				o.pool.markAlive(nd)
			}
		}
		if o.cfg.Sniff && time.Since(lastSniff) > o.cfg.SniffInterval {
			lastSniff = time.Now()
			var nh esclient.NodesHTTP
			nd := o.pool.pick()
			if err := o.get(ctx, nd, "/_nodes/http", &nh); err == nil {
				o.sniff(ctx, nd, &nh)
			} else {
				o.log.Warn("sniff failed; keeping the current pool", "err", err)
			}
		}
	}
}
