package doctor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// PluginSample is one plugin's numbers in one look at the shipper's
// monitoring endpoint, named as the shipper names them.
type PluginSample struct {
	// ID is how the shipper names the plugin: Fluentd's plugin_id (the
	// @id, or object:NNN), Fluent Bit's instance name (es.0 or the alias).
	ID       string             `json:"id"`
	Type     string             `json:"type"`
	Category string             `json:"category"` // input, filter or output
	Values   map[string]float64 `json:"values"`
	// Config is what Fluentd's monitor_agent shows of the plugin's
	// settings, used to tell plugins of one type apart (redacted, never
	// printed).
	Config map[string]string `json:"-"`
	// RetrySteps and RetryNext are Fluentd's retry state, when retrying.
	RetrySteps *float64 `json:"retry_steps,omitempty"`
	RetryNext  string   `json:"retry_next,omitempty"`
}

// Sample is one look at the monitoring endpoint.
type Sample struct {
	At      time.Time      `json:"at"`
	Plugins []PluginSample `json:"plugins"`
	// Storage is Fluent Bit's storage layer (chunks), when it reports it.
	Storage map[string]float64 `json:"storage,omitempty"`
	Error   string             `json:"error,omitempty"`
}

// plugin returns the sample of plugin id, or nil.
func (s *Sample) plugin(id string) *PluginSample {
	for i := range s.Plugins {
		if s.Plugins[i].ID == id {
			return &s.Plugins[i]
		}
	}
	return nil
}

// maxMetricsBody caps what is read from a monitoring endpoint.
const maxMetricsBody = 8 << 20

// errStatus is wrapped for a monitoring endpoint answering other than 200.
var errStatus = errors.New("unexpected HTTP status")

func getBody(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("GET %s: %w %d", url, errStatus, resp.StatusCode)
	}
	return b, nil
}

// ---- Fluentd monitor_agent ----

// fluentdMonitorNumbers are the monitor_agent fields doctor reads.
var fluentdMonitorNumbers = []string{
	"buffer_queue_length", "buffer_total_queued_size", "buffer_stage_length", "buffer_stage_byte_size",
	"buffer_queue_byte_size", "buffer_available_buffer_space_ratios", "retry_count", "emit_records",
	"emit_count", "emit_size", "write_count", "rollback_count", "slow_flush_count", "flush_time_count",
}

// ParseMonitorAgent reads monitor_agent's /api/plugins.json.
func ParseMonitorAgent(b []byte) ([]PluginSample, error) {
	var doc struct {
		Plugins []map[string]json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("monitor_agent answer: %w", err)
	}
	out := make([]PluginSample, 0, len(doc.Plugins))
	for _, p := range doc.Plugins {
		ps := PluginSample{Values: map[string]float64{}}
		_ = json.Unmarshal(p["plugin_id"], &ps.ID)
		_ = json.Unmarshal(p["type"], &ps.Type)
		_ = json.Unmarshal(p["plugin_category"], &ps.Category)
		if ps.ID == "" {
			continue
		}
		for _, k := range fluentdMonitorNumbers {
			var v *float64
			if raw, ok := p[k]; ok && json.Unmarshal(raw, &v) == nil && v != nil {
				ps.Values[k] = *v
			}
		}
		var cfg map[string]any
		if json.Unmarshal(p["config"], &cfg) == nil {
			ps.Config = map[string]string{}
			for k, v := range cfg {
				if s, ok := v.(string); ok {
					ps.Config[k] = s
				}
			}
		}
		var retry struct {
			Steps *float64 `json:"steps"`
			Next  string   `json:"next_time"`
		}
		if raw, ok := p["retry"]; ok && json.Unmarshal(raw, &retry) == nil && retry.Steps != nil {
			ps.RetrySteps, ps.RetryNext = retry.Steps, retry.Next
		}
		out = append(out, ps)
	}
	return out, nil
}

func sampleFluentd(ctx context.Context, hc *http.Client, addr string) (Sample, []byte, error) {
	b, err := getBody(ctx, hc, "http://"+addr+"/api/plugins.json")
	if err != nil {
		return Sample{}, nil, err
	}
	ps, err := ParseMonitorAgent(b)
	return Sample{Plugins: ps}, b, err
}

// ---- Fluent Bit HTTP server ----

// ParseFluentBitV1 reads /api/v1/metrics: counters per input, filter and
// output instance.
func ParseFluentBitV1(b []byte) ([]PluginSample, error) {
	var doc map[string]map[string]map[string]float64
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("/api/v1/metrics answer: %w", err)
	}
	var out []PluginSample
	for _, cat := range []string{"input", "filter", "output"} {
		names := make([]string, 0, len(doc[cat]))
		for n := range doc[cat] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			typ, _, _ := strings.Cut(n, ".")
			v := doc[cat][n]
			if v == nil {
				v = map[string]float64{}
			}
			out = append(out, PluginSample{ID: n, Type: typ, Category: cat, Values: v})
		}
	}
	return out, nil
}

// ParseFluentBitV2 reads /api/v2/metrics, cmetrics' text form
// ("TIMESTAMP name{label="v",...} = VALUE" per line), into values per
// instance (the name label) and values without one.
func ParseFluentBitV2(b []byte) (perInstance map[string]map[string]float64, global map[string]float64, err error) {
	perInstance, global = map[string]map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lines := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		lhs, rhs, ok := strings.Cut(line, " = ")
		if !ok {
			continue
		}
		v, perr := strconv.ParseFloat(strings.TrimSpace(rhs), 64)
		if perr != nil {
			continue
		}
		// Drop the timestamp.
		if i := strings.IndexByte(lhs, ' '); i >= 0 && !strings.Contains(lhs[:i], "{") {
			lhs = lhs[i+1:]
		}
		name, labels := lhs, ""
		if i := strings.IndexByte(lhs, '{'); i >= 0 && strings.HasSuffix(lhs, "}") {
			name, labels = lhs[:i], lhs[i+1:len(lhs)-1]
		}
		lines++
		inst := labelValue(labels, "name")
		if inst == "" {
			if labels == "" || labelValue(labels, "hostname") != "" {
				global[name] += v
			}
			continue
		}
		if perInstance[inst] == nil {
			perInstance[inst] = map[string]float64{}
		}
		perInstance[inst][name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("/api/v2/metrics answer: %w", err)
	}
	if lines == 0 && len(bytes.TrimSpace(b)) > 0 {
		return nil, nil, fmt.Errorf("/api/v2/metrics answer: no metric lines")
	}
	return perInstance, global, nil
}

// labelValue finds key="value" in a cmetrics label list.
func labelValue(labels, key string) string {
	for labels != "" {
		var kv string
		kv, labels, _ = cutLabel(labels)
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// cutLabel splits the first label off, minding commas inside quotes.
func cutLabel(s string) (first, rest string, ok bool) {
	inQ := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQ = !inQ
		case '\\':
			i++
		case ',':
			if !inQ {
				return s[:i], s[i+1:], true
			}
		}
	}
	return s, "", false
}

// ParseFluentBitStorage reads /api/v1/storage: the storage layer's chunk
// counts and, per input, the chunks up and down and the memory in use.
func ParseFluentBitStorage(b []byte) (map[string]float64, map[string]map[string]float64, error) {
	var doc struct {
		Layer struct {
			Chunks map[string]float64 `json:"chunks"`
		} `json:"storage_layer"`
		Inputs map[string]struct {
			Status struct {
				Overlimit bool   `json:"overlimit"`
				MemSize   string `json:"mem_size"`
				MemLimit  string `json:"mem_limit"`
			} `json:"status"`
			Chunks map[string]json.RawMessage `json:"chunks"`
		} `json:"input_chunks"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, nil, fmt.Errorf("/api/v1/storage answer: %w", err)
	}
	per := map[string]map[string]float64{}
	for name, in := range doc.Inputs {
		m := map[string]float64{}
		if n, ok := parseFBSize(in.Status.MemSize); ok {
			m["storage_mem_bytes"] = n
		}
		if n, ok := parseFBSize(in.Status.MemLimit); ok {
			m["storage_mem_limit_bytes"] = n
		}
		if in.Status.Overlimit {
			m["storage_overlimit"] = 1
		}
		for k, raw := range in.Chunks {
			var v float64
			if json.Unmarshal(raw, &v) == nil {
				m["chunks_"+k] = v
			}
		}
		per[name] = m
	}
	return doc.Layer.Chunks, per, nil
}

// parseFBSize reads Fluent Bit's human sizes ("1.2M", "512.0K", "0b").
func parseFBSize(s string) (float64, bool) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" {
		return 0, false
	}
	mul := 1.0
	switch {
	case strings.HasSuffix(s, "g"):
		mul, s = 1<<30, strings.TrimSuffix(s, "g")
	case strings.HasSuffix(s, "m"):
		mul, s = 1<<20, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "k"):
		mul, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "b"):
		s = strings.TrimSuffix(s, "b")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return v * mul, true
}

// fluentBitEndpoints says which endpoints of the HTTP server answered,
// learned on the first sample so later ones skip what is absent.
type fluentBitEndpoints struct {
	v2, storage bool
	health      string
}

func sampleFluentBit(ctx context.Context, hc *http.Client, addr string, ep *fluentBitEndpoints, first bool) (Sample, []byte, error) {
	base := "http://" + addr
	b, err := getBody(ctx, hc, base+"/api/v1/metrics")
	if err != nil {
		return Sample{}, nil, err
	}
	ps, err := ParseFluentBitV1(b)
	if err != nil {
		return Sample{}, b, err
	}
	s := Sample{Plugins: ps}
	if first || ep.v2 {
		if v2, err := getBody(ctx, hc, base+"/api/v2/metrics"); err == nil {
			if per, global, err := ParseFluentBitV2(v2); err == nil {
				ep.v2 = true
				for i := range s.Plugins {
					for k, v := range per[s.Plugins[i].ID] {
						s.Plugins[i].Values[k] = v
					}
				}
				if n, ok := global["fluentbit_storage_chunks"]; ok {
					s.Storage = map[string]float64{"total_chunks": n}
				}
			}
		}
	}
	if first || ep.storage {
		if st, err := getBody(ctx, hc, base+"/api/v1/storage"); err == nil {
			if layer, per, err := ParseFluentBitStorage(st); err == nil {
				ep.storage = true
				if s.Storage == nil {
					s.Storage = map[string]float64{}
				}
				for k, v := range layer {
					s.Storage[k] = v
				}
				for i := range s.Plugins {
					for k, v := range per[s.Plugins[i].ID] {
						s.Plugins[i].Values[k] = v
					}
				}
			}
		}
	}
	if first {
		// "ok" or "error" with Health_Check On; other answers (the
		// build's info without it) say nothing about health.
		h, err := getBody(ctx, hc, base+"/api/v1/health")
		if body := strings.TrimSpace(string(h)); (err == nil || errors.Is(err, errStatus)) && (body == "ok" || body == "error") {
			ep.health = body
		}
	}
	return s, b, nil
}
