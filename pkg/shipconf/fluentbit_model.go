package shipconf

import (
	"fmt"
	"strconv"
	"strings"
)

// buildFluentBit turns the sections into plugins the way
// flb_config_load_config_format (src/flb_config.c) does: @SET and env:
// variables first, [SERVICE] merged into one, then customs, inputs,
// filters and outputs, each needing a name.
func (l *loader) buildFluentBit() {
	if l.fb == nil {
		return
	}
	counts := map[Kind]int{}
	for _, s := range l.fb.sections {
		for _, p := range s.sec.Params {
			l.fbExpand(p)
		}
		for _, sub := range s.sec.Sections {
			l.fbExpandAll(sub)
		}
		switch s.typ {
		case "service":
			if l.cfg.Service == nil {
				l.cfg.Service = s.sec
			} else {
				l.cfg.Service.Params = append(l.cfg.Service.Params, s.sec.Params...)
			}
			continue
		case "parser", "multiline_parser":
			if !s.yaml {
				l.problem(SyntaxError, s.sec.Pos, fmt.Sprintf("[%s] is not valid in the main configuration: it belongs in a parsers_file", s.sec.Name), "parsers in a file named by [SERVICE] parsers_file", nil)
			}
			continue
		case "input", "filter", "output":
		default:
			continue
		}
		kind := Kind(s.typ)
		name := s.sec.Get("name")
		if name == nil || name.Value == "" && name.State == Known {
			l.problem(SyntaxError, s.sec.Pos, fmt.Sprintf("section '%s' is missing the 'name' property", s.typ), "Name PLUGIN", nil)
			continue
		}
		p := &Plugin{Kind: kind, Type: strings.ToLower(name.Value), Pos: s.sec.Pos, Section: s.sec, Index: counts[kind]}
		counts[kind]++
		if name.State == Unknown {
			p.Type = ""
		}
		p.ID = paramValue(s.sec, "alias")
		switch kind {
		case Input:
			p.Tag = paramValue(s.sec, "tag")
		default:
			p.Match = paramValue(s.sec, "match")
			p.MatchRegex = paramValue(s.sec, "match_regex")
			p.Order = l.nextOrder()
		}
		l.cfg.Plugins = append(l.cfg.Plugins, p)
	}
}

// DefaultTag is the tag Fluent Bit gives an input without Tag: its
// instance name, "tail.0" (flb_input.c sets the tag to ins->name).
func (p *Plugin) DefaultTag() string { return p.Type + "." + strconv.Itoa(p.Index) }

func (l *loader) fbExpandAll(s *Section) {
	for _, p := range s.Params {
		l.fbExpand(p)
	}
	for _, c := range s.Sections {
		l.fbExpandAll(c)
	}
}

// fbExpand resolves ${VAR} and ${VAR:-default} as flb_env_var_translate
// (src/flb_env.c) does: variables set in the files (@SET, env:) first,
// then the given environment; a variable known nowhere and without a
// default makes the value unknown.
func (l *loader) fbExpand(p *Param) {
	v := p.Value
	if !strings.Contains(v, "${") {
		return
	}
	var b strings.Builder
	fromFile := true
	i := 0
	for i < len(v) {
		start := strings.Index(v[i:], "${")
		if start < 0 {
			break
		}
		start += i
		end := strings.IndexByte(v[i:], '}')
		if end < 0 {
			break
		}
		end += i
		if end-(start+2) <= 0 {
			break
		}
		name := v[start+2 : end]
		def, hasDef := "", false
		if c := strings.IndexByte(name, ':'); c >= 0 && c+1 < len(name) && name[c+1] == '-' {
			name, def, hasDef = name[:c], name[c+2:], true
		}
		b.WriteString(v[i:start])
		p.Env = append(p.Env, name)
		if val, ok := l.vars[name]; ok && !(hasDef && val == "") {
			b.WriteString(val)
		} else if val, ok := l.o.Env[name]; ok && !(hasDef && val == "") {
			fromFile = false
			b.WriteString(val)
		} else if hasDef {
			fromFile = false
			b.WriteString(def)
			p.Note = joinNote(p.Note, "environment variable "+name+" not given: its default '"+clipNote(def)+"'")
		} else {
			fromFile = false
			p.State = Unknown
			p.Note = joinNote(p.Note, "environment variable "+name+" not given (--env "+name+"=... or --use-env)")
		}
		i = end + 1
	}
	b.WriteString(v[i:])
	p.Value = b.String()
	p.EnvFromFile = fromFile && len(p.Env) > 0
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
