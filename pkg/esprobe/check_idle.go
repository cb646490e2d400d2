package esprobe

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/logdoctor/logdoctor/internal/stats"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// idleResult is what the idle check adds to Pool.
type idleResult struct {
	waitMS      int64
	closed      bool
	closedAfter float64 // ms
}

func (r *idleResult) apply(p *Pool) {
	p.IdleWaitMS, p.IdleClosed, p.IdleClosedAfter = r.waitMS, r.closed, r.closedAfter
}

// checkIdle makes one request over cl, keeps its keep-alive connection
// idle for wait and notices when the server (or a proxy) closes it. It
// does nothing (nil) for a wait of 0.
func checkIdle(ctx context.Context, cl *client, wait time.Duration) (*idleResult, outcome) {
	var out outcome
	if wait <= 0 {
		return nil, out
	}
	start := time.Now()
	c := Check{Name: "keepalive_idle", Target: cl.es.Base}
	r, err := cl.do(ctx, http.MethodGet, "/", nil, "")
	if err != nil {
		c.Detail = errString(err)
		out.check(c, start)
		return nil, out
	}
	idleFrom := time.Now()
	out.latency(r.Elapsed)
	cl.mu.Lock()
	conn := cl.last
	cl.mu.Unlock()
	if conn == nil {
		c.Detail = "could not watch the connection"
		out.check(c, start)
		return nil, out
	}
	res := &idleResult{waitMS: wait.Milliseconds()}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case at := <-conn.peerAt:
		res.closed = true
		res.closedAfter = stats.MS(at.Sub(idleFrom))
	case <-t.C:
	case <-ctx.Done():
	}
	c.OK = !res.closed
	if res.closed {
		c.Detail = fmt.Sprintf("server closed the idle connection after %.0f ms", res.closedAfter)
	} else {
		c.Detail = fmt.Sprintf("idle connection still open after %s", wait)
	}
	out.check(c, start)
	if res.closed {
		out.add(report.Finding{ID: FindingKeepaliveClosed, Severity: report.Warning,
			Summary:  fmt.Sprintf("the server closed an idle keep-alive connection after %.0f ms", res.closedAfter),
			Evidence: map[string]any{"idle_closed_after_ms": round2(res.closedAfter), "idle_wait_ms": res.waitMS, "url": cl.es.Base},
			Remedy:   remedyKeepalive})
	}
	return res, out
}
