package shipconf

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Fluent Bit's YAML format (src/config_format/flb_cf_yaml.c): top-level
// env, includes, service, pipeline (inputs, filters, outputs, each plugin
// with optional processors), parsers, multiline_parsers, customs and
// other sections. Every scalar is a string to Fluent Bit; keys go through
// flb_cf_key_translate (camelCase to snake_case).

type fbYAML struct {
	l     *loader
	file  string
	dir   string
	depth int
	nodes *int
}

func (l *loader) fluentBitYAMLFile(name string, src []byte, depth int) {
	if l.fb == nil {
		l.fb = &fbState{mainDir: filepath.Dir(name)}
	}
	l.push(name)
	defer l.pop()
	doc := l.yamlDoc(name, src)
	if doc == nil {
		return
	}
	nodes := new(int)
	if l.fb.yamlNodes != nil {
		nodes = l.fb.yamlNodes
	} else {
		l.fb.yamlNodes = nodes
	}
	y := &fbYAML{l: l, file: name, dir: filepath.Dir(name), depth: depth, nodes: nodes}
	doc = deref(doc)
	if doc.Kind != yaml.MappingNode {
		if doc.Kind == yaml.ScalarNode && doc.Value == "" {
			return
		}
		y.fail(doc, "the top level must be a mapping (service:, pipeline:, includes: ...)", "mapping")
		return
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], deref(doc.Content[i+1])
		switch strings.ToLower(k.Value) {
		case "env":
			y.env(v)
		case "includes":
			y.includes(v)
		case "service":
			if l.fb.serviceYAML {
				y.fail(k, "duplicated definition of 'service'", "one service: section")
				continue
			}
			l.fb.serviceYAML = true
			y.plainSection("service", k, v)
		case "pipeline":
			y.pipeline(v)
		case "parsers":
			y.pluginList("parser", v)
		case "multiline_parsers":
			y.pluginList("multiline_parser", v)
		case "customs":
			y.pluginList("custom", v)
		case "plugins", "upstream_servers", "stream_processor":
			// Read by Fluent Bit for other purposes; nothing here matters
			// to the pipeline's delivery.
		default:
			y.plainSection(k.Value, k, v)
		}
	}
}

func (y *fbYAML) pos(n *yaml.Node) Pos { return Pos{File: y.file, Line: n.Line, Col: n.Column} }

func (y *fbYAML) fail(n *yaml.Node, msg, expected string) {
	y.l.problem(SyntaxError, y.pos(n), msg, expected, nil)
}

func (y *fbYAML) budget(n *yaml.Node) bool {
	*y.nodes++
	if *y.nodes == maxYAMLNodes+1 {
		y.fail(n, fmt.Sprintf("more than %d YAML nodes once aliases are expanded; the rest is not read", maxYAMLNodes), "")
	}
	return *y.nodes <= maxYAMLNodes
}

func (y *fbYAML) env(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		y.fail(n, "env: must be a mapping of variable names to values", "mapping")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		v := deref(n.Content[i+1])
		if v.Kind != yaml.ScalarNode {
			y.fail(v, "an env: value must be a scalar", "scalar")
			continue
		}
		y.l.vars[n.Content[i].Value] = v.Value
	}
}

// includes reads each listed file (a glob when it holds '*') relative to
// this file's directory; Fluent Bit refuses a file included twice.
func (y *fbYAML) includes(n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		y.fail(n, "includes: must be a list of files", "list")
		return
	}
	for _, e := range n.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode {
			y.fail(e, "an includes: entry must be a file name", "scalar")
			continue
		}
		from := y.pos(e)
		p := e.Value
		if !filepath.IsAbs(p) {
			p = filepath.Join(y.dir, p)
		}
		files := []string{p}
		if strings.Contains(e.Value, "*") {
			m, err := y.l.o.Files.Glob(p)
			if err != nil {
				y.l.problem(IncludeError, from, fmt.Sprintf("include %s: bad glob: %v", e.Value, err), "", err)
				continue
			}
			if len(m) == 0 {
				y.l.problem(IncludeError, from, fmt.Sprintf("include %s matches no file (Fluent Bit does not start)", e.Value), "", ErrNoMatch)
				continue
			}
			sort.Strings(m)
			files = m
		}
		for _, f := range files {
			src := y.l.include(f, from, true)
			if src == nil {
				continue
			}
			y.l.fluentBitYAMLFile(f, src, y.depth+1)
		}
	}
}

func (y *fbYAML) pipeline(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		y.fail(n, "pipeline: must be a mapping of inputs, filters and outputs", "mapping")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		switch strings.ToLower(k.Value) {
		case "inputs":
			y.pluginList("input", v)
		case "filters":
			y.pluginList("filter", v)
		case "outputs":
			y.pluginList("output", v)
		default:
			y.fail(k, fmt.Sprintf("the pipeline component '%s' is not valid", k.Value), "customs, inputs, filters or outputs")
		}
	}
}

// plainSection is a mapping of keys to scalars (service and unknown
// top-level sections).
func (y *fbYAML) plainSection(name string, k, n *yaml.Node) {
	s := &fbSection{sec: &Section{Name: name, Pos: y.pos(k)}, typ: fbSectionType(name), yaml: true}
	if strings.ToLower(name) != "service" && s.typ != "service" {
		s.typ = "other"
	}
	if n.Kind == yaml.MappingNode {
		y.body(s.sec, n, false)
	} else if !(n.Kind == yaml.ScalarNode && n.Value == "") {
		y.fail(n, name+": must be a mapping", "mapping")
	}
	*y.l.fbSections() = append(*y.l.fbSections(), s)
}

func (y *fbYAML) pluginList(typ string, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		if n.Kind == yaml.ScalarNode && n.Value == "" {
			return
		}
		y.fail(n, fmt.Sprintf("%ss must be a list of plugins", typ), "list")
		return
	}
	for _, e := range n.Content {
		e = deref(e)
		if !y.budget(e) {
			return
		}
		if e.Kind != yaml.MappingNode {
			y.fail(e, fmt.Sprintf("each %s must be a mapping with at least name:", typ), "mapping")
			continue
		}
		s := &fbSection{sec: &Section{Name: typ, Pos: y.pos(e)}, typ: typ, yaml: true}
		y.body(s.sec, e, false)
		*y.l.fbSections() = append(*y.l.fbSections(), s)
	}
}

// body adds a mapping's keys: scalars as parameters, lists of scalars as
// repeated parameters, mappings (processors, groups) as subsections.
func (y *fbYAML) body(s *Section, n *yaml.Node, inProcessor bool) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if !y.budget(v) {
			return
		}
		name := fbKeyTranslate(k.Value)
		switch v.Kind {
		case yaml.ScalarNode:
			s.Params = append(s.Params, &Param{Key: k.Value, Name: name, Value: v.Value, Raw: v.Value, State: Known, Pos: y.pos(k)})
		case yaml.SequenceNode:
			if name == "processors" && !inProcessor {
				y.fail(v, "processors must be a mapping of logs, metrics and traces", "mapping")
				continue
			}
			for _, e := range v.Content {
				e = deref(e)
				switch e.Kind {
				case yaml.ScalarNode:
					s.Params = append(s.Params, &Param{Key: k.Value, Name: name, Value: e.Value, Raw: e.Value, State: Known, Pos: y.pos(e)})
				case yaml.MappingNode:
					sub := &Section{Name: name, Pos: y.pos(e)}
					y.body(sub, e, true)
					s.Sections = append(s.Sections, sub)
				default:
					y.fail(e, "nested lists are not a plugin property", "scalar or mapping")
				}
			}
		case yaml.MappingNode:
			sub := &Section{Name: name, Pos: y.pos(k)}
			y.body(sub, v, inProcessor || name == "processors")
			s.Sections = append(s.Sections, sub)
		}
	}
}

// fbKeyTranslate is flb_cf_key_translate for YAML: a key starting with a
// lowercase letter and holding no '_' is camelCase and becomes
// snake_case; keys are compared without case afterwards, so the model
// keeps them lowercased.
func fbKeyTranslate(k string) string {
	if k == "" || !unicode.IsLower(rune(k[0])) || strings.Contains(k, "_") {
		return strings.ToLower(k)
	}
	var b strings.Builder
	for i, r := range k {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
