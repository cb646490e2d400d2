package exporter

import (
	"context"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// ShipperPlugin is one plugin's numbers from a shipper's own monitoring
// endpoint, under the names the shipper uses (Fluentd monitor_agent's
// buffer_total_queued_size, Fluent Bit's retries_total, ...).
type ShipperPlugin struct {
	// ID is the shipper's name for the plugin: Fluentd's plugin_id (the
	// @id, or object:NNN), Fluent Bit's instance name (es.0, or its alias).
	ID       string
	Category string // input, filter or output
	Values   map[string]float64
	// LimitBytes is the buffer's total limit when the configuration says
	// (total_limit_size, storage.total_limit_size, mem_buf_limit); 0 when
	// unknown.
	LimitBytes float64
}

// ShipperReader takes one look at a shipper's monitoring endpoint.
type ShipperReader func(ctx context.Context) ([]ShipperPlugin, error)

// ShipperConfig configures a shipper metrics source.
type ShipperConfig struct {
	// Shipper labels the series and is the source's target; Kind is
	// fluentd or fluent-bit, which says how to read the names.
	Shipper, Kind string
	Read          ShipperReader
}

// Shipper is the source of logdoctor_shipper_*: a shipper's buffers,
// retries, errors and drops per plugin, the same names whichever shipper.
type Shipper struct {
	c        ShipperConfig
	queued   *prometheus.Desc
	limit    *prometheus.Desc
	usage    *prometheus.Desc
	chunks   *prometheus.Desc
	retries  *prometheus.Desc
	errs     *prometheus.Desc
	dropped  *prometheus.Desc
	inputRec *prometheus.Desc
	outRec   *prometheus.Desc
	writes   *prometheus.Desc
}

// Shipper kinds.
const (
	KindFluentd   = "fluentd"
	KindFluentBit = "fluent-bit"
)

// NewShipper returns a shipper metrics source.
func NewShipper(c ShipperConfig) *Shipper {
	l := []string{"shipper", "plugin_id"}
	return &Shipper{c: c,
		queued: prometheus.NewDesc("logdoctor_shipper_buffer_queued_bytes",
			"Bytes in the plugin's buffer (Fluentd buffer_total_queued_size of an output; Fluent Bit an input's chunks in memory, "+
				"fluentbit_input_storage_memory_bytes).", l, nil),
		limit: prometheus.NewDesc("logdoctor_shipper_buffer_limit_bytes",
			"The buffer's limit, when the configuration sets or implies one (total_limit_size, Mem_Buf_Limit).", l, nil),
		usage: prometheus.NewDesc("logdoctor_shipper_buffer_usage_ratio",
			"How full the buffer is, 0 to 1: queued over limit, or what the shipper reports (Fluentd 1 - buffer_available_buffer_space_ratios/100, "+
				"Fluent Bit 1 - fluentbit_output_chunk_available_capacity_percent/100).", l, nil),
		chunks: prometheus.NewDesc("logdoctor_shipper_buffer_queue_chunks",
			"Chunks queued for flushing (Fluentd buffer_queue_length; Fluent Bit an input's chunks).", l, nil),
		retries: prometheus.NewDesc("logdoctor_shipper_output_retries_total",
			"Retries of the output's flushes (Fluentd retry_count, Fluent Bit retries_total).", l, nil),
		errs: prometheus.NewDesc("logdoctor_shipper_output_errors_total",
			"Failed flushes (Fluentd rollback_count, Fluent Bit errors_total).", l, nil),
		dropped: prometheus.NewDesc("logdoctor_shipper_output_dropped_records_total",
			"Records the output gave up on (Fluent Bit dropped_records_total; Fluentd does not count them).", l, nil),
		inputRec: prometheus.NewDesc("logdoctor_shipper_input_records_total",
			"Records an input emitted (Fluentd emit_records, Fluent Bit records_total).", l, nil),
		outRec: prometheus.NewDesc("logdoctor_shipper_output_records_total",
			"Records the output sent (Fluent Bit proc_records_total; Fluentd counts records into the output, emit_records).", l, nil),
		writes: prometheus.NewDesc("logdoctor_shipper_output_writes_total",
			"Chunks the output flushed (Fluentd write_count).", l, nil),
	}
}

func (s *Shipper) Name() string   { return "shipper" }
func (s *Shipper) Target() string { return s.c.Shipper }

func (s *Shipper) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.queued, s.limit, s.usage, s.chunks, s.retries, s.errs, s.dropped, s.inputRec, s.outRec, s.writes} {
		ch <- d
	}
}

// The names each shipper uses for the numbers logdoctor exports.
type shipperNames struct {
	queued, chunks, availablePct                 []string
	retries, errs, dropped, inRec, outRec, write []string
}

var namesByKind = map[string]shipperNames{
	KindFluentd: {
		queued: []string{"buffer_total_queued_size"}, chunks: []string{"buffer_queue_length"},
		availablePct: []string{"buffer_available_buffer_space_ratios"},
		retries:      []string{"retry_count"}, errs: []string{"rollback_count"},
		inRec: []string{"emit_records"}, outRec: []string{"emit_records"}, write: []string{"write_count"},
	},
	// Fluent Bit: /api/v2/metrics names first, then /api/v1/metrics and
	// /api/v1/storage names (older versions, or v2 switched off).
	KindFluentBit: {
		queued:       []string{"fluentbit_input_storage_memory_bytes", "storage_mem_bytes"},
		chunks:       []string{"fluentbit_input_storage_chunks", "chunks_total"},
		availablePct: []string{"fluentbit_output_chunk_available_capacity_percent"},
		retries:      []string{"fluentbit_output_retries_total", "retries"},
		errs:         []string{"fluentbit_output_errors_total", "errors"},
		dropped:      []string{"fluentbit_output_dropped_records_total", "dropped_records"},
		inRec:        []string{"fluentbit_input_records_total", "records"},
		outRec:       []string{"fluentbit_output_proc_records_total", "proc_records"},
	},
}

// first returns the first of names the plugin has.
func first(v map[string]float64, names []string) (float64, bool) {
	for _, n := range names {
		if x, ok := v[n]; ok {
			return x, true
		}
	}
	return 0, false
}

func (s *Shipper) Collect(ctx context.Context) (*Sample, error) {
	plugins, err := s.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	names := namesByKind[s.c.Kind]
	out := &Sample{}
	add := func(d *prometheus.Desc, vt prometheus.ValueType, v float64, id string) {
		out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(d, vt, v, s.c.Shipper, id))
	}
	plugins = slices.Clone(plugins)
	slices.SortFunc(plugins, func(a, b ShipperPlugin) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	seen := map[string]bool{}
	for _, p := range plugins {
		if seen[p.ID] || p.ID == "" {
			continue // one series per plugin id
		}
		seen[p.ID] = true
		v := p.Values
		input := p.Category == "input"
		output := p.Category == "output"
		queued, hasQueued := first(v, names.queued)
		if hasQueued && (output || s.c.Kind == KindFluentBit) {
			add(s.queued, prometheus.GaugeValue, queued, p.ID)
		}
		if p.LimitBytes <= 0 && s.c.Kind == KindFluentBit {
			p.LimitBytes = v["storage_mem_limit_bytes"] // Mem_Buf_Limit; 0 when unset
		}
		if p.LimitBytes > 0 && hasQueued {
			add(s.limit, prometheus.GaugeValue, p.LimitBytes, p.ID)
		}
		switch pct, ok := first(v, names.availablePct); {
		case p.LimitBytes > 0 && hasQueued:
			add(s.usage, prometheus.GaugeValue, min(queued/p.LimitBytes, 1), p.ID)
		case ok && output:
			add(s.usage, prometheus.GaugeValue, min(max(1-pct/100, 0), 1), p.ID)
		}
		if n, ok := first(v, names.chunks); ok && (output || s.c.Kind == KindFluentBit) {
			add(s.chunks, prometheus.GaugeValue, n, p.ID)
		}
		if input {
			if n, ok := first(v, names.inRec); ok {
				add(s.inputRec, prometheus.CounterValue, n, p.ID)
			}
			continue
		}
		if !output {
			continue
		}
		if n, ok := first(v, names.retries); ok {
			add(s.retries, prometheus.CounterValue, n, p.ID)
		}
		if n, ok := first(v, names.errs); ok {
			add(s.errs, prometheus.CounterValue, n, p.ID)
		}
		if n, ok := first(v, names.dropped); ok {
			add(s.dropped, prometheus.CounterValue, n, p.ID)
		}
		if n, ok := first(v, names.outRec); ok {
			add(s.outRec, prometheus.CounterValue, n, p.ID)
		}
		if n, ok := first(v, names.write); ok {
			add(s.writes, prometheus.CounterValue, n, p.ID)
		}
	}
	return out, ctx.Err()
}
