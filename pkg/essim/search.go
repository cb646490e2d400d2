package essim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim/store"
)

// searchSpec is what one search asks of the documents.
type searchSpec struct {
	from, size int
	count      bool // _count: no hits
	aggs       []namedAgg
	scroll     bool // keep the matches after the first page
	filter     sourceFilter
}

// searchResult is what the scan found.
type searchResult struct {
	total int
	hits  []json.RawMessage
	rest  []scrollRef // with scroll: the matches after the first page
}

// search serves _search and _count.
func (n *node) search(w http.ResponseWriter, r *http.Request, pattern string, count bool) {
	start := time.Now()
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
	for _, name := range []string{"size", "from"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		k, err := strconv.Atoi(v)
		if err != nil || k < 0 {
			n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception", "Failed to parse int parameter ["+name+"] with value ["+v+"]", nil)
			return
		}
		if name == "size" {
			req.Size = &k
		} else {
			req.From = k
		}
	}
	var keepAlive time.Duration
	if v := q.Get("scroll"); v != "" && !count {
		if keepAlive, err = parseKeepAlive("scroll", v); err != nil {
			n.keepAliveError(w, r, err)
			return
		}
	}
	var cq compiled
	if qs := q.Get("q"); qs != "" {
		cq = compiled{match: uriQuery(qs)}
	} else if cq, err = compileQuery(req.Query); err != nil {
		n.esError(w, r, http.StatusBadRequest, "parsing_exception", err.Error(), nil)
		return
	}
	size := 10
	if req.Size != nil {
		size = *req.Size
	}
	switch {
	case size < 0 || req.From < 0:
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception",
			fmt.Sprintf("[size] and [from] parameters cannot be negative, found [%d] and [%d]", size, req.From), nil)
		return
	case keepAlive > 0 && req.From > 0:
		n.esError(w, r, http.StatusBadRequest, "action_request_validation_exception",
			"Validation Failed: 1: using [from] is not allowed in a scroll context;", nil)
		return
	case keepAlive > 0 && size > maxResultWindow:
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception",
			fmt.Sprintf("Batch size is too large, size must be less than or equal to: [%d] but was [%d]. Scroll batch sizes cost as much memory as result windows so they are controlled by the [index.max_result_window] index level setting.", maxResultWindow, size), nil)
		return
	case keepAlive == 0 && !count && req.From+size > maxResultWindow:
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception",
			fmt.Sprintf("Result window is too large, from + size must be less than or equal to: [%d] but was [%d]. See the scroll api for a more efficient way to request large data sets.", maxResultWindow, req.From+size), nil)
		return
	}
	aggsRaw := req.Aggs
	if aggsRaw == nil {
		aggsRaw = req.Aggregations
	}
	aggs, err := parseAggs(aggsRaw)
	if err != nil {
		n.esError(w, r, http.StatusBadRequest, "parsing_exception", err.Error(), nil)
		return
	}
	srcFilter, err := parseSourceFilter(req.Source, q.Get("_source"))
	if err != nil {
		n.esError(w, r, http.StatusBadRequest, "x_content_parse_exception", err.Error(), nil)
		return
	}
	spec := searchSpec{from: req.From, size: size, count: count, aggs: aggs, scroll: keepAlive > 0, filter: srcFilter}

	st := n.s.store
	st.RLock()
	ixs, rerr := resolveRequestLocked(st, pattern, q)
	var nf *store.ErrIndexNotFound
	if errors.As(rerr, &nf) {
		st.RUnlock()
		n.indexNotFound(w, r, nf.Name)
		return
	}
	res, err := n.searchLocked(ixs, cq, spec)
	var scrollID string
	if err == nil && spec.scroll {
		// Pinned under the read lock: no compaction can move the
		// positions before the context holds them.
		scrollID, err = n.s.scrolls.open(res.rest, res.total, size, srcFilter, keepAlive)
	}
	st.RUnlock()
	var tooMany *errTooManyScrolls
	switch {
	case errors.As(err, &tooMany):
		n.esError(w, r, http.StatusTooManyRequests, "too_many_scroll_contexts_exception", err.Error(), nil)
		return
	case err != nil:
		n.esError(w, r, http.StatusInternalServerError, "exception", err.Error(), nil)
		return
	}

	shards := map[string]any{"total": len(ixs), "successful": len(ixs), "skipped": 0, "failed": 0}
	if count {
		n.respondJSON(w, r, http.StatusOK, map[string]any{"count": res.total, "_shards": shards})
		return
	}
	out := n.searchResponse(r, start, res.total, res.hits, shards, totalExact(req.TrackTotalHits, spec.scroll))
	if spec.scroll {
		out["_scroll_id"] = scrollID
	}
	if len(aggs) > 0 {
		aggOut := map[string]any{}
		for _, a := range aggs {
			aggOut[a.name] = a.agg.result()
		}
		out["aggregations"] = aggOut
	}
	n.respondJSON(w, r, http.StatusOK, out)
}

// totalExact: hits.total is counted exactly with track_total_hits true
// and in a scroll (which refuses anything else); otherwise up to the
// result window, as Elasticsearch does by default.
func totalExact(tth json.RawMessage, scroll bool) bool {
	return scroll || strings.TrimSpace(string(tth)) == "true"
}

// searchResponse is the body every search and scroll page shares; took
// is the time since the request arrived, as Elasticsearch measures it.
func (n *node) searchResponse(r *http.Request, start time.Time, total int, hits []json.RawMessage, shards map[string]any, exact bool) map[string]any {
	totalObj := map[string]any{"value": total, "relation": "eq"}
	if !exact && total > maxResultWindow {
		totalObj = map[string]any{"value": maxResultWindow, "relation": "gte"}
	}
	var maxScore any
	if len(hits) > 0 {
		maxScore = 1.0
	}
	if hits == nil {
		hits = []json.RawMessage{}
	}
	h := map[string]any{"total": totalObj, "max_score": maxScore, "hits": hits}
	if r.URL.Query().Get("rest_total_hits_as_int") == "true" { // the pre-7.0 shape some clients still ask for
		h["total"] = total
	}
	return map[string]any{"took": time.Since(start).Milliseconds(), "timed_out": false, "_shards": shards, "hits": h}
}

// searchLocked scans the candidates of each index (every document, or
// what the query's plan finds in the term and id indices), counts the
// matches, feeds the aggregations and cuts the page. Callers hold the
// store's read lock.
func (n *node) searchLocked(ixs []*store.Index, cq compiled, sp searchSpec) (searchResult, error) {
	st := n.s.store
	var res searchResult
	needParse := cq.match != nil || len(sp.aggs) > 0
	for _, ix := range ixs {
		var cands []int32
		k := ix.Len()
		if cq.plan != nil {
			var err error
			if cands, err = cq.plan.positionsLocked(st, ix); err != nil {
				return res, err
			}
			k = len(cands)
		}
		var rest []int32
		for i := 0; i < k; i++ {
			p := int32(i)
			if cands != nil {
				p = cands[i]
			}
			d := ix.At(p)
			if d.Deleted() {
				continue
			}
			inPage := !sp.count && res.total >= sp.from && len(res.hits) < sp.size
			var id string
			var src []byte
			if needParse || inPage {
				var err error
				if id, src, err = st.DocLocked(d); err != nil {
					return res, err
				}
			}
			if needParse {
				parsed := parseDoc(src)
				if parsed == nil {
					parsed = map[string]any{}
				}
				parsed["\x00id"] = id
				if cq.match != nil && !cq.match(parsed) {
					continue
				}
				for _, a := range sp.aggs {
					a.agg.collect(parsed)
				}
			}
			res.total++
			switch {
			case inPage:
				res.hits = append(res.hits, n.hit(ix, id, src, sp.filter))
			case sp.scroll:
				rest = append(rest, p)
			}
		}
		if len(rest) > 0 {
			res.rest = append(res.rest, scrollRef{ix: ix, pos: rest})
		}
	}
	return res, nil
}
