package essim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// maxBuckets is Elasticsearch's search.max_buckets default.
const maxBuckets = 65536

// aggregation collects parsed documents and renders its answer.
type aggregation interface {
	collect(d map[string]any)
	result() map[string]any
}

// namedAgg is one entry of the request's aggs.
type namedAgg struct {
	name string
	agg  aggregation
}

// parseAggs reads the aggregations essim supports: terms (field, size,
// min_doc_count) and composite (terms sources, size, after), without
// sub-aggregations. Errors are 400s.
func parseAggs(aggs map[string]json.RawMessage) ([]namedAgg, error) {
	names := make([]string, 0, len(aggs))
	for name := range aggs {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []namedAgg
	for _, name := range names {
		var a struct {
			Terms     json.RawMessage `json:"terms"`
			Composite json.RawMessage `json:"composite"`
		}
		d := json.NewDecoder(bytes.NewReader(aggs[name]))
		d.UseNumber()
		if err := d.Decode(&a); err != nil {
			return nil, &errQuery{"[" + name + "]: " + err.Error()}
		}
		var agg aggregation
		var err error
		switch {
		case a.Terms != nil:
			agg, err = parseTermsAgg(name, a.Terms)
		case a.Composite != nil:
			agg, err = parseCompositeAgg(name, a.Composite)
		default:
			err = &errQuery{"essim: aggregation [" + name + "]: only terms and composite are supported"}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, namedAgg{name, agg})
	}
	return out, nil
}

type bucket struct {
	key   any
	count int
}

// termsAgg is the terms aggregation: the size most frequent values.
type termsAgg struct {
	name        string
	field       string
	size        int
	minDocCount int
	counts      map[string]*bucket
}

func parseTermsAgg(name string, raw json.RawMessage) (*termsAgg, error) {
	var t struct {
		Field       string `json:"field"`
		Size        *int   `json:"size"`
		MinDocCount *int   `json:"min_doc_count"`
	}
	if err := json.Unmarshal(raw, &t); err != nil || t.Field == "" {
		return nil, &errQuery{"essim: aggregation [" + name + "]: terms needs a field"}
	}
	ta := &termsAgg{name: name, field: t.Field, size: 10, minDocCount: 1, counts: map[string]*bucket{}}
	if t.Size != nil {
		ta.size = *t.Size
	}
	if t.MinDocCount != nil {
		ta.minDocCount = *t.MinDocCount
	}
	if ta.size < 1 || ta.size > maxBuckets || ta.minDocCount < 0 {
		return nil, &errQuery{fmt.Sprintf("[size] must be between 1 and %d (search.max_buckets) and [min_doc_count] not negative in [%s]", maxBuckets, name)}
	}
	return ta, nil
}

func (ta *termsAgg) collect(d map[string]any) {
	for _, v := range fieldValues(d, ta.field) {
		k := valueKey(v)
		b := ta.counts[k]
		if b == nil {
			b = &bucket{key: v}
			ta.counts[k] = b
		}
		b.count++
	}
}

func (ta *termsAgg) result() map[string]any {
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
	return map[string]any{"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": list}
}

// compositeAgg is the composite aggregation with terms sources: every
// combination of the sources' values is a bucket, buckets come in key
// order, size at a time, and after (the previous page's after_key) pages
// through all of them. It is how a client lists every value of a field,
// which a terms aggregation cannot do past search.max_buckets.
type compositeAgg struct {
	name    string
	sources []compositeSource
	size    int
	after   []any // nil: from the start
	buckets map[string]*compositeBucket
}

type compositeSource struct {
	name          string
	field         string
	desc          bool
	missingBucket bool
}

type compositeBucket struct {
	key   []any // one value per source; nil for a missing value
	sort  []sortValue
	count int
}

func parseCompositeAgg(name string, raw json.RawMessage) (*compositeAgg, error) {
	var c struct {
		Sources []map[string]json.RawMessage `json:"sources"`
		Size    *int                         `json:"size"`
		After   map[string]any               `json:"after"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		return nil, &errQuery{"[composite] failed to parse field [" + name + "]: " + err.Error()}
	}
	if len(c.Sources) == 0 {
		return nil, &errQuery{"Required [sources]"}
	}
	ca := &compositeAgg{name: name, size: 10, buckets: map[string]*compositeBucket{}}
	if c.Size != nil {
		ca.size = *c.Size
	}
	if ca.size < 1 || ca.size > maxBuckets {
		return nil, &errQuery{fmt.Sprintf("[size] must be between 1 and %d (search.max_buckets) in [%s]", maxBuckets, name)}
	}
	seen := map[string]bool{}
	for _, src := range c.Sources {
		if len(src) != 1 {
			return nil, &errQuery{"[sources] each source must have exactly one name in [" + name + "]"}
		}
		for sname, body := range src {
			var s struct {
				Terms *struct {
					Field         string `json:"field"`
					Order         string `json:"order"`
					MissingBucket bool   `json:"missing_bucket"`
				} `json:"terms"`
			}
			if err := json.Unmarshal(body, &s); err != nil || s.Terms == nil || s.Terms.Field == "" {
				return nil, &errQuery{"essim: composite source [" + sname + "]: only terms with a field is supported"}
			}
			if seen[sname] {
				return nil, &errQuery{"Composite source names must be unique, found duplicates: [" + sname + "]"}
			}
			seen[sname] = true
			order := strings.ToLower(s.Terms.Order)
			if order != "" && order != "asc" && order != "desc" {
				return nil, &errQuery{"Unknown order [" + s.Terms.Order + "]"}
			}
			ca.sources = append(ca.sources, compositeSource{name: sname, field: s.Terms.Field, desc: order == "desc", missingBucket: s.Terms.MissingBucket})
		}
	}
	if c.After != nil {
		if len(c.After) != len(ca.sources) {
			return nil, &errQuery{fmt.Sprintf("[after] has %d value(s) but [sources] has %d", len(c.After), len(ca.sources))}
		}
		for _, s := range ca.sources {
			v, ok := c.After[s.name]
			if !ok {
				return nil, &errQuery{"Missing value for [after." + s.name + "]"}
			}
			if v == nil && !s.missingBucket {
				return nil, &errQuery{"Invalid null value in [after." + s.name + "] for a source without missing_bucket"}
			}
			ca.after = append(ca.after, v)
		}
	}
	return ca, nil
}

func (ca *compositeAgg) collect(d map[string]any) {
	if len(ca.sources) == 1 && !ca.sources[0].missingBucket {
		// The common case (one field, listing its values) without
		// building combinations.
		vals := fieldValues(d, ca.sources[0].field)
		for i, v := range vals {
			k := valueKey(v)
			if i > 0 && slices.ContainsFunc(vals[:i], func(w any) bool { return valueKey(w) == k }) {
				continue
			}
			b := ca.buckets[k]
			if b == nil {
				b = &compositeBucket{key: []any{v}}
				ca.buckets[k] = b
			}
			b.count++
		}
		return
	}
	// The combinations of every source's values (a multi-valued field
	// gives a document to several buckets, as in Elasticsearch).
	combos := [][]any{nil}
	for _, s := range ca.sources {
		vals := fieldValues(d, s.field)
		if len(vals) == 0 {
			if !s.missingBucket {
				return
			}
			vals = []any{nil}
		}
		seen := map[string]bool{}
		var next [][]any
		for _, v := range vals {
			k := valueKey(v)
			if v != nil && seen[k] {
				continue
			}
			seen[k] = true
			for _, c := range combos {
				next = append(next, append(append([]any(nil), c...), v))
			}
		}
		combos = next
	}
	for _, key := range combos {
		var kb strings.Builder
		for _, v := range key {
			if v == nil {
				kb.WriteString("\x00missing")
			} else {
				kb.WriteString(valueKey(v))
			}
			kb.WriteByte(0xff)
		}
		b := ca.buckets[kb.String()]
		if b == nil {
			b = &compositeBucket{key: key}
			ca.buckets[kb.String()] = b
		}
		b.count++
	}
}

// compareKeys orders composite keys source by source, each ascending or
// descending; a missing value sorts first ascending, last descending.
func (ca *compositeAgg) compareKeys(a, b []sortValue) int {
	for i, s := range ca.sources {
		c := a[i].compare(b[i])
		if s.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// sortValue is a field value ready to compare the way Elasticsearch
// sorts one field: numbers by value, strings by their bytes, false before
// true. Values of different types (impossible in one Elasticsearch field)
// sort by type: missing, numbers, strings, booleans, anything else.
type sortValue struct {
	rank int
	num  float64
	str  string
}

func toSortValue(v any) sortValue {
	switch x := v.(type) {
	case nil:
		return sortValue{rank: 0}
	case json.Number:
		f, _ := x.Float64()
		return sortValue{rank: 1, num: f}
	case string:
		return sortValue{rank: 2, str: x}
	case bool:
		if x {
			return sortValue{rank: 3, num: 1}
		}
		return sortValue{rank: 3}
	}
	return sortValue{rank: 4, str: valueKey(v)}
}

func (a sortValue) compare(b sortValue) int {
	switch {
	case a.rank != b.rank:
		return a.rank - b.rank
	case a.num < b.num:
		return -1
	case a.num > b.num:
		return 1
	}
	return strings.Compare(a.str, b.str)
}

func sortValues(key []any) []sortValue {
	out := make([]sortValue, len(key))
	for i, v := range key {
		out[i] = toSortValue(v)
	}
	return out
}

func (ca *compositeAgg) result() map[string]any {
	var after []sortValue
	if ca.after != nil {
		after = sortValues(ca.after)
	}
	bs := make([]*compositeBucket, 0, len(ca.buckets))
	for _, b := range ca.buckets {
		b.sort = sortValues(b.key)
		if after == nil || ca.compareKeys(b.sort, after) > 0 {
			bs = append(bs, b)
		}
	}
	sort.Slice(bs, func(i, j int) bool { return ca.compareKeys(bs[i].sort, bs[j].sort) < 0 })
	if len(bs) > ca.size {
		bs = bs[:ca.size]
	}
	keyObj := func(key []any) map[string]any {
		m := make(map[string]any, len(key))
		for i, s := range ca.sources {
			m[s.name] = key[i]
		}
		return m
	}
	list := make([]map[string]any, len(bs))
	for i, b := range bs {
		list[i] = map[string]any{"key": keyObj(b.key), "doc_count": b.count}
	}
	out := map[string]any{"buckets": list}
	// Elasticsearch leaves after_key out once a page has no bucket: that
	// is how a client knows it has seen them all.
	if len(bs) > 0 {
		out["after_key"] = keyObj(bs[len(bs)-1].key)
	}
	return out
}
