package shipconf

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// The Fluent Bit classic parser follows Fluent Bit v4.2's
// src/config_format/flb_cf_fluentbit.c (read_config, check_indent) and
// flb_config_format.c (section types, key translation). Fluent Bit stops
// at the first error; this parser records it and goes on with the next
// line.

// fbSection is one [SECTION] (or YAML section) before it becomes a plugin.
type fbSection struct {
	sec   *Section
	typ   string // service, input, filter, output, custom, parser, multiline_parser, other
	group *Section
	yaml  bool
}

// fbSectionType is get_section_type: the name, compared without case, may
// be any prefix of the type's name ("[INP]" is an input, as in Fluent
// Bit).
func fbSectionType(name string) string {
	n := strings.ToLower(name)
	if n == "" {
		return "other"
	}
	for _, t := range []struct{ names []string }{
		{[]string{"service"}}, {[]string{"parser"}}, {[]string{"multiline_parser"}}, {[]string{"stream_processor"}},
		{[]string{"plugins"}}, {[]string{"upstream_servers"}}, {[]string{"custom", "customs"}},
		{[]string{"input", "inputs"}}, {[]string{"filter", "filters"}}, {[]string{"output", "outputs"}},
	} {
		for _, full := range t.names {
			if strings.HasPrefix(full, n) {
				return strings.TrimSuffix(t.names[0], "s")
			}
		}
	}
	return "other"
}

func (l *loader) fbSections() *[]*fbSection {
	if l.fb == nil {
		l.fb = &fbState{}
	}
	return &l.fb.sections
}

// fbState is what the Fluent Bit parsers collect before the model is
// built: sections in order and the @SET / env: variables.
type fbState struct {
	sections    []*fbSection
	mainDir     string
	yamlNodes   *int
	serviceYAML bool
}

// fluentBitFile is read_config for one classic file.
func (l *loader) fluentBitFile(name string, src []byte, depth int) {
	if l.fb == nil {
		l.fb = &fbState{mainDir: filepath.Dir(name)}
	}
	l.push(name)
	defer l.pop()
	at := func(line, col int) Pos { return Pos{File: name, Line: line, Col: col} }
	fail := func(line, col int, msg, expected string) {
		l.problem(SyntaxError, at(line, col), msg, expected, nil)
	}
	var (
		cur      *fbSection
		indent   []byte
		indented = true
		nKeys    int
	)
	lineNo := 0
	for off := 0; off < len(src); {
		end := bytes.IndexByte(src[off:], '\n')
		var buf []byte
		if end < 0 {
			buf = src[off:]
			off = len(src)
		} else {
			buf = src[off : off+end]
			off += end + 1
		}
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		lineNo++
		if len(buf) == 0 || buf[0] == '#' {
			continue
		}
		if len(buf) > 9 && strings.EqualFold(string(buf[:9]), "@INCLUDE ") {
			l.fbInclude(string(buf[9:]), at(lineNo, 1), depth)
			continue
		}
		if buf[0] == '@' && len(buf) > 3 {
			l.fbMeta(string(buf), at(lineNo, 1))
			continue
		}
		if buf[0] == '[' {
			end := bytes.IndexByte(buf, ']')
			if end <= 0 {
				fail(lineNo, 1, "bad header definition", "']' closing the section name")
				continue
			}
			secName := string(buf[1:end])
			cur = &fbSection{sec: &Section{Name: secName, Pos: at(lineNo, 1)}, typ: fbSectionType(secName)}
			*l.fbSections() = append(*l.fbSections(), cur)
			nKeys = 0
			continue
		}
		if indent == nil {
			i := 1
			for i < len(buf) && isBlank(buf[i]) {
				i++
			}
			if !isBlank(buf[0]) {
				// Fluent Bit takes the first character as the indentation
				// whatever it is, then reads the key without it.
				fail(lineNo, 1, "property line is not indented: Fluent Bit takes its first character for indentation", "the key indented with spaces or a tab")
				indented = false
				indent = []byte{}
			} else {
				indent = append([]byte{}, buf[:i]...)
			}
			if i == len(buf) && indented {
				continue
			}
		}
		level, group, msg := fbCheckIndent(buf, indent)
		if !indented {
			// After the error above, read keys at whatever indentation.
			level, group, msg = 0, false, ""
			for level < len(buf) && isBlank(buf[level]) {
				level++
			}
		}
		if msg != "" {
			fail(lineNo, 1, msg, fmt.Sprintf("the %q indentation the first property line of this file uses", string(indent)))
			continue
		}
		if !group && cur != nil {
			cur.group = nil
		}
		if level < len(buf) && buf[level] == '#' || level == len(buf) {
			continue
		}
		rest := buf[level:]
		i := bytes.IndexByte(rest, ' ')
		col := utf8Col(buf, level)
		if i < 0 {
			fail(lineNo, col, "undefined value - check config is in valid classic format", "a space between key and value")
			continue
		}
		key := string(rest[:i])
		if key != "" && key[0] == '[' {
			end := strings.IndexByte(string(rest), ']')
			switch {
			case end < 0:
				fail(lineNo, col, "expected a valid group name: [..]", "']'")
			case cur == nil:
				fail(lineNo, col, "current group don't have a parent section", "a [SECTION] before the group")
			case cur.group != nil && nKeys == 0:
				fail(lineNo, col, "previous group did not have keys", "keys in the previous group")
			default:
				g := &Section{Name: string(rest[1:end]), Pos: at(lineNo, col)}
				cur.sec.Sections = append(cur.sec.Sections, g)
				cur.group = g
				nKeys = 0
			}
			continue
		}
		val := rest[i+1:]
		if len(val) == 0 {
			fail(lineNo, col, "key has an empty value", "a value after the key")
			continue
		}
		if cur == nil {
			fail(lineNo, col, "could not allocate key value pair: a property before any [SECTION]", "a [SECTION] header first")
			continue
		}
		target := cur.sec
		if cur.group != nil {
			target = cur.group
		}
		k := strings.TrimSpace(key)
		v := string(bytes.TrimSpace(val))
		target.Params = append(target.Params, &Param{Key: k, Name: strings.ToLower(k), Raw: v, Value: v, State: Known, Pos: at(lineNo, col)})
		nKeys++
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func utf8Col(b []byte, off int) int { return len([]rune(string(b[:off]))) + 1 }

// fbCheckIndent is check_indent: the line must start with the file's
// indentation; as many blanks again mark a group's content; anything else
// is an error.
func fbCheckIndent(line, indent []byte) (level int, group bool, msg string) {
	i := 0
	for i < len(indent) && i < len(line) && line[i] == indent[i] {
		i++
	}
	if i < len(indent) {
		if i < len(line) && isBlank(line[i]) {
			return 0, false, "inconsistent use of tab and space"
		}
		return 0, false, "indentation level is too low"
	}
	if i < len(line) && isBlank(line[i]) && len(indent) > 0 {
		extra := 0
		for i+extra < len(line) && isBlank(line[i+extra]) {
			extra++
		}
		if extra == len(indent) {
			return len(indent) + extra, true, ""
		}
		return 0, false, "extra indentation level found"
	}
	return len(indent), false, ""
}

// fbMeta handles "@SET KEY=VALUE" (flb_cf_meta_property_add, flb_meta.c);
// Fluent Bit runs every @SET before it configures any plugin, so a
// variable set anywhere applies everywhere.
func (l *loader) fbMeta(line string, at Pos) {
	sp := strings.IndexByte(line, ' ')
	if sp < 0 {
		l.problem(SyntaxError, at, fmt.Sprintf("meta command %q without an argument", line), "@SET KEY=VALUE", nil)
		return
	}
	cmd, arg := strings.TrimSpace(line[1:sp]), strings.TrimSpace(line[sp+1:])
	if !strings.EqualFold(cmd, "SET") {
		// flb_meta_run ignores unknown commands (and its result is not
		// checked): nothing to do.
		return
	}
	eq := strings.IndexByte(arg, '=')
	if eq < 0 {
		// Fluent Bit prints "[meta SET] invalid parameter" and goes on.
		l.problem(SyntaxError, at, fmt.Sprintf("@SET %s has no '='", arg), "@SET KEY=VALUE", nil)
		return
	}
	l.vars[arg[:eq]] = arg[eq+1:]
}

// fbInclude is @INCLUDE: a glob (when it holds '*') or a path, relative
// to the main file's directory; a glob matching nothing and a file read
// twice are errors in Fluent Bit.
func (l *loader) fbInclude(path string, from Pos, depth int) {
	p := path
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.fb.mainDir, p)
	}
	var files []string
	if strings.Contains(path, "*") {
		m, err := l.o.Files.Glob(p)
		if err != nil {
			l.problem(IncludeError, from, fmt.Sprintf("@INCLUDE %s: bad glob: %v", path, err), "", err)
			return
		}
		if len(m) == 0 {
			l.problem(IncludeError, from, fmt.Sprintf("@INCLUDE %s matches no file (Fluent Bit: glob no match, and it does not start)", path), "", ErrNoMatch)
			return
		}
		// Fluent Bit globs with GLOB_NOSORT; sorted here so reports are
		// stable.
		sort.Strings(m)
		files = m
	} else {
		files = []string{p}
	}
	for _, f := range files {
		src := l.include(f, from, true)
		if src == nil {
			continue
		}
		// read_config reads every included file as classic, whatever
		// its name.
		l.fluentBitFile(f, src, depth+1)
	}
}
