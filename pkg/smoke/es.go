package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/logdoctor/logdoctor/internal/clip"
	"github.com/logdoctor/logdoctor/pkg/esclient"
)

// maxSearchBody caps what is read from one search response: one bucket
// per canary is some 50 bytes.
const maxSearchBody = 16 << 20

// maxBuckets is Elasticsearch's search.max_buckets default, the most
// buckets one terms aggregation may return.
const maxBuckets = 65536

// ErrAuth: Elasticsearch refused the credentials (401/403). Waiting will not
// change that, so smoke stops at once.
var ErrAuth = errors.New("elasticsearch refused the credentials")

// ESSearcher finds a run's canaries with the search API of Elasticsearch 7
// and 8 or OpenSearch 1 and 2.
type ESSearcher struct {
	URL      string // base URL, e.g. http://127.0.0.1:9200
	Index    string // index name or pattern the shipper writes to
	User     string
	Password string
	APIKey   string
	Client   *http.Client // keep-alive client; http.DefaultClient when nil
}

// Count counts the documents of runID per canary: a term query on the
// run id with a terms aggregation on the sequence number, one bucket per
// canary, so no page size caps what is seen however many copies there
// are. hits.total counts every document of the run; what the buckets do
// not account for (no or a bad sequence number, buckets cut off) is
// Unattributed.
func (e *ESSearcher) Count(ctx context.Context, runID string, canaries int) (Counts, error) {
	body, err := json.Marshal(map[string]any{
		"size":             0,
		"track_total_hits": true,
		"query":            map[string]any{"term": map[string]any{FieldRun: runID}},
		"aggs": map[string]any{"seq": map[string]any{"terms": map[string]any{
			"field": FieldSeq, "size": min(canaries+100, maxBuckets), "min_doc_count": 1}}},
	})
	if err != nil {
		return Counts{}, err
	}
	index := e.Index
	if index == "" {
		index = "_all"
	}
	// Wildcard patterns that match nothing yet give zero hits rather than 404.
	c, err := e.client()
	if err != nil {
		return Counts{}, fmt.Errorf("search: %w", err)
	}
	r, err := c.Do(ctx, http.MethodPost, "/"+url.PathEscape(index)+"/_search?ignore_unavailable=true&allow_no_indices=true", body, "application/json")
	if err != nil {
		return Counts{}, fmt.Errorf("search %s: %w", index, err)
	}
	raw := r.Body
	// A concrete index the shipper has not created yet: nothing indexed.
	if r.Status == http.StatusNotFound && esclient.ErrorType(raw) == "index_not_found_exception" {
		return Counts{Copies: make([]int, canaries)}, nil
	}
	if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
		return Counts{}, fmt.Errorf("search %s: HTTP %d: %w: %s", index, r.Status, ErrAuth, clip.Bytes(bytes.TrimSpace(raw), 300))
	}
	if r.Status != http.StatusOK {
		return Counts{}, fmt.Errorf("search %s: HTTP %d: %s", index, r.Status, clip.Bytes(bytes.TrimSpace(raw), 300))
	}
	return parseCounts(raw, canaries)
}

// Refresh makes everything indexed so far searchable (POST INDEX/_refresh),
// so a drained pipeline need not wait out the cluster's refresh_interval.
// It needs the index's "maintenance" privilege; callers treat an error as
// "wait for the refresh interval instead".
func (e *ESSearcher) Refresh(ctx context.Context) error {
	index := e.Index
	if index == "" {
		index = "_all"
	}
	c, err := e.client()
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	r, err := c.Do(ctx, http.MethodPost, "/"+url.PathEscape(index)+"/_refresh?ignore_unavailable=true&allow_no_indices=true", nil, "")
	if err != nil {
		return fmt.Errorf("refresh %s: %w", index, err)
	}
	if r.Status != http.StatusOK {
		return fmt.Errorf("refresh %s: HTTP %d: %s", index, r.Status, clip.Bytes(bytes.TrimSpace(r.Body), 300))
	}
	return nil
}

// client is the esclient.Client of the searcher's URL; credentials in
// the URL's userinfo count when User is empty.
func (e *ESSearcher) client() (*esclient.Client, error) {
	base, fromURL, err := esclient.ParseURL(e.URL)
	if err != nil {
		return nil, err
	}
	auth := esclient.Auth{Username: e.User, Password: e.Password, APIKey: e.APIKey}
	auth.Fill(fromURL)
	return &esclient.Client{Base: base, Auth: auth, HTTP: e.Client, MaxBody: maxSearchBody}, nil
}

// parseCounts reads a Count answer: hits.total (an object since
// Elasticsearch 7, a number before) and the seq buckets, whose keys are
// numbers (a long field) or strings (a keyword mapping).
func parseCounts(raw []byte, canaries int) (Counts, error) {
	var r struct {
		Hits struct {
			Total json.RawMessage `json:"total"`
		} `json:"hits"`
		Aggs struct {
			Seq struct {
				Other   int `json:"sum_other_doc_count"`
				Buckets []struct {
					Key      json.RawMessage `json:"key"`
					DocCount int             `json:"doc_count"`
				} `json:"buckets"`
			} `json:"seq"`
		} `json:"aggregations"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return Counts{}, fmt.Errorf("search response: %w", err)
	}
	c := Counts{Copies: make([]int, canaries)}
	var total struct {
		Value    int    `json:"value"`
		Relation string `json:"relation"`
	}
	switch t := bytes.TrimSpace(r.Hits.Total); {
	case len(t) > 0 && t[0] == '{':
		if err := json.Unmarshal(t, &total); err != nil {
			return Counts{}, fmt.Errorf("search response: hits.total: %w", err)
		}
		if total.Relation != "" && total.Relation != "eq" {
			c.Inexact = true // a lower bound: the count is not exact
		}
	default:
		if err := json.Unmarshal(t, &total.Value); err != nil {
			return Counts{}, fmt.Errorf("search response: hits.total %q: %w", clip.Bytes(t, 40), err)
		}
	}
	if total.Value < 0 {
		return Counts{}, fmt.Errorf("search response: hits.total %d", total.Value)
	}
	c.Total = total.Value
	attributed := 0
	for _, b := range r.Aggs.Seq.Buckets {
		if b.DocCount <= 0 {
			continue
		}
		seq, ok := bucketSeq(b.Key)
		if !ok || seq >= canaries {
			continue // counted below as unattributed
		}
		c.Copies[seq] += b.DocCount
		attributed += b.DocCount
	}
	// Documents without a usable seq, in foreign buckets or in buckets the
	// cluster cut off: the run has them and no canary can claim them.
	c.Unattributed = max(c.Total-attributed, 0)
	if r.Aggs.Seq.Other > 0 {
		c.Inexact = true
	}
	return c, nil
}

// bucketSeq reads a bucket key as a canary sequence number.
func bucketSeq(key json.RawMessage) (int, bool) {
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(key))
	d.UseNumber()
	if err := d.Decode(&n); err != nil {
		var s string
		if json.Unmarshal(key, &s) != nil {
			return 0, false
		}
		n = json.Number(s)
	}
	v, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64() // a double mapping answers 7.0
		if ferr != nil || f != float64(int64(f)) {
			return 0, false
		}
		v = int64(f)
	}
	if v < 0 || v >= maxBuckets {
		return 0, false
	}
	return int(v), true
}

// NewHTTPClient is a keep-alive client for the searcher with a per-request
// timeout, so one hung search cannot eat the whole wait.
func NewHTTPClient(timeout time.Duration, tr http.RoundTripper) *http.Client {
	if tr == nil {
		tr = http.DefaultTransport
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}
