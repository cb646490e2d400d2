package essim

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// DefaultInFlightRequestsLimit is essim's network.breaker.inflight_requests.limit
// (Elasticsearch's default is the whole JVM heap; essim has none).
const DefaultInFlightRequestsLimit = 256 << 20

// inflightOverhead is network.breaker.inflight_requests.overhead's
// default: each body byte counts twice against the limit.
const inflightOverhead = 2

// breaker is Elasticsearch's in-flight requests circuit breaker for one
// node: the bodies of the HTTP requests being handled, counted with its
// overhead. A request that would take it past the limit is answered 429
// circuit_breaking_exception before its body is read.
type breaker struct {
	limit   int64 // 0: no limit
	used    atomic.Int64
	tripped atomic.Int64
}

// errBreaking carries the numbers of a tripped breaker.
type errBreaking struct{ wanted, limit int64 }

func (e *errBreaking) Error() string { return "in-flight requests circuit breaker tripped" }

// add takes n body bytes; it fails without taking them when the estimate
// (with overhead) would exceed the limit.
func (b *breaker) add(n int64) error {
	for {
		cur := b.used.Load()
		if wanted := (cur + n) * inflightOverhead; b.limit > 0 && wanted > b.limit {
			b.tripped.Add(1)
			return &errBreaking{wanted: wanted, limit: b.limit}
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

func (b *breaker) release(n int64) { b.used.Add(-n) }

// breakerBody counts a body of unknown length (chunked) as it is read.
// Once it tripped it only passes the rest through, to be discarded.
type breakerBody struct {
	io.ReadCloser
	b       *breaker
	charged *int64
	tripped bool
}

func (r *breakerBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 && !r.tripped {
		if berr := r.b.add(int64(n)); berr != nil {
			r.tripped = true
			return 0, berr
		}
		*r.charged += int64(n)
	}
	return n, err
}

// discardBody reads what is left of a refused body without keeping it,
// as Elasticsearch has the whole body before its breaker says no: the
// client then reads the answer instead of a reset connection.
func (n *node) discardBody(r *http.Request) {
	io.Copy(io.Discard, io.LimitReader(r.Body, n.s.cfg.MaxContentLength))
}

// chargeBody puts r's body on the node's breaker: all of it at once when
// its length is known, as it is read otherwise. It returns the release
// function, or false after answering 429.
func (n *node) chargeBody(w http.ResponseWriter, r *http.Request) (func(), bool) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return func() {}, true
	}
	var charged int64
	switch {
	case r.ContentLength > n.s.cfg.MaxContentLength:
		// 413 from readBody: the length check comes first.
	case r.ContentLength > 0:
		if err := n.breaker.add(r.ContentLength); err != nil {
			n.discardBody(r)
			n.circuitBreaking(w, r, err)
			return nil, false
		}
		charged = r.ContentLength
	default:
		r.Body = &breakerBody{ReadCloser: r.Body, b: &n.breaker, charged: &charged}
	}
	return func() { n.breaker.release(charged) }, true
}

// circuitBreaking answers as Elasticsearch does when the in-flight
// requests breaker trips: 429 circuit_breaking_exception, TRANSIENT (the
// client may retry), with the estimate and the limit.
func (n *node) circuitBreaking(w http.ResponseWriter, r *http.Request, err error) {
	var be *errBreaking
	if !errors.As(err, &be) {
		return
	}
	reason := "[" + n.breakerName() + "] Data too large, data for [<http_request>] would be [" +
		strconv.FormatInt(be.wanted, 10) + "/" + byteSize(be.wanted) + "], which is larger than the limit of [" +
		strconv.FormatInt(be.limit, 10) + "/" + byteSize(be.limit) + "]"
	n.esError(w, r, http.StatusTooManyRequests, "circuit_breaking_exception", reason,
		map[string]any{"bytes_wanted": be.wanted, "bytes_limit": be.limit, "durability": "TRANSIENT"})
}

// byteSize formats like Elasticsearch's ByteSizeValue: the largest unit
// of at least one, one decimal truncated, ".0" dropped ("84.1mb", "1gb",
// "512b").
func byteSize(b int64) string {
	units := []struct {
		size int64
		suf  string
	}{{1 << 50, "pb"}, {1 << 40, "tb"}, {1 << 30, "gb"}, {1 << 20, "mb"}, {1 << 10, "kb"}}
	v, suf := float64(b), "b"
	for _, u := range units {
		if b >= u.size {
			v, suf = float64(b)/float64(u.size), u.suf
			break
		}
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	whole, frac, ok := strings.Cut(s, ".")
	if !ok || frac[0] == '0' {
		return whole + suf
	}
	return whole + "." + frac[:1] + suf
}

// breakerName: renamed inflight_requests in Elasticsearch 8.0; 7.x and
// OpenSearch say in_flight_requests.
func (n *node) breakerName() string {
	if n.s.major < 8 || n.s.opensearch {
		return "in_flight_requests"
	}
	return "inflight_requests"
}
