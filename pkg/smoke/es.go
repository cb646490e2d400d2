package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/internal/clip"
)

// maxSearchBody caps what is read from one search response: 10,000 small
// canary sources fit in a few MiB.
const maxSearchBody = 64 << 20

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

// Search returns the canary documents of runID, up to max.
func (e *ESSearcher) Search(ctx context.Context, runID string, max int) ([]Hit, error) {
	body, err := json.Marshal(map[string]any{
		"size":    max,
		"query":   map[string]any{"term": map[string]any{FieldRun: runID}},
		"_source": []string{FieldRun, FieldSeq},
	})
	if err != nil {
		return nil, err
	}
	index := e.Index
	if index == "" {
		index = "_all"
	}
	// Wildcard patterns that match nothing yet give zero hits rather than 404.
	u := strings.TrimRight(e.URL, "/") + "/" + url.PathEscape(index) + "/_search?ignore_unavailable=true&allow_no_indices=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("search request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.do(req)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", index, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxSearchBody))
	if err != nil {
		return nil, fmt.Errorf("search %s: read response: %w", index, err)
	}
	// A concrete index the shipper has not created yet: nothing indexed.
	if resp.StatusCode == http.StatusNotFound && bytes.Contains(raw, []byte("index_not_found_exception")) {
		return nil, nil
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return nil, fmt.Errorf("search %s: HTTP %d: %w: %s", index, resp.StatusCode, ErrAuth, clip.Bytes(bytes.TrimSpace(raw), 300))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("search %s: HTTP %d: %s", index, resp.StatusCode, clip.Bytes(bytes.TrimSpace(raw), 300))
	}
	return parseHits(raw)
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
	u := strings.TrimRight(e.URL, "/") + "/" + url.PathEscape(index) + "/_refresh?ignore_unavailable=true&allow_no_indices=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return fmt.Errorf("refresh request: %w", err)
	}
	resp, err := e.do(req)
	if err != nil {
		return fmt.Errorf("refresh %s: %w", index, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("refresh %s: HTTP %d: %s", index, resp.StatusCode, clip.Bytes(bytes.TrimSpace(raw), 300))
	}
	return nil
}

func (e *ESSearcher) do(req *http.Request) (*http.Response, error) {
	switch {
	case e.APIKey != "":
		req.Header.Set("Authorization", "ApiKey "+e.APIKey)
	case e.User != "":
		req.SetBasicAuth(e.User, e.Password)
	}
	c := e.Client
	if c == nil {
		c = http.DefaultClient
	}
	return c.Do(req)
}

// parseHits reads hits.hits[]._source of a search response.
func parseHits(raw []byte) ([]Hit, error) {
	var r struct {
		Hits struct {
			Hits []struct {
				Source map[string]json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("search response: %w", err)
	}
	hits := make([]Hit, 0, len(r.Hits.Hits))
	for _, h := range r.Hits.Hits {
		var hit Hit
		if err := json.Unmarshal(h.Source[FieldRun], &hit.Run); err != nil {
			continue // not a canary of this shape: ignore it, never count it
		}
		var seq json.Number
		if err := json.Unmarshal(h.Source[FieldSeq], &seq); err != nil {
			continue
		}
		n, err := seq.Int64()
		if err != nil || n < 0 || n >= maxPage {
			continue
		}
		hit.Seq = int(n)
		hits = append(hits, hit)
	}
	return hits, nil
}

// NewHTTPClient is a keep-alive client for the searcher with a per-request
// timeout, so one hung search cannot eat the whole wait.
func NewHTTPClient(timeout time.Duration, tr http.RoundTripper) *http.Client {
	if tr == nil {
		tr = http.DefaultTransport
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}
