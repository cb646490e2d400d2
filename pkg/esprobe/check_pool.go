package esprobe

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// checkPool sends sequential requests one after another, then two rounds
// of concurrent ones, over cl (a pool of at least concurrent
// connections), and counts new connections from httptrace. With a before
// snapshot it asks stats for the server's own http.total_opened growth
// and compares it with the connections d opened meanwhile.
func checkPool(ctx context.Context, cl, stats *client, d *dialer, before *statsSnap, sequential, concurrent int) (*Pool, outcome) {
	var out outcome
	start := time.Now()
	ourBefore := d.opened.Load()
	pool := &Pool{ServerOpened: -1}
	var mu sync.Mutex
	var firstErr error
	one := func() {
		r, err := cl.do(ctx, http.MethodGet, "/", nil, "")
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		out.latency(r.Elapsed)
	}
	for i := 0; i < sequential; i++ {
		one()
	}
	pool.SequentialNew = int(cl.newC.Load())
	for round := 0; round < 2; round++ {
		var wg sync.WaitGroup
		for i := 0; i < concurrent; i++ {
			wg.Go(one)
		}
		wg.Wait()
	}
	pool.NewConnections = int(cl.newC.Load())
	pool.Reused = int(cl.reuse.Load())
	pool.ConcurrentNew = pool.NewConnections - pool.SequentialNew
	pool.Requests = pool.NewConnections + pool.Reused
	if pool.Requests > 0 {
		pool.ReuseRatio = float64(pool.Reused) / float64(pool.Requests)
		pool.NewPerRequest = float64(pool.NewConnections) / float64(pool.Requests)
	}
	c := Check{Name: "keepalive_pool", Target: cl.es.Base, OK: firstErr == nil}
	if before != nil {
		after, sout, err := nodeStats(ctx, stats, "pool")
		out.merge(sout)
		if err == nil {
			pool.ServerOpened = after.opened - before.opened
			pool.OwnOpened = d.opened.Load() - ourBefore
		}
	}
	c.Detail = fmt.Sprintf("%d requests: %d new connections, %d reused (ratio %.2f); server total_opened +%d",
		pool.Requests, pool.NewConnections, pool.Reused, pool.ReuseRatio, pool.ServerOpened)
	if firstErr != nil {
		c.Detail += "; first error: " + errString(firstErr)
	}
	out.check(c, start)

	// A keep-alive server needs one connection for the sequential run and
	// at most concurrent more for the concurrent rounds.
	expected := 1 + concurrent
	if pool.Requests > 0 && pool.NewConnections > expected {
		out.add(report.Finding{ID: FindingConnectionChurn, Severity: report.Warning,
			Summary: fmt.Sprintf("%d of %d requests needed a new connection (reuse ratio %.2f, a keep-alive server needs at most %d): the server or a proxy closes connections after each request",
				pool.NewConnections, pool.Requests, pool.ReuseRatio, expected),
			Evidence: map[string]any{"requests": pool.Requests, "new_connections": pool.NewConnections, "reused": pool.Reused,
				"reuse_ratio": round2(pool.ReuseRatio), "sequential_new_connections": pool.SequentialNew, "server_total_opened_delta": pool.ServerOpened},
			Remedy: remedyChurn})
	}
	return pool, out
}
