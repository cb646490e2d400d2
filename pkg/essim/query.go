package essim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/internal/jsonenc"
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

// search serves _search and _count.
func (n *node) search(w http.ResponseWriter, r *http.Request, pattern string, count bool) {
	body, err := n.readBody(r)
	if err != nil {
		n.bodyError(w, r, err)
		return
	}
	var req searchRequest
	if len(bytes.TrimSpace(body)) > 0 {
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&req); err != nil {
			n.esError(w, r, http.StatusBadRequest, "x_content_parse_exception", "[1:1] request body: "+err.Error(), nil)
			return
		}
	}
	q := r.URL.Query()
	if v := q.Get("size"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 0 {
			n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception", "Failed to parse int parameter [size] with value ["+v+"]", nil)
			return
		}
		req.Size = &k
	}
	if v := q.Get("from"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 0 {
			n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception", "Failed to parse int parameter [from] with value ["+v+"]", nil)
			return
		}
		req.From = k
	}
	var m matcher
	if qs := q.Get("q"); qs != "" {
		m = uriQuery(qs)
	} else {
		m, err = compileQuery(req.Query)
		if err != nil {
			n.esError(w, r, http.StatusBadRequest, "parsing_exception", err.Error(), nil)
			return
		}
	}
	size := 10
	if req.Size != nil {
		size = *req.Size
	}
	if size < 0 || req.From < 0 {
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception",
			fmt.Sprintf("[size] and [from] parameters cannot be negative, found [%d] and [%d]", size, req.From), nil)
		return
	}
	if !count && req.From+size > maxResultWindow {
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception",
			fmt.Sprintf("Result window is too large, from + size must be less than or equal to: [%d] but was [%d]. See the scroll api for a more efficient way to request large data sets.", maxResultWindow, req.From+size), nil)
		return
	}
	aggs := req.Aggs
	if aggs == nil {
		aggs = req.Aggregations
	}
	type termsAgg struct {
		name        string
		field       string
		size        int
		minDocCount int
		counts      map[string]*bucket
	}
	var tas []*termsAgg
	for name, raw := range aggs {
		var a struct {
			Terms *struct {
				Field       string `json:"field"`
				Size        *int   `json:"size"`
				MinDocCount *int   `json:"min_doc_count"`
			} `json:"terms"`
		}
		if err := json.Unmarshal(raw, &a); err != nil || a.Terms == nil || a.Terms.Field == "" {
			n.esError(w, r, http.StatusBadRequest, "parsing_exception", "essim: aggregation ["+name+"]: only terms with a field is supported", nil)
			return
		}
		ta := &termsAgg{name: name, field: a.Terms.Field, size: 10, minDocCount: 1, counts: map[string]*bucket{}}
		if a.Terms.Size != nil {
			ta.size = *a.Terms.Size
		}
		if a.Terms.MinDocCount != nil {
			ta.minDocCount = *a.Terms.MinDocCount
		}
		if ta.size < 1 || ta.size > 65536 || ta.minDocCount < 0 {
			n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception",
				fmt.Sprintf("[size] must be between 1 and 65536 (search.max_buckets) and [min_doc_count] not negative in [%s]", name), nil)
			return
		}
		tas = append(tas, ta)
	}

	srcFilter, err := parseSourceFilter(req.Source, q.Get("_source"))
	if err != nil {
		n.esError(w, r, http.StatusBadRequest, "x_content_parse_exception", err.Error(), nil)
		return
	}
	st := n.s.store
	st.mu.RLock()
	ixs, rerr := st.resolveRequestLocked(pattern, q)
	var nf *errIndexNotFound
	if errors.As(rerr, &nf) {
		st.mu.RUnlock()
		n.indexNotFound(w, r, nf.name)
		return
	}
	total := 0
	var hits []json.RawMessage
	needParse := m != nil || len(tas) > 0
	var readErr error
scan:
	for _, ix := range ixs {
		for _, c := range ix.docs {
			for i := range c {
				d := &c[i]
				if d.deleted() {
					continue
				}
				var parsed map[string]any
				var id string
				var src []byte
				if needParse || (!count && total >= req.From && len(hits) < size) {
					var err error
					if id, src, err = st.docLocked(d); err != nil {
						readErr = err
						break scan
					}
				}
				if needParse {
					parsed = parseDoc(src)
					if parsed == nil {
						parsed = map[string]any{}
					}
					parsed["\x00id"] = id
					if m != nil && !m(parsed) {
						continue
					}
				}
				total++
				for _, ta := range tas {
					for _, v := range fieldValues(parsed, ta.field) {
						k := valueKey(v)
						b := ta.counts[k]
						if b == nil {
							b = &bucket{key: v}
							ta.counts[k] = b
						}
						b.count++
					}
				}
				if !count && total > req.From && len(hits) < size {
					hits = append(hits, n.hit(ix, id, src, srcFilter))
				}
			}
		}
	}
	st.mu.RUnlock()
	if readErr != nil {
		n.esError(w, r, http.StatusInternalServerError, "exception", readErr.Error(), nil)
		return
	}

	shards := map[string]any{"total": len(ixs), "successful": len(ixs), "skipped": 0, "failed": 0}
	if count {
		n.respondJSON(w, r, http.StatusOK, map[string]any{"count": total, "_shards": shards})
		return
	}
	totalObj := map[string]any{"value": total, "relation": "eq"}
	if tth := strings.TrimSpace(string(req.TrackTotalHits)); tth != "true" && total > maxResultWindow {
		totalObj = map[string]any{"value": maxResultWindow, "relation": "gte"}
	}
	var maxScore any
	if len(hits) > 0 {
		maxScore = 1.0
	}
	if hits == nil {
		hits = []json.RawMessage{}
	}
	out := map[string]any{
		"took": 1, "timed_out": false, "_shards": shards,
		"hits": map[string]any{"total": totalObj, "max_score": maxScore, "hits": hits},
	}
	if q.Get("rest_total_hits_as_int") == "true" { // the pre-7.0 shape some clients still ask for
		out["hits"].(map[string]any)["total"] = total
	}
	if len(tas) > 0 {
		aggOut := map[string]any{}
		for _, ta := range tas {
			bs := make([]*bucket, 0, len(ta.counts))
			for _, b := range ta.counts {
				if b.count >= ta.minDocCount {
					bs = append(bs, b)
				}
			}
			sort.Slice(bs, func(i, j int) bool {
				if bs[i].count != bs[j].count {
					return bs[i].count > bs[j].count
				}
				return valueKey(bs[i].key) < valueKey(bs[j].key)
			})
			other := 0
			if len(bs) > ta.size {
				for _, b := range bs[ta.size:] {
					other += b.count
				}
				bs = bs[:ta.size]
			}
			list := make([]map[string]any, len(bs))
			for i, b := range bs {
				list[i] = map[string]any{"key": b.key, "doc_count": b.count}
			}
			aggOut[ta.name] = map[string]any{"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": list}
		}
		out["aggregations"] = aggOut
	}
	n.respondJSON(w, r, http.StatusOK, out)
}

type bucket struct {
	key   any
	count int
}

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

func (n *node) hit(ix *index, id string, src []byte, f sourceFilter) json.RawMessage {
	src, withSource := f.apply(src)
	buf := make([]byte, 0, len(src)+96)
	buf = append(buf, `{"_index":`...)
	buf = jsonenc.AppendString(buf, ix.name)
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

// termKey lets a term query's string "42" match a numeric 42 and vice
// versa, as Elasticsearch coerces the query value to the field type.
func termMatches(fieldVal, queryVal any) bool {
	if valueKey(fieldVal) == valueKey(queryVal) {
		return true
	}
	return plain(fieldVal) == plain(queryVal)
}

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

// compileQuery supports match_all, match_none, term, terms, ids, exists,
// match (exact, on keyword-like values) and bool (must, filter, should,
// must_not). A nil matcher matches everything.
func compileQuery(raw json.RawMessage) (matcher, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var q map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&q); err != nil {
		return nil, &errQuery{"[_na] query malformed: " + err.Error()}
	}
	if len(q) != 1 {
		return nil, &errQuery{"[_na] query malformed, must start with start_object and have exactly one query"}
	}
	for typ, body := range q {
		switch typ {
		case "match_all":
			return func(map[string]any) bool { return true }, nil
		case "match_none":
			return func(map[string]any) bool { return false }, nil
		case "term", "match", "match_phrase":
			field, val, err := singleField(typ, body)
			if err != nil {
				return nil, err
			}
			return func(d map[string]any) bool {
				for _, v := range fieldValues(d, field) {
					if termMatches(v, val) {
						return true
					}
				}
				return false
			}, nil
		case "terms":
			var m map[string]any
			if err := decodeNumber(body, &m); err != nil {
				return nil, &errQuery{"[terms] query malformed: " + err.Error()}
			}
			var field string
			var vals []any
			for k, v := range m {
				if k == "boost" {
					continue
				}
				a, ok := v.([]any)
				if !ok {
					return nil, &errQuery{"[terms] query does not support [" + k + "] as a non-array"}
				}
				field, vals = k, a
			}
			if field == "" {
				return nil, &errQuery{"[terms] query requires a field"}
			}
			return func(d map[string]any) bool {
				for _, v := range fieldValues(d, field) {
					for _, q := range vals {
						if termMatches(v, q) {
							return true
						}
					}
				}
				return false
			}, nil
		case "ids":
			var ids struct {
				Values []string `json:"values"`
			}
			if err := json.Unmarshal(body, &ids); err != nil {
				return nil, &errQuery{"[ids] query malformed: " + err.Error()}
			}
			// Matched against the _id injected by the caller under "_id".
			set := map[string]bool{}
			for _, v := range ids.Values {
				set[v] = true
			}
			return func(d map[string]any) bool { id, _ := d["\x00id"].(string); return set[id] }, nil
		case "exists":
			var e struct {
				Field string `json:"field"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Field == "" {
				return nil, &errQuery{"[exists] must be provided with a [field]"}
			}
			return func(d map[string]any) bool { return len(fieldValues(d, e.Field)) > 0 }, nil
		case "bool":
			return compileBool(body)
		default:
			return nil, &errQuery{"unknown query [" + typ + "]"}
		}
	}
	return nil, nil
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

func compileBool(body json.RawMessage) (matcher, error) {
	var b map[string]json.RawMessage
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, &errQuery{"[bool] query malformed: " + err.Error()}
	}
	clauses := func(key string) ([]matcher, error) {
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
		var ms []matcher
		for _, c := range list {
			m, err := compileQuery(c)
			if err != nil {
				return nil, err
			}
			if m == nil {
				m = func(map[string]any) bool { return true }
			}
			ms = append(ms, m)
		}
		return ms, nil
	}
	must, err := clauses("must")
	if err != nil {
		return nil, err
	}
	filter, err := clauses("filter")
	if err != nil {
		return nil, err
	}
	should, err := clauses("should")
	if err != nil {
		return nil, err
	}
	mustNot, err := clauses("must_not")
	if err != nil {
		return nil, err
	}
	all := append(must, filter...)
	return func(d map[string]any) bool {
		for _, m := range all {
			if !m(d) {
				return false
			}
		}
		for _, m := range mustNot {
			if m(d) {
				return false
			}
		}
		if len(should) > 0 && len(all) == 0 {
			for _, m := range should {
				if m(d) {
					return true
				}
			}
			return false
		}
		return true
	}, nil
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
