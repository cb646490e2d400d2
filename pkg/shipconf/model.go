// Package shipconf reads Fluentd and Fluent Bit configurations (Fluentd's
// v1 format and its YAML format, Fluent Bit's classic format and its YAML
// format) into one model of the pipeline: inputs, filters and outputs with
// their plugin type, tag or match pattern, routing, buffer and storage
// sections, and the service section. Every parameter keeps where it was
// written and whether its value is known, taken from a default, or unknown.
//
// It only reads: it never evaluates embedded Ruby, never fetches an http
// include, and never prints. Syntax errors are collected with their
// position, and parsing goes on after them where it can.
package shipconf

import (
	"fmt"
	"strings"
)

// Shipper names the program a configuration is for.
type Shipper string

const (
	Fluentd   Shipper = "fluentd"
	FluentBit Shipper = "fluentbit"
)

// Format is a configuration syntax.
type Format string

const (
	FormatFluentd       Format = "fluentd"        // Fluentd v1 (fluent.conf)
	FormatFluentdYAML   Format = "fluentd-yaml"   // Fluentd's YAML format (v1.15+)
	FormatFluentBit     Format = "fluentbit"      // Fluent Bit classic (fluent-bit.conf)
	FormatFluentBitYAML Format = "fluentbit-yaml" // Fluent Bit YAML
)

// Shipper returns the program that reads format f.
func (f Format) Shipper() Shipper {
	if f == FormatFluentBit || f == FormatFluentBitYAML {
		return FluentBit
	}
	return Fluentd
}

// Pos is a place in a configuration file: 1-based line and column
// (columns count characters, not bytes).
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"column,omitempty"`
}

func (p Pos) String() string {
	if p.Col > 0 {
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// State says how much is known about a parameter's value.
type State int

const (
	// Known: written in the file, or resolved from --env/--use-env or
	// from the default of an environment reference.
	Known State = iota
	// Default: not in the file; the plugin's default applies.
	Default
	// Unknown: embedded Ruby that is not evaluated, or an environment
	// variable that was not given.
	Unknown
)

func (s State) String() string {
	return [...]string{"known", "default", "unknown"}[s]
}

// MarshalText makes State readable in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Param is one key and value.
type Param struct {
	// Key is the name as written; Name is the name the shipper looks it
	// up by: Fluent Bit keys lowercased (YAML camelCase translated),
	// Fluentd v0.12 buffer parameters mapped to their v1 name.
	Key   string `json:"key"`
	Name  string `json:"name"`
	Value string `json:"value"` // resolved; meaningless when State is Unknown
	Raw   string `json:"raw,omitempty"`
	State State  `json:"state"`
	Pos   Pos    `json:"pos"`
	// Env names the environment variables the value refers to;
	// EnvFromFile is true when every one of them was set inside the
	// configuration itself (@SET, YAML env:), so the value is still
	// written in the files.
	Env         []string `json:"env,omitempty"`
	EnvFromFile bool     `json:"env_from_file,omitempty"`
	// Note says why a value is unknown, or how it was derived (a v0.12
	// name, the default of an environment reference).
	Note string `json:"note,omitempty"`
}

// Section is a block: a Fluentd <name arg> element, a Fluent Bit [SECTION]
// or YAML mapping, or a nested block (buffer, server, processors).
type Section struct {
	Name     string     `json:"name"`
	Arg      string     `json:"arg,omitempty"`
	Pos      Pos        `json:"pos"`
	Params   []*Param   `json:"params,omitempty"`
	Sections []*Section `json:"sections,omitempty"`
}

// Get returns the last parameter named name (the one the shipper uses), or
// nil. Fluentd's reserved @type, @id and @log_level fall back to their
// deprecated spellings type, id and log_level, as Fluentd's Element#[] does.
func (s *Section) Get(name string) *Param {
	if s == nil {
		return nil
	}
	for i := len(s.Params) - 1; i >= 0; i-- {
		if s.Params[i].Name == name {
			return s.Params[i]
		}
	}
	if compat, ok := reservedCompat[name]; ok && compat != "" {
		return s.Get(compat)
	}
	return nil
}

// reservedCompat is Fluentd's Element::RESERVED_PARAMETERS_COMPAT
// (lib/fluent/config/element.rb): the deprecated names still read.
var reservedCompat = map[string]string{"@type": "type", "@id": "id", "@log_level": "log_level", "@label": ""}

// Sub returns the nested sections named name.
func (s *Section) Sub(name string) []*Section {
	if s == nil {
		return nil
	}
	var out []*Section
	for _, c := range s.Sections {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// Kind is a plugin's role.
type Kind string

const (
	Input  Kind = "input"
	Filter Kind = "filter"
	Output Kind = "output"
)

// Plugin is one input, filter or output.
type Plugin struct {
	Kind Kind   `json:"kind"`
	Type string `json:"type"`         // @type / Name, lowercased for Fluent Bit
	ID   string `json:"id,omitempty"` // @id / Alias
	Pos  Pos    `json:"pos"`
	// Label is the Fluentd <label> the filter or output sits in ("" for the
	// root); for inputs and relabel outputs, RouteLabel is the @label
	// their events go to.
	Label      string `json:"label,omitempty"`
	RouteLabel string `json:"route_label,omitempty"`
	// Tag is an input's configured tag (Fluentd tag, Fluent Bit Tag).
	Tag string `json:"tag,omitempty"`
	// Match is a filter's or output's match pattern; MatchRegex is Fluent
	// Bit's Match_Regex.
	Match      string `json:"match,omitempty"`
	MatchRegex string `json:"match_regex,omitempty"`
	// Parent is set for outputs nested in another output: copy's <store>,
	// <secondary>.
	Parent *Plugin `json:"-"`
	// Role says how a nested output is used: "store" or "secondary".
	Role string `json:"role,omitempty"`
	// Order is the position among the configuration's filters and
	// outputs (Fluentd routes to the first matching output).
	Order int `json:"order"`
	// Index numbers Fluent Bit instances per kind as the engine does, for
	// names such as es.0 and default tags such as tail.0.
	Index   int      `json:"index"`
	Section *Section `json:"section"`
}

// Name is how a person recognises the plugin: its type with its id or
// alias.
func (p *Plugin) Name() string {
	if p.ID != "" {
		return p.Type + " (" + p.ID + ")"
	}
	return p.Type
}

// Param returns the plugin's parameter name, or nil.
func (p *Plugin) Param(name string) *Param { return p.Section.Get(name) }

// Config is one configuration: a main file and everything it includes.
type Config struct {
	Shipper Shipper   `json:"shipper"`
	Format  Format    `json:"format"`
	Main    string    `json:"main"`
	Files   []File    `json:"files"`
	Service *Section  `json:"service,omitempty"` // <system> / [SERVICE]
	Plugins []*Plugin `json:"plugins"`
	// Problems are syntax errors and include trouble, in the order found.
	Problems []*Problem `json:"problems,omitempty"`
}

// File is one file read.
type File struct {
	Path   string `json:"path"`
	Format Format `json:"format"`
	Lines  int    `json:"lines"`
	Bytes  int64  `json:"bytes"`
}

// Inputs, Filters and Outputs select plugins by kind, in file order.
func (c *Config) Inputs() []*Plugin  { return c.byKind(Input) }
func (c *Config) Filters() []*Plugin { return c.byKind(Filter) }
func (c *Config) Outputs() []*Plugin { return c.byKind(Output) }

func (c *Config) byKind(k Kind) []*Plugin {
	var out []*Plugin
	for _, p := range c.Plugins {
		if p.Kind == k {
			out = append(out, p)
		}
	}
	return out
}

// Severity of a problem: a syntax error the shipper refuses, or a note
// (an include not followed).
type ProblemKind string

const (
	// SyntaxError: the shipper would refuse the file.
	SyntaxError ProblemKind = "syntax"
	// IncludeError: an include that cannot be read (missing, a cycle,
	// too large, binary).
	IncludeError ProblemKind = "include"
	// NotFollowed: an include logdoctor deliberately does not read
	// (http/https).
	NotFollowed ProblemKind = "not_followed"
)

// Problem is a parse error or an include that could not be read.
type Problem struct {
	Kind ProblemKind `json:"kind"`
	Pos  Pos         `json:"pos"`
	// Msg says what is wrong; Expected what the parser wanted instead.
	Msg      string `json:"message"`
	Expected string `json:"expected,omitempty"`
	// Err is the underlying error, for errors.Is (fs.ErrNotExist, ...).
	Err error `json:"-"`
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.Pos.String())
	b.WriteString(": ")
	b.WriteString(p.Msg)
	if p.Expected != "" {
		b.WriteString(" (expected ")
		b.WriteString(p.Expected)
		b.WriteString(")")
	}
	return b.String()
}

func (p *Problem) Unwrap() error { return p.Err }
