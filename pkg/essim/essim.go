// Package essim is an Elasticsearch-compatible HTTP endpoint speaking the
// subset of the REST API a log pipeline uses (GET /, _bulk, _count,
// _search with match_all/term/terms/ids/bool, terms and composite
// aggregations and scrolling, _refresh,
// _cluster/health, _nodes/http, _nodes/stats, _cat/thread_pool), faithful in
// status codes, headers and JSON shapes to Elasticsearch 8 (or 7.17 with
// Config.Version), with fault injection: item rejections (429
// es_rejected_execution_exception), whole-request failures, latency, servers
// closing idle keep-alive connections, unreachable published addresses,
// red/yellow health, bulk answered after the client gave up while the
// documents are still indexed (the path to duplicates), and documents
// acknowledged but never stored.
//
// There is no Elasticsearch on the machines logdoctor is built and tested
// on; essim is the stand-in the probe, the pipeline and the smoke test run
// against, and `logdoctor es serve` runs it standalone so a person can point
// a real shipper at a misbehaving cluster.
//
// Several nodes (Config.Nodes) listen on several loopback ports and share one
// document store; each node keeps its own HTTP connection counters and write
// thread pool, counted from real connections. Documents are searchable as
// soon as they are indexed (as if refresh_interval were zero).
//
// This package is the API: routing.go dispatches, indices.go serves
// documents and indices, bulk.go and bulkparse.go the bulk API, search.go,
// query.go, plan.go, aggs.go and scroll.go searching, cluster.go the
// cluster and its nodes, admin.go the faults. How documents are kept (the
// indices, the _id table, the term index and the data log) is the storage
// engine's business, in the subpackage store.
package essim

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim/store"
)

// DefaultVersion is the Elasticsearch version essim claims by default.
const DefaultVersion = "8.15.0"

// DefaultMaxContentLength is Elasticsearch's http.max_content_length (100 MiB).
const DefaultMaxContentLength = 100 << 20

// DefaultLateBy is how long a bulk is held with Faults.IndexLate: longer than
// fluent-plugin-elasticsearch's default request_timeout of 5 s.
const DefaultLateBy = 6 * time.Second

// Defaults of a zero Config and Faults field.
const (
	DefaultClusterName = "essim"
	DefaultNodes       = 1
	DefaultFailStatus  = http.StatusTooManyRequests // Elasticsearch's answer to a full write queue
	DefaultSeed        = 1
)

// Config describes the simulated cluster.
type Config struct {
	Version string // "8.15.0" by default; "7.17.x" answers like Elasticsearch 7
	// Distribution "opensearch" answers like OpenSearch (Version 1.x or
	// 2.x, default 2.11.0): version.distribution set, no X-Elastic-Product.
	Distribution     string
	ClusterName      string // "essim" by default
	Nodes            int    // listeners sharing one store; 1 by default
	DataDir          string // keep documents on disk here; empty = memory only
	MaxContentLength int64  // request body cap (413 above); 100 MiB by default
	// InFlightRequestsLimit is network.breaker.inflight_requests.limit:
	// the bodies of the requests a node is handling, each byte counted
	// twice (the breaker's overhead), may not exceed it; a request that
	// would is answered 429 circuit_breaking_exception before its body is
	// read. 0: DefaultInFlightRequestsLimit; negative: no limit.
	InFlightRequestsLimit int64
	// MaxDocs bounds the documents stored, all indices (0: no bound). At
	// the bound writes are refused as Elasticsearch refuses them past the
	// flood-stage disk watermark: 429 cluster_block_exception per item,
	// deletes still allowed. It is what keeps an embedded essim's memory
	// (about 35 bytes a document) bounded.
	MaxDocs        int64
	WriteThreads   int // write thread pool size per node; 2 by default
	WriteQueueSize int // write queue capacity per node; 10000 by default
	// Username and Password, when set, require HTTP basic auth; APIKey, when
	// set, also accepts "Authorization: ApiKey <APIKey>".
	Username, Password, APIKey string
	TLS                        *tls.Config // serve HTTPS when set
	Faults                     Faults
	// hashMask keeps only these bits of the _id hash; tests set it to
	// force collisions. 0 keeps all.
	hashMask uint32
}

// Faults are the injected misbehaviours; they can change at runtime through
// SetFaults or POST /_essim/faults.
type Faults struct {
	RejectRate float64       `json:"reject_rate"` // fraction of bulk items answered 429 es_rejected_execution_exception
	FailRate   float64       `json:"fail_rate"`   // fraction of write requests failed whole
	FailStatus int           `json:"fail_status"` // status of those failures: 429 (default) or 503
	Latency    time.Duration `json:"-"`           // added to every request
	IdleClose  time.Duration `json:"-"`           // close keep-alive connections idle this long; 0 = never
	// PublishAddress replaces every node's http.publish_address in
	// _nodes/http ("127.0.0.2:1" = unreachable); "none" publishes no http
	// section at all, so a sniffing client ends with an empty pool.
	PublishAddress string `json:"publish_address"`
	Health         string `json:"health"` // "" or green, yellow, red; red fails bulk items with 503
	// IndexLate indexes a bulk at once but holds the answer for LateBy
	// (DefaultLateBy when 0): a client with a shorter timeout gives up and
	// resends documents that are already stored.
	IndexLate bool          `json:"index_late"`
	LateBy    time.Duration `json:"-"`
	DropRate  float64       `json:"drop_rate"` // fraction of bulk items acknowledged (201) but never stored
	// NoKeepAlive answers every request with "Connection: close", like a
	// proxy without keep-alive: each client request costs a new connection.
	NoKeepAlive bool `json:"no_keepalive"`
	// StripProductHeader drops X-Elastic-Product, as some proxies and
	// gateways do; Elastic's clients from 7.14 on then refuse the server.
	StripProductHeader bool  `json:"strip_product_header"`
	Seed               int64 `json:"seed"` // random source for the rates; 0 = 1
}

// faultsJSON carries Faults over the admin endpoint with durations as
// strings ("250ms") because people type them.
type faultsJSON struct {
	faultsAlias
	Latency   string `json:"latency,omitempty"`
	IdleClose string `json:"idle_close,omitempty"`
	LateBy    string `json:"late_by,omitempty"`
}

// faultsAlias has Faults' fields without its JSON methods.
type faultsAlias Faults

// MarshalJSON writes durations as strings ("250ms").
func (f Faults) MarshalJSON() ([]byte, error) {
	fj := faultsJSON{faultsAlias: faultsAlias(f)}
	if f.Latency > 0 {
		fj.Latency = f.Latency.String()
	}
	if f.IdleClose > 0 {
		fj.IdleClose = f.IdleClose.String()
	}
	if f.LateBy > 0 {
		fj.LateBy = f.LateBy.String()
	}
	return json.Marshal(fj)
}

// UnmarshalJSON reads what MarshalJSON writes; unknown fields are errors
// so a typo in an admin request does not pass silently.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var fj faultsJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&fj); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	out := Faults(fj.faultsAlias)
	for _, x := range []struct {
		s   string
		dst *time.Duration
	}{{fj.Latency, &out.Latency}, {fj.IdleClose, &out.IdleClose}, {fj.LateBy, &out.LateBy}} {
		if x.s == "" {
			continue
		}
		v, err := time.ParseDuration(x.s)
		if err != nil {
			return fmt.Errorf("faults: %w", err)
		}
		*x.dst = v
	}
	*f = out
	return nil
}

// Stats are the counters a test asserts on.
type Stats struct {
	Docs            int   `json:"docs"`             // documents stored, all indices
	IndexBytes      int64 `json:"index_bytes"`      // memory the indices' document and id tables hold
	BulkRequests    int64 `json:"bulk_requests"`    // _bulk requests answered
	BulkItems       int64 `json:"bulk_items"`       // items seen in them
	Rejected        int64 `json:"rejected"`         // items rejected with 429 (thread_pool.write.rejected)
	RequestFailures int64 `json:"request_failures"` // whole requests failed by FailRate
	Dropped         int64 `json:"dropped"`          // items acknowledged but not stored
	Conflicts       int64 `json:"conflicts"`        // create on an existing _id (409)
	Blocked         int64 `json:"blocked"`          // writes refused at MaxDocs (flood-stage block)
	OpenedConns     int64 `json:"opened_conns"`     // TCP connections accepted, all nodes
	OpenConns       int64 `json:"open_conns"`       // currently open
	IdleClosed      int64 `json:"idle_closed"`      // connections closed by IdleClose
	Requests        int64 `json:"requests"`         // HTTP requests, all nodes
	WriteActive     int64 `json:"write_active"`     // bulks being indexed now (thread_pool.write.active)
	WriteQueue      int64 `json:"write_queue"`      // bulks waiting for a write thread
	BreakerTripped  int64 `json:"breaker_tripped"`  // requests answered 429 circuit_breaking_exception (in-flight requests)
}

// Server is a running simulated cluster.
type Server struct {
	cfg        Config
	major      int // Elasticsearch major the answers follow
	opensearch bool
	store      *store.Store
	scrolls    *scrolls
	nodes      []*node

	mu        sync.Mutex
	faults    Faults
	rng       *rand.Rand
	templates map[string]json.RawMessage // templates, ILM policies, pipelines: kept, not applied

	bulkRequests, bulkItems, failures, dropped, conflicts atomic.Int64
	requests, blocked                                     atomic.Int64
	closeOnce                                             sync.Once
	done                                                  chan struct{} // closed by Close
}

// node is one listener: its own name, HTTP counters and write pool.
type node struct {
	s        *Server
	idx      int
	id, name string
	ln       net.Listener
	srv      *http.Server
	url      string
	addr     string // host:port the listener has

	opened, open, idleClosed atomic.Int64
	writeActive, writeQueue  atomic.Int64
	writeCompleted, largest  atomic.Int64
	rejected                 atomic.Int64 // thread_pool.write.rejected
	coordRejections          atomic.Int64 // indexing_pressure coordinating_rejections
	pressure, pressureTotal  atomic.Int64 // indexing_pressure bytes, current and total
	sem                      chan struct{}
	breaker                  breaker
	// scratch keeps the working memory of finished bulk requests for the
	// next ones, at most WriteThreads of them (see getScratch).
	scratchMu sync.Mutex
	scratch   []*bulkScratch

	connMu sync.Mutex
	idle   map[net.Conn]*time.Timer
}

// CheckVersion says whether essim can claim version of distribution
// ("elasticsearch", "" for the same, or "opensearch"); "" is the default
// version.
func CheckVersion(distribution, version string) error {
	if version == "" {
		return nil
	}
	_, _, err := parseVersion(distribution, version)
	return err
}

func parseVersion(distribution, version string) (major int, opensearch bool, err error) {
	switch distribution {
	case "", "elasticsearch":
	case "opensearch":
		opensearch = true
	default:
		return 0, false, fmt.Errorf("essim: distribution %q: want elasticsearch or opensearch", distribution)
	}
	major, err = strconv.Atoi(strings.SplitN(version, ".", 2)[0])
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("essim: version %q: want 7.x or 8.x (OpenSearch 1.x or 2.x)", version)
	case opensearch && (major < 1 || major > 3):
		return 0, false, fmt.Errorf("essim: OpenSearch version %q: want 1.x or 2.x", version)
	case !opensearch && major < 7:
		return 0, false, fmt.Errorf("essim: version %q: want 7.x or 8.x", version)
	}
	return major, opensearch, nil
}

// Start listens on addr (host:port; port 0 picks one) and serves until Close
// or ctx ends. With Nodes > 1 the extra nodes listen on the same host, on the
// following ports when addr names a port, on free ports otherwise.
func Start(ctx context.Context, addr string, cfg Config) (*Server, error) {
	if cfg.Distribution == "opensearch" && cfg.Version == "" {
		cfg.Version = "2.11.0"
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	major, opensearch, err := parseVersion(cfg.Distribution, cfg.Version)
	if err != nil {
		return nil, err
	}
	if opensearch {
		// OpenSearch 1 answers like Elasticsearch 7.10 (with _type), 2
		// dropped _type like Elasticsearch 8.
		major = map[int]int{1: 7, 2: 8, 3: 8}[major]
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = DefaultClusterName
	}
	if cfg.Nodes <= 0 {
		cfg.Nodes = DefaultNodes
	}
	if cfg.MaxContentLength <= 0 {
		cfg.MaxContentLength = DefaultMaxContentLength
	}
	// A source is never longer than the body; doc keeps its length in 32 bits.
	cfg.MaxContentLength = min(cfg.MaxContentLength, store.MaxSourceLen)
	if cfg.InFlightRequestsLimit == 0 {
		cfg.InFlightRequestsLimit = DefaultInFlightRequestsLimit
	}
	if cfg.WriteThreads <= 0 {
		cfg.WriteThreads = 2
	}
	if cfg.WriteQueueSize <= 0 {
		cfg.WriteQueueSize = 10000
	}
	if err := validateFaults(cfg.Faults); err != nil {
		return nil, err
	}
	st, err := store.Open(store.Options{Dir: cfg.DataDir, HashMask: cfg.hashMask,
		IndexUUID: func(name string, seq int64) string { return nodeID(name, int(seq)) }})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, major: major, opensearch: opensearch, store: st, scrolls: newScrolls(), done: make(chan struct{})}
	s.setFaultsLocked(cfg.Faults)
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("essim: listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("essim: listen port %q: %w", portStr, err)
	}
	for i := 0; i < cfg.Nodes; i++ {
		p := 0
		if port != 0 {
			p = port + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("essim: node %d: %w", i, err)
		}
		n := s.newNode(i, ln)
		s.nodes = append(s.nodes, n)
	}
	for _, n := range s.nodes {
		go n.serve()
	}
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

func (s *Server) newNode(i int, ln net.Listener) *node {
	n := &node{s: s, idx: i, name: fmt.Sprintf("essim-%d", i), ln: ln,
		sem: make(chan struct{}, s.cfg.WriteThreads), idle: map[net.Conn]*time.Timer{}}
	n.id = nodeID(s.cfg.ClusterName, i)
	n.breaker.limit = max(s.cfg.InFlightRequestsLimit, 0)
	scheme := "http"
	if s.cfg.TLS != nil {
		scheme = "https"
		n.ln = tls.NewListener(ln, s.cfg.TLS)
	}
	n.addr = ln.Addr().String()
	n.url = scheme + "://" + n.addr
	n.srv = &http.Server{
		Handler:           n,
		ConnState:         n.connState,
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// A library does not print: TLS handshake and accept errors
		// are the clients' business (the probe provokes them on purpose).
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return n
}

// nodeID is a stable 22-character id like Elasticsearch's node ids.
func nodeID(cluster string, i int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	h := uint64(14695981039346656037)
	for _, c := range cluster + "/" + strconv.Itoa(i) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	var b [22]byte
	for j := range b {
		b[j] = alphabet[h%64]
		h = h*6364136223846793005 + 1442695040888963407
	}
	return string(b[:])
}

func (n *node) serve() {
	err := n.srv.Serve(n.ln)
	_ = err // http.ErrServerClosed after Close; nothing to report to
}

// connState counts real connections and closes idle keep-alive ones after
// Faults.IdleClose, the way a proxy or an ES node with a short idle timeout
// does. Doing it here rather than through http.Server.IdleTimeout lets the
// timeout change at runtime.
func (n *node) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		n.opened.Add(1)
		n.open.Add(1)
	case http.StateActive:
		n.connMu.Lock()
		if t, ok := n.idle[c]; ok {
			t.Stop()
			delete(n.idle, c)
		}
		n.connMu.Unlock()
	case http.StateIdle:
		d := n.s.Faults().IdleClose
		if d <= 0 {
			return
		}
		n.connMu.Lock()
		if t, ok := n.idle[c]; ok {
			t.Stop()
		}
		n.idle[c] = time.AfterFunc(d, func() {
			n.connMu.Lock()
			_, still := n.idle[c]
			delete(n.idle, c)
			n.connMu.Unlock()
			if still {
				n.idleClosed.Add(1)
				c.Close()
			}
		})
		n.connMu.Unlock()
	case http.StateClosed, http.StateHijacked:
		n.open.Add(-1)
		n.connMu.Lock()
		if t, ok := n.idle[c]; ok {
			t.Stop()
			delete(n.idle, c)
		}
		n.connMu.Unlock()
	}
}

// Version is what GET / claims, e.g. "8.15.0" or "opensearch 2.11.0".
func (s *Server) Version() string {
	if s.opensearch {
		return "opensearch " + s.cfg.Version
	}
	return s.cfg.Version
}

// URL is the first node's base URL.
func (s *Server) URL() string { return s.nodes[0].url }

// URLs lists every node's base URL.
func (s *Server) URLs() []string {
	out := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n.url
	}
	return out
}

// Addrs lists every node's listen address (host:port).
func (s *Server) Addrs() []string {
	out := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n.addr
	}
	return out
}

// Close stops every node and flushes the store.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		for _, n := range s.nodes {
			if e := n.srv.Close(); e != nil && err == nil {
				err = e
			}
		}
		s.scrolls.closeAll()
		if e := s.store.Close(); e != nil && err == nil {
			err = e
		}
	})
	return err
}

// Handler serves as node 0 without a listener of its own (for httptest or
// mounting under another server).
func (s *Server) Handler() http.Handler { return s.nodes[0] }

func validateFaults(f Faults) error {
	for name, r := range map[string]float64{"reject rate": f.RejectRate, "fail rate": f.FailRate, "drop rate": f.DropRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("essim: %s %v outside 0..1", name, r)
		}
	}
	switch f.FailStatus {
	case 0, 429, 500, 502, 503, 504:
	default:
		return fmt.Errorf("essim: fail status %d: want 429, 500, 502, 503 or 504", f.FailStatus)
	}
	switch f.Health {
	case "", "green", "yellow", "red":
	default:
		return fmt.Errorf("essim: health %q: want green, yellow or red", f.Health)
	}
	if f.Latency < 0 || f.IdleClose < 0 || f.LateBy < 0 {
		return errors.New("essim: negative duration in faults")
	}
	return nil
}

// SetFaults replaces the injected faults; it returns an error for values
// out of range and leaves the old ones in place then.
func (s *Server) SetFaults(f Faults) error {
	if err := validateFaults(f); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFaultsLocked(f)
	return nil
}

func (s *Server) setFaultsLocked(f Faults) {
	if f.FailStatus == 0 {
		f.FailStatus = DefaultFailStatus
	}
	if f.LateBy == 0 {
		f.LateBy = DefaultLateBy
	}
	seed := f.Seed
	if seed == 0 {
		seed = DefaultSeed
	}
	s.faults = f
	s.rng = rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
}

// Faults returns the faults in force.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// roll draws a number in [0,1) from the fault random source.
func (s *Server) roll() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64()
}

// Count is the number of documents in the indices matching pattern
// (comma-separated, with * and _all).
func (s *Server) Count(pattern string) int {
	n := 0
	s.store.RLock()
	defer s.store.RUnlock()
	for _, ix := range s.store.ResolveLocked(pattern) {
		n += ix.Count()
	}
	return n
}

// Doc returns a stored document's source.
func (s *Server) Doc(index, id string) ([]byte, bool) {
	s.store.RLock()
	defer s.store.RUnlock()
	ix := s.store.LookupLocked(index)
	if ix == nil {
		return nil, false
	}
	d, err := s.store.GetLocked(ix, id)
	if d == nil || err != nil {
		return nil, false
	}
	src, err := s.store.SourceLocked(d)
	if err != nil {
		return nil, false
	}
	return src, true
}

// Stats sums the counters over every node.
func (s *Server) Stats() Stats {
	s.store.RLock()
	docs, indexBytes := s.store.LiveLocked(), s.store.IndexBytesLocked()
	s.store.RUnlock()
	st := Stats{
		Docs:            int(docs),
		IndexBytes:      indexBytes,
		BulkRequests:    s.bulkRequests.Load(),
		BulkItems:       s.bulkItems.Load(),
		RequestFailures: s.failures.Load(),
		Dropped:         s.dropped.Load(),
		Conflicts:       s.conflicts.Load(),
		Blocked:         s.blocked.Load(),
		Requests:        s.requests.Load(),
	}
	for _, n := range s.nodes {
		st.OpenedConns += n.opened.Load()
		st.OpenConns += n.open.Load()
		st.IdleClosed += n.idleClosed.Load()
		st.Rejected += n.rejected.Load()
		st.WriteActive += n.writeActive.Load()
		st.WriteQueue += n.writeQueue.Load()
		st.BreakerTripped += n.breaker.tripped.Load()
	}
	return st
}
