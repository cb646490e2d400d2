package exporter

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
)

// AckBuckets are logdoctor_forward_ack_seconds's buckets: from a local
// receiver's millisecond to Fluentd's 60 s send_timeout.
var AckBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// ForwardProbe is the source of periodic `forward probe` runs against one
// forward input: one canary chunk with an ack request per run.
type ForwardProbe struct {
	opts     forwardprobe.Options
	acks     prometheus.Histogram
	success  *prometheus.Desc
	outcomes *prometheus.Desc
	counts   map[string]float64
}

// NewForwardProbe returns the source; o.Addr is the target. Without
// o.Modes one PackedForward chunk is sent, the mode out_forward uses.
func NewForwardProbe(o forwardprobe.Options) *ForwardProbe {
	if len(o.Modes) == 0 {
		o.Modes = []forward.Mode{forward.ModePacked}
	}
	o.Count = 0 // canaries, never load mode
	return &ForwardProbe{opts: o, counts: map[string]float64{},
		acks: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "logdoctor_forward_ack_seconds",
			Help:        "Time from writing a canary chunk to its ack, per forward probe target; chunks without an ack are not observed.",
			Buckets:     AckBuckets,
			ConstLabels: prometheus.Labels{"target": o.Addr},
		}),
		success: prometheus.NewDesc("logdoctor_forward_probe_success",
			"1 when every canary chunk of the last forward probe was acknowledged, else 0.", []string{"target"}, nil),
		outcomes: prometheus.NewDesc("logdoctor_forward_probe_chunks_total",
			"Canary chunks sent by the forward probe, by outcome (acked, no_ack, ack_mismatch, closed_before_ack, connect_failed, ...).",
			[]string{"target", "outcome"}, nil),
	}
}

func (p *ForwardProbe) Name() string   { return "forward_probe" }
func (p *ForwardProbe) Target() string { return p.opts.Addr }

func (p *ForwardProbe) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.acks.Desc()
	ch <- p.success
	ch <- p.outcomes
}

func (p *ForwardProbe) Collect(ctx context.Context) (*Sample, error) {
	res, findings, err := forwardprobe.Run(ctx, p.opts)
	if err != nil {
		return nil, err
	}
	ok := len(res.Canaries) > 0
	for _, c := range res.Canaries {
		if c.Outcome == "skipped" {
			continue
		}
		p.counts[c.Outcome]++
		if c.Outcome == "acked" {
			p.acks.Observe(c.AckMS / 1000)
		} else {
			ok = false
		}
	}
	if len(res.Canaries) == 0 {
		// Connecting failed: no chunk went out.
		p.counts["connect_failed"]++
	}
	out := &Sample{Metrics: []prometheus.Metric{
		p.acks,
		prometheus.MustNewConstMetric(p.success, prometheus.GaugeValue, b2f(ok), p.opts.Addr),
	}}
	outcomes := make([]string, 0, len(p.counts))
	for k := range p.counts {
		outcomes = append(outcomes, k)
	}
	slices.Sort(outcomes)
	for _, k := range outcomes {
		out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(p.outcomes, prometheus.CounterValue, p.counts[k], p.opts.Addr, k))
	}
	for _, f := range findings {
		out.Findings = append(out.Findings, Finding{Finding: f, Target: p.opts.Addr})
	}
	return out, nil
}

// ESProbe is the source of periodic `es probe` runs against one cluster:
// reachability, health, write rejections and the probe's findings. It
// runs the probe light (a few requests, no idle wait, no canary write).
type ESProbe struct {
	opts       esprobe.Options
	target     string
	success    *prometheus.Desc
	rejections *prometheus.Desc
	queue      *prometheus.Desc
	health     *prometheus.Desc
	nodes      *prometheus.Desc
}

// NewESProbe returns the source; o.URLs[0] is the target.
func NewESProbe(o esprobe.Options) *ESProbe {
	if o.Sequential <= 0 {
		o.Sequential = 3
	}
	if o.Concurrent <= 0 {
		o.Concurrent = 2
	}
	o.Index = "" // never write from an exporter
	target := ""
	if len(o.URLs) > 0 {
		target = redactURL(o.URLs[0])
	}
	return &ESProbe{opts: o, target: target,
		success: prometheus.NewDesc("logdoctor_es_probe_success",
			"1 when the last es probe reached the cluster and found nothing critical, else 0.", []string{"target"}, nil),
		rejections: prometheus.NewDesc("logdoctor_es_write_rejections_total",
			"Write rejections summed over the cluster's nodes: kind thread_pool (thread_pool.write.rejected) or indexing_pressure "+
				"(indexing_pressure.memory.total.*_rejections, how Elasticsearch 7.9+ rejects). The cluster's own counters: they fall when a node restarts.",
			[]string{"cluster", "kind"}, nil),
		queue: prometheus.NewDesc("logdoctor_es_write_queue",
			"Write thread pool queue summed over the cluster's nodes.", []string{"cluster"}, nil),
		health: prometheus.NewDesc("logdoctor_es_cluster_health",
			"1 for the cluster's current _cluster/health status (green, yellow or red), 0 for the others.", []string{"cluster", "status"}, nil),
		nodes: prometheus.NewDesc("logdoctor_es_nodes",
			"Nodes in the cluster (_cluster/health number_of_nodes).", []string{"cluster"}, nil),
	}
}

func (p *ESProbe) Name() string   { return "es_probe" }
func (p *ESProbe) Target() string { return p.target }

func (p *ESProbe) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.success, p.rejections, p.queue, p.health, p.nodes} {
		ch <- d
	}
}

func (p *ESProbe) Collect(ctx context.Context) (*Sample, error) {
	res, findings, err := esprobe.Run(ctx, p.opts)
	if err != nil {
		return nil, err
	}
	reached, critical := false, false
	cluster := ""
	for _, t := range res.Targets {
		if t.Reachable {
			reached = true
			if cluster == "" {
				cluster = t.ClusterName
			}
		}
	}
	if cluster == "" {
		cluster = p.target
	}
	out := &Sample{}
	for _, f := range findings {
		critical = critical || f.Severity.String() == "critical"
		out.Findings = append(out.Findings, Finding{Finding: f, Target: p.target})
	}
	out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(p.success, prometheus.GaugeValue, b2f(reached && !critical), p.target))
	if pr := res.Pressure; pr != nil {
		out.Metrics = append(out.Metrics,
			prometheus.MustNewConstMetric(p.rejections, prometheus.CounterValue, float64(pr.WriteRejected), cluster, "thread_pool"),
			prometheus.MustNewConstMetric(p.queue, prometheus.GaugeValue, float64(pr.WriteQueue), cluster))
		if pr.IndexingPressure {
			out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(p.rejections, prometheus.CounterValue, float64(pr.PressureRejected), cluster, "indexing_pressure"))
		}
	}
	if h := res.Health; h != nil {
		for _, s := range []string{"green", "yellow", "red"} {
			out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(p.health, prometheus.GaugeValue, b2f(h.Status == s), cluster, s))
		}
		out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(p.nodes, prometheus.GaugeValue, float64(h.Nodes), cluster))
	}
	return out, nil
}

// redactURL drops a URL's user information: the target label must not
// carry a password.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return fmt.Sprint(u)
}
