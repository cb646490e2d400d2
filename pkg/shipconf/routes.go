package shipconf

import (
	"regexp"
	"sort"
	"strings"
)

// Route is one input's events reaching one output.
type Route struct {
	Input  *Plugin
	Output *Plugin
	// Filters are the filters the events pass on the way, in order.
	Filters []*Plugin
	// Tags are sample tags of the input that reach the output; empty when
	// the input's tags are not known from the configuration (forward,
	// http: the sender chooses them), in which case the route holds for
	// every tag the output's pattern matches.
	Tags []string
}

// UnknownTags reports whether the route's tags are chosen by the sender.
func (r Route) UnknownTags() bool { return len(r.Tags) == 0 }

// CannotReplay reports whether an input loses what it received when the
// shipper restarts: network inputs whose senders do not resend
// (Fluentd's in_forward acks once events are buffered; a memory buffer
// lost after the ack is gone for good).
func (p *Plugin) CannotReplay() bool {
	switch p.Type {
	case "forward", "udp", "tcp", "http", "syslog", "unix",
		"opentelemetry", "splunk", "elasticsearch", "mqtt", "statsd", "collectd":
		return true
	}
	return false
}

// Routes computes which inputs reach which outputs through which filters:
// Fluentd sends each event to the first <match> in its label whose
// pattern matches its tag (filters defined before that match apply;
// relabel and copy pass events on), Fluent Bit to every output whose Match
// or Match_Regex matches (and every filter that matches applies).
func (c *Config) Routes() []Route {
	if c.Shipper == FluentBit {
		return c.fbRoutes()
	}
	return c.fdRoutes()
}

// InputTags returns sample tags an input emits, or nil when the sender
// chooses them.
func (c *Config) InputTags(in *Plugin) []string {
	if c.Shipper == FluentBit {
		tag := in.Tag
		if tag == "" {
			switch in.Type {
			case "forward", "http", "opentelemetry", "splunk", "elasticsearch":
				return nil
			}
			return []string{in.DefaultTag()}
		}
		if strings.Contains(tag, "*") && in.Type == "tail" {
			return pathTags(tag, paramValue(in.Section, "path"), true)
		}
		return []string{tag}
	}
	switch in.Type {
	case "forward", "http", "unix":
		return nil
	case "syslog":
		if in.Tag == "" {
			return nil
		}
		return []string{in.Tag + ".user.info", in.Tag + ".local0.err"}
	case "tail":
		if strings.Contains(in.Tag, "*") {
			return pathTags(in.Tag, paramValue(in.Section, "path"), false)
		}
	}
	if in.Tag == "" {
		return nil
	}
	return []string{in.Tag}
}

var globChars = regexp.MustCompile(`[*?]|\[[^\]]*\]`)

// pathTags expands a tail input's "*" tag with the path it reads, as
// in_tail (Fluentd: '/' becomes '.', leading dot dropped) and Fluent Bit's
// tag_compose (also collapsing repeated dots) do; glob characters in the
// path stand for a file name.
func pathTags(tag, paths string, fluentBit bool) []string {
	var out []string
	for _, p := range strings.Split(paths, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		p = globChars.ReplaceAllString(p, "x")
		t := strings.TrimPrefix(strings.NewReplacer("/", ".", "\\", ".", ":", ".").Replace(p), ".")
		if fluentBit {
			for strings.Contains(t, "..") {
				t = strings.ReplaceAll(t, "..", ".")
			}
			t = strings.TrimSuffix(t, ".")
		}
		out = append(out, strings.Replace(tag, "*", t, 1))
	}
	if len(out) == 0 {
		return []string{strings.ReplaceAll(tag, "*", "x")}
	}
	return out
}

// fdReEmits are Fluentd outputs that put events back into routing with a
// tag the configuration does not fix.
var fdReEmits = map[string]bool{"rewrite_tag_filter": true, "route": true}

func (c *Config) fdRoutes() []Route {
	type labelSet struct {
		outputs []*Plugin
		filters []*Plugin
	}
	labels := map[string]*labelSet{}
	get := func(l string) *labelSet {
		if labels[l] == nil {
			labels[l] = &labelSet{}
		}
		return labels[l]
	}
	for _, p := range c.Plugins {
		switch {
		case p.Kind == Output && p.Parent == nil:
			get(p.Label).outputs = append(get(p.Label).outputs, p)
		case p.Kind == Filter:
			get(p.Label).filters = append(get(p.Label).filters, p)
		}
	}
	children := map[*Plugin][]*Plugin{}
	for _, p := range c.Plugins {
		if p.Parent != nil {
			children[p.Parent] = append(children[p.Parent], p)
		}
	}
	patterns := map[*Plugin]*FluentdPattern{}
	pat := func(p *Plugin) *FluentdPattern {
		if patterns[p] == nil {
			patterns[p] = CompileFluentd(p.Match)
		}
		return patterns[p]
	}
	var routes []Route
	type visit struct {
		label string
		tag   string
		in    *Plugin
	}
	seen := map[visit]bool{}
	var emit func(in *Plugin, label string, tags []string, before []*Plugin, depth int)
	deliver := func(in *Plugin, o *Plugin, filters []*Plugin, tags []string, depth int) {
		var walk func(o *Plugin)
		walk = func(o *Plugin) {
			routes = append(routes, Route{Input: in, Output: o, Filters: filters, Tags: tags})
			if o.Type == "relabel" && o.RouteLabel != "" {
				emit(in, o.RouteLabel, tags, filters, depth+1)
			}
			if fdReEmits[o.Type] {
				target := o.Label
				if o.RouteLabel != "" {
					target = o.RouteLabel
				}
				emit(in, target, nil, filters, depth+1)
			}
			for _, ch := range children[o] {
				walk(ch)
			}
		}
		walk(o)
	}
	emit = func(in *Plugin, label string, tags []string, before []*Plugin, depth int) {
		if depth > 16 {
			return
		}
		key := visit{label: label, tag: strings.Join(tags, " "), in: in}
		if seen[key] {
			return
		}
		seen[key] = true
		ls := labels[label]
		if ls == nil {
			return
		}
		if len(tags) > 0 {
			for _, t := range tags {
				for _, o := range ls.outputs {
					if !pat(o).Match(t) {
						continue
					}
					fs := append([]*Plugin{}, before...)
					for _, f := range ls.filters {
						if f.Order < o.Order && pat(f).Match(t) {
							fs = append(fs, f)
						}
					}
					deliver(in, o, fs, []string{t}, depth)
					break
				}
			}
			return
		}
		for _, o := range ls.outputs {
			fs := append([]*Plugin{}, before...)
			for _, f := range ls.filters {
				if f.Order < o.Order && (pat(f).MatchesAll() || covers(pat(f).Match, pat(o).Samples(), pat(o).Match)) {
					fs = append(fs, f)
				}
			}
			deliver(in, o, fs, nil, depth)
			if pat(o).MatchesAll() {
				break // nothing reaches the outputs after a <match **>
			}
		}
	}
	for _, in := range c.Inputs() {
		if in.fdMonitorOnly() {
			continue
		}
		emit(in, in.RouteLabel, c.InputTags(in), nil, 0)
	}
	return mergeRoutes(routes)
}

// fdMonitorOnly reports whether a Fluentd <source> serves monitoring and
// puts no events into routing: monitor_agent unless its `tag` is set
// (in_monitor_agent.rb emits its numbers only then), debug_agent, and
// fluent-plugin-prometheus's sources, which fill the Prometheus registry.
func (p *Plugin) fdMonitorOnly() bool {
	switch p.Type {
	case "monitor_agent":
		return p.Tag == ""
	case "debug_agent", "prometheus", "prometheus_monitor", "prometheus_output_monitor", "prometheus_tail_monitor":
		return true
	}
	return false
}

// covers reports whether match accepts every sample that the output's
// pattern accepts.
func covers(match func(string) bool, samples []string, own func(string) bool) bool {
	n := 0
	for _, s := range samples {
		if !own(s) {
			continue
		}
		n++
		if !match(s) {
			return false
		}
	}
	return n > 0
}

func (c *Config) fbRoutes() []Route {
	var routes []Route
	inputs, filters, outputs := c.Inputs(), c.Filters(), c.Outputs()
	regexes := map[*Plugin]*regexp.Regexp{}
	for _, p := range append(append([]*Plugin{}, filters...), outputs...) {
		if p.MatchRegex != "" {
			regexes[p], _ = FluentBitRegex(p.MatchRegex)
		}
	}
	matches := func(p *Plugin, tag string) bool {
		if p.Match != "" && FluentBitMatch(p.Match, tag) {
			return true
		}
		r := regexes[p]
		return r != nil && r.MatchString(tag)
	}
	for _, in := range inputs {
		tags := c.InputTags(in)
		if len(tags) == 0 {
			for _, o := range outputs {
				if o.Match == "" && o.MatchRegex == "" {
					continue
				}
				var fs []*Plugin
				samples := FluentBitSamples(o.Match)
				own := func(t string) bool { return matches(o, t) }
				for _, f := range filters {
					if o.Match != "" && covers(func(t string) bool { return matches(f, t) }, samples, own) {
						fs = append(fs, f)
					}
				}
				routes = append(routes, Route{Input: in, Output: o, Filters: fs})
			}
			continue
		}
		for _, t := range tags {
			// Filters depend on the tag only: find them once per tag.
			var fs []*Plugin
			for _, f := range filters {
				if matches(f, t) {
					fs = append(fs, f)
				}
			}
			for _, o := range outputs {
				if matches(o, t) {
					routes = append(routes, Route{Input: in, Output: o, Filters: fs, Tags: []string{t}})
				}
			}
		}
	}
	return mergeRoutes(routes)
}

// mergeRoutes joins routes of one input to one output: tags are merged
// (unknown wins), and a filter counts only when it is on every path.
func mergeRoutes(rs []Route) []Route {
	type key struct{ in, out *Plugin }
	idx := map[key]int{}
	var out []Route
	for _, r := range rs {
		k := key{r.Input, r.Output}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			out = append(out, r)
			continue
		}
		m := &out[i]
		if len(m.Tags) == 0 || len(r.Tags) == 0 {
			m.Tags = nil
		} else {
			m.Tags = append(m.Tags, r.Tags...)
		}
		var both []*Plugin
		for _, f := range m.Filters {
			for _, g := range r.Filters {
				if f == g {
					both = append(both, f)
					break
				}
			}
		}
		m.Filters = both
	}
	for i := range out {
		sort.Strings(out[i].Tags)
	}
	return out
}

// RoutesTo returns the routes that end at output o.
func RoutesTo(rs []Route, o *Plugin) []Route {
	var out []Route
	for _, r := range rs {
		if r.Output == o {
			out = append(out, r)
		}
	}
	return out
}

// RoutesFrom returns the routes that start at input in.
func RoutesFrom(rs []Route, in *Plugin) []Route {
	var out []Route
	for _, r := range rs {
		if r.Input == in {
			out = append(out, r)
		}
	}
	return out
}
