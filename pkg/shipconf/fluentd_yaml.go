package shipconf

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Fluentd's YAML format (lib/fluent/config/yaml_parser/*.rb) describes the
// same element tree: a top-level "system" mapping and a "config" list of
// source/filter/match/label/worker entries; "$type", "$tag", "$label",
// "$id", "$log_level", "$arg" and "$name" stand for the reserved
// parameters and section arguments; "!include PATH" splices another YAML
// file's list, "!fluent/s" evaluates a double-quoted Ruby string,
// "!fluent/json" holds a JSON value. This builds the tree the Ruby
// parser builds, so the v1 and YAML formats share one model.

type fdYAML struct {
	l     *loader
	file  string
	dir   string
	nodes *int // shared across included files
}

// budget counts a node and reports whether the walk may go on.
func (y *fdYAML) budget(n *yaml.Node) bool {
	*y.nodes++
	if *y.nodes == maxYAMLNodes+1 {
		y.fail(n, fmt.Sprintf("more than %d YAML nodes once aliases are expanded; the rest is not read", maxYAMLNodes), "")
	}
	return *y.nodes <= maxYAMLNodes
}

func (l *loader) fluentdYAMLFile(name string, src []byte) *Section {
	root := &Section{Name: "ROOT", Pos: Pos{File: name, Line: 1, Col: 1}}
	l.push(name)
	defer l.pop()
	doc := l.yamlDoc(name, src)
	if doc == nil {
		return root
	}
	y := &fdYAML{l: l, file: name, dir: filepath.Dir(name), nodes: new(int)}
	if doc.Kind != yaml.MappingNode {
		y.fail(doc, "the top level must be a mapping with system: and config:", "mapping")
		return root
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "system":
			root.Sections = append(root.Sections, y.section("system", v, ""))
		case "config":
			y.configList(root, v)
		}
	}
	return root
}

// yamlDoc parses one YAML file and returns its document's top node, or nil
// after recording a syntax error.
func (l *loader) yamlDoc(name string, src []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		msg := err.Error()
		line := yamlFailingLine(src)
		if line == 0 {
			line = max(yamlErrLine(msg), 1)
		}
		l.problem(SyntaxError, Pos{File: name, Line: line, Col: 1}, "YAML: "+strings.TrimPrefix(msg, "yaml: "), "valid YAML", err)
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

func (y *fdYAML) pos(n *yaml.Node) Pos { return Pos{File: y.file, Line: n.Line, Col: n.Column} }

func (y *fdYAML) fail(n *yaml.Node, msg, expected string) {
	y.l.problem(SyntaxError, y.pos(n), msg, expected, nil)
}

// configList is Parser#config_build: each entry a mapping of one of the
// directive names, or the list an !include brought in.
func (y *fdYAML) configList(parent *Section, n *yaml.Node) {
	n = deref(n)
	if !y.budget(n) {
		return
	}
	if n.Tag == "!include" {
		y.includeInto(parent, n)
		return
	}
	if n.Kind != yaml.SequenceNode {
		y.fail(n, "config: must be a list", "a list of source/filter/match/label entries")
		return
	}
	for _, e := range n.Content {
		e = deref(e)
		if !y.budget(e) {
			return
		}
		if e.Tag == "!include" {
			y.includeInto(parent, e)
			continue
		}
		if e.Kind != yaml.MappingNode {
			y.fail(e, "a config: entry must be a mapping such as source:, match:, filter: or label:", "mapping")
			continue
		}
		// config_build takes label, source, filter, match, worker in this
		// order whatever the order in the mapping.
		for _, name := range []string{"label", "source", "filter", "match", "worker"} {
			v := mapGet(e, name)
			if v == nil {
				continue
			}
			switch name {
			case "label", "worker":
				parent.Sections = append(parent.Sections, y.labelOrWorker(name, v))
			case "filter", "match":
				parent.Sections = append(parent.Sections, y.section(name, v, y.tagArg(v)))
			default:
				parent.Sections = append(parent.Sections, y.section(name, v, ""))
			}
		}
	}
}

func (y *fdYAML) labelOrWorker(name string, n *yaml.Node) *Section {
	argKey := "$name"
	if name == "worker" {
		argKey = "$arg"
	}
	s := &Section{Name: name, Pos: y.pos(n)}
	if a := mapGet(n, argKey); a != nil {
		s.Arg = a.Value
	}
	if c := mapGet(n, "config"); c != nil {
		y.configList(s, c)
	}
	return s
}

// tagArg is match_build/filter_build's $tag: a list is joined with ",".
func (y *fdYAML) tagArg(n *yaml.Node) string {
	t := mapGet(n, "$tag")
	if t == nil {
		return ""
	}
	if t.Kind == yaml.SequenceNode {
		var parts []string
		for _, c := range t.Content {
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ",")
	}
	return t.Value
}

// section is Parser#section_build.
func (y *fdYAML) section(name string, n *yaml.Node, arg string) *Section {
	n = deref(n)
	s := &Section{Name: name, Arg: arg, Pos: y.pos(n)}
	if !y.budget(n) {
		return s
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return s
		}
		y.fail(n, fmt.Sprintf("%s: must be a mapping", name), "mapping")
		return s
	}
	for _, special := range []struct{ yamlKey, key string }{{"$type", "@type"}, {"$label", "@label"}, {"$id", "@id"}, {"$log_level", "@log_level"}} {
		if k, v := mapGetKV(n, special.yamlKey); v != nil {
			s.Params = append(s.Params, y.param(special.key, k, deref(v)))
		}
	}
	y.sectionBody(s, n)
	return s
}

// sectionBody adds a mapping's entries to s; a "<<" merge key (which
// Psych honours) adds the merged mapping's.
func (y *fdYAML) sectionBody(s *Section, n *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if !y.budget(v) {
			return
		}
		switch k.Value {
		case "$type", "$label", "$id", "$log_level", "$tag", "$arg":
			continue
		case "<<":
			if v.Kind == yaml.MappingNode {
				y.sectionBody(s, v)
				continue
			}
		}
		switch {
		case v.Kind == yaml.SequenceNode && v.Tag != "!fluent/json":
			for _, e := range v.Content {
				s.Sections = append(s.Sections, y.section(k.Value, e, y.scalarArg(e)))
			}
		case v.Kind == yaml.MappingNode && v.Tag != "!fluent/json":
			s.Sections = append(s.Sections, y.section(k.Value, v, y.scalarArg(v)))
		default:
			s.Params = append(s.Params, y.param(k.Value, k, v))
		}
	}
}

// scalarArg is a nested section's $arg (a list joined with ",").
func (y *fdYAML) scalarArg(n *yaml.Node) string {
	a := mapGet(n, "$arg")
	if a == nil {
		return ""
	}
	if a.Kind == yaml.SequenceNode {
		var parts []string
		for _, c := range a.Content {
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ",")
	}
	return a.Value
}

func (y *fdYAML) param(key string, k, v *yaml.Node) *Param {
	p := &Param{Key: key, Name: key, Pos: y.pos(k), Raw: v.Value, State: Known}
	switch {
	case v.Tag == "!fluent/s":
		// FluentValue::StringValue: the text is evaluated as the inside of
		// a double-quoted Ruby string.
		ps := &fdParser{l: y.l, file: y.file, src: []byte(v.Value + `"`), li: newLineIndex([]byte(v.Value + `"`))}
		// Errors inside are reported at the value's line.
		before := len(y.l.cfg.Problems)
		fv, ok := ps.scanDoubleQuoted()
		for _, pr := range y.l.cfg.Problems[before:] {
			pr.Pos = y.pos(v)
		}
		if !ok {
			p.State = Unknown
			p.Note = "invalid !fluent/s string"
			return p
		}
		p.Value, p.State, p.Env, p.Note = fv.s, fv.state, fv.env, fv.note
		if fv.useDefault {
			p.State = Default
		}
	case v.Tag == "!fluent/json":
		var val any
		if err := v.Decode(&val); err != nil {
			y.fail(v, "!fluent/json: "+err.Error(), "a JSON value")
			p.State = Unknown
			return p
		}
		b, err := json.Marshal(yamlToJSON(val))
		if err != nil {
			y.fail(v, "!fluent/json: "+err.Error(), "a JSON value")
			p.State = Unknown
			return p
		}
		p.Value = string(b)
	case v.Kind == yaml.ScalarNode:
		p.Value = psychScalar(v)
	default:
		y.fail(v, "a parameter's value must be a scalar", "scalar")
		p.State = Unknown
	}
	return p
}

// psychScalar is the string Fluentd sees for a plain YAML scalar: Psych
// reads YAML 1.1, where yes/no/on/off are booleans, and Fluentd calls
// to_s on them.
func psychScalar(v *yaml.Node) string {
	if v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return v.Value
	}
	switch strings.ToLower(v.Value) {
	case "yes", "on", "true":
		return "true"
	case "no", "off", "false":
		return "false"
	case "~", "null":
		return ""
	}
	return v.Value
}

func yamlToJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = yamlToJSON(e)
		}
		return t
	case map[any]any:
		m := map[string]any{}
		for k, e := range t {
			m[fmt.Sprint(k)] = yamlToJSON(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = yamlToJSON(e)
		}
	}
	return v
}

// includeInto is Loader#eval_include: a glob relative to the including
// file, expanded and sorted, each file a YAML list of config entries.
func (y *fdYAML) includeInto(parent *Section, n *yaml.Node) {
	from := y.pos(n)
	pat := n.Value
	if !filepath.IsAbs(pat) {
		pat = filepath.Join(y.dir, pat)
	}
	matches, err := y.l.o.Files.Glob(pat)
	if err != nil {
		y.l.problem(IncludeError, from, fmt.Sprintf("!include %s: bad glob: %v", n.Value, err), "", err)
		return
	}
	sort.Strings(matches)
	if len(matches) == 0 {
		y.l.problem(IncludeError, from, fmt.Sprintf("!include %s matches no file; Fluentd includes nothing and does not warn", n.Value), "", ErrNoMatch)
		return
	}
	for _, m := range matches {
		src := y.l.include(m, from, false)
		if src == nil {
			continue
		}
		y.l.push(m)
		doc := y.l.yamlDoc(m, src)
		if doc != nil {
			sub := &fdYAML{l: y.l, file: m, dir: filepath.Dir(m), nodes: y.nodes}
			sub.configList(parent, doc)
		}
		y.l.pop()
	}
}

func mapGet(n *yaml.Node, key string) *yaml.Node {
	_, v := mapGetKV(n, key)
	return v
}

func mapGetKV(n *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}
