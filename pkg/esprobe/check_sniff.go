package esprobe

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/internal/stats"
	"github.com/logdoctor/logdoctor/pkg/esclient"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// checkSniff fetches _nodes/http through cl and connects with dial (each
// within timeout) to every published address the way a sniffing client
// does (esclient.DialAddress: the published name when there is one,
// resolved here). It returns the nodes by name and the smallest
// http.max_content_length.
func checkSniff(ctx context.Context, cl *client, dial func(ctx context.Context, network, addr string) (net.Conn, error), timeout time.Duration) ([]Node, int64, outcome) {
	var out outcome
	start := time.Now()
	var nh esclient.NodesHTTP
	r, err := cl.getJSON(ctx, "/_nodes/http", &nh)
	c := Check{Name: "sniff", Target: cl.es.Base}
	if r != nil {
		out.latency(r.Elapsed)
	}
	if err != nil {
		c.Detail = errString(err)
		out.check(c, start)
		return []Node{}, 0, out
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
		addr, err := esclient.DialAddress(nd.PublishAddress)
		if err != nil {
			nd.Error = err.Error()
			continue
		}
		wg.Go(func() {
			t0 := time.Now()
			dctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			conn, err := dial(dctx, "tcp", addr)
			nd.ConnectMS = stats.MS(time.Since(t0))
			if err != nil {
				nd.Error = errString(err)
				return
			}
			conn.Close()
			nd.Reachable = true
		})
	}
	wg.Wait()
	slices.SortStableFunc(nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	var bad []string
	for _, nd := range nodes {
		if !nd.Reachable {
			bad = append(bad, fmt.Sprintf("%s (%s): %s", nd.Name, orNone(nd.PublishAddress), nd.Error))
		}
	}
	maxCL := nh.MinMaxContentLength()
	c.OK = len(bad) == 0 && len(nodes) > 0
	c.Detail = fmt.Sprintf("%d nodes, %d publish addresses unreachable", len(nodes), len(bad))
	out.check(c, start)
	switch {
	case len(nodes) == 0:
		out.add(report.Finding{ID: FindingSniffUnreachable, Severity: report.Critical,
			Summary:  "_nodes/http lists no nodes: a sniffing client ends with an empty pool (\"Cannot get new connection from pool\")",
			Evidence: map[string]any{"nodes": 0}, Remedy: remedySniff})
	case len(bad) > 0:
		sum := fmt.Sprintf("%d of %d nodes publish an HTTP address this host cannot connect to", len(bad), len(nodes))
		if len(bad) == len(nodes) {
			sum += ": a shipper that sniffs (reload_connections) loses every connection"
		}
		out.add(report.Finding{ID: FindingSniffUnreachable, Severity: report.Critical, Summary: sum,
			Evidence: map[string]any{"unreachable": bad, "nodes": len(nodes)}, Remedy: remedySniff})
	}
	return nodes, maxCL, out
}
