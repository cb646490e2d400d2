package essim

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim/store"
)

// Scrolling searches: POST /{index}/_search?scroll=1m answers the first
// page with a _scroll_id; POST /_search/scroll {"scroll_id","scroll"}
// answers the next ones until a page comes back empty; DELETE
// /_search/scroll {"scroll_id"} frees the context. It is the way through
// more documents than index.max_result_window that works on every
// Elasticsearch since 2.x and on OpenSearch; the official clients' scan
// helpers use it.
//
// A context holds the positions of the documents that matched when the
// search began and pins their indices, so compaction (which renumbers
// positions) waits until it is freed or expires: documents indexed later
// are not in it. Deleted since, a document is skipped; overwritten in
// place, it is returned in its new version (Elasticsearch would still
// return the old one).

// maxScrollContexts is search.max_open_scroll_context's default.
const maxScrollContexts = 500

// maxKeepAlive is search.max_keep_alive's default.
const maxKeepAlive = 24 * time.Hour

// scrollRef is a context's matches in one index.
type scrollRef struct {
	ix  *store.Index
	pos []int32
}

type scrollCtx struct {
	mu        sync.Mutex // one page at a time
	refs      []scrollRef
	ref, off  int // the next position: refs[ref].pos[off]
	total     int
	size      int
	filter    sourceFilter
	keepAlive time.Duration
	expires   time.Time
	freed     bool
}

// scrolls holds the open contexts of a server (all nodes share them).
type scrolls struct {
	mu     sync.Mutex
	prefix string // per server, so an id from another run is not found
	seq    uint64
	ctxs   map[string]*scrollCtx
	now    func() time.Time
}

func newScrolls() *scrolls {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &scrolls{prefix: hex.EncodeToString(b), ctxs: map[string]*scrollCtx{}, now: time.Now}
}

type errTooManyScrolls struct{}

func (*errTooManyScrolls) Error() string {
	return fmt.Sprintf("Trying to create too many scroll contexts. Must be less than or equal to: [%d]. This limit can be set by changing the [search.max_open_scroll_context] setting.", maxScrollContexts)
}

// errNoScroll is search_context_missing_exception: expired, freed, or
// never there.
type errNoScroll struct{ id string }

func (e *errNoScroll) Error() string { return "No search context found for id [" + e.id + "]" }

// errBadScrollID is a scroll id essim did not make. Its text is
// Elasticsearch's reason, capital letter included, as clients see it.
//
//lint:ignore ST1005 the reason Elasticsearch sends, kept verbatim
var errBadScrollID = errors.New("Cannot parse scroll id")

// open registers a context and pins its indices; callers hold the store's
// read lock.
func (sc *scrolls) open(refs []scrollRef, total, size int, f sourceFilter, keepAlive time.Duration) (string, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.reapLocked()
	if len(sc.ctxs) >= maxScrollContexts {
		return "", &errTooManyScrolls{}
	}
	sc.seq++
	id := base64.RawURLEncoding.EncodeToString([]byte("essim-scroll\x00" + sc.prefix + "\x00" + strconv.FormatUint(sc.seq, 10)))
	for _, r := range refs {
		r.ix.Pin()
	}
	sc.ctxs[id] = &scrollCtx{refs: refs, total: total, size: size, filter: f, keepAlive: keepAlive, expires: sc.now().Add(keepAlive)}
	return id, nil
}

// reapLocked frees expired contexts (Elasticsearch's reaper runs every
// minute; here every scroll call looks).
func (sc *scrolls) reapLocked() {
	now := sc.now()
	for id, c := range sc.ctxs {
		if now.After(c.expires) {
			sc.freeLocked(id, c)
		}
	}
}

func (sc *scrolls) freeLocked(id string, c *scrollCtx) {
	delete(sc.ctxs, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.freed {
		c.freed = true
		for _, r := range c.refs {
			r.ix.Unpin()
		}
	}
}

// checkID tells a well-formed id of this server from garbage.
func (sc *scrolls) checkID(id string) error {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || !bytes.HasPrefix(raw, []byte("essim-scroll\x00")) {
		return errBadScrollID
	}
	return nil
}

// get returns a live context and extends its life.
func (sc *scrolls) get(id string, keepAlive time.Duration) (*scrollCtx, error) {
	if err := sc.checkID(id); err != nil {
		return nil, err
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.reapLocked()
	c := sc.ctxs[id]
	if c == nil {
		return nil, &errNoScroll{id: id}
	}
	if keepAlive > 0 {
		c.keepAlive = keepAlive
	}
	c.expires = sc.now().Add(c.keepAlive)
	return c, nil
}

// clear frees the listed contexts ("_all": every one) and reports how
// many there were.
func (sc *scrolls) clear(ids []string) (int, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.reapLocked()
	freed := 0
	for _, id := range ids {
		if id == "_all" {
			for id, c := range sc.ctxs {
				sc.freeLocked(id, c)
				freed++
			}
			continue
		}
		if err := sc.checkID(id); err != nil {
			return freed, err
		}
		if c := sc.ctxs[id]; c != nil {
			sc.freeLocked(id, c)
			freed++
		}
	}
	return freed, nil
}

// closeAll frees every context (Server.Close).
func (sc *scrolls) closeAll() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for id, c := range sc.ctxs {
		sc.freeLocked(id, c)
	}
}

// parseKeepAlive reads an Elasticsearch time value: 30s, 1m, 500ms, 1h,
// 1d, 100micros, 10nanos.
func parseKeepAlive(setting, v string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"nanos", time.Nanosecond}, {"micros", time.Microsecond}, {"ms", time.Millisecond},
		{"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	s := strings.TrimSpace(strings.ToLower(v))
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		k, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || k < 0 {
			break
		}
		d := time.Duration(k * float64(u.unit))
		if d > maxKeepAlive {
			return 0, &errKeepAliveTooLarge{value: v}
		}
		return d, nil
	}
	return 0, fmt.Errorf("failed to parse setting [%s] with value [%s] as a time value: unit is missing or unrecognized", setting, v)
}

type errKeepAliveTooLarge struct{ value string }

func (e *errKeepAliveTooLarge) Error() string {
	return "Keep alive for request (" + e.value + ") is too large. It must be less than (1d). This limit can be set by changing the [search.max_keep_alive] cluster level setting."
}

func (n *node) keepAliveError(w http.ResponseWriter, r *http.Request, err error) {
	var large *errKeepAliveTooLarge
	if errors.As(err, &large) {
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception", err.Error(), nil)
		return
	}
	n.esError(w, r, http.StatusBadRequest, "parse_exception", err.Error(), nil)
}

// scrollAPI serves /_search/scroll[/{id}]: GET or POST the next page,
// DELETE to free. The id and keep-alive come from the body
// ({"scroll_id", "scroll"}), the query string or (deprecated) the path.
func (n *node) scrollAPI(w http.ResponseWriter, r *http.Request, pathID string) {
	start := time.Now()
	body, err := n.readBody(r)
	if err != nil {
		n.bodyError(w, r, err)
		return
	}
	var req struct {
		ScrollID json.RawMessage `json:"scroll_id"`
		Scroll   string          `json:"scroll"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			n.esError(w, r, http.StatusBadRequest, "x_content_parse_exception", "[1:1] scroll request body: "+err.Error(), nil)
			return
		}
	}
	var ids []string
	if len(req.ScrollID) > 0 {
		var one string
		if json.Unmarshal(req.ScrollID, &one) == nil {
			ids = []string{one}
		} else if err := json.Unmarshal(req.ScrollID, &ids); err != nil {
			n.esError(w, r, http.StatusBadRequest, "x_content_parse_exception", "[scroll_id] must be a string or an array of strings", nil)
			return
		}
	}
	q := r.URL.Query()
	for _, v := range []string{q.Get("scroll_id"), pathID} {
		if v != "" {
			ids = append(ids, strings.Split(v, ",")...)
		}
	}
	if r.Method == http.MethodDelete {
		n.clearScroll(w, r, ids)
		return
	}
	if len(ids) != 1 || ids[0] == "" {
		n.esError(w, r, http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: scrollId is missing;", nil)
		return
	}
	keep := req.Scroll
	if v := q.Get("scroll"); v != "" {
		keep = v
	}
	var keepAlive time.Duration
	if keep != "" {
		if keepAlive, err = parseKeepAlive("scroll", keep); err != nil {
			n.keepAliveError(w, r, err)
			return
		}
	}
	c, err := n.s.scrolls.get(ids[0], keepAlive)
	var missing *errNoScroll
	switch {
	case errors.As(err, &missing):
		n.searchContextMissing(w, r, missing)
		return
	case err != nil:
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception", err.Error(), nil)
		return
	}
	hits, err := n.nextPage(c)
	if errors.As(err, &missing) {
		missing.id = ids[0]
		n.searchContextMissing(w, r, missing)
		return
	}
	if err != nil {
		n.esError(w, r, http.StatusInternalServerError, "exception", err.Error(), nil)
		return
	}
	shards := map[string]any{"total": 1, "successful": 1, "skipped": 0, "failed": 0}
	out := n.searchResponse(r, start, c.total, hits, shards, true)
	out["_scroll_id"] = ids[0]
	n.respondJSON(w, r, http.StatusOK, out)
}

// nextPage reads the context's next size documents that still exist.
// The store's lock comes before the context's, as in search (store, then
// scrolls, then a context): the other order could deadlock behind a
// waiting writer.
func (n *node) nextPage(c *scrollCtx) ([]json.RawMessage, error) {
	st := n.s.store
	st.RLock()
	defer st.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.freed {
		return nil, &errNoScroll{}
	}
	var hits []json.RawMessage
	for c.ref < len(c.refs) && len(hits) < c.size {
		ref := c.refs[c.ref]
		if c.off >= len(ref.pos) || st.LookupLocked(ref.ix.Name()) != ref.ix {
			c.ref, c.off = c.ref+1, 0 // done, or the index was deleted
			continue
		}
		d := ref.ix.At(ref.pos[c.off])
		c.off++
		if d.Deleted() {
			continue
		}
		id, src, err := st.DocLocked(d)
		if err != nil {
			return nil, err
		}
		hits = append(hits, n.hit(ref.ix, id, src, c.filter))
	}
	return hits, nil
}

// searchContextMissing answers like Elasticsearch for an expired or
// freed scroll: 404 search_phase_execution_exception caused by
// search_context_missing_exception.
func (n *node) searchContextMissing(w http.ResponseWriter, r *http.Request, e *errNoScroll) {
	cause := map[string]any{"type": "search_context_missing_exception", "reason": e.Error()}
	n.respondJSON(w, r, http.StatusNotFound, map[string]any{
		"error": map[string]any{
			"root_cause": []any{cause},
			"type":       "search_phase_execution_exception",
			"reason":     "all shards failed",
			"phase":      "query",
			"grouped":    true,
			"failed_shards": []any{map[string]any{
				"shard": -1, "index": nil, "reason": cause,
			}},
			"caused_by": cause,
		},
		"status": http.StatusNotFound,
	})
}

// clearScroll answers {"succeeded": true, "num_freed": N}, 404 when
// nothing was freed (the clients ignore that 404).
func (n *node) clearScroll(w http.ResponseWriter, r *http.Request, ids []string) {
	if len(ids) == 0 {
		n.esError(w, r, http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: no scroll ids specified;", nil)
		return
	}
	freed, err := n.s.scrolls.clear(ids)
	if err != nil {
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception", err.Error(), nil)
		return
	}
	status := http.StatusOK
	if freed == 0 {
		status = http.StatusNotFound
	}
	n.respondJSON(w, r, status, map[string]any{"succeeded": true, "num_freed": freed})
}
