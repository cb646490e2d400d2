package esprobe

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/logdoctor/logdoctor/internal/clip"
	"github.com/logdoctor/logdoctor/internal/stats"
	"github.com/logdoctor/logdoctor/pkg/esclient"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// checkBulk sends the same create with a deterministic _id samples times
// into index through cl: 201, then 409s, then exactly one document, which
// it deletes afterwards. Two samples suffice once one took requestTimeout
// or longer.
func checkBulk(ctx context.Context, cl *client, index string, samples int, requestTimeout time.Duration) (*Bulk, outcome) {
	var out outcome
	start := time.Now()
	id := canaryID()
	b := &Bulk{Index: index, ID: id, Statuses: []int{}}
	body := fmt.Sprintf("{\"create\":{\"_index\":%q,\"_id\":%q}}\n{\"@timestamp\":%q,\"message\":\"logdoctor es probe canary\",\"logdoctor_canary\":%q}\n",
		index, id, time.Now().UTC().Format(time.RFC3339Nano), id)
	var lats []time.Duration
	itemRejected, itemBlocked := 0, 0
	blockReason := ""
	c := Check{Name: "bulk_idempotency", Target: cl.es.Base + "/" + index}
	for i := 0; i < samples; i++ {
		// Two samples suffice once one took longer than the shipper's
		// request timeout: the point is made, and a slow cluster would
		// otherwise hold the probe for samples times its latency.
		if i >= 2 && len(lats) > 0 && slices.Max(lats) >= requestTimeout {
			break
		}
		t0 := time.Now()
		r, err := cl.do(ctx, http.MethodPost, "/_bulk", []byte(body), "application/x-ndjson")
		if err != nil {
			// A timed-out bulk counts with the time it took to give up.
			lats = append(lats, time.Since(t0))
			b.Statuses = append(b.Statuses, 0)
			b.ItemErrors = append(b.ItemErrors, errString(err))
			continue
		}
		lats = append(lats, r.Elapsed)
		out.latency(r.Elapsed)
		if r.Status != http.StatusOK {
			// A whole-request 429 is indexing pressure: the stats deltas
			// report it.
			b.Statuses = append(b.Statuses, r.Status)
			b.ItemErrors = append(b.ItemErrors, orNone(esclient.ErrorType(r.Body)))
			continue
		}
		var br struct {
			Items []map[string]struct {
				Status int `json:"status"`
				Error  *struct {
					Type   string `json:"type"`
					Reason string `json:"reason"`
				} `json:"error"`
			} `json:"items"`
		}
		if err := json.Unmarshal(r.Body, &br); err != nil || len(br.Items) != 1 {
			b.Statuses = append(b.Statuses, 0)
			b.ItemErrors = append(b.ItemErrors, "bad bulk answer")
			continue
		}
		for _, it := range br.Items[0] {
			switch {
			case it.Error != nil && it.Error.Type == "cluster_block_exception":
				// A 429 (or 403 before 7.x) that no retry cures: an
				// index block, typically the flood-stage watermark's.
				itemBlocked++
				blockReason = it.Error.Reason
			case it.Status == http.StatusTooManyRequests:
				itemRejected++
			}
			b.Statuses = append(b.Statuses, it.Status)
			if it.Error != nil {
				b.ItemErrors = append(b.ItemErrors, it.Error.Type)
			}
		}
	}
	b.LatencyP50MS = stats.MS(stats.Percentile(lats, 0.5))
	b.LatencyP99MS = stats.MS(stats.Percentile(lats, 0.99))
	var countErr error
	b.Count, b.Cleaned, countErr = countAndDelete(ctx, cl, index, id)
	created := 0
	conflicts := 0
	for _, s := range b.Statuses {
		switch s {
		case http.StatusCreated, http.StatusOK:
			created++
		case http.StatusConflict:
			conflicts++
		}
	}
	b.Idempotent = created == 1 && conflicts == len(b.Statuses)-1 && b.Count == 1
	c.OK = b.Idempotent
	c.Detail = fmt.Sprintf("statuses %v, %d document(s) stored, bulk p50 %.1f ms p99 %.1f ms", b.Statuses, b.Count, b.LatencyP50MS, b.LatencyP99MS)
	if countErr != nil {
		c.Detail += "; count: " + errString(countErr)
	}
	out.check(c, start)
	countOK := countErr == nil
	ev := map[string]any{"index": index, "id": id, "statuses": b.Statuses, "count": b.Count, "item_errors": b.ItemErrors}
	if countOK && (created > 1 || b.Count > 1) {
		out.add(report.Finding{ID: FindingBulkNotIdempotent, Severity: report.Critical,
			Summary:  fmt.Sprintf("a create with the fixed _id %s was accepted %d times (%d documents): resends will duplicate", id, created, b.Count),
			Evidence: ev, Remedy: remedyIdempotent})
	}
	if countOK && created >= 1 && b.Count == 0 {
		out.add(report.Finding{ID: FindingBulkLost, Severity: report.Critical,
			Summary:  fmt.Sprintf("the canary %s was acknowledged (201) but is not in %s", id, index),
			Evidence: ev, Remedy: remedyLost})
	}
	if itemBlocked > 0 {
		ev["block_reason"] = blockReason
		out.add(report.Finding{ID: FindingWriteBlocked, Severity: report.Critical,
			Summary:  fmt.Sprintf("%d of %d canary bulk items were refused by an index block: %s", itemBlocked, len(b.Statuses), clip.String(blockReason, 160)),
			Evidence: ev, Remedy: remedyBlocked})
	}
	if itemRejected > 0 {
		out.add(report.Finding{ID: FindingWriteRejections, Severity: report.Critical,
			Summary: fmt.Sprintf("%d of %d canary bulk items were rejected with 429 es_rejected_execution_exception%s",
				itemRejected, len(b.Statuses), rejectionCost),
			Evidence: ev, Remedy: remedyRejections})
	}
	return b, out
}

// countAndDelete counts the canary id in index (err: the count failed)
// and deletes it.
func countAndDelete(ctx context.Context, cl *client, index, id string) (count int, cleaned bool, err error) {
	ix := "/" + url.PathEscape(index)
	// Refresh first, as a real cluster shows new documents to search only
	// after a refresh; a failure shows in the count.
	_, _ = cl.do(ctx, http.MethodPost, ix+"/_refresh", nil, "")
	var cnt struct {
		Count int `json:"count"`
	}
	q := fmt.Sprintf(`{"query":{"ids":{"values":[%q]}}}`, id)
	if r, derr := cl.do(ctx, http.MethodPost, ix+"/_count", []byte(q), "application/json"); derr != nil {
		err = derr
	} else if r.Status == http.StatusNotFound && esclient.ErrorType(r.Body) == "index_not_found_exception" {
		cnt.Count = 0 // nothing was ever stored there
	} else if r.Status != http.StatusOK {
		err = &esclient.StatusError{Path: "/" + index + "/_count", Status: r.Status, Type: esclient.ErrorType(r.Body)}
	} else if jerr := json.Unmarshal(r.Body, &cnt); jerr != nil {
		err = jerr
	}
	if r, derr := cl.do(ctx, http.MethodDelete, ix+"/_doc/"+url.PathEscape(id), nil, ""); derr == nil && r.Status == http.StatusOK {
		cleaned = true
	}
	return cnt.Count, cleaned, err
}
