package esprobe

import (
	"context"
	"fmt"
	"time"
)

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

// statsSnap is one _nodes/stats snapshot summed over the nodes: the
// pool, pressure and other-clients checks compare two of them.
type statsSnap struct {
	at                 time.Time
	queue, active      int64
	rejected           int64
	pressure           int64
	pressureReported   bool
	opened, currentOpn int64
}

// nodeStats takes a snapshot through cl; label names its step.
func nodeStats(ctx context.Context, cl *client, label string) (*statsSnap, outcome, error) {
	var out outcome
	start := time.Now()
	var ns nodeStatsT
	_, err := cl.getJSON(ctx, "/_nodes/stats/thread_pool,http,indexing_pressure", &ns)
	c := Check{Name: "nodes_stats_" + label, Target: cl.es.Base, OK: err == nil}
	if err != nil {
		c.Detail = errString(err)
		out.check(c, start)
		return nil, out, err
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
	out.check(c, start)
	return s, out, nil
}
