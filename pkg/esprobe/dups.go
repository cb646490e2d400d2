package esprobe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/internal/clip"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// DupsOptions selects what es dups counts. Connection settings (URL,
// credentials, TLS) come from Options.
type DupsOptions struct {
	Index string // index name or pattern
	// Field counts copies per value of one keyword field with a terms
	// aggregation (e.g. a hash or request id).
	Field string
	// Fields fingerprints these fields' values over a bounded scan; with
	// neither Field nor Fields the whole _source is fingerprinted.
	Fields []string
	// MaxDocs bounds the fingerprint scan and the number of duplicated
	// keys fetched by the aggregation (10,000 by default: the
	// index.max_result_window).
	MaxDocs  int
	Examples int // examples reported, 5 by default
}

// DupExample is one duplicated event.
type DupExample struct {
	Key    string   `json:"key"`
	Copies int      `json:"copies"`
	IDs    []string `json:"ids,omitempty"`
}

// DupsResult is es dups' data.
type DupsResult struct {
	Index        string       `json:"index"`
	Method       string       `json:"method"` // terms or fingerprint
	Fields       []string     `json:"fields"`
	TotalDocs    int          `json:"total_docs"`
	Scanned      int          `json:"scanned"`
	Duplicated   int          `json:"duplicated_events"` // distinct events with more than one copy
	ExtraCopies  int          `json:"extra_copies"`      // documents beyond the first copy
	DupRatio     float64      `json:"duplicate_ratio"`   // extra copies / scanned
	Truncated    bool         `json:"truncated"`
	Examples     []DupExample `json:"examples"`
	DurationMS   int64        `json:"duration_ms"`
	ResponseTook int64        `json:"took_ms"`
}

// Sections is the table view.
func (r *DupsResult) Sections() []report.Section {
	s := report.Section{Title: "Duplicates", Header: []string{"INDEX", "METHOD", "FIELDS", "TOTAL", "SCANNED", "DUPLICATED", "EXTRA COPIES", "RATIO"},
		Rows: [][]string{{r.Index, r.Method, strings.Join(r.Fields, ","), strconv.Itoa(r.TotalDocs), strconv.Itoa(r.Scanned),
			strconv.Itoa(r.Duplicated), strconv.Itoa(r.ExtraCopies), fmt.Sprintf("%.4f", r.DupRatio)}}}
	ex := report.Section{Title: "Examples", Header: []string{"KEY", "COPIES", "IDS"}}
	for _, e := range r.Examples {
		ex.Rows = append(ex.Rows, []string{e.Key, strconv.Itoa(e.Copies), strings.Join(e.IDs, ",")})
	}
	return []report.Section{s, ex}
}

// Dups counts duplicated events in an index.
func Dups(ctx context.Context, o Options, d DupsOptions) (*DupsResult, []report.Finding, error) {
	o.defaults()
	if len(o.URLs) != 1 {
		return nil, nil, errors.New("es dups takes exactly one URL")
	}
	if d.Index == "" {
		return nil, nil, errors.New("--index is required")
	}
	if d.Field != "" && len(d.Fields) > 0 {
		return nil, nil, errors.New("--field and --fields are exclusive")
	}
	if d.MaxDocs <= 0 {
		d.MaxDocs = 10000
	}
	if d.MaxDocs > 10000 {
		return nil, nil, fmt.Errorf("--max-docs %d: at most 10000 (index.max_result_window)", d.MaxDocs)
	}
	if d.Examples <= 0 {
		d.Examples = 5
	}
	base, err := baseURL(o.URLs[0], &o)
	if err != nil {
		return nil, nil, err
	}
	cl := newClient(&o, newDialer(&o), tlsConfig(&o), 1)
	defer cl.close()
	start := o.Now()
	res := &DupsResult{Index: d.Index, Examples: []DupExample{}}
	ix := "/" + url.PathEscape(d.Index)

	var cnt struct {
		Count int `json:"count"`
	}
	if _, err := cl.getJSON(ctx, base, ix+"/_count", &cnt); err != nil {
		return nil, nil, fmt.Errorf("count %s: %w", d.Index, redactErr(err))
	}
	res.TotalDocs = cnt.Count
	if d.Field != "" {
		res.Method, res.Fields = "terms", []string{d.Field}
		err = dupsTerms(ctx, cl, base, ix, d, res)
	} else {
		res.Method, res.Fields = "fingerprint", d.Fields
		if len(d.Fields) == 0 {
			res.Fields = []string{"_source"}
		}
		err = dupsScan(ctx, cl, base, ix, d, res)
	}
	if err != nil {
		return nil, nil, err
	}
	if res.Scanned > 0 {
		res.DupRatio = float64(res.ExtraCopies) / float64(res.Scanned)
	}
	res.DurationMS = o.Now().Sub(start).Milliseconds()
	var fs []report.Finding
	if res.Duplicated > 0 {
		sev := report.Warning
		if res.DupRatio >= 0.01 {
			sev = report.Critical
		}
		keys := make([]string, 0, len(res.Examples))
		for _, e := range res.Examples {
			keys = append(keys, fmt.Sprintf("%s x%d", e.Key, e.Copies))
		}
		fs = append(fs, report.Finding{ID: FindingDuplicates, Severity: sev,
			Summary: fmt.Sprintf("%d events in %s have more than one copy (%d extra documents, %.2f%% of %d checked, by %s of %s)",
				res.Duplicated, d.Index, res.ExtraCopies, 100*res.DupRatio, res.Scanned, res.Method, strings.Join(res.Fields, ",")),
			Evidence: map[string]any{"index": d.Index, "duplicated_events": res.Duplicated, "extra_copies": res.ExtraCopies,
				"scanned": res.Scanned, "method": res.Method, "fields": res.Fields, "examples": keys},
			Remedy: remedyDuplicates})
	}
	return res, fs, nil
}

func redactErr(err error) error { return errors.New(report.Redact(err.Error())) }

func postJSON(ctx context.Context, cl *client, base, path string, body any, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	r, err := cl.do(ctx, http.MethodPost, base+path, b, "application/json")
	if err != nil {
		return redactErr(err)
	}
	if r.Status != http.StatusOK {
		return &statusError{Path: path, Status: r.Status, Type: errorType(r.Body)}
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: decoding answer: %w", path, err)
	}
	return nil
}

// dupsTerms asks for every value of the field that occurs twice or more.
func dupsTerms(ctx context.Context, cl *client, base, ix string, d DupsOptions, res *DupsResult) error {
	var ans struct {
		Took int64 `json:"took"`
		Aggs struct {
			Dups struct {
				Other   int `json:"sum_other_doc_count"`
				Buckets []struct {
					Key      any `json:"key"`
					DocCount int `json:"doc_count"`
				} `json:"buckets"`
			} `json:"dups"`
		} `json:"aggregations"`
	}
	q := map[string]any{"size": 0, "track_total_hits": true,
		"aggs": map[string]any{"dups": map[string]any{"terms": map[string]any{"field": d.Field, "min_doc_count": 2, "size": d.MaxDocs}}}}
	if err := postJSON(ctx, cl, base, ix+"/_search", q, &ans); err != nil {
		var se *statusError
		if errors.As(err, &se) && se.Status == http.StatusBadRequest && !strings.HasSuffix(d.Field, ".keyword") {
			return fmt.Errorf("%w (a text field cannot be aggregated: try --field %s.keyword)", err, d.Field)
		}
		return err
	}
	res.ResponseTook = ans.Took
	res.Scanned = res.TotalDocs
	res.Truncated = ans.Aggs.Dups.Other > 0
	for _, b := range ans.Aggs.Dups.Buckets {
		res.Duplicated++
		res.ExtraCopies += b.DocCount - 1
		if len(res.Examples) < d.Examples {
			key := fmt.Sprint(b.Key)
			ex := DupExample{Key: key, Copies: b.DocCount}
			var hits struct {
				Hits struct {
					Hits []struct {
						ID string `json:"_id"`
					} `json:"hits"`
				} `json:"hits"`
			}
			hq := map[string]any{"size": 10, "_source": false, "query": map[string]any{"term": map[string]any{d.Field: b.Key}}}
			if postJSON(ctx, cl, base, ix+"/_search", hq, &hits) == nil {
				for _, h := range hits.Hits.Hits {
					ex.IDs = append(ex.IDs, h.ID)
				}
			}
			res.Examples = append(res.Examples, ex)
		}
	}
	return nil
}

// dupsScan fingerprints up to MaxDocs documents.
func dupsScan(ctx context.Context, cl *client, base, ix string, d DupsOptions, res *DupsResult) error {
	var ans struct {
		Took int64 `json:"took"`
		Hits struct {
			Hits []struct {
				ID     string                     `json:"_id"`
				Source map[string]json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	q := map[string]any{"size": d.MaxDocs, "query": map[string]any{"match_all": map[string]any{}}, "sort": []any{"_doc"}}
	if err := postJSON(ctx, cl, base, ix+"/_search", q, &ans); err != nil {
		return err
	}
	res.ResponseTook = ans.Took
	res.Scanned = len(ans.Hits.Hits)
	res.Truncated = res.TotalDocs > res.Scanned
	type group struct {
		key string
		ids []string
	}
	groups := map[string]*group{}
	var order []*group
	for _, h := range ans.Hits.Hits {
		fp, label := fingerprint(h.Source, d.Fields)
		g := groups[fp]
		if g == nil {
			g = &group{key: label}
			groups[fp] = g
			order = append(order, g)
		}
		g.ids = append(g.ids, h.ID)
	}
	var dup []*group
	for _, g := range order {
		if len(g.ids) > 1 {
			dup = append(dup, g)
			res.Duplicated++
			res.ExtraCopies += len(g.ids) - 1
		}
	}
	sort.SliceStable(dup, func(i, j int) bool { return len(dup[i].ids) > len(dup[j].ids) })
	for _, g := range dup {
		if len(res.Examples) >= d.Examples {
			break
		}
		ids := g.ids
		if len(ids) > 10 {
			ids = ids[:10]
		}
		res.Examples = append(res.Examples, DupExample{Key: g.key, Copies: len(g.ids), IDs: ids})
	}
	return nil
}

// fingerprint hashes the chosen fields' values (canonical JSON), or the
// whole source; label is a short readable form for examples.
func fingerprint(src map[string]json.RawMessage, fields []string) (string, string) {
	h := sha256.New()
	var label []string
	if len(fields) == 0 {
		keys := make([]string, 0, len(src))
		for k := range src {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			h.Write([]byte(k))
			h.Write([]byte{0})
			h.Write(canonical(src[k]))
			h.Write([]byte{0})
		}
	} else {
		for _, f := range fields {
			v := fieldRaw(src, f)
			h.Write(canonical(v))
			h.Write([]byte{0})
			label = append(label, f+"="+clip.String(string(v), 60))
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if len(label) == 0 {
		return sum, "sha256:" + sum[:16]
	}
	return sum, strings.Join(label, " ")
}

// fieldRaw finds a dotted field, flattened or nested.
func fieldRaw(src map[string]json.RawMessage, f string) json.RawMessage {
	if v, ok := src[f]; ok {
		return v
	}
	for i := 0; i < len(f); i++ {
		if f[i] != '.' {
			continue
		}
		var child map[string]json.RawMessage
		if raw, ok := src[f[:i]]; ok && json.Unmarshal(raw, &child) == nil {
			if v := fieldRaw(child, f[i+1:]); v != nil {
				return v
			}
		}
	}
	return nil
}

// canonical re-encodes a JSON value with sorted keys so key order does not
// change the fingerprint.
func canonical(raw json.RawMessage) []byte {
	if raw == nil {
		return []byte("null")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return raw
	}
	b, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return raw
	}
	return b
}
