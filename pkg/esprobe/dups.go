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
	"time"

	"github.com/logdoctor/logdoctor/internal/clip"
	"github.com/logdoctor/logdoctor/pkg/esclient"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// DefaultDupsMaxDocs is how many documents es dups reads at most unless
// told otherwise. The fingerprint method keeps about 60 bytes per
// distinct event, so a million documents cost some 60 MB.
const DefaultDupsMaxDocs = 1_000_000

// DefaultDupsExamples is how many duplicated events es dups shows.
const DefaultDupsExamples = 5

// How es dups reads a whole index, past the 10,000 hits of
// index.max_result_window: the terms method pages a composite aggregation
// by after_key, the fingerprint method scrolls. Both work on
// Elasticsearch 7 and 8 and OpenSearch 1 and 2.
const (
	compositePage   = 10000 // buckets per composite page
	scrollPage      = 1000  // documents per scroll page
	scrollKeepAlive = "2m"  // between two pages, not for the whole scan
	// dupsMaxBody caps one page's answer: 1,000 documents of up to
	// 64 KiB each.
	dupsMaxBody = 64 << 20
)

// DupsOptions selects what es dups counts. Connection settings (URL,
// credentials, TLS) come from Options.
type DupsOptions struct {
	Index string // index name or pattern
	// Field counts copies per value of one keyword field with a composite
	// aggregation (e.g. a hash or request id).
	Field string
	// Fields fingerprints these fields' values over a scroll through the
	// index; with neither Field nor Fields the whole _source is
	// fingerprinted.
	Fields []string
	// MaxDocs bounds the documents read (DefaultDupsMaxDocs when 0); an
	// index with more is read in part and reported as es.dups_incomplete.
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
	Index       string   `json:"index"`
	Method      string   `json:"method"` // terms or fingerprint
	Fields      []string `json:"fields"`
	TotalDocs   int      `json:"total_docs"`
	Scanned     int      `json:"scanned"`           // documents read (terms: documents holding the field)
	Duplicated  int      `json:"duplicated_events"` // distinct events with more than one copy
	ExtraCopies int      `json:"extra_copies"`      // documents beyond the first copy
	DupRatio    float64  `json:"duplicate_ratio"`   // extra copies / scanned
	// Truncated: the scan stopped before the end of the index (at
	// --max-docs, or on an error), with the reason.
	Truncated       bool         `json:"truncated"`
	TruncatedReason string       `json:"truncated_reason,omitempty"`
	MaxDocs         int          `json:"max_docs"`
	Pages           int          `json:"pages"` // composite or scroll pages read
	Examples        []DupExample `json:"examples"`
	DurationMS      int64        `json:"duration_ms"`
	ResponseTook    int64        `json:"took_ms"` // sum of the pages' took
}

// Sections is the table view.
func (r *DupsResult) Sections() []report.Section {
	s := report.Section{Title: "Duplicates", Header: []string{"INDEX", "METHOD", "FIELDS", "TOTAL", "SCANNED", "DUPLICATED", "EXTRA COPIES", "RATIO", "COMPLETE"},
		Rows: [][]string{{r.Index, r.Method, strings.Join(r.Fields, ","), strconv.Itoa(r.TotalDocs), strconv.Itoa(r.Scanned),
			strconv.Itoa(r.Duplicated), strconv.Itoa(r.ExtraCopies), fmt.Sprintf("%.4f", r.DupRatio), strconv.FormatBool(!r.Truncated)}}}
	ex := report.Section{Title: "Examples", Header: []string{"KEY", "COPIES", "IDS"}}
	for _, e := range r.Examples {
		ex.Rows = append(ex.Rows, []string{e.Key, strconv.Itoa(e.Copies), strings.Join(e.IDs, ",")})
	}
	return []report.Section{s, ex}
}

// cut marks the scan as stopped before the end; the first reason stays.
func (r *DupsResult) cut(reason string) {
	if !r.Truncated {
		r.Truncated, r.TruncatedReason = true, report.Redact(reason)
	}
}

// Dups counts duplicated events in an index, reading all of it (up to
// MaxDocs). An error means nothing could be read; a scan that had to stop
// early is a result with Truncated set and an es.dups_incomplete finding.
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
	if d.MaxDocs < 0 {
		return nil, nil, fmt.Errorf("--max-docs %d: must not be negative", d.MaxDocs)
	}
	if d.MaxDocs == 0 {
		d.MaxDocs = DefaultDupsMaxDocs
	}
	if d.Examples <= 0 {
		d.Examples = DefaultDupsExamples
	}
	bases, err := o.parseURLs()
	if err != nil {
		return nil, nil, err
	}
	base := bases[0]
	cl := newClient(&o, base, newDialer(&o), esclient.TLSConfig(o.RootCAs, o.Insecure), 1)
	cl.es.MaxBody = dupsMaxBody
	defer cl.close()
	start := o.Now()
	res := &DupsResult{Index: d.Index, MaxDocs: d.MaxDocs, Examples: []DupExample{}}
	ix := "/" + url.PathEscape(d.Index)

	var cnt struct {
		Count int `json:"count"`
	}
	if _, err := cl.getJSON(ctx, ix+"/_count", &cnt); err != nil {
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
	return res, dupsFindings(res), nil
}

func dupsFindings(res *DupsResult) []report.Finding {
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
				res.Duplicated, res.Index, res.ExtraCopies, 100*res.DupRatio, res.Scanned, res.Method, strings.Join(res.Fields, ",")),
			Evidence: map[string]any{"index": res.Index, "duplicated_events": res.Duplicated, "extra_copies": res.ExtraCopies,
				"scanned": res.Scanned, "method": res.Method, "fields": res.Fields, "examples": keys},
			Remedy: remedyDuplicates})
	}
	if res.Truncated {
		// Without duplicates so far, the part not read could hold them
		// all: no healthy verdict can be given.
		sev := report.Critical
		verdict := "no duplicate was found in the part read, which says nothing about the rest"
		if res.Duplicated > 0 {
			sev = report.Warning
			verdict = "the duplicate counts cover only the part read"
		}
		fs = append(fs, report.Finding{ID: FindingDupsIncomplete, Severity: sev,
			Summary: fmt.Sprintf("es dups read %d of %d documents of %s and stopped: %s; %s",
				res.Scanned, res.TotalDocs, res.Index, res.TruncatedReason, verdict),
			Evidence: map[string]any{"index": res.Index, "scanned": res.Scanned, "total_docs": res.TotalDocs,
				"max_docs": res.MaxDocs, "pages": res.Pages, "reason": res.TruncatedReason, "method": res.Method},
			Remedy: remedyDupsIncomplete})
	}
	return fs
}

func redactErr(err error) error { return errors.New(report.Redact(err.Error())) }

func postJSON(ctx context.Context, cl *client, base, path string, body any, v any) error {
	return sendJSON(ctx, cl, http.MethodPost, base, path, body, v)
}

func sendJSON(ctx context.Context, cl *client, method, base, path string, body any, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	r, err := cl.do(ctx, method, path, b, "application/json")
	if err != nil {
		return redactErr(err)
	}
	if r.Status != http.StatusOK {
		return &esclient.StatusError{Path: path, Status: r.Status, Type: esclient.ErrorType(r.Body)}
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: decoding answer: %w", path, err)
	}
	return nil
}

// pageHealth is what every search page says about its own completeness.
type pageHealth struct {
	Took     int64 `json:"took"`
	TimedOut bool  `json:"timed_out"`
	Shards   struct {
		Total      int `json:"total"`
		Successful int `json:"successful"`
		Skipped    int `json:"skipped"`
		Failed     int `json:"failed"`
	} `json:"_shards"`
}

// partial says why a page holds only part of its answer, or "".
func (p *pageHealth) partial() string {
	switch {
	case p.TimedOut:
		return "a page timed out on the cluster (timed_out: true)"
	case p.Shards.Failed > 0 || p.Shards.Successful+p.Shards.Skipped < p.Shards.Total:
		return fmt.Sprintf("%d of %d shards failed to answer a page", p.Shards.Total-p.Shards.Successful-p.Shards.Skipped, p.Shards.Total)
	}
	return ""
}

// dupsTerms lists every value of the field with its document count by
// paging a composite aggregation (after_key), so no value is left out
// however many there are: a terms aggregation stops at its size.
func dupsTerms(ctx context.Context, cl *client, base, ix string, d DupsOptions, res *DupsResult) error {
	type dupKey struct {
		key    any
		copies int
	}
	var top []dupKey // the Examples values with the most copies
	var after json.RawMessage
	page := min(compositePage, d.MaxDocs)
	for {
		comp := map[string]any{"size": page,
			"sources": []any{map[string]any{"v": map[string]any{"terms": map[string]any{"field": d.Field}}}}}
		if after != nil {
			comp["after"] = after
		}
		var ans struct {
			pageHealth
			Aggs struct {
				Dups struct {
					AfterKey json.RawMessage `json:"after_key"`
					Buckets  []struct {
						Key      map[string]any `json:"key"`
						DocCount int            `json:"doc_count"`
					} `json:"buckets"`
				} `json:"dups"`
			} `json:"aggregations"`
		}
		q := map[string]any{"size": 0, "aggs": map[string]any{"dups": map[string]any{"composite": comp}}}
		if err := postJSON(ctx, cl, base, ix+"/_search", q, &ans); err != nil {
			if res.Pages > 0 {
				res.cut(fmt.Sprintf("page %d of the composite aggregation failed: %v", res.Pages+1, err))
				break
			}
			var se *esclient.StatusError
			if errors.As(err, &se) && se.Status == http.StatusBadRequest && !strings.HasSuffix(d.Field, ".keyword") {
				return fmt.Errorf("%w (a text field cannot be aggregated: try --field %s.keyword)", err, d.Field)
			}
			return err
		}
		res.Pages++
		res.ResponseTook += ans.Took
		if why := ans.partial(); why != "" {
			res.cut(why)
		}
		buckets := ans.Aggs.Dups.Buckets
		for _, b := range buckets {
			res.Scanned += b.DocCount
			if b.DocCount < 2 {
				continue
			}
			res.Duplicated++
			res.ExtraCopies += b.DocCount - 1
			if len(top) < d.Examples || b.DocCount > top[len(top)-1].copies {
				top = append(top, dupKey{b.Key["v"], b.DocCount})
				sort.SliceStable(top, func(i, j int) bool { return top[i].copies > top[j].copies })
				top = top[:min(len(top), d.Examples)]
			}
		}
		// A composite page holds fewer buckets than asked only at the end.
		if len(buckets) < page || len(ans.Aggs.Dups.AfterKey) == 0 || string(ans.Aggs.Dups.AfterKey) == "null" {
			break
		}
		if res.Scanned >= d.MaxDocs {
			res.cut(fmt.Sprintf("stopped at --max-docs %d", d.MaxDocs))
			break
		}
		after = ans.Aggs.Dups.AfterKey
	}
	for _, k := range top {
		ex := DupExample{Key: fmt.Sprint(k.key), Copies: k.copies}
		var hits struct {
			Hits struct {
				Hits []struct {
					ID string `json:"_id"`
				} `json:"hits"`
			} `json:"hits"`
		}
		hq := map[string]any{"size": 10, "_source": false, "query": map[string]any{"term": map[string]any{d.Field: k.key}}}
		if postJSON(ctx, cl, base, ix+"/_search", hq, &hits) == nil {
			for _, h := range hits.Hits.Hits {
				ex.IDs = append(ex.IDs, h.ID)
			}
		}
		res.Examples = append(res.Examples, ex)
	}
	return nil
}

// scrollPageAnswer is one page of a scrolling search.
type scrollPageAnswer struct {
	pageHealth
	ScrollID string `json:"_scroll_id"`
	Hits     struct {
		Total json.RawMessage `json:"total"` // {"value","relation"}, or a number before 7.0
		Hits  []struct {
			ID     string                     `json:"_id"`
			Source map[string]json.RawMessage `json:"_source"`
		} `json:"hits"`
	} `json:"hits"`
}

// total reads hits.total in either shape; -1 when absent.
func (a *scrollPageAnswer) total() int {
	var obj struct {
		Value int `json:"value"`
	}
	if json.Unmarshal(a.Hits.Total, &obj) == nil && len(a.Hits.Total) > 0 && a.Hits.Total[0] == '{' {
		return obj.Value
	}
	if n, err := strconv.Atoi(string(a.Hits.Total)); err == nil {
		return n
	}
	return -1
}

// dupsScan fingerprints every document (up to MaxDocs) through a
// scrolling search and frees the scroll at the end.
func dupsScan(ctx context.Context, cl *client, base, ix string, d DupsOptions, res *DupsResult) error {
	var source any = true
	if len(d.Fields) > 0 {
		source = d.Fields
	}
	q := map[string]any{"size": min(scrollPage, d.MaxDocs), "sort": []any{"_doc"}, "_source": source,
		"query": map[string]any{"match_all": map[string]any{}}}
	var ans scrollPageAnswer
	if err := postJSON(ctx, cl, base, ix+"/_search?scroll="+scrollKeepAlive, q, &ans); err != nil {
		return err
	}
	fp := newFPCounter()
	snapshot := ans.total()
	scrollID := ans.ScrollID
	defer func() {
		if scrollID == "" {
			return
		}
		// Free the context even when ctx ended: it holds the cluster's
		// resources until its keep-alive runs out otherwise.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var freed json.RawMessage
		_ = sendJSON(cctx, cl, http.MethodDelete, base, "/_search/scroll", map[string]any{"scroll_id": []string{scrollID}}, &freed)
	}()
	for {
		res.Pages++
		res.ResponseTook += ans.Took
		if why := ans.partial(); why != "" {
			res.cut(why)
		}
		for _, h := range ans.Hits.Hits {
			if res.Scanned >= d.MaxDocs {
				break
			}
			fp.add(h.Source, d.Fields, h.ID)
			res.Scanned++
		}
		if len(ans.Hits.Hits) == 0 || (snapshot >= 0 && res.Scanned >= snapshot) {
			break
		}
		if res.Scanned >= d.MaxDocs {
			res.cut(fmt.Sprintf("stopped at --max-docs %d", d.MaxDocs))
			break
		}
		if scrollID == "" {
			res.cut("the cluster answered the scrolling search without a _scroll_id")
			break
		}
		ans = scrollPageAnswer{}
		err := postJSON(ctx, cl, base, "/_search/scroll", map[string]any{"scroll": scrollKeepAlive, "scroll_id": scrollID}, &ans)
		if err != nil {
			res.cut(fmt.Sprintf("scroll page %d failed: %v", res.Pages+1, err))
			break
		}
		if ans.ScrollID != "" {
			scrollID = ans.ScrollID
		}
	}
	fp.result(res, d.Examples)
	return nil
}

// fpCounter groups documents by fingerprint with little memory per
// document: a 16-byte key and a group index, the first copy's id in one
// shared byte slice; labels and further ids only for duplicated groups.
type fpCounter struct {
	idx    map[[16]byte]int32
	groups []fpGroup
	ids    []byte
	dups   map[int32]*fpDup
}

type fpGroup struct {
	count int32
	idOff uint32
	idLen uint16
}

type fpDup struct {
	label string
	ids   []string
}

func newFPCounter() *fpCounter {
	return &fpCounter{idx: map[[16]byte]int32{}, dups: map[int32]*fpDup{}}
}

func (c *fpCounter) add(src map[string]json.RawMessage, fields []string, id string) {
	sum := fingerprint(src, fields)
	var key [16]byte
	copy(key[:], sum[:16])
	gi, ok := c.idx[key]
	if !ok {
		id = clip.String(id, 512)
		c.idx[key] = int32(len(c.groups))
		c.groups = append(c.groups, fpGroup{count: 1, idOff: uint32(len(c.ids)), idLen: uint16(len(id))})
		c.ids = append(c.ids, id...)
		return
	}
	g := &c.groups[gi]
	g.count++
	dup := c.dups[gi]
	if dup == nil {
		first := string(c.ids[g.idOff : g.idOff+uint32(g.idLen)])
		dup = &fpDup{label: fingerprintLabel(src, fields, sum), ids: []string{first}}
		c.dups[gi] = dup
	}
	if len(dup.ids) < 10 {
		dup.ids = append(dup.ids, id)
	}
}

func (c *fpCounter) result(res *DupsResult, examples int) {
	order := make([]int32, 0, len(c.dups))
	for gi := range c.dups {
		order = append(order, gi)
		res.Duplicated++
		res.ExtraCopies += int(c.groups[gi].count) - 1
	}
	// Most copies first; among equals, the first seen.
	sort.Slice(order, func(i, j int) bool {
		a, b := c.groups[order[i]].count, c.groups[order[j]].count
		if a != b {
			return a > b
		}
		return order[i] < order[j]
	})
	for _, gi := range order[:min(len(order), examples)] {
		d := c.dups[gi]
		res.Examples = append(res.Examples, DupExample{Key: d.label, Copies: int(c.groups[gi].count), IDs: d.ids})
	}
}

// fingerprint hashes the chosen fields' values (canonical JSON), or the
// whole source.
func fingerprint(src map[string]json.RawMessage, fields []string) [sha256.Size]byte {
	h := sha256.New()
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
			h.Write(canonical(fieldRaw(src, f)))
			h.Write([]byte{0})
		}
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// fingerprintLabel is a short readable form of a fingerprint for
// examples: the fields' values, or the hash's start for a whole source.
func fingerprintLabel(src map[string]json.RawMessage, fields []string, sum [sha256.Size]byte) string {
	if len(fields) == 0 {
		return "sha256:" + hex.EncodeToString(sum[:8])
	}
	label := make([]string, 0, len(fields))
	for _, f := range fields {
		label = append(label, f+"="+clip.String(string(fieldRaw(src, f)), 60))
	}
	return strings.Join(label, " ")
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
