package shipconf

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Tag patterns. Fluentd (lib/fluent/match.rb): patterns separated by
// blanks, each "**" (everything), a /regex/, or a glob where "*" is one
// tag part, "**" any number of parts ("a.**" also matches "a"), "{x,y}"
// alternatives and "\" an escape. Fluent Bit (flb_router.c router_match):
// "*" matches any run of characters, dots included, and Match_Regex is a
// regular expression anchored at the start of the tag.

// fdNode is one piece of a compiled Fluentd glob.
type fdNode struct {
	lit  string     // literal text
	op   fdOp       // what else it is
	alts [][]fdNode // alternatives for opAlt
}

type fdOp int

const (
	opLit      fdOp = iota
	opStar          // [^.]*
	opDeep          // .*
	opDeepDot       // (?:.*\.|\A): any prefix ending in a dot, or the start
	opDotOrEnd      // (?![^.]): the next character is a dot, or the end
	opAlt           // one of alts
)

// FluentdPattern is a compiled <match>/<filter> argument.
type FluentdPattern struct {
	src   string
	all   bool
	lits  []string // parts that are plain tags, matched by equality
	globs [][]fdNode
	res   []*regexp.Regexp
	bad   bool // a /regex/ Go cannot compile: matches nothing known
}

// CompileFluentd compiles a Fluentd match argument (OrMatchPattern of
// MatchPattern.create for each blank-separated part).
func CompileFluentd(pattern string) *FluentdPattern {
	fp := &FluentdPattern{src: pattern}
	for _, part := range strings.Fields(pattern) {
		switch {
		case part == "**":
			fp.all = true
		case strings.HasPrefix(part, "/"):
			if !strings.HasSuffix(part, "/") || len(part) < 2 {
				fp.bad = true
				continue
			}
			re, err := regexp.Compile(`\A(?:` + part[1:len(part)-1] + `)\z`)
			if err != nil {
				fp.bad = true
				continue
			}
			fp.res = append(fp.res, re)
		default:
			g := compileFdGlob(part)
			if len(g) == 1 && g[0].op == opLit {
				fp.lits = append(fp.lits, g[0].lit)
			} else if len(g) == 0 {
				fp.lits = append(fp.lits, "")
			} else {
				fp.globs = append(fp.globs, g)
			}
		}
	}
	return fp
}

// compileFdGlob mirrors GlobMatchPattern#initialize, building nodes where
// Ruby builds a regular expression (Go's has no lookahead).
func compileFdGlob(pat string) []fdNode {
	type frame struct{ alts [][]fdNode }
	var stack []frame
	cur := [][]fdNode{nil} // regex: a stack of sequences
	push := func(n fdNode) { cur[len(cur)-1] = append(cur[len(cur)-1], n) }
	lit := func(s string) {
		seq := cur[len(cur)-1]
		if len(seq) > 0 && seq[len(seq)-1].op == opLit {
			seq[len(seq)-1].lit += s
			return
		}
		push(fdNode{op: opLit, lit: s})
	}
	escape, dot := false, false
	for i := 0; i < len(pat); {
		c := pat[i]
		if escape {
			lit(string(c))
			escape = false
			i++
			continue
		}
		if strings.HasPrefix(pat[i:], "**") {
			if dot {
				push(fdNode{op: opDotOrEnd})
				dot = false
			}
			if i+2 < len(pat) && pat[i+2] == '.' {
				push(fdNode{op: opDeepDot})
				i += 3
			} else {
				push(fdNode{op: opDeep})
				i += 2
			}
			continue
		}
		if dot {
			lit(".")
			dot = false
		}
		switch {
		case c == '\\':
			escape = true
		case c == '.':
			dot = true
		case c == '*':
			push(fdNode{op: opStar})
		case c == '{':
			stack = append(stack, frame{})
			cur = append(cur, nil)
		case c == '}' && len(stack) > 0:
			top := &stack[len(stack)-1]
			top.alts = append(top.alts, cur[len(cur)-1])
			cur = cur[:len(cur)-1]
			alts := top.alts
			stack = stack[:len(stack)-1]
			push(fdNode{op: opAlt, alts: alts})
		case c == ',' && len(stack) > 0:
			top := &stack[len(stack)-1]
			top.alts = append(top.alts, cur[len(cur)-1])
			cur[len(cur)-1] = nil
		default:
			lit(string(c))
		}
		i++
	}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		top.alts = append(top.alts, cur[len(cur)-1])
		cur = cur[:len(cur)-1]
		alts := top.alts
		stack = stack[:len(stack)-1]
		push(fdNode{op: opAlt, alts: alts})
	}
	return cur[0]
}

// maxMatchSteps bounds backtracking on hostile patterns.
const maxMatchSteps = 100000

// Match reports whether tag matches.
func (fp *FluentdPattern) Match(tag string) bool {
	if fp.all {
		return true
	}
	for _, l := range fp.lits {
		if l == tag {
			return true
		}
	}
	for _, re := range fp.res {
		if re.MatchString(tag) {
			return true
		}
	}
	for _, g := range fp.globs {
		steps := 0
		if matchNodes(g, tag, 0, func(j int) bool { return j == len(tag) }, &steps) {
			return true
		}
	}
	return false
}

// MatchesAll reports whether the pattern is "**".
func (fp *FluentdPattern) MatchesAll() bool { return fp.all }

func (fp *FluentdPattern) String() string { return fp.src }

// matchNodes matches ns against tag from i and calls k with each end
// position; it stops at the first k that accepts.
func matchNodes(ns []fdNode, tag string, i int, k func(int) bool, steps *int) bool {
	*steps++
	if *steps > maxMatchSteps {
		return false
	}
	if len(ns) == 0 {
		return k(i)
	}
	n, rest := ns[0], ns[1:]
	next := func(j int) bool { return matchNodes(rest, tag, j, k, steps) }
	switch n.op {
	case opLit:
		if strings.HasPrefix(tag[i:], n.lit) {
			return next(i + len(n.lit))
		}
		return false
	case opStar:
		for j := i; ; j++ {
			if next(j) {
				return true
			}
			if j >= len(tag) || tag[j] == '.' {
				return false
			}
		}
	case opDeep:
		for j := len(tag); j >= i; j-- {
			if next(j) {
				return true
			}
		}
		return false
	case opDeepDot:
		if i == 0 && next(0) {
			return true
		}
		for j := len(tag) - 1; j >= i; j-- {
			if tag[j] == '.' && next(j+1) {
				return true
			}
		}
		return false
	case opDotOrEnd:
		if i == len(tag) || tag[i] == '.' {
			return next(i)
		}
		return false
	case opAlt:
		for _, a := range n.alts {
			if matchNodes(a, tag, i, next, steps) {
				return true
			}
		}
		return false
	}
	return false
}

// Samples returns tags the pattern matches, one or more per way it can
// match ("*" as "x", "**" as nothing and as "x.y", each alternative), so
// that another pattern can be tested against what this one covers.
func (fp *FluentdPattern) Samples() []string {
	var out []string
	if fp.all {
		out = append(out, "", "x", "x.y", "x.y.z")
	}
	out = append(out, fp.lits...)
	for _, g := range fp.globs {
		out = append(out, nodeSamples(g, 0)...)
	}
	return out
}

func nodeSamples(ns []fdNode, depth int) []string {
	if len(ns) == 0 {
		return []string{""}
	}
	if depth > 8 {
		return nil
	}
	var heads []string
	switch n := ns[0]; n.op {
	case opLit:
		heads = []string{n.lit}
	case opStar:
		heads = []string{"x"}
	case opDeep:
		heads = []string{"", "x.y"}
	case opDeepDot:
		heads = []string{"", "x."}
	case opDotOrEnd:
		heads = []string{""}
	case opAlt:
		for _, a := range n.alts {
			heads = append(heads, nodeSamples(a, depth+1)...)
		}
	}
	tails := nodeSamples(ns[1:], depth+1)
	var out []string
	for _, h := range heads {
		for _, t := range tails {
			if len(out) >= 64 {
				return out
			}
			out = append(out, h+t)
		}
	}
	return out
}

// FluentBitMatch is router_match: "*" matches any characters, dots
// included; everything else is literal.
func FluentBitMatch(pattern, tag string) bool {
	steps := 0
	return fbMatch(pattern, tag, &steps)
}

func fbMatch(p, t string, steps *int) bool {
	for len(p) > 0 {
		*steps++
		if *steps > maxMatchSteps {
			return false
		}
		if p[0] == '*' {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i < len(t); i++ {
				if t[i] == p[0] && fbMatch(p, t[i:], steps) {
					return true
				}
			}
			return false
		}
		if t == "" || t[0] != p[0] {
			return false
		}
		p, t = p[1:], t[1:]
	}
	return t == ""
}

// FluentBitRegex compiles Match_Regex as Fluent Bit applies it
// (onig_match: anchored at the start of the tag, not at its end).
func FluentBitRegex(re string) (*regexp.Regexp, error) {
	r, err := regexp.Compile(`\A(?:` + re + `)`)
	if err != nil {
		return nil, fmt.Errorf("Match_Regex %q: %w", re, err)
	}
	return r, nil
}

// FluentBitSamples is Samples for a Fluent Bit Match pattern.
func FluentBitSamples(pattern string) []string {
	if !strings.Contains(pattern, "*") {
		return []string{pattern}
	}
	return []string{strings.ReplaceAll(pattern, "*", ""), strings.ReplaceAll(pattern, "*", "x"), strings.ReplaceAll(pattern, "*", "x.y")}
}

func jsonStrings(s string) []string {
	var v []any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil
	}
	out := make([]string, len(v))
	for i, e := range v {
		if str, ok := e.(string); ok {
			out[i] = str
		} else {
			out[i] = fmt.Sprint(e)
		}
	}
	return out
}
