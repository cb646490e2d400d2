package shipconf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// The Fluentd v1 parser follows Fluentd v1.16's lib/fluent/config/
// v1_parser.rb, literal_parser.rb and basic_parser.rb scanner by scanner;
// the comments name the Ruby method or regular expression each function
// stands for. Where Fluentd raises on the first error, this parser
// records a Problem and resumes at the next line, so the rest of the file
// is still read.

// fdElemSymbols is V1Parser::ELEM_SYMBOLS: sections in which a parameter
// starting with '@' (other than the reserved ones) is an error.
var fdElemSymbols = map[string]bool{"match": true, "source": true, "filter": true, "system": true}

// fdReserved is V1Parser::RESERVED_PARAMS.
var fdReserved = map[string]bool{"@type": true, "@id": true, "@label": true, "@log_level": true}

type fdParser struct {
	l     *loader
	file  string
	dir   string
	src   []byte
	p     int
	li    lineIndex
	depth int
}

// fdVal is a scanned value.
type fdVal struct {
	s          string
	state      State
	env        []string
	note       string
	useDefault bool
}

func (l *loader) fluentdFile(name string, src []byte, into *Section) *Section {
	root := into
	if root == nil {
		root = &Section{Name: "ROOT", Pos: Pos{File: name, Line: 1, Col: 1}}
	}
	l.push(name)
	defer l.pop()
	ps := &fdParser{l: l, file: name, dir: filepath.Dir(name), src: src, li: newLineIndex(src)}
	ps.parseElement(root, true, "", 0)
	return root
}

func (ps *fdParser) pos(off int) Pos { return ps.li.pos(ps.file, off) }

func (ps *fdParser) fail(off int, msg, expected string) {
	ps.l.problem(SyntaxError, ps.pos(off), msg, expected, nil)
}

func (ps *fdParser) eof() bool { return ps.p >= len(ps.src) }

func (ps *fdParser) peek(s string) bool { return bytes.HasPrefix(ps.src[ps.p:], []byte(s)) }

// skipLine resumes after the next newline at or after from.
func (ps *fdParser) skipLine(from int) {
	if from < ps.p {
		from = ps.p
	}
	i := bytes.IndexByte(ps.src[min(from, len(ps.src)):], '\n')
	if i < 0 {
		ps.p = len(ps.src)
		return
	}
	ps.p = from + i + 1
}

// spacing is BasicParser::SPACING: blanks, newlines and # comments.
func (ps *fdParser) spacing() {
	for ps.p < len(ps.src) {
		switch ps.src[ps.p] {
		case ' ', '\t', '\r', '\n':
			ps.p++
		case '#':
			for ps.p < len(ps.src) && ps.src[ps.p] != '\n' && ps.src[ps.p] != '\r' {
				ps.p++
			}
			if ps.p < len(ps.src) {
				ps.p++
			}
		default:
			return
		}
	}
}

// spacingWithoutComment is SPACING_WITHOUT_COMMENT; it returns what it
// skipped.
func (ps *fdParser) spacingWithoutComment() string {
	start := ps.p
	for ps.p < len(ps.src) {
		switch ps.src[ps.p] {
		case ' ', '\t', '\r', '\n':
			ps.p++
			continue
		}
		break
	}
	return string(ps.src[start:ps.p])
}

// lineEndAt reports whether BasicParser::LINE_END matches at off, and
// where the match ends: blanks, an optional # comment, then a line break
// or the end of the file, repeated.
func (ps *fdParser) lineEndAt(off int) (bool, int) {
	src := ps.src
	q, matched := off, false
	for {
		r := q
		for r < len(src) && (src[r] == ' ' || src[r] == '\t') {
			r++
		}
		if r < len(src) && src[r] == '#' {
			for r < len(src) && src[r] != '\n' {
				r++
			}
		}
		if r >= len(src) {
			return true, len(src)
		}
		if src[r] == '\r' || src[r] == '\n' {
			q, matched = r+1, true
			continue
		}
		return matched, q
	}
}

func (ps *fdParser) lineEnd() bool {
	ok, end := ps.lineEndAt(ps.p)
	if ok {
		ps.p = end
	}
	return ok
}

// argBoundaryAt is /(?:ZERO_OR_MORE_SPACING\>)/, where a section's
// argument ends.
func (ps *fdParser) argBoundaryAt(off int) bool {
	src := ps.src
	for off < len(src) {
		switch src[off] {
		case ' ', '\t', '\r', '\n':
			off++
			continue
		case '#':
			for off < len(src) && src[off] != '\n' && src[off] != '\r' {
				off++
			}
			if off < len(src) {
				off++
			}
			continue
		}
		break
	}
	return off < len(src) && src[off] == '>'
}

type boundary int

const (
	toLineEnd boundary = iota // values, include paths
	toSpacing                 // keys
	toArgEnd                  // a section's argument
)

func (ps *fdParser) atBoundary(b boundary) bool {
	switch b {
	case toSpacing:
		c := ps.src[ps.p]
		return c == ' ' || c == '\t' || c == '\r' || c == '\n'
	case toArgEnd:
		return ps.argBoundaryAt(ps.p)
	}
	ok, _ := ps.lineEndAt(ps.p)
	return ok
}

// parseElement is V1Parser#parse_element: the body of a section (or of
// the root, or of an included file, which Fluentd parses as a root into
// the including section).
func (ps *fdParser) parseElement(sec *Section, root bool, name string, open int) {
	for {
		ps.spacing()
		if ps.eof() {
			if !root {
				ps.fail(open, fmt.Sprintf("<%s> is not closed: expected end tag '</%s>' but got end of file", name, name), "</"+name+">")
			}
			return
		}
		start := ps.p
		switch {
		case ps.peek("</"):
			ps.p += 2
			ename := ps.scanElementName()
			ps.spacing()
			if ps.eof() || ps.src[ps.p] != '>' {
				ps.fail(ps.p, "expected character in tag name", "'>'")
				ps.skipLine(ps.p)
			} else {
				ps.p++
				if !ps.lineEnd() {
					ps.fail(ps.p, "expected end of line after end tag", "end of line")
					ps.skipLine(ps.p)
				}
			}
			if ename != name || root {
				want := "</" + name + ">"
				if root {
					want = "no end tag at the top level"
				}
				ps.fail(start, fmt.Sprintf("unmatched end tag '</%s>'", ename), want)
				if root {
					continue
				}
			}
			return
		case ps.src[ps.p] == '<':
			ps.p++
			ps.parseSection(sec, start)
		case root && ps.includeAhead():
			ps.parseInclude(sec, start)
		default:
			ps.parseParam(sec, root, name, start)
		}
	}
}

// includeAhead is /(\@include|include)#{SPACING}/ at the root: the
// directive, then at least one blank, newline or comment.
func (ps *fdParser) includeAhead() bool {
	for _, kw := range []string{"@include", "include"} {
		if ps.peek(kw) {
			end := ps.p + len(kw)
			if end >= len(ps.src) {
				return false
			}
			switch ps.src[end] {
			case ' ', '\t', '\r', '\n', '#':
				ps.p = end
				ps.spacing()
				return true
			}
		}
	}
	return false
}

func (ps *fdParser) scanElementName() string {
	start := ps.p
	for ps.p < len(ps.src) {
		c := ps.src[ps.p]
		if c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			ps.p++
			continue
		}
		break
	}
	return string(ps.src[start:ps.p])
}

// parseSection reads "<name arg>" and the body up to its end tag.
func (ps *fdParser) parseSection(parent *Section, start int) {
	ename := ps.scanElementName()
	ps.spacing()
	arg, ok := ps.scanString(toArgEnd)
	if !ok {
		ps.skipLine(start)
	}
	ps.spacing()
	if ok {
		if ps.eof() || ps.src[ps.p] != '>' {
			ps.fail(start, "expected '>'", "'>' closing <"+ename+">")
			ps.skipLine(start)
		} else {
			ps.p++
			if !ps.lineEnd() {
				ps.fail(ps.p, "expected end of line after tag", "end of line")
				ps.skipLine(ps.p)
			}
		}
	}
	child := &Section{Name: ename, Arg: arg.s, Pos: ps.pos(start)}
	parent.Sections = append(parent.Sections, child)
	if ps.depth >= ps.l.o.MaxDepth {
		ps.fail(start, fmt.Sprintf("sections nested deeper than %d", ps.l.o.MaxDepth), "")
		ps.skipToEndTag(ename)
		return
	}
	ps.depth++
	ps.parseElement(child, false, ename, start)
	ps.depth--
}

// skipToEndTag gives up on a section nested too deep: it resumes after
// the next "</name>" line.
func (ps *fdParser) skipToEndTag(name string) {
	i := bytes.Index(ps.src[ps.p:], []byte("</"+name))
	if i < 0 {
		ps.p = len(ps.src)
		return
	}
	ps.skipLine(ps.p + i)
}

func (ps *fdParser) parseParam(sec *Section, root bool, name string, start int) {
	key, ok := ps.scanString(toSpacing)
	if !ok {
		ps.skipLine(start)
		return
	}
	k := key.s
	ws := ps.spacingWithoutComment()
	if strings.Contains(ws, "\n") || ps.eof() {
		// "support 'tag_mapped' like 'without value' configuration"
		sec.Params = append(sec.Params, &Param{Key: k, Name: k, Value: "", Raw: "", State: Known, Pos: ps.pos(start)})
		return
	}
	if ws == "" {
		ps.fail(ps.p, "expected a blank between key and value", "blank")
		ps.skipLine(start)
		return
	}
	if k == "@include" {
		ps.parseInclude(sec, start)
		return
	}
	if !fdReserved[k] && strings.HasPrefix(k, "@") && (root || fdElemSymbols[name]) {
		ps.fail(start, "'@' is the system reserved prefix. Don't use '@' prefix parameter in the configuration: "+k, "")
		ps.skipLine(start)
		return
	}
	vstart := ps.p
	v, ok := ps.parseLiteral()
	if !ok {
		ps.skipLine(vstart)
		return
	}
	raw := strings.TrimRight(string(ps.src[vstart:ps.p]), " \t")
	if !ps.lineEnd() {
		ps.fail(ps.p, "expected end of line", "end of line after the value of "+k)
		ps.skipLine(ps.p)
		return
	}
	p := &Param{Key: k, Name: k, Value: v.s, Raw: raw, State: v.state, Pos: ps.pos(start), Env: v.env, Note: v.note}
	if v.useDefault {
		p.State = Default
	}
	sec.Params = append(sec.Params, p)
}

// parseLiteral is LiteralParser#parse_literal: JSON after '[' or '{',
// else a string.
func (ps *fdParser) parseLiteral() (fdVal, bool) {
	ps.spacingWithoutComment()
	if ps.eof() {
		return fdVal{}, true
	}
	switch ps.src[ps.p] {
	case '[', '{':
		return ps.scanJSON()
	}
	return ps.scanString(toLineEnd)
}

// scanString is LiteralParser#scan_string.
func (ps *fdParser) scanString(b boundary) (fdVal, bool) {
	if ps.eof() {
		return fdVal{}, true
	}
	switch ps.src[ps.p] {
	case '"':
		ps.p++
		return ps.scanDoubleQuoted()
	case '\'':
		ps.p++
		return ps.scanSingleQuoted()
	}
	return ps.scanNonQuoted(b), true
}

// scanNonQuoted is scan_nonquoted_string: '#' is kept wherever it is not
// the start of a comment after blanks.
func (ps *fdParser) scanNonQuoted(b boundary) fdVal {
	start := ps.p
	for ps.p < len(ps.src) {
		c := ps.src[ps.p]
		if c == '#' {
			ps.p++
			continue
		}
		if c == '\n' || ps.atBoundary(b) {
			break
		}
		ps.p++
	}
	return fdVal{s: string(ps.src[start:ps.p])}
}

// scanSingleQuoted is scan_single_quoted_string: only \' and \\ are
// escapes, and a line break ends it with an error.
func (ps *fdParser) scanSingleQuoted() (fdVal, bool) {
	open := ps.p - 1
	var b strings.Builder
	for ps.p < len(ps.src) {
		c := ps.src[ps.p]
		switch {
		case c == '\'':
			ps.p++
			return fdVal{s: b.String()}, true
		case c == '\\' && ps.p+1 < len(ps.src) && (ps.src[ps.p+1] == '\'' || ps.src[ps.p+1] == '\\'):
			b.WriteByte(ps.src[ps.p+1])
			ps.p += 2
		case c == '\n':
			ps.fail(open, "unterminated single-quoted string: Fluentd reads no line break inside single quotes", "closing ' on the same line")
			return fdVal{}, false
		default:
			b.WriteByte(c)
			ps.p++
		}
	}
	ps.fail(open, "unexpected end of file in a single quoted string", "closing '")
	return fdVal{}, false
}

// scanDoubleQuoted is scan_double_quoted_string: escapes, a backslash
// before a line break continues the line, other line breaks are kept, and
// "#{...}" is embedded Ruby (resolved only for ENV references).
func (ps *fdParser) scanDoubleQuoted() (fdVal, bool) {
	open := ps.p - 1
	var b strings.Builder
	v := fdVal{}
	for {
		if ps.p >= len(ps.src) {
			ps.fail(open, "unexpected end of file in a double quoted string", `closing "`)
			return fdVal{}, false
		}
		c := ps.src[ps.p]
		next := byte(0)
		atLineEnd := ps.p+1 >= len(ps.src)
		if !atLineEnd {
			next = ps.src[ps.p+1]
			atLineEnd = next == '\r' || next == '\n'
		}
		switch {
		case c == '"':
			ps.p++
			v.s = b.String()
			return v, true
		case atLineEnd:
			// /[^"]#{LINE_END_WITHOUT_SPACING_AND_COMMENT}/: a character
			// followed by a line break; a backslash there joins the lines.
			if c != '\\' {
				b.WriteByte(c)
				if next != 0 {
					b.WriteByte(next)
				}
			}
			ps.p += 2
			if ps.p > len(ps.src) {
				ps.p = len(ps.src)
			}
		case c == '\\':
			esc, err := fdEscape(next)
			if err != "" {
				ps.fail(ps.p, err, `one of \" \' \\ \r \n \t \f \b \0 or a symbol`)
				return fdVal{}, false
			}
			b.WriteString(esc)
			ps.p += 2
		case c == '#' && next == '{':
			codeStart := ps.p + 2
			end := rubyCodeEnd(ps.src, codeStart)
			if end < 0 {
				ps.fail(ps.p, "expected end of embedded code but got end of file", "'}' closing #{")
				return fdVal{}, false
			}
			r := evalRuby(string(ps.src[codeStart:end]), ps.l.o.Env)
			switch {
			case r.useDefault:
				v.useDefault = true
			case r.state == Unknown:
				v.state = Unknown
			}
			v.env = append(v.env, r.env...)
			if r.note != "" {
				if v.note != "" {
					v.note += "; "
				}
				v.note += r.note
			}
			b.WriteString(r.value)
			ps.p = end + 1
		case c == '\n':
			// Fluentd's scanner stops here ("." does not match a line
			// break that does not follow a character it took).
			ps.fail(open, "unexpected end of file in a double quoted string", `closing "`)
			return fdVal{}, false
		default:
			b.WriteByte(c)
			ps.p++
		}
	}
}

// fdEscape is LiteralParser#eval_escape_char.
func fdEscape(c byte) (string, string) {
	switch c {
	case '"':
		return `"`, ""
	case '\'':
		return "'", ""
	case 'r':
		return "\r", ""
	case 'n':
		return "\n", ""
	case 't':
		return "\t", ""
	case 'f':
		return "\f", ""
	case 'b':
		return "\b", ""
	case '0':
		return "\x00", ""
	}
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return "", fmt.Sprintf("unexpected back-slash escape character '%c'", c)
	}
	return string([]byte{c}), ""
}

// scanJSON is LiteralParser#scan_json: characters are added until the
// text so far is one complete JSON document; a '#' outside a string
// starts a comment when the text up to it (trailing comma dropped, closed)
// is valid JSON, exactly the test Fluentd makes; the value is the
// compacted JSON.
func (ps *fdParser) scanJSON() (fdVal, bool) {
	start := ps.p
	isArray := ps.src[ps.p] == '['
	closer := "}"
	if isArray {
		closer = "]"
	}
	var buf, line bytes.Buffer
	buf.WriteByte(ps.src[ps.p])
	ps.p++
	depth, inStr, esc := 1, false, false
	for ps.p < len(ps.src) {
		c := ps.src[ps.p]
		ps.p++
		if c == '#' && !inStr {
			probe := append(append([]byte{}, buf.Bytes()...), bytes.TrimSuffix(bytes.TrimRight(line.Bytes(), " \t\r\n\f\v"), []byte(","))...)
			probe = append(probe, closer...)
			if json.Valid(probe) {
				for ps.p < len(ps.src) && ps.src[ps.p] != '\n' {
					ps.p++
				}
				if ps.p < len(ps.src) {
					ps.p++
				}
				buf.Write(line.Bytes())
				buf.WriteByte('\n')
				line.Reset()
				continue
			}
			line.WriteByte(c)
			continue
		}
		if c == '\n' {
			buf.Write(line.Bytes())
			buf.WriteByte('\n')
			line.Reset()
			continue
		}
		line.WriteByte(c)
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '[' || c == '{'):
			depth++
		case !inStr && (c == ']' || c == '}'):
			depth--
		}
		if depth == 0 && !inStr {
			doc := append(append([]byte{}, buf.Bytes()...), line.Bytes()...)
			if json.Valid(doc) {
				var out bytes.Buffer
				if err := json.Compact(&out, doc); err == nil {
					return fdVal{s: out.String()}, true
				}
			}
			// Fluentd keeps reading after an invalid document and fails
			// at the end of the file; resume after this line instead.
			kind := "hash"
			if isArray {
				kind = "array"
			}
			ps.fail(start, fmt.Sprintf("got incomplete JSON %s configuration", kind), "valid JSON")
			return fdVal{}, false
		}
	}
	kind := "hash"
	if isArray {
		kind = "array"
	}
	ps.fail(start, fmt.Sprintf("got incomplete JSON %s configuration", kind), "valid JSON closed by "+closer)
	return fdVal{}, false
}

var urlScheme = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*):`)

// parseInclude is V1Parser#parse_include and #eval_include: a path or
// glob relative to the including file, expanded and sorted, each file
// parsed as a root into the current section; URLs are not fetched.
func (ps *fdParser) parseInclude(sec *Section, start int) {
	uv, ok := ps.scanString(toLineEnd)
	if !ok {
		ps.skipLine(start)
		return
	}
	ps.lineEnd()
	from := ps.pos(start)
	uri := strings.TrimSpace(uv.s)
	if uv.state == Unknown {
		ps.l.problem(NotFollowed, from, "include path comes from embedded Ruby that is not evaluated: "+uri, "", nil)
		return
	}
	if uri == "" {
		ps.fail(start, "@include without a path", "a file path or glob")
		return
	}
	path := uri
	if m := urlScheme.FindStringSubmatch(uri); m != nil && len(m[1]) > 1 {
		if !strings.EqualFold(m[1], "file") {
			ps.l.problem(NotFollowed, from, fmt.Sprintf("include %s is not followed: logdoctor reads no URL, so what it holds is not checked", uri), "", nil)
			return
		}
		path = strings.TrimPrefix(strings.TrimPrefix(uri, m[0]), "//")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(ps.dir, path)
	}
	matches, err := ps.l.o.Files.Glob(path)
	if err != nil {
		ps.l.problem(IncludeError, from, fmt.Sprintf("include %s: bad glob: %v", uri, err), "", err)
		return
	}
	sort.Strings(matches)
	if len(matches) == 0 {
		ps.l.problem(IncludeError, from, fmt.Sprintf("include %s matches no file; Fluentd includes nothing and does not warn", uri), "", ErrNoMatch)
		return
	}
	for _, m := range matches {
		src := ps.l.include(m, from, false)
		if src == nil {
			continue
		}
		ps.l.fluentdFile(m, src, sec)
	}
}
