package esprobe

import (
	"context"
	"fmt"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// checkHealth reads _cluster/health through cl: yellow is a warning, red
// critical.
func checkHealth(ctx context.Context, cl *client) (*Health, outcome) {
	var out outcome
	start := time.Now()
	var h Health
	r, err := cl.getJSON(ctx, "/_cluster/health", &h)
	c := Check{Name: "cluster_health", Target: cl.es.Base, OK: err == nil}
	if r != nil {
		out.latency(r.Elapsed)
	}
	if err != nil {
		c.Detail = errString(err)
		out.check(c, start)
		return nil, out
	}
	c.Detail = fmt.Sprintf("%s, %d nodes, %d unassigned shards, %d pending tasks", h.Status, h.Nodes, h.UnassignedShards, h.PendingTasks)
	c.OK = h.Status == "green"
	out.check(c, start)
	ev := map[string]any{"status": h.Status, "number_of_nodes": h.Nodes, "unassigned_shards": h.UnassignedShards,
		"number_of_pending_tasks": h.PendingTasks, "active_shards_percent": h.ActiveShardsPercent}
	switch h.Status {
	case "red":
		out.add(report.Finding{ID: FindingClusterHealth, Severity: report.Critical,
			Summary:  fmt.Sprintf("cluster health is red: %d unassigned shards", h.UnassignedShards),
			Evidence: ev, Remedy: remedyHealthRed})
	case "yellow":
		out.add(report.Finding{ID: FindingClusterHealth, Severity: report.Warning,
			Summary:  fmt.Sprintf("cluster health is yellow: %d unassigned shards", h.UnassignedShards),
			Evidence: ev, Remedy: remedyHealthYellow})
	}
	return &h, out
}
