package configcheck

import (
	"fmt"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// Result is the config check command's data: what was read, per
// configuration.
type Result struct {
	Configs []Summary `json:"configs"`
	// MTU is the path MTU the UDP rule used, and where it came from.
	MTU       int    `json:"mtu"`
	MTUSource string `json:"mtu_source"`
}

// Summary describes one configuration: its files, plugins, routes and the
// values logdoctor could not know.
type Summary struct {
	Main    string          `json:"main"`
	Shipper string          `json:"shipper"`
	Format  string          `json:"format"`
	Files   []shipconf.File `json:"files"`
	Plugins []PluginRow     `json:"plugins"`
	Routes  []RouteRow      `json:"routes"`
	Unknown []UnknownValue  `json:"unknown_values"`
}

// PluginRow is one plugin.
type PluginRow struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Tag   string `json:"tag,omitempty"`
	Match string `json:"match,omitempty"`
	Label string `json:"label,omitempty"`
	File  string `json:"file"`
	Line  int    `json:"line"`
}

// RouteRow is one input reaching one output.
type RouteRow struct {
	Input   string   `json:"input"`
	Output  string   `json:"output"`
	Tags    []string `json:"tags,omitempty"` // empty: the sender chooses
	Filters []string `json:"filters,omitempty"`
}

// UnknownValue is a parameter whose value depends on the environment or
// on Ruby that is not evaluated.
type UnknownValue struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Setting string `json:"setting"`
	Note    string `json:"note"`
}

// Summarize describes c.
func Summarize(c *shipconf.Config) Summary { return summarize(c, c.Routes()) }

func summarize(c *shipconf.Config, routes []shipconf.Route) Summary {
	s := Summary{Main: c.Main, Shipper: string(c.Shipper), Format: string(c.Format), Files: c.Files,
		Plugins: []PluginRow{}, Routes: []RouteRow{}, Unknown: []UnknownValue{}}
	for _, p := range c.Plugins {
		row := PluginRow{Kind: string(p.Kind), Name: p.Name(), Tag: p.Tag, Match: p.Match, Label: p.Label, File: p.Pos.File, Line: p.Pos.Line}
		if p.MatchRegex != "" {
			row.Match = "regex " + p.MatchRegex
		}
		if p.Kind == shipconf.Input && p.RouteLabel != "" {
			row.Label = "-> " + p.RouteLabel
		}
		s.Plugins = append(s.Plugins, row)
		collectUnknown(&s.Unknown, p.Section)
	}
	if c.Service != nil {
		collectUnknown(&s.Unknown, c.Service)
	}
	for _, r := range routes {
		row := RouteRow{Input: r.Input.Name(), Output: r.Output.Name(), Tags: r.Tags}
		for _, f := range r.Filters {
			row.Filters = append(row.Filters, f.Name())
		}
		s.Routes = append(s.Routes, row)
	}
	return s
}

func collectUnknown(out *[]UnknownValue, s *shipconf.Section) {
	for _, p := range s.Params {
		if p.State == shipconf.Unknown {
			*out = append(*out, UnknownValue{File: p.Pos.File, Line: p.Pos.Line, Setting: p.Key, Note: p.Note})
		}
	}
	for _, c := range s.Sections {
		collectUnknown(out, c)
	}
}

// Sections shows the data as tables.
func (r *Result) Sections() []report.Section {
	var out []report.Section
	for _, c := range r.Configs {
		files := report.Section{Title: fmt.Sprintf("%s (%s)", c.Main, c.Format), Header: []string{"FILE", "LINES", "BYTES"}}
		for _, f := range c.Files {
			files.Rows = append(files.Rows, []string{f.Path, fmt.Sprint(f.Lines), fmt.Sprint(f.Bytes)})
		}
		out = append(out, files)
		pl := report.Section{Title: "Pipeline", Header: []string{"KIND", "PLUGIN", "TAG/MATCH", "LABEL", "AT"}}
		for _, p := range c.Plugins {
			tm := p.Tag
			if p.Match != "" {
				tm = p.Match
			}
			pl.Rows = append(pl.Rows, []string{p.Kind, p.Name, tm, p.Label, fmt.Sprintf("%s:%d", p.File, p.Line)})
		}
		out = append(out, pl)
		if len(c.Routes) > 0 {
			rt := report.Section{Title: "Routes", Header: []string{"INPUT", "OUTPUT", "TAGS", "FILTERS"}}
			for _, r := range c.Routes {
				tags := strings.Join(r.Tags, " ")
				if tags == "" {
					tags = "(from the sender)"
				}
				rt.Rows = append(rt.Rows, []string{r.Input, r.Output, tags, strings.Join(r.Filters, ", ")})
			}
			out = append(out, rt)
		}
		if len(c.Unknown) > 0 {
			un := report.Section{Title: "Values not known (pass --env KEY=VALUE or --use-env)"}
			for _, u := range c.Unknown {
				un.Lines = append(un.Lines, fmt.Sprintf("%s:%d %s: %s", u.File, u.Line, u.Setting, u.Note))
			}
			out = append(out, un)
		}
	}
	return out
}
