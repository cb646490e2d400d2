package esprobe

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/internal/clip"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// target resolves the URL's host and asks GET /.
func (p *probe) target(ctx context.Context, base string) Target {
	t := Target{URL: base}
	u, _ := url.Parse(base)
	host := u.Hostname()
	if net.ParseIP(host) == nil {
		start := time.Now()
		addrs, err := p.o.Resolver.LookupHost(ctx, host)
		t.DNSMS = ms(time.Since(start))
		c := Check{Name: "dns", Target: host, OK: err == nil}
		if err != nil {
			c.Detail = err.Error()
			t.Error, t.errKind = errString(err), "dns"
			p.check(c, start)
			return t
		}
		t.Addresses = addrs
		c.Detail = strings.Join(addrs, ", ")
		p.check(c, start)
	}
	cl := newClient(&p.o, p.d, p.tlsCfg, 1)
	defer cl.close()
	start := time.Now()
	var root struct {
		Name        string `json:"name"`
		ClusterName string `json:"cluster_name"`
		Version     struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
		} `json:"version"`
		Tagline string `json:"tagline"`
	}
	r, err := cl.getJSON(ctx, base, "/", &root)
	c := Check{Name: "reachability", Target: base}
	if r != nil {
		t.Status = r.Status
		t.LatencyMS = ms(r.Elapsed)
		t.ProductHdr = r.Header.Get("X-Elastic-Product") == "Elasticsearch"
		p.latency(r.Elapsed)
	}
	if err != nil {
		t.Error = errString(err)
		if st, ok := isUnauthorized(err); ok {
			t.unauthorized = st
			t.errKind = "auth"
		} else {
			t.errKind = errKind(err)
		}
		c.Detail = t.Error
		p.check(c, start)
		return t
	}
	t.Reachable = true
	t.Version = root.Version.Number
	t.ClusterName = root.ClusterName
	t.NodeName = root.Name
	t.Product = "elasticsearch"
	if root.Version.Distribution == "opensearch" {
		t.Product = "opensearch"
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%s %s, cluster %q, node %q", t.Product, t.Version, t.ClusterName, t.NodeName)
	p.check(c, start)
	return t
}

func (p *probe) targetFindings() {
	for _, t := range p.res.Targets {
		switch {
		case t.Reachable:
			p.productFinding(t)
		case t.unauthorized != 0:
			p.add(report.Finding{ID: FindingAuthFailed, Severity: report.Critical,
				Summary:  fmt.Sprintf("%s answered HTTP %d: the credentials are missing or refused", t.URL, t.unauthorized),
				Evidence: map[string]any{"url": t.URL, "status": t.unauthorized, "user_set": p.o.Username != "", "api_key_set": p.o.APIKey != ""},
				Remedy:   remedyAuth})
		default:
			ev := map[string]any{"url": t.URL, "error": t.Error, "kind": t.errKind}
			if t.Status != 0 {
				ev["status"] = t.Status
			}
			p.add(report.Finding{ID: FindingUnreachable, Severity: report.Critical,
				Summary:  fmt.Sprintf("%s is unreachable (%s): %s", t.URL, t.errKind, t.Error),
				Evidence: ev, Remedy: remedyUnreachable})
		}
	}
}

// productFinding: Elastic's clients 7.14+ require X-Elastic-Product from
// Elasticsearch 7.14+ and refuse OpenSearch outright.
func (p *probe) productFinding(t Target) {
	ev := map[string]any{"url": t.URL, "version": t.Version, "product": t.Product, "x_elastic_product": t.ProductHdr}
	if t.Product == "opensearch" {
		p.add(report.Finding{ID: FindingProductCheck, Severity: report.Info,
			Summary:  fmt.Sprintf("%s is OpenSearch %s: Elastic's clients from 7.14 on (fluent-plugin-elasticsearch's elasticsearch gem) refuse it", t.URL, t.Version),
			Evidence: ev, Remedy: remedyOpenSearch})
		return
	}
	if !t.ProductHdr && versionAtLeast(t.Version, 7, 14) {
		p.add(report.Finding{ID: FindingProductCheck, Severity: report.Warning,
			Summary:  fmt.Sprintf("%s claims Elasticsearch %s but sends no X-Elastic-Product header: Elastic's clients 7.14+ will refuse it", t.URL, t.Version),
			Evidence: ev, Remedy: remedyProductStripped})
	}
}

// versionAtLeast compares a "major.minor[.patch]" version.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// nodeStatsT is the part of _nodes/stats the probe reads.
type nodeStatsT struct {
	Nodes map[string]struct {
		Name       string `json:"name"`
		ThreadPool struct {
			Write struct {
				Queue    int64 `json:"queue"`
				Active   int64 `json:"active"`
				Rejected int64 `json:"rejected"`
			} `json:"write"`
		} `json:"thread_pool"`
		HTTP struct {
			CurrentOpen int64 `json:"current_open"`
			TotalOpened int64 `json:"total_opened"`
		} `json:"http"`
		IndexingPressure *struct {
			Memory struct {
				Total struct {
					Coordinating int64 `json:"coordinating_rejections"`
					Primary      int64 `json:"primary_rejections"`
					Replica      int64 `json:"replica_rejections"`
				} `json:"total"`
			} `json:"memory"`
		} `json:"indexing_pressure"`
	} `json:"nodes"`
}

type statsSnap struct {
	at                 time.Time
	queue, active      int64
	rejected           int64
	pressure           int64
	pressureReported   bool
	opened, currentOpn int64
}

func (p *probe) nodeStats(ctx context.Context, cl *client, base, label string) (*statsSnap, error) {
	start := time.Now()
	var ns nodeStatsT
	_, err := cl.getJSON(ctx, base, "/_nodes/stats/thread_pool,http,indexing_pressure", &ns)
	c := Check{Name: "nodes_stats_" + label, Target: base, OK: err == nil}
	if err != nil {
		c.Detail = errString(err)
		p.check(c, start)
		return nil, err
	}
	s := &statsSnap{at: time.Now()}
	for _, n := range ns.Nodes {
		s.queue += n.ThreadPool.Write.Queue
		s.active += n.ThreadPool.Write.Active
		s.rejected += n.ThreadPool.Write.Rejected
		s.opened += n.HTTP.TotalOpened
		s.currentOpn += n.HTTP.CurrentOpen
		if n.IndexingPressure != nil {
			s.pressureReported = true
			t := n.IndexingPressure.Memory.Total
			s.pressure += t.Coordinating + t.Primary + t.Replica
		}
	}
	c.Detail = fmt.Sprintf("%d nodes: write queue %d, rejected %d; http total_opened %d", len(ns.Nodes), s.queue, s.rejected, s.opened)
	p.check(c, start)
	return s, nil
}

// poolCheck sends N sequential then two rounds of M concurrent requests
// over one client and counts new connections from httptrace, comparing with
// the server's own http.total_opened.
func (p *probe) poolCheck(ctx context.Context, base string, stats *client, before *statsSnap, statsErr error) {
	start := time.Now()
	cl := newClient(&p.o, p.d, p.tlsCfg, p.o.Concurrent)
	defer cl.close()
	ourBefore := p.d.opened.Load()
	pool := &Pool{ServerOpened: -1}
	var firstErr error
	one := func() {
		r, err := cl.do(ctx, http.MethodGet, base+"/", nil, "")
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		p.latency(r.Elapsed)
	}
	for i := 0; i < p.o.Sequential; i++ {
		one()
	}
	pool.SequentialNew = int(cl.newC.Load())
	var mu sync.Mutex
	for round := 0; round < 2; round++ {
		var wg sync.WaitGroup
		for i := 0; i < p.o.Concurrent; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := cl.do(ctx, http.MethodGet, base+"/", nil, "")
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				p.latency(r.Elapsed)
			}()
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
	c := Check{Name: "keepalive_pool", Target: base, OK: firstErr == nil}
	if statsErr == nil {
		if after, err := p.nodeStats(ctx, stats, base, "pool"); err == nil {
			pool.ServerOpened = after.opened - before.opened
			pool.OwnOpened = p.d.opened.Load() - ourBefore
		}
	}
	c.Detail = fmt.Sprintf("%d requests: %d new connections, %d reused (ratio %.2f); server total_opened +%d",
		pool.Requests, pool.NewConnections, pool.Reused, pool.ReuseRatio, pool.ServerOpened)
	if firstErr != nil {
		c.Detail += "; first error: " + errString(firstErr)
	}
	p.check(c, start)
	p.mu.Lock()
	p.res.Pool = pool
	p.mu.Unlock()

	// A keep-alive server needs one connection for the sequential run and
	// at most M for the concurrent rounds.
	expected := 1 + p.o.Concurrent
	if pool.Requests > 0 && pool.NewConnections > expected {
		p.add(report.Finding{ID: FindingConnectionChurn, Severity: report.Warning,
			Summary: fmt.Sprintf("%d of %d requests needed a new connection (reuse ratio %.2f, a keep-alive server needs at most %d): the server or a proxy closes connections after each request",
				pool.NewConnections, pool.Requests, pool.ReuseRatio, expected),
			Evidence: map[string]any{"requests": pool.Requests, "new_connections": pool.NewConnections, "reused": pool.Reused,
				"reuse_ratio": round2(pool.ReuseRatio), "sequential_new_connections": pool.SequentialNew, "server_total_opened_delta": pool.ServerOpened},
			Remedy: remedyChurn})
	}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// idleCheck keeps one keep-alive connection idle for IdleWait and notices
// when the server closes it.
func (p *probe) idleCheck(ctx context.Context, base string) {
	if p.o.IdleWait <= 0 {
		return
	}
	start := time.Now()
	cl := newClient(&p.o, p.d, p.tlsCfg, 1)
	defer cl.close()
	c := Check{Name: "keepalive_idle", Target: base}
	r, err := cl.do(ctx, http.MethodGet, base+"/", nil, "")
	if err != nil {
		c.Detail = errString(err)
		p.check(c, start)
		return
	}
	idleFrom := time.Now()
	p.latency(r.Elapsed)
	cl.mu.Lock()
	conn := cl.last
	cl.mu.Unlock()
	res := Pool{IdleWaitMS: p.o.IdleWait.Milliseconds()}
	if conn == nil {
		c.Detail = "could not watch the connection"
		p.check(c, start)
		return
	}
	t := time.NewTimer(p.o.IdleWait)
	defer t.Stop()
	select {
	case at := <-conn.peerAt:
		res.IdleClosed = true
		res.IdleClosedAfter = ms(at.Sub(idleFrom))
	case <-t.C:
	case <-ctx.Done():
	}
	c.OK = !res.IdleClosed
	if res.IdleClosed {
		c.Detail = fmt.Sprintf("server closed the idle connection after %.0f ms", res.IdleClosedAfter)
	} else {
		c.Detail = fmt.Sprintf("idle connection still open after %s", p.o.IdleWait)
	}
	p.check(c, start)
	p.mu.Lock()
	if p.res.Pool == nil {
		p.res.Pool = &Pool{ServerOpened: -1}
	}
	p.res.Pool.IdleWaitMS, p.res.Pool.IdleClosed, p.res.Pool.IdleClosedAfter = res.IdleWaitMS, res.IdleClosed, res.IdleClosedAfter
	p.mu.Unlock()
	if res.IdleClosed {
		p.add(report.Finding{ID: FindingKeepaliveClosed, Severity: report.Warning,
			Summary:  fmt.Sprintf("the server closed an idle keep-alive connection after %.0f ms", res.IdleClosedAfter),
			Evidence: map[string]any{"idle_closed_after_ms": round2(res.IdleClosedAfter), "idle_wait_ms": res.IdleWaitMS, "url": base},
			Remedy:   remedyKeepalive})
	}
}

func (p *probe) healthCheck(ctx context.Context, base string) {
	start := time.Now()
	cl := newClient(&p.o, p.d, p.tlsCfg, 1)
	defer cl.close()
	var h Health
	r, err := cl.getJSON(ctx, base, "/_cluster/health", &h)
	c := Check{Name: "cluster_health", Target: base, OK: err == nil}
	if r != nil {
		p.latency(r.Elapsed)
	}
	if err != nil {
		c.Detail = errString(err)
		p.check(c, start)
		return
	}
	c.Detail = fmt.Sprintf("%s, %d nodes, %d unassigned shards, %d pending tasks", h.Status, h.Nodes, h.UnassignedShards, h.PendingTasks)
	c.OK = h.Status == "green"
	p.check(c, start)
	p.mu.Lock()
	p.res.Health = &h
	p.mu.Unlock()
	ev := map[string]any{"status": h.Status, "number_of_nodes": h.Nodes, "unassigned_shards": h.UnassignedShards,
		"number_of_pending_tasks": h.PendingTasks, "active_shards_percent": h.ActiveShardsPercent}
	switch h.Status {
	case "red":
		p.add(report.Finding{ID: FindingClusterHealth, Severity: report.Critical,
			Summary:  fmt.Sprintf("cluster health is red: %d unassigned shards", h.UnassignedShards),
			Evidence: ev, Remedy: remedyHealthRed})
	case "yellow":
		p.add(report.Finding{ID: FindingClusterHealth, Severity: report.Warning,
			Summary:  fmt.Sprintf("cluster health is yellow: %d unassigned shards", h.UnassignedShards),
			Evidence: ev, Remedy: remedyHealthYellow})
	}
}

// nodesHTTP is _nodes/http.
type nodesHTTP struct {
	Nodes map[string]struct {
		Name string `json:"name"`
		HTTP *struct {
			PublishAddress   string `json:"publish_address"`
			MaxContentLength int64  `json:"max_content_length_in_bytes"`
		} `json:"http"`
	} `json:"nodes"`
}

// publishHostPort turns "name/ip:port", "ip:port" or "[v6]:port" into the
// address a sniffing client dials. Like the Ruby transport's sniffer (and
// elasticsearch-py's), it uses the name when the node publishes one: a
// pod or host name this machine cannot resolve is exactly the failure.
func publishHostPort(pa string) (string, error) {
	name := ""
	addr := pa
	if i := strings.Index(pa, "/"); i >= 0 {
		name, addr = pa[:i], pa[i+1:]
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("publish_address %q: %w", pa, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("publish_address %q: bad port", pa)
	}
	if name != "" {
		host = name
	}
	return net.JoinHostPort(host, port), nil
}

// sniffCheck fetches _nodes/http and connects to every published address,
// as a sniffing client would.
func (p *probe) sniffCheck(ctx context.Context, base string) {
	start := time.Now()
	cl := newClient(&p.o, p.d, p.tlsCfg, 1)
	defer cl.close()
	var nh nodesHTTP
	r, err := cl.getJSON(ctx, base, "/_nodes/http", &nh)
	c := Check{Name: "sniff", Target: base}
	if r != nil {
		p.latency(r.Elapsed)
	}
	if err != nil {
		c.Detail = errString(err)
		p.check(c, start)
		return
	}
	nodes := make([]Node, 0, len(nh.Nodes))
	for id, n := range nh.Nodes {
		nd := Node{ID: id, Name: n.Name}
		if n.HTTP != nil {
			nd.PublishAddress = n.HTTP.PublishAddress
			nd.MaxContentLength = n.HTTP.MaxContentLength
		}
		nodes = append(nodes, nd)
	}
	var wg sync.WaitGroup
	for i := range nodes {
		nd := &nodes[i]
		if nd.PublishAddress == "" {
			nd.Error = "no http publish_address"
			continue
		}
		addr, err := publishHostPort(nd.PublishAddress)
		if err != nil {
			nd.Error = err.Error()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			dctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
			defer cancel()
			conn, err := p.d.DialContext(dctx, "tcp", addr)
			nd.ConnectMS = ms(time.Since(t0))
			if err != nil {
				nd.Error = errString(err)
				return
			}
			conn.Close()
			nd.Reachable = true
		}()
	}
	wg.Wait()
	sortNodes(nodes)
	var bad []string
	var maxCL int64
	for _, nd := range nodes {
		if !nd.Reachable {
			bad = append(bad, fmt.Sprintf("%s (%s): %s", nd.Name, orNone(nd.PublishAddress), nd.Error))
		}
		if nd.MaxContentLength > 0 && (maxCL == 0 || nd.MaxContentLength < maxCL) {
			maxCL = nd.MaxContentLength
		}
	}
	c.OK = len(bad) == 0 && len(nodes) > 0
	c.Detail = fmt.Sprintf("%d nodes, %d publish addresses unreachable", len(nodes), len(bad))
	p.check(c, start)
	p.mu.Lock()
	p.res.Nodes = nodes
	p.res.MaxContentLength = maxCL
	p.mu.Unlock()
	switch {
	case len(nodes) == 0:
		p.add(report.Finding{ID: FindingSniffUnreachable, Severity: report.Critical,
			Summary:  "_nodes/http lists no nodes: a sniffing client ends with an empty pool (\"Cannot get new connection from pool\")",
			Evidence: map[string]any{"nodes": 0}, Remedy: remedySniff})
	case len(bad) > 0:
		sum := fmt.Sprintf("%d of %d nodes publish an HTTP address this host cannot connect to", len(bad), len(nodes))
		if len(bad) == len(nodes) {
			sum += ": a shipper that sniffs (reload_connections) loses every connection"
		}
		p.add(report.Finding{ID: FindingSniffUnreachable, Severity: report.Critical, Summary: sum,
			Evidence: map[string]any{"unreachable": bad, "nodes": len(nodes)}, Remedy: remedySniff})
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sortNodes(ns []Node) {
	for i := 1; i < len(ns); i++ {
		for j := i; j > 0 && ns[j].Name < ns[j-1].Name; j-- {
			ns[j], ns[j-1] = ns[j-1], ns[j]
		}
	}
}

func (p *probe) bulkSizeCheck() {
	mcl := p.res.MaxContentLength
	if mcl <= 0 {
		return
	}
	c := Check{Name: "bulk_size", OK: p.o.BulkSize <= mcl,
		Detail: fmt.Sprintf("bulk size %d bytes vs http.max_content_length %d", p.o.BulkSize, mcl)}
	p.check(c, time.Now())
	if p.o.BulkSize > mcl {
		p.add(report.Finding{ID: FindingBulkTooLarge, Severity: report.Critical,
			Summary:  fmt.Sprintf("the shipper's bulk size (%d bytes) exceeds http.max_content_length (%d bytes): such bulks get 413", p.o.BulkSize, mcl),
			Evidence: map[string]any{"bulk_size": p.o.BulkSize, "max_content_length_in_bytes": mcl},
			Remedy:   remedyBulkTooLarge})
	}
}

// bulkCheck sends the same create with a deterministic _id BulkSamples
// times: 201, then 409s, then exactly one document.
func (p *probe) bulkCheck(ctx context.Context, base string) {
	start := time.Now()
	cl := newClient(&p.o, p.d, p.tlsCfg, 1)
	defer cl.close()
	id := canaryID()
	idx := p.o.Index
	b := &Bulk{Index: idx, ID: id, Statuses: []int{}}
	body := fmt.Sprintf("{\"create\":{\"_index\":%q,\"_id\":%q}}\n{\"@timestamp\":%q,\"message\":\"logdoctor es probe canary\",\"logdoctor_canary\":%q}\n",
		idx, id, time.Now().UTC().Format(time.RFC3339Nano), id)
	var lats []time.Duration
	itemRejected, itemBlocked := 0, 0
	blockReason := ""
	c := Check{Name: "bulk_idempotency", Target: base + "/" + idx}
	for i := 0; i < p.o.BulkSamples; i++ {
		// Two samples suffice once one took longer than the shipper's
		// request timeout: the point is made, and a slow cluster would
		// otherwise hold the probe for BulkSamples times its latency.
		if i >= 2 && len(lats) > 0 && slices.Max(lats) >= p.o.RequestTimeout {
			break
		}
		t0 := time.Now()
		r, err := cl.do(ctx, http.MethodPost, base+"/_bulk", []byte(body), "application/x-ndjson")
		if err != nil {
			// A timed-out bulk counts with the time it took to give up.
			lats = append(lats, time.Since(t0))
			b.Statuses = append(b.Statuses, 0)
			b.ItemErrors = append(b.ItemErrors, errString(err))
			continue
		}
		lats = append(lats, r.Elapsed)
		p.latency(r.Elapsed)
		if r.Status != http.StatusOK {
			// A whole-request 429 is indexing pressure: the stats deltas
			// report it.
			b.Statuses = append(b.Statuses, r.Status)
			b.ItemErrors = append(b.ItemErrors, orNone(errorType(r.Body)))
			continue
		}
		var br struct {
			Items []map[string]struct {
				Status int `json:"status"`
				Error  *struct {
					Type   string `json:"type"`
					Reason string `json:"reason"`
				} `json:"error"`
			} `json:"items"`
		}
		if err := json.Unmarshal(r.Body, &br); err != nil || len(br.Items) != 1 {
			b.Statuses = append(b.Statuses, 0)
			b.ItemErrors = append(b.ItemErrors, "bad bulk answer")
			continue
		}
		for _, it := range br.Items[0] {
			switch {
			case it.Error != nil && it.Error.Type == "cluster_block_exception":
				// A 429 (or 403 before 7.x) that no retry cures: an
				// index block, typically the flood-stage watermark's.
				itemBlocked++
				blockReason = it.Error.Reason
			case it.Status == http.StatusTooManyRequests:
				itemRejected++
			}
			b.Statuses = append(b.Statuses, it.Status)
			if it.Error != nil {
				b.ItemErrors = append(b.ItemErrors, it.Error.Type)
			}
		}
	}
	b.LatencyP50MS = ms(percentile(lats, 0.5))
	b.LatencyP99MS = ms(percentile(lats, 0.99))
	// Count the canary: refresh first, as a real cluster shows new
	// documents to search only after a refresh.
	cl.do(ctx, http.MethodPost, base+"/"+url.PathEscape(idx)+"/_refresh", nil, "")
	var cnt struct {
		Count int `json:"count"`
	}
	q := fmt.Sprintf(`{"query":{"ids":{"values":[%q]}}}`, id)
	countErr := error(nil)
	if r, err := cl.do(ctx, http.MethodPost, base+"/"+url.PathEscape(idx)+"/_count", []byte(q), "application/json"); err != nil {
		countErr = err
	} else if r.Status == http.StatusNotFound && errorType(r.Body) == "index_not_found_exception" {
		cnt.Count = 0 // nothing was ever stored there
	} else if r.Status != http.StatusOK {
		countErr = &statusError{Path: "/" + idx + "/_count", Status: r.Status, Type: errorType(r.Body)}
	} else if err := json.Unmarshal(r.Body, &cnt); err != nil {
		countErr = err
	}
	b.Count = cnt.Count
	if r, err := cl.do(ctx, http.MethodDelete, base+"/"+url.PathEscape(idx)+"/_doc/"+url.PathEscape(id), nil, ""); err == nil && r.Status == http.StatusOK {
		b.Cleaned = true
	}
	created := 0
	conflicts := 0
	for _, s := range b.Statuses {
		switch s {
		case http.StatusCreated, http.StatusOK:
			created++
		case http.StatusConflict:
			conflicts++
		}
	}
	b.Idempotent = created == 1 && conflicts == len(b.Statuses)-1 && b.Count == 1
	c.OK = b.Idempotent
	c.Detail = fmt.Sprintf("statuses %v, %d document(s) stored, bulk p50 %.1f ms p99 %.1f ms", b.Statuses, b.Count, b.LatencyP50MS, b.LatencyP99MS)
	if countErr != nil {
		c.Detail += "; count: " + errString(countErr)
	}
	p.check(c, start)
	p.mu.Lock()
	p.res.Bulk = b
	p.mu.Unlock()
	ev := map[string]any{"index": idx, "id": id, "statuses": b.Statuses, "count": b.Count, "item_errors": b.ItemErrors}
	if countErr == nil && (created > 1 || b.Count > 1) {
		p.add(report.Finding{ID: FindingBulkNotIdempotent, Severity: report.Critical,
			Summary:  fmt.Sprintf("a create with the fixed _id %s was accepted %d times (%d documents): resends will duplicate", id, created, b.Count),
			Evidence: ev, Remedy: remedyIdempotent})
	}
	if countErr == nil && created >= 1 && b.Count == 0 {
		p.add(report.Finding{ID: FindingBulkLost, Severity: report.Critical,
			Summary:  fmt.Sprintf("the canary %s was acknowledged (201) but is not in %s", id, idx),
			Evidence: ev, Remedy: remedyLost})
	}
	if itemBlocked > 0 {
		ev["block_reason"] = blockReason
		p.add(report.Finding{ID: FindingWriteBlocked, Severity: report.Critical,
			Summary:  fmt.Sprintf("%d of %d canary bulk items were refused by an index block: %s", itemBlocked, len(b.Statuses), clip.String(blockReason, 160)),
			Evidence: ev, Remedy: remedyBlocked})
	}
	if itemRejected > 0 {
		p.add(report.Finding{ID: FindingWriteRejections, Severity: report.Critical,
			Summary: fmt.Sprintf("%d of %d canary bulk items were rejected with 429 es_rejected_execution_exception%s",
				itemRejected, len(b.Statuses), rejectionCost),
			Evidence: ev, Remedy: remedyRejections})
	}
}

// otherClientsCheck compares the growth of the cluster's http.total_opened
// over the whole run with the connections the probe itself opened: the
// rest were opened by other clients. Many per second is the TIME_WAIT trail
// of a shipper without keep-alive (seed 000).
func (p *probe) otherClientsCheck(before, after *statsSnap, ours int64) {
	pool := p.res.Pool
	if pool == nil {
		return
	}
	window := after.at.Sub(before.at)
	pool.OthersOpened = max(after.opened-before.opened-ours, 0)
	pool.WindowMS = window.Milliseconds()
	if window > 0 {
		pool.OthersPerSecond = float64(pool.OthersOpened) / window.Seconds()
	}
	if pool.OthersOpened >= 3 && pool.OthersPerSecond >= 10 {
		p.add(report.Finding{ID: FindingConnectionChurn, Severity: report.Warning,
			Summary: fmt.Sprintf("other clients opened %d HTTP connections in %d ms (%.0f/s): some client does not reuse connections",
				pool.OthersOpened, pool.WindowMS, pool.OthersPerSecond),
			Evidence: map[string]any{"other_clients_opened": pool.OthersOpened, "window_ms": pool.WindowMS,
				"per_second": round2(pool.OthersPerSecond), "probe_opened": ours},
			Remedy: remedyChurn})
	}
}

func (p *probe) pressureCheck(before, after *statsSnap, elapsed time.Duration) {
	pr := &Pressure{WriteQueue: after.queue, WriteActive: after.active, WriteRejected: after.rejected,
		WriteRejectedDelta: after.rejected - before.rejected, PressureRejected: after.pressure,
		PressureRejectDelta: after.pressure - before.pressure, IntervalMS: elapsed.Milliseconds(),
		IndexingPressure: after.pressureReported}
	p.mu.Lock()
	p.res.Pressure = pr
	p.mu.Unlock()
	p.check(Check{Name: "write_pressure", OK: pr.WriteRejectedDelta == 0 && pr.PressureRejectDelta == 0,
		Detail: fmt.Sprintf("write rejected %d (+%d), queue %d; indexing_pressure rejections %d (+%d) over %d ms",
			pr.WriteRejected, pr.WriteRejectedDelta, pr.WriteQueue, pr.PressureRejected, pr.PressureRejectDelta, pr.IntervalMS)}, time.Now())
	ev := map[string]any{"write_rejected": pr.WriteRejected, "write_rejected_delta": pr.WriteRejectedDelta,
		"write_queue": pr.WriteQueue, "interval_ms": pr.IntervalMS}
	if pr.WriteRejected > 0 && !p.hasFinding(FindingWriteRejections) {
		sev, sum := report.Warning, fmt.Sprintf("thread_pool.write rejected %d tasks since the nodes started%s", pr.WriteRejected, rejectionCost)
		if pr.WriteRejectedDelta > 0 {
			sev, sum = report.Critical, fmt.Sprintf("thread_pool.write rejected %d tasks during the probe (%d in total): bulk items are getting 429%s",
				pr.WriteRejectedDelta, pr.WriteRejected, rejectionCost)
		}
		p.add(report.Finding{ID: FindingWriteRejections, Severity: sev, Summary: sum, Evidence: ev, Remedy: remedyRejections})
	}
	if pr.PressureRejected > 0 {
		sev, sum := report.Warning, fmt.Sprintf("indexing pressure rejected %d requests since the nodes started", pr.PressureRejected)
		if pr.PressureRejectDelta > 0 {
			sev, sum = report.Critical, fmt.Sprintf("indexing pressure rejected %d requests during the probe (%d in total)", pr.PressureRejectDelta, pr.PressureRejected)
		}
		p.add(report.Finding{ID: FindingIndexingPressure, Severity: sev, Summary: sum,
			Evidence: map[string]any{"rejections": pr.PressureRejected, "rejections_delta": pr.PressureRejectDelta, "interval_ms": pr.IntervalMS},
			Remedy:   remedyPressure})
	}
}

func (p *probe) hasFinding(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.findings {
		if f.ID == id {
			return true
		}
	}
	return false
}

// timeoutCheck compares the bulk latency p99 (every request's when there
// was no bulk check) with the shipper's request timeout.
func (p *probe) timeoutCheck() {
	var lats []time.Duration
	src := "bulk"
	if p.res.Bulk != nil && len(p.res.Bulk.Statuses) > 0 {
		p99 := p.res.Bulk.LatencyP99MS
		p.res.LatencyP99MS = p99
	} else {
		src = "requests"
		p.mu.Lock()
		lats = append(lats, p.lat...)
		p.mu.Unlock()
		p.res.LatencyP99MS = ms(percentile(lats, 0.99))
	}
	p99 := p.res.LatencyP99MS
	limit := ms(p.o.RequestTimeout)
	if p99 <= 0 {
		return
	}
	ev := map[string]any{"latency_p99_ms": round2(p99), "request_timeout_ms": p.o.RequestTimeout.Milliseconds(), "measured_on": src}
	switch {
	case p99 >= limit:
		p.add(report.Finding{ID: FindingRequestTimeout, Severity: report.Critical,
			Summary:  fmt.Sprintf("%s latency p99 %.0f ms reaches the shipper's request timeout (%s): bulks time out and are resent", src, p99, p.o.RequestTimeout),
			Evidence: ev, Remedy: remedyTimeout})
	case p99 >= limit/2:
		p.add(report.Finding{ID: FindingRequestTimeout, Severity: report.Warning,
			Summary:  fmt.Sprintf("%s latency p99 %.0f ms is over half the shipper's request timeout (%s)", src, p99, p.o.RequestTimeout),
			Evidence: ev, Remedy: remedyTimeout})
	}
}
