package shipconf

import "strings"

// buildFluentd turns Fluentd's element tree into plugins, the way
// lib/fluent/root_agent.rb and agent.rb read it: <system>, <source>,
// <filter PATTERN> and <match PATTERN> at the top, inside <label @NAME>
// and inside <worker N>.
func (l *loader) buildFluentd(root *Section) {
	for _, s := range root.Sections {
		l.fdTop(s, "")
	}
}

func (l *loader) fdTop(s *Section, label string) {
	switch s.Name {
	case "system":
		if l.cfg.Service == nil {
			l.cfg.Service = s
		} else {
			l.cfg.Service.Params = append(l.cfg.Service.Params, s.Params...)
			l.cfg.Service.Sections = append(l.cfg.Service.Sections, s.Sections...)
		}
	case "source":
		p := l.fdPlugin(Input, s, label)
		p.Tag = paramValue(s, "tag")
		p.RouteLabel = paramValue(s, "@label")
		l.cfg.Plugins = append(l.cfg.Plugins, p)
	case "filter":
		p := l.fdPlugin(Filter, s, label)
		p.Match = fdPattern(s.Arg)
		p.Order = l.nextOrder()
		l.cfg.Plugins = append(l.cfg.Plugins, p)
	case "match":
		l.fdOutput(s, label, nil, "")
	case "label":
		for _, c := range s.Sections {
			l.fdTop(c, s.Arg)
		}
	case "worker":
		for _, c := range s.Sections {
			l.fdTop(c, label)
		}
	}
}

// fdPattern is agent.rb's "pattern = e.arg.empty? ? '**' : e.arg".
func fdPattern(arg string) string {
	if strings.TrimSpace(arg) == "" {
		return "**"
	}
	return arg
}

func (l *loader) fdPlugin(k Kind, s *Section, label string) *Plugin {
	return &Plugin{Kind: k, Type: paramValue(s, "@type"), ID: paramValue(s, "@id"), Pos: s.Pos, Label: label, Section: s}
}

// fdOutput adds a <match> (or a copy <store>, or a <secondary>) and the
// outputs nested in it.
func (l *loader) fdOutput(s *Section, label string, parent *Plugin, role string) {
	p := l.fdPlugin(Output, s, label)
	p.Parent, p.Role = parent, role
	if parent == nil {
		p.Match = fdPattern(s.Arg)
		p.Order = l.nextOrder()
	} else {
		p.Match, p.Order = parent.Match, parent.Order
		if p.Type == "" && role == "secondary" {
			// A <secondary> without @type is the primary's own type.
			p.Type = parent.Type
		}
	}
	p.RouteLabel = paramValue(s, "@label")
	fdCompatBuffer(s)
	l.cfg.Plugins = append(l.cfg.Plugins, p)
	for _, c := range s.Sections {
		switch c.Name {
		case "store":
			l.fdOutput(c, label, p, "store")
		case "secondary":
			l.fdOutput(c, label, p, "secondary")
		}
	}
}

// fdBufferCompat is CompatParameters::BUFFER_PARAMS
// (lib/fluent/plugin_helper/compat_parameters.rb): v0.12 flat buffer
// parameters and the <buffer> parameter each becomes when an output has
// no <buffer> section.
var fdBufferCompat = map[string]string{
	"buffer_type":                 "@type",
	"buffer_path":                 "path",
	"num_threads":                 "flush_thread_count",
	"flush_interval":              "flush_interval",
	"try_flush_interval":          "flush_thread_interval",
	"queued_chunk_flush_interval": "flush_thread_burst_interval",
	"disable_retry_limit":         "retry_forever",
	"retry_limit":                 "retry_max_times",
	"max_retry_wait":              "retry_max_interval",
	"buffer_chunk_limit":          "chunk_limit_size",
	"buffer_queue_limit":          "queue_limit_length",
	"buffer_queue_full_action":    "overflow_action",
	"flush_at_shutdown":           "flush_at_shutdown",
	"time_slice_wait":             "timekey_wait",
	"timezone":                    "timekey_zone",
}

// fdCompatBuffer adds the <buffer> section Fluentd builds from v0.12
// parameters (compat_parameters_buffer): only when there is no <buffer>
// and at least one of them is set. The new parameters keep the old
// ones' positions and say what they were.
func fdCompatBuffer(s *Section) {
	if len(s.Sub("buffer")) > 0 {
		return
	}
	var buf *Section
	for _, p := range s.Params {
		v1, ok := fdBufferCompat[p.Name]
		if !ok {
			continue
		}
		if buf == nil {
			buf = &Section{Name: "buffer", Pos: p.Pos}
		}
		np := *p
		np.Name = v1
		if p.Name == "buffer_queue_full_action" && p.Value == "exception" {
			np.Value = "throw_exception"
		}
		note := "v0.12 parameter " + p.Key + ", read as <buffer> " + v1
		if np.Note != "" {
			note += "; " + np.Note
		}
		np.Note = note
		buf.Params = append(buf.Params, &np)
	}
	if buf != nil {
		s.Sections = append(s.Sections, buf)
	}
}

func paramValue(s *Section, name string) string {
	if p := s.Get(name); p != nil && p.State != Unknown {
		return p.Value
	}
	return ""
}
