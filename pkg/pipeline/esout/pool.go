package esout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/pkg/esclient"
)

// node is one Elasticsearch HTTP endpoint.
type node struct {
	base      string // scheme://host:port[/path], no trailing slash
	seed      bool   // given by the user (kept across sniffs)
	alive     bool
	deadUntil time.Time
	fails     int
}

// pool picks nodes round-robin among the live ones. A node that fails at
// the transport level is dead for a backoff that doubles per failure (up
// to maxDead); once the backoff has passed the health checker (or, when
// every node is dead, the next request) tries it again. This is the
// resurrection elasticsearch-transport does, minus its 60 s default.
type pool struct {
	mu      sync.Mutex
	nodes   []*node
	rr      int
	minDead time.Duration
	maxDead time.Duration
	now     func() time.Time
	// onChange is called outside the lock with the node's base URL (node
	// fields are guarded by mu) and, for a dead node, its backoff.
	onChange func(base string, alive bool, retryIn time.Duration, err error)
}

// newPool makes the seed nodes from urls (esclient.ParseURL: userinfo
// leaves the URL, since credentials travel in the Authorization header and
// never in logs) and returns the credentials the URLs carried, the first
// found.
func newPool(urls []string, minDead, maxDead time.Duration) (*pool, esclient.Auth, error) {
	p := &pool{minDead: minDead, maxDead: maxDead, now: time.Now}
	var auth esclient.Auth
	for _, u := range urls {
		base, fromURL, err := esclient.ParseURL(u)
		if err != nil {
			return nil, auth, fmt.Errorf("esout: %w", err)
		}
		auth.Fill(fromURL)
		p.nodes = append(p.nodes, &node{base: base, seed: true, alive: true})
	}
	if len(p.nodes) == 0 {
		return nil, auth, fmt.Errorf("esout: no Elasticsearch URL")
	}
	return p, auth, nil
}

// pick returns the next node to send to.
func (p *pool) pick() *node {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.nodes)
	for i := 0; i < n; i++ {
		nd := p.nodes[(p.rr+i)%n]
		if nd.alive {
			p.rr = (p.rr + i + 1) % n
			return nd
		}
	}
	// Every node is dead: try the one whose backoff ends first, so a
	// cluster that comes back is found without waiting for the checker.
	var best *node
	for _, nd := range p.nodes {
		if best == nil || nd.deadUntil.Before(best.deadUntil) {
			best = nd
		}
	}
	return best
}

func (p *pool) markDead(nd *node, err error) {
	p.mu.Lock()
	wasAlive := nd.alive
	nd.alive = false
	nd.fails++
	d := p.minDead << min(nd.fails-1, 16)
	if d > p.maxDead || d <= 0 {
		d = p.maxDead
	}
	// Jitter so that several pipelines do not resurrect in lockstep.
	d = d/2 + rand.N(d/2+1)
	nd.deadUntil = p.now().Add(d)
	cb, base := p.onChange, nd.base
	p.mu.Unlock()
	if wasAlive && cb != nil {
		cb(base, false, d, err)
	}
}

func (p *pool) markAlive(nd *node) {
	p.mu.Lock()
	was := nd.alive
	nd.alive = true
	nd.fails = 0
	cb, base := p.onChange, nd.base
	p.mu.Unlock()
	if !was && cb != nil {
		cb(base, true, 0, nil)
	}
}

// due lists dead nodes whose backoff has passed.
func (p *pool) due() []*node {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var out []*node
	for _, nd := range p.nodes {
		if !nd.alive && !now.Before(nd.deadUntil) {
			out = append(out, nd)
		}
	}
	return out
}

func (p *pool) counts() (alive, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, nd := range p.nodes {
		if nd.alive {
			alive++
		}
	}
	return alive, len(p.nodes)
}

// replaceSniffed keeps the seeds and sets the sniffed nodes to bases,
// each once (nodes behind one published name share it), keeping the state
// of those already in the pool.
func (p *pool) replaceSniffed(bases []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := map[string]*node{}
	for _, nd := range p.nodes {
		old[nd.base] = nd
	}
	var out []*node
	in := map[string]bool{}
	for _, nd := range p.nodes {
		if nd.seed {
			out = append(out, nd)
			in[nd.base] = true
		}
	}
	for _, b := range bases {
		if in[b] {
			continue
		}
		in[b] = true
		nd := old[b]
		if nd == nil {
			nd = &node{base: b, alive: true}
		}
		out = append(out, nd)
	}
	p.nodes = out
}

// reachable reports whether a TCP connection to base's host opens within
// timeout: the check `es probe` applies to sniffed addresses, since the
// addresses a cluster publishes (pod IPs, internal names) are often not
// reachable from the shipper.
func reachable(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), base string, timeout time.Duration) bool {
	u, err := url.Parse(base)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dial(ctx, "tcp", u.Host)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
