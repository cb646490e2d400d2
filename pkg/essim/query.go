package essim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/internal/jsonenc"
	"github.com/logdoctor/logdoctor/pkg/essim/store"
)

// maxResultWindow is Elasticsearch's index.max_result_window default.
const maxResultWindow = 10000

// searchRequest is the part of the search DSL essim understands.
type searchRequest struct {
	Query          json.RawMessage            `json:"query"`
	Size           *int                       `json:"size"`
	From           int                        `json:"from"`
	Aggs           map[string]json.RawMessage `json:"aggs"`
	Aggregations   map[string]json.RawMessage `json:"aggregations"`
	TrackTotalHits json.RawMessage            `json:"track_total_hits"`
	Source         json.RawMessage            `json:"_source"`
	Sort           json.RawMessage            `json:"sort"`
	Timeout        string                     `json:"timeout"`
}

// matcher tests one parsed document.
type matcher func(d map[string]any) bool

// errQuery is a 400 parsing_exception / x_content_parse_exception.
type errQuery struct{ msg string }

func (e *errQuery) Error() string { return e.msg }

// sourceFilter is the _source parameter: nil keeps the whole source, an
// empty non-nil list drops it (false), otherwise the listed fields (top-level
// names, dotted paths keeping their top-level object, * wildcards).
type sourceFilter []string

func parseSourceFilter(body json.RawMessage, param string) (sourceFilter, error) {
	if param != "" {
		switch param {
		case "true":
			return nil, nil
		case "false":
			return sourceFilter{}, nil
		}
		return sourceFilter(strings.Split(param, ",")), nil
	}
	t := strings.TrimSpace(string(body))
	switch {
	case t == "" || t == "true" || t == "null":
		return nil, nil
	case t == "false":
		return sourceFilter{}, nil
	}
	var list []string
	if json.Unmarshal(body, &list) == nil {
		return sourceFilter(list), nil
	}
	var one string
	if json.Unmarshal(body, &one) == nil {
		return sourceFilter{one}, nil
	}
	var obj struct {
		Includes []string `json:"includes"`
	}
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, fmt.Errorf("[_source] must be a boolean, a string, an array or an object with includes: %v", err)
	}
	if len(obj.Includes) == 0 {
		return nil, nil
	}
	return sourceFilter(obj.Includes), nil
}

// apply returns the filtered source; ok is false when _source is off.
func (f sourceFilter) apply(src []byte) ([]byte, bool) {
	if f == nil {
		return src, true
	}
	if len(f) == 0 {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(src, &m) != nil {
		return src, true
	}
	out := map[string]json.RawMessage{}
	for k, v := range m {
		for _, p := range f {
			top, _, _ := strings.Cut(p, ".")
			if ok, _ := path.Match(top, k); ok {
				out[k] = v
				break
			}
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return src, true
	}
	return b, true
}

func (n *node) hit(ix *store.Index, id string, src []byte, f sourceFilter) json.RawMessage {
	src, withSource := f.apply(src)
	buf := make([]byte, 0, len(src)+96)
	buf = append(buf, `{"_index":`...)
	buf = jsonenc.AppendString(buf, ix.Name())
	if n.s.major < 8 {
		buf = append(buf, `,"_type":"_doc"`...)
	}
	buf = append(buf, `,"_id":`...)
	buf = jsonenc.AppendString(buf, id)
	buf = append(buf, `,"_score":1.0`...)
	if withSource {
		buf = append(buf, `,"_source":`...)
		buf = append(buf, src...)
	}
	return append(buf, '}')
}

func parseDoc(src []byte) map[string]any {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(src))
	d.UseNumber()
	if d.Decode(&m) != nil {
		return nil
	}
	return m
}

// fieldValues finds a field by dotted path, both as a flattened key
// ("a.b") and nested; "x.keyword" falls back to "x" (the default dynamic
// mapping's keyword sub-field). Arrays yield their elements.
func fieldValues(d map[string]any, field string) []any {
	vs := lookup(d, field)
	if vs == nil && strings.HasSuffix(field, ".keyword") {
		vs = lookup(d, strings.TrimSuffix(field, ".keyword"))
	}
	var out []any
	for _, v := range vs {
		if a, ok := v.([]any); ok {
			for _, e := range a {
				if e != nil {
					out = append(out, e)
				}
			}
		} else if v != nil {
			out = append(out, v)
		}
	}
	return out
}

func lookup(d map[string]any, field string) []any {
	if d == nil {
		return nil
	}
	if v, ok := d[field]; ok {
		return []any{v}
	}
	var out []any
	for i := 0; i < len(field); i++ {
		if field[i] != '.' {
			continue
		}
		child := d[field[:i]]
		switch c := child.(type) {
		case map[string]any:
			out = append(out, lookup(c, field[i+1:])...)
		case []any:
			for _, e := range c {
				if m, ok := e.(map[string]any); ok {
					out = append(out, lookup(m, field[i+1:])...)
				}
			}
		}
	}
	return out
}

// valueKey is the comparable form of a field or query value: numbers
// compare by value, strings and booleans by text.
func valueKey(v any) string {
	switch t := v.(type) {
	case string:
		return "s:" + t
	case json.Number:
		if f, err := t.Float64(); err == nil {
			return "n:" + strconv.FormatFloat(f, 'g', -1, 64)
		}
		return "n:" + t.String()
	case float64:
		return "n:" + strconv.FormatFloat(t, 'g', -1, 64)
	case bool:
		return "b:" + strconv.FormatBool(t)
	}
	b, _ := json.Marshal(v)
	return "j:" + string(b)
}

// plain is the form term-level queries compare: a term query's string
// "42" matches a numeric 42 and vice versa, as Elasticsearch coerces the
// query value to the field type.
func plain(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		if f, err := t.Float64(); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return t.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// compiled is a query ready to run: plan narrows the documents to read
// through the index (nil: every document), match decides on a parsed
// document (nil: every candidate matches, because the plan is exact).
type compiled struct {
	match matcher
	plan  plan
}

// matchAll is what an empty query compiles to.
var matchAll = compiled{}

// compileQuery supports match_all, match_none, term, terms, ids, exists,
// match (exact, on keyword-like values) and bool (must, filter, should,
// must_not). term, terms and ids are answered from the term and id
// indices; the rest reads the candidate documents.
func compileQuery(raw json.RawMessage) (compiled, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return matchAll, nil
	}
	var q map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&q); err != nil {
		return compiled{}, &errQuery{"[_na] query malformed: " + err.Error()}
	}
	if len(q) != 1 {
		return compiled{}, &errQuery{"[_na] query malformed, must start with start_object and have exactly one query"}
	}
	for typ, body := range q {
		switch typ {
		case "match_all":
			return matchAll, nil
		case "match_none":
			return compiled{plan: nonePlan{}}, nil
		case "term", "match", "match_phrase":
			field, val, err := singleField(typ, body)
			if err != nil {
				return compiled{}, err
			}
			return compiled{plan: newTermsPlan(field, []any{val})}, nil
		case "terms":
			var m map[string]any
			if err := decodeNumber(body, &m); err != nil {
				return compiled{}, &errQuery{"[terms] query malformed: " + err.Error()}
			}
			var field string
			var vals []any
			for k, v := range m {
				if k == "boost" {
					continue
				}
				a, ok := v.([]any)
				if !ok {
					return compiled{}, &errQuery{"[terms] query does not support [" + k + "] as a non-array"}
				}
				field, vals = k, a
			}
			if field == "" {
				return compiled{}, &errQuery{"[terms] query requires a field"}
			}
			return compiled{plan: newTermsPlan(field, vals)}, nil
		case "ids":
			var ids struct {
				Values []string `json:"values"`
			}
			if err := json.Unmarshal(body, &ids); err != nil {
				return compiled{}, &errQuery{"[ids] query malformed: " + err.Error()}
			}
			return compiled{plan: idsPlan(ids.Values)}, nil
		case "exists":
			var e struct {
				Field string `json:"field"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Field == "" {
				return compiled{}, &errQuery{"[exists] must be provided with a [field]"}
			}
			return compiled{match: func(d map[string]any) bool { return len(fieldValues(d, e.Field)) > 0 }}, nil
		case "bool":
			return compileBool(body)
		default:
			return compiled{}, &errQuery{"unknown query [" + typ + "]"}
		}
	}
	return matchAll, nil
}

// matches runs the query on one parsed document, its plan included (a
// bool clause whose plan did not narrow the candidates checks here).
func (c compiled) matches(d map[string]any) bool {
	if c.plan != nil && !c.plan.matches(d) {
		return false
	}
	return c.match == nil || c.match(d)
}

func decodeNumber(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// singleField reads {"field": value} or {"field": {"value"|"query": value}}.
func singleField(typ string, body json.RawMessage) (string, any, error) {
	var m map[string]any
	if err := decodeNumber(body, &m); err != nil {
		return "", nil, &errQuery{"[" + typ + "] query malformed: " + err.Error()}
	}
	if len(m) != 1 {
		return "", nil, &errQuery{"[" + typ + "] query doesn't support multiple fields"}
	}
	for f, v := range m {
		if o, ok := v.(map[string]any); ok {
			if x, ok := o["value"]; ok {
				return f, x, nil
			}
			if x, ok := o["query"]; ok {
				return f, x, nil
			}
			return "", nil, &errQuery{"[" + typ + "] query malformed, no value for [" + f + "]"}
		}
		return f, v, nil
	}
	return "", nil, &errQuery{"[" + typ + "] query malformed"}
}

// compileBool narrows the candidates with the plans of its must and
// filter clauses (all of them must hold) or, with only should clauses, of
// those (one must hold); every clause is still checked on each
// candidate.
func compileBool(body json.RawMessage) (compiled, error) {
	var b map[string]json.RawMessage
	if err := json.Unmarshal(body, &b); err != nil {
		return compiled{}, &errQuery{"[bool] query malformed: " + err.Error()}
	}
	clauses := func(key string) ([]compiled, error) {
		raw, ok := b[key]
		if !ok {
			return nil, nil
		}
		var list []json.RawMessage
		if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, &errQuery{"[bool] " + key + ": " + err.Error()}
			}
		} else {
			list = []json.RawMessage{raw}
		}
		var cs []compiled
		for _, c := range list {
			q, err := compileQuery(c)
			if err != nil {
				return nil, err
			}
			cs = append(cs, q)
		}
		return cs, nil
	}
	must, err := clauses("must")
	if err != nil {
		return compiled{}, err
	}
	filter, err := clauses("filter")
	if err != nil {
		return compiled{}, err
	}
	should, err := clauses("should")
	if err != nil {
		return compiled{}, err
	}
	mustNot, err := clauses("must_not")
	if err != nil {
		return compiled{}, err
	}
	all := append(must, filter...)
	var p plan
	var and andPlan
	for _, c := range all {
		if c.plan != nil {
			and = append(and, c.plan)
		}
	}
	switch {
	case len(and) > 0:
		p = and
	case len(all) == 0 && len(should) > 0:
		var or orPlan
		for _, c := range should {
			if c.plan == nil {
				or = nil
				break
			}
			or = append(or, c.plan)
		}
		if or != nil {
			p = or
		}
	}
	return compiled{plan: p, match: func(d map[string]any) bool {
		for _, c := range all {
			if !c.matches(d) {
				return false
			}
		}
		for _, c := range mustNot {
			if c.matches(d) {
				return false
			}
		}
		if len(should) > 0 && len(all) == 0 {
			for _, c := range should {
				if c.matches(d) {
					return true
				}
			}
			return false
		}
		return true
	}}, nil
}

// uriQuery handles ?q=* and ?q=field:value.
func uriQuery(q string) matcher {
	if q == "*" || q == "*:*" {
		return nil
	}
	field, val, ok := strings.Cut(q, ":")
	if !ok {
		return func(d map[string]any) bool {
			for _, v := range d {
				if plain(v) == q {
					return true
				}
			}
			return false
		}
	}
	val = strings.Trim(val, `"`)
	return func(d map[string]any) bool {
		for _, v := range fieldValues(d, field) {
			if plain(v) == val {
				return true
			}
		}
		return false
	}
}
