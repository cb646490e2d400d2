package shipconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// Options tune Load and Parse.
type Options struct {
	// Format forces the syntax; empty detects it from the name and the
	// content (Detect).
	Format Format
	// Env gives values to environment references (Fluentd
	// "#{ENV['X']}", Fluent Bit ${X}); a reference to a name not here is
	// unknown unless it has a default.
	Env map[string]string
	// Files is where files are read; nil is the operating system.
	Files Files
	// Limits; zero takes the default.
	MaxFileSize   int64 // bytes per file, default 8 MiB
	MaxFiles      int   // files per configuration, default 1000 (Fluent Bit's own limit)
	MaxLineLength int   // bytes per line, default 256 KiB
	MaxDepth      int   // section nesting and include depth, default 64
}

const (
	defaultMaxFileSize   = 8 << 20
	defaultMaxFiles      = 1000
	defaultMaxLineLength = 256 << 10
	defaultMaxDepth      = 64
)

func (o Options) withDefaults() Options {
	if o.Files == nil {
		o.Files = OSFiles{}
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = defaultMaxFileSize
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = defaultMaxFiles
	}
	if o.MaxLineLength <= 0 {
		o.MaxLineLength = defaultMaxLineLength
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = defaultMaxDepth
	}
	return o
}

// ErrUnknownFormat is returned when the format cannot be detected.
var ErrUnknownFormat = errors.New("cannot tell whether this is a Fluentd or a Fluent Bit configuration")

// Load reads the configuration whose main file is path, follows its
// includes and builds the model. The error is for a main file that cannot
// be read at all or whose format cannot be told; everything else (syntax
// errors, missing includes) is in Config.Problems.
func Load(path string, o Options) (*Config, error) {
	o = o.withDefaults()
	src, err := o.Files.ReadFile(path, o.MaxFileSize)
	if err != nil && !errors.Is(err, ErrTooLarge) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err != nil {
		f := o.Format
		if f == "" {
			f = detectByName(path)
		}
		if f == "" {
			f = FormatFluentd
		}
		cfg := &Config{Shipper: f.Shipper(), Format: f, Main: path}
		cfg.Problems = append(cfg.Problems, &Problem{Kind: IncludeError, Pos: Pos{File: path, Line: 1}, Msg: err.Error(), Err: err})
		return cfg, nil
	}
	return parse(path, src, o)
}

// Parse is Load for a main file whose content is already in memory
// (includes are still read through o.Files, relative to name's directory).
func Parse(name string, src []byte, o Options) (*Config, error) {
	return parse(name, src, o.withDefaults())
}

func parse(name string, src []byte, o Options) (*Config, error) {
	f := o.Format
	if f == "" {
		f = Detect(name, src)
		if f == "" {
			return nil, fmt.Errorf("%s: %w; use --format fluentd or --format fluentbit", name, ErrUnknownFormat)
		}
	} else if f == FormatFluentd || f == FormatFluentBit {
		// --format names the shipper; the extension still picks YAML.
		if isYAMLName(name) {
			if f == FormatFluentd {
				f = FormatFluentdYAML
			} else {
				f = FormatFluentBitYAML
			}
		}
	}
	l := newLoader(name, f, o)
	l.parseMain(src)
	return l.cfg, nil
}

// loader holds the state of one Load: files read, the include chain,
// variables set inside the configuration.
type loader struct {
	o     Options
	cfg   *Config
	stack []string        // absolute paths of the files being read, for cycles
	read  map[string]bool // every file read (Fluent Bit refuses a second read)
	// vars are Fluent Bit variables set in the files (@SET, YAML env:).
	vars map[string]string
	// order numbers filters and outputs across the files, in the order
	// the shipper registers them.
	order int
	fb    *fbState
}

func newLoader(name string, f Format, o Options) *loader {
	return &loader{
		o:    o,
		cfg:  &Config{Shipper: f.Shipper(), Format: f, Main: name},
		read: map[string]bool{},
		vars: map[string]string{},
	}
}

func (l *loader) problem(kind ProblemKind, pos Pos, msg, expected string, err error) {
	l.cfg.Problems = append(l.cfg.Problems, &Problem{Kind: kind, Pos: pos, Msg: msg, Expected: expected, Err: err})
}

func (l *loader) parseMain(src []byte) {
	name := l.cfg.Main
	if !l.admit(name, src, Pos{File: name, Line: 1}) {
		return
	}
	switch l.cfg.Format {
	case FormatFluentd:
		root := l.fluentdFile(name, src, nil)
		l.buildFluentd(root)
	case FormatFluentdYAML:
		root := l.fluentdYAMLFile(name, src)
		l.buildFluentd(root)
	case FormatFluentBit:
		l.fluentBitFile(name, src, 0)
		l.buildFluentBit()
	case FormatFluentBitYAML:
		l.fluentBitYAMLFile(name, src, 0)
		l.buildFluentBit()
	}
}

// admit checks a file's content before it is parsed and records it; a
// binary file or one with an overlong line is one problem, not parsed.
func (l *loader) admit(name string, src []byte, from Pos) bool {
	lines := bytes.Count(src, []byte("\n"))
	if len(src) > 0 && src[len(src)-1] != '\n' {
		lines++
	}
	l.cfg.Files = append(l.cfg.Files, File{Path: name, Format: l.cfg.Format, Lines: lines, Bytes: int64(len(src))})
	if err := checkText(src); err != nil {
		l.problem(IncludeError, from, fmt.Sprintf("%s is not a configuration file: %v", name, err), "", err)
		return false
	}
	if n, length := longLine(src, l.o.MaxLineLength); n > 0 {
		l.problem(IncludeError, Pos{File: name, Line: n, Col: 1},
			fmt.Sprintf("line %d is %d bytes long, above logdoctor's %d byte limit; the file is not checked", n, length, l.o.MaxLineLength), "", ErrTooLarge)
		return false
	}
	return true
}

// include reads one included file: limits, cycles and text checks. It
// returns nil when the file is not to be parsed (the problem is recorded).
func (l *loader) include(path string, from Pos, refuseSecondRead bool) []byte {
	abs := absPath(path)
	for i, s := range l.stack {
		if s == abs {
			chain := append(append([]string{}, l.stack[i:]...), abs)
			l.problem(IncludeError, from, "include cycle: "+strings.Join(shortPaths(chain), " -> "), "", errIncludeCycle)
			return nil
		}
	}
	if refuseSecondRead && l.read[abs] {
		l.problem(IncludeError, from, fmt.Sprintf("%s is included a second time; Fluent Bit refuses to read a file twice", path), "", errIncludedTwice)
		return nil
	}
	if len(l.cfg.Files) >= l.o.MaxFiles {
		l.problem(IncludeError, from, fmt.Sprintf("more than %d files included; %s and the rest are not read", l.o.MaxFiles, path), "", ErrTooLarge)
		return nil
	}
	if len(l.stack) >= l.o.MaxDepth {
		l.problem(IncludeError, from, fmt.Sprintf("includes nested deeper than %d; %s is not read", l.o.MaxDepth, path), "", ErrTooLarge)
		return nil
	}
	src, err := l.o.Files.ReadFile(path, l.o.MaxFileSize)
	if err != nil {
		msg := fmt.Sprintf("cannot read included file %s: %v", path, err)
		if errors.Is(err, fs.ErrNotExist) {
			msg = fmt.Sprintf("included file %s does not exist", path)
		}
		l.problem(IncludeError, from, msg, "", err)
		return nil
	}
	l.read[abs] = true
	if !l.admit(path, src, from) {
		return nil
	}
	return src
}

var (
	errIncludeCycle  = errors.New("include cycle")
	errIncludedTwice = errors.New("file included twice")
	// ErrNoMatch is wrapped by the problem for an include glob that
	// matches no file.
	ErrNoMatch = errors.New("include matches no file")
)

func (l *loader) push(path string) { l.stack = append(l.stack, absPath(path)) }
func (l *loader) pop()             { l.stack = l.stack[:len(l.stack)-1] }

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

func shortPaths(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = filepath.Base(p)
	}
	return out
}

func (l *loader) nextOrder() int {
	l.order++
	return l.order
}

// Detect tells the format from the file name and content: YAML by
// extension, then which shipper by the sections the content uses, then by
// the conventional file names. It returns "" when it cannot tell.
func Detect(name string, src []byte) Format {
	yaml := isYAMLName(name)
	fd, fb := scoreContent(src, yaml)
	switch {
	case fd > fb:
		if yaml {
			return FormatFluentdYAML
		}
		return FormatFluentd
	case fb > fd:
		if yaml {
			return FormatFluentBitYAML
		}
		return FormatFluentBit
	}
	f := detectByName(name)
	if yaml && f == FormatFluentd {
		return FormatFluentdYAML
	}
	if yaml && f == FormatFluentBit {
		return FormatFluentBitYAML
	}
	return f
}

func isYAMLName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

func detectByName(name string) Format {
	base := strings.ToLower(filepath.Base(name))
	switch {
	case strings.Contains(base, "fluent-bit"), strings.Contains(base, "fluentbit"), strings.Contains(base, "td-agent-bit"):
		return FormatFluentBit
	case strings.Contains(base, "fluentd"), strings.Contains(base, "fluent"), strings.Contains(base, "td-agent"):
		return FormatFluentd
	}
	return ""
}

// scoreContent counts lines that only one shipper's syntax has.
func scoreContent(src []byte, yaml bool) (fd, fb int) {
	for _, line := range strings.Split(string(src), "\n") {
		t := strings.TrimSpace(line)
		lt := strings.ToLower(t)
		if yaml {
			switch {
			case strings.HasPrefix(t, "config:"), strings.HasPrefix(t, "system:"),
				strings.HasPrefix(lt, "- source:"), strings.HasPrefix(lt, "- match:"), strings.HasPrefix(lt, "- label:"),
				strings.HasPrefix(t, "$type:"), strings.HasPrefix(t, "$tag:"), strings.HasPrefix(t, "!include"), strings.HasPrefix(t, "- !include"):
				fd++
			case strings.HasPrefix(t, "pipeline:"), strings.HasPrefix(t, "service:"), strings.HasPrefix(t, "includes:"),
				strings.HasPrefix(t, "inputs:"), strings.HasPrefix(t, "outputs:"), strings.HasPrefix(t, "filters:"),
				strings.HasPrefix(t, "- name:"), strings.HasPrefix(t, "parsers:"), strings.HasPrefix(t, "env:"):
				fb++
			}
			continue
		}
		switch {
		case strings.HasPrefix(t, "<source"), strings.HasPrefix(t, "<match"), strings.HasPrefix(t, "<filter"),
			strings.HasPrefix(t, "<label"), strings.HasPrefix(t, "<system"), strings.HasPrefix(t, "@include"), strings.HasPrefix(t, "@type"):
			fd++
		case strings.HasPrefix(lt, "[input]"), strings.HasPrefix(lt, "[output]"), strings.HasPrefix(lt, "[filter]"),
			strings.HasPrefix(lt, "[service]"), strings.HasPrefix(lt, "[parser]"), strings.HasPrefix(lt, "[inputs]"),
			strings.HasPrefix(lt, "[outputs]"), strings.HasPrefix(lt, "[filters]"),
			strings.HasPrefix(t, "@INCLUDE"), strings.HasPrefix(lt, "@set "):
			fb++
		}
	}
	return fd, fb
}
