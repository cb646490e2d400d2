package essim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/internal/jsonenc"
	"github.com/logdoctor/logdoctor/pkg/essim/store"
)

// itemResult is the outcome of one write, rendered as a bulk item or as a
// single-document response.
type itemResult struct {
	op        BulkOp
	index, id string
	status    int
	result    string // created, updated, deleted, not_found, noop
	version   int64
	seq       int64
	errType   string
	errReason string
	errIndex  bool // add index_uuid/shard/index to the error
	uuid      string
	// badSource: an index or create whose source is not a JSON object,
	// found before the store is locked.
	badSource bool
}

func (it *itemResult) failed() bool { return it.errType != "" }

// bulkScratch is a bulk request's working memory: its items, their
// results and the response, and with a data dir its body. A 2,000-item
// bulk needs about 1 MB of it; allocating (and zeroing) that afresh for
// every request, and growing the items by append, cost more than
// validating the documents.
type bulkScratch struct {
	items []BulkItem
	res   []itemResult
	out   []byte
	body  []byte // with a data dir only (see bulk)
}

// maxScratchItems bounds the bulks whose scratch is kept for reuse (about
// 4 MB of it): a rare huge bulk does not pin its memory.
const maxScratchItems = 10000

// maxScratchBody bounds the request bodies kept for reuse: larger ones
// are rare (a pipeline sends a few MB at most).
const maxScratchBody = 4 << 20

// maxKeptScratch bounds the scratches a node keeps, however many write
// threads it has.
const maxKeptScratch = 4

// getScratch returns kept working memory, or new. A node keeps as many
// as it has write threads (up to maxKeptScratch), since that many bulks
// index at once: a free list rather than a sync.Pool, which the garbage
// collector empties, and it runs often when a memory limit is near.
func (n *node) getScratch() *bulkScratch {
	n.scratchMu.Lock()
	defer n.scratchMu.Unlock()
	if k := len(n.scratch); k > 0 {
		sc := n.scratch[k-1]
		n.scratch[k-1] = nil
		n.scratch = n.scratch[:k-1]
		return sc
	}
	return &bulkScratch{}
}

// putScratch keeps sc for the next bulk. Items and results point into the
// request body and the store's ids: they are cleared so that a kept
// scratch holds on to nothing. Results are cleared to their capacity: a
// write that failed after applying items did not hand them back.
func (n *node) putScratch(sc *bulkScratch) {
	if cap(sc.items) > maxScratchItems || cap(sc.res) > maxScratchItems {
		return
	}
	clear(sc.items)
	clear(sc.res[:cap(sc.res)])
	sc.items, sc.res, sc.out = sc.items[:0], sc.res[:0], sc.out[:0]
	if cap(sc.body) > maxScratchBody {
		sc.body = nil
	}
	n.scratchMu.Lock()
	defer n.scratchMu.Unlock()
	if len(n.scratch) < min(n.s.cfg.WriteThreads, maxKeptScratch) {
		n.scratch = append(n.scratch, sc)
	}
}

// bulk serves POST /_bulk and /{index}/_bulk.
func (n *node) bulk(w http.ResponseWriter, r *http.Request, defIndex string) {
	start := time.Now()
	if !n.validRefresh(w, r) {
		return
	}
	sc := n.getScratch()
	defer n.putScratch(sc)
	var body []byte
	var err error
	if n.s.cfg.DataDir != "" {
		// The store copies ids and sources into its log, and nothing else
		// outlives the request: the body's memory serves the next bulk.
		// Without a data dir stored documents alias the body.
		body, err = n.readBodyInto(r, sc.body)
		if body != nil {
			sc.body = body
		}
	} else {
		body, err = n.readBody(r)
	}
	if err != nil {
		n.bodyError(w, r, err)
		return
	}
	err = ParseBulk(body, defIndex, func(it BulkItem) error {
		sc.items = append(sc.items, it)
		return nil
	})
	items := sc.items
	if err != nil {
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception", trimErrPrefix(err), nil)
		return
	}
	if len(items) == 0 {
		n.esError(w, r, http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: no requests added;", nil)
		return
	}
	// Elasticsearch 8 (and OpenSearch 2) removed mapping types: a _type in
	// an action line fails the whole request, unless the client asked for
	// the 7.x REST compatibility.
	if n.s.major >= 8 && !strings.Contains(r.Header.Get("Content-Type")+r.Header.Get("Accept"), "compatible-with=7") {
		for _, it := range items {
			if it.Type != "" {
				n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception",
					"Action/metadata line ["+strconv.Itoa(it.Line)+"] contains an unknown parameter [_type]", nil)
				return
			}
		}
	}
	res, ok := n.write(w, r, items, sc.res, int64(len(body)))
	if !ok {
		return
	}
	sc.res = res[:0]
	n.s.bulkRequests.Add(1)
	n.s.bulkItems.Add(int64(len(items)))
	if !n.holdLate(r) {
		return
	}
	buf := sc.out
	if want := 64 + len(res)*200; cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	errs := false
	for i := range res {
		if res[i].failed() {
			errs = true
			break
		}
	}
	sc.out = n.appendBulkAnswer(buf, time.Since(start), errs, res)
	n.respond(w, r, http.StatusOK, sc.out)
}

// appendBulkAnswer renders a bulk's answer.
func (n *node) appendBulkAnswer(buf []byte, took time.Duration, errs bool, res []itemResult) []byte {
	buf = append(buf, `{"took":`...)
	buf = strconv.AppendInt(buf, took.Milliseconds(), 10)
	buf = append(buf, `,"errors":`...)
	buf = strconv.AppendBool(buf, errs)
	buf = append(buf, `,"items":[`...)
	var ic indexCache
	for i := range res {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '{', '"')
		buf = append(buf, res[i].op.String()...) // plain ASCII
		buf = append(buf, '"', ':')
		buf = n.appendItem(buf, &res[i], true, &ic)
		buf = append(buf, '}')
	}
	return append(buf, "]}"...)
}

// holdLate implements Faults.IndexLate: the documents are stored already;
// the answer waits LateBy, and a client that gave up never gets it.
func (n *node) holdLate(r *http.Request) bool {
	f := n.s.Faults()
	if !f.IndexLate {
		return true
	}
	t := time.NewTimer(f.LateBy)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func trimErrPrefix(err error) string {
	s := err.Error()
	p := ErrBulk.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func (n *node) validRefresh(w http.ResponseWriter, r *http.Request) bool {
	switch v := r.URL.Query().Get("refresh"); v {
	case "", "true", "false", "wait_for":
		return true
	default:
		n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception", "Unknown value for refresh: ["+v+"].", nil)
		return false
	}
}

// writeOne serves the single-document APIs through the bulk path.
func (n *node) writeOne(w http.ResponseWriter, r *http.Request, it BulkItem) {
	if !n.validRefresh(w, r) {
		return
	}
	res, ok := n.write(w, r, []BulkItem{it}, nil, int64(len(it.Source)))
	if !ok {
		return
	}
	if !n.holdLate(r) {
		return
	}
	x := &res[0]
	if x.failed() {
		extra := map[string]any{}
		if x.errIndex {
			extra = map[string]any{"index_uuid": x.uuid, "shard": "0", "index": x.index}
		}
		n.esError(w, r, x.status, x.errType, x.errReason, extra)
		return
	}
	n.respond(w, r, x.status, n.appendItem(nil, x, false, nil))
}

// write runs items through the faults, the write thread pool and the store,
// and returns their results in res's memory when it is large enough.
// ok is false when a response (whole-request failure) was already written.
func (n *node) write(w http.ResponseWriter, r *http.Request, items []BulkItem, res []itemResult, size int64) ([]itemResult, bool) {
	s := n.s
	f := s.Faults()
	if f.FailRate > 0 && s.roll() < f.FailRate {
		s.failures.Add(1)
		n.failWhole(w, r, f.FailStatus, size)
		return nil, false
	}
	if q := n.writeQueue.Add(1); q > int64(s.cfg.WriteQueueSize) {
		n.writeQueue.Add(-1)
		n.rejected.Add(1)
		n.esError(w, r, http.StatusTooManyRequests, "es_rejected_execution_exception", n.rejectReason(), nil)
		return nil, false
	}
	select {
	case n.sem <- struct{}{}:
	case <-r.Context().Done():
		n.writeQueue.Add(-1)
		return nil, false
	}
	n.writeQueue.Add(-1)
	a := n.writeActive.Add(1)
	for {
		l := n.largest.Load()
		if a <= l || n.largest.CompareAndSwap(l, a) {
			break
		}
	}
	n.pressure.Add(size)
	n.pressureTotal.Add(size)
	defer func() {
		n.pressure.Add(-size)
		n.writeActive.Add(-1)
		n.writeCompleted.Add(1)
		<-n.sem
	}()
	if f.Latency > 0 && !sleepCtx(r.Context(), f.Latency) {
		return nil, false
	}

	if cap(res) < len(items) {
		res = make([]itemResult, len(items))
	}
	res = res[:len(items)]
	// Validating the sources is a third of a bulk's CPU and needs no lock:
	// done here, concurrent bulks do it in parallel, and the store's lock
	// is held only for what reads or changes the store.
	for i := range items {
		it := &items[i]
		res[i].badSource = (it.Op == OpIndex || it.Op == OpCreate) && !validObject(it.Source)
	}
	st := s.store
	st.Lock()
	// A bulk request's items nearly always name one index: its name is
	// checked once, not per item.
	var validIndex string
	for start := 0; start < len(items); start += store.WarmBatch {
		end := min(start+store.WarmBatch, len(items))
		warm(st, items[start:end])
		for i := start; i < end; i++ {
			n.apply(&items[i], &res[i], f, &validIndex)
		}
	}
	err := st.FlushLocked()
	st.Unlock()
	if err != nil {
		n.esError(w, r, http.StatusInternalServerError, "exception", err.Error(), nil)
		return nil, false
	}
	return res, true
}

// warm has the store bring into the cache the id table slots of the
// items' ids (see store.WarmLocked), index by index.
func warm(st *store.Store, items []BulkItem) {
	var ids [store.WarmBatch]string
	for len(items) > 0 {
		name := items[0].Index
		k := 0
		for len(items) > 0 && items[0].Index == name && k < len(ids) {
			if items[0].ID != "" {
				ids[k] = items[0].ID
				k++
			}
			items = items[1:]
		}
		if ix := st.LookupLocked(name); ix != nil {
			st.WarmLocked(ix, ids[:k])
		}
	}
}

// failWhole answers a whole write request with status, the way an
// overloaded node does: 429 is an indexing-pressure (coordinating)
// rejection, 5xx a cluster that cannot take writes.
func (n *node) failWhole(w http.ResponseWriter, r *http.Request, status int, size int64) {
	if status == http.StatusTooManyRequests {
		n.coordRejections.Add(1)
		n.esError(w, r, status, "es_rejected_execution_exception",
			"rejected execution of coordinating operation [coordinating_and_primary_bytes="+strconv.FormatInt(n.pressure.Load(), 10)+
				", replica_bytes=0, all_bytes="+strconv.FormatInt(n.pressure.Load(), 10)+
				", coordinating_operation_bytes="+strconv.FormatInt(size, 10)+
				", max_coordinating_and_primary_bytes="+strconv.FormatInt(n.s.cfg.MaxContentLength/10, 10)+"]", nil)
		return
	}
	n.esError(w, r, status, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master];", nil)
}

func (n *node) rejectReason() string {
	return "rejected execution of org.elasticsearch.action.support.replication.TransportWriteAction$1 on EsThreadPoolExecutor[name = " +
		n.name + "/write, queue capacity = " + strconv.Itoa(n.s.cfg.WriteQueueSize) + ", active threads = " +
		strconv.FormatInt(n.writeActive.Load(), 10) + ", queued tasks = " + strconv.FormatInt(n.writeQueue.Load(), 10) + "]"
}

// apply performs one item; the caller holds the store lock. validIndex
// is an index name known to be valid, updated to the item's when it is.
func (n *node) apply(it *BulkItem, x *itemResult, f Faults, validIndex *string) {
	s := n.s
	st := s.store
	*x = itemResult{op: it.Op, index: it.Index, id: it.ID, badSource: x.badSource} // x may be reused memory
	fail := func(status int, typ, reason string) {
		x.status, x.errType, x.errReason = status, typ, reason
	}
	if it.Index == "" || it.Index != *validIndex {
		if msg := checkIndexName(it.Index); msg != "" {
			fail(http.StatusBadRequest, "invalid_index_name_exception", "Invalid index name ["+it.Index+"], "+msg)
			return
		}
		*validIndex = it.Index
	}
	if len(it.ID) > 512 {
		fail(http.StatusBadRequest, "illegal_argument_exception", "id ["+it.ID[:32]+"...] is too long, must be no longer than 512 bytes but was: "+strconv.Itoa(len(it.ID)))
		return
	}
	if it.ID == "" {
		if it.Op == OpUpdate || it.Op == OpDelete {
			fail(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: id is missing;")
			return
		}
		x.id = st.NewIDLocked()
	}
	if f.Health == "red" {
		fail(http.StatusServiceUnavailable, "unavailable_shards_exception",
			"["+it.Index+"][0] primary shard is not active Timeout: [1m], request: [BulkShardRequest [["+it.Index+"][0]] containing [1] requests]")
		return
	}
	if f.RejectRate > 0 && s.roll() < f.RejectRate {
		n.rejected.Add(1)
		fail(http.StatusTooManyRequests, "es_rejected_execution_exception", n.rejectReason())
		return
	}
	if x.badSource {
		typ := "document_parsing_exception"
		if s.major < 8 {
			typ = "mapper_parsing_exception"
		}
		fail(http.StatusBadRequest, typ, "[1:1] failed to parse: source is not a JSON object")
		return
	}
	if f.DropRate > 0 && (it.Op == OpIndex || it.Op == OpCreate) && s.roll() < f.DropRate {
		s.dropped.Add(1)
		x.status, x.result, x.version, x.seq = http.StatusCreated, "created", 1, st.NextSeqLocked()
		return
	}
	if max := s.cfg.MaxDocs; max > 0 && it.Op != OpDelete && st.LiveLocked() >= max {
		// Elasticsearch past the flood-stage watermark: every index gets
		// read_only_allow_delete; writes fail, deletes free room.
		s.blocked.Add(1)
		fail(http.StatusTooManyRequests, "cluster_block_exception",
			"index ["+it.Index+"] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];")
		return
	}
	ix := st.LookupLocked(it.Index)
	switch it.Op {
	case OpIndex, OpCreate:
		if ix == nil {
			ix = st.CreateIndexLocked(it.Index)
		}
		x.uuid = ix.UUID()
		old, err := st.GetLocked(ix, x.id)
		if err != nil {
			fail(http.StatusInternalServerError, "exception", err.Error())
			return
		}
		if old != nil && it.Op == OpCreate {
			s.conflicts.Add(1)
			x.errIndex = true
			fail(http.StatusConflict, "version_conflict_engine_exception",
				"["+x.id+"]: version conflict, document already exists (current version ["+strconv.FormatInt(old.Version(), 10)+"])")
			return
		}
		v := int64(1)
		x.status, x.result = http.StatusCreated, "created"
		if old != nil {
			v = old.Version() + 1
			x.status, x.result = http.StatusOK, "updated"
		}
		d := st.PutLocked(ix, x.id, old, it.Source, v)
		x.version, x.seq = d.Version(), d.Seq()
	case OpDelete:
		if ix == nil {
			x.status, x.result, x.version = http.StatusNotFound, "not_found", 1
			return
		}
		x.uuid = ix.UUID()
		old, err := st.GetLocked(ix, x.id)
		if err != nil {
			fail(http.StatusInternalServerError, "exception", err.Error())
			return
		}
		if old == nil {
			x.status, x.result, x.version, x.seq = http.StatusNotFound, "not_found", 1, st.SeqLocked()
			return
		}
		version := old.Version() // old moves if the delete compacts the index
		if _, err := st.DeleteLocked(ix, x.id); err != nil {
			fail(http.StatusInternalServerError, "exception", err.Error())
			return
		}
		x.status, x.result, x.version, x.seq = http.StatusOK, "deleted", version+1, st.SeqLocked()
	case OpUpdate:
		var u struct {
			Doc         json.RawMessage `json:"doc"`
			DocAsUpsert bool            `json:"doc_as_upsert"`
			Upsert      json.RawMessage `json:"upsert"`
			Script      json.RawMessage `json:"script"`
		}
		if err := json.Unmarshal(it.Source, &u); err != nil {
			fail(http.StatusBadRequest, "x_content_parse_exception", "[1:1] [UpdateRequest] failed to parse: "+err.Error())
			return
		}
		if u.Script != nil {
			fail(http.StatusBadRequest, "illegal_argument_exception", "essim: scripted updates are not supported")
			return
		}
		var old *store.Doc
		if ix != nil {
			var err error
			if old, err = st.GetLocked(ix, x.id); err != nil {
				fail(http.StatusInternalServerError, "exception", err.Error())
				return
			}
			x.uuid = ix.UUID()
		}
		if old == nil {
			src := u.Upsert
			if u.DocAsUpsert {
				src = u.Doc
			}
			if src == nil {
				x.errIndex = ix != nil
				fail(http.StatusNotFound, "document_missing_exception", "["+x.id+"]: document missing")
				return
			}
			if ix == nil {
				ix = st.CreateIndexLocked(it.Index)
				x.uuid = ix.UUID()
			}
			// The id may alias the request body (see BulkItem), which
			// the stored source, unlike a create's, does not keep.
			x.id = strings.Clone(x.id)
			d := st.PutLocked(ix, x.id, nil, compactJSON(src), 1)
			x.status, x.result, x.version, x.seq = http.StatusCreated, "created", 1, d.Seq()
			return
		}
		oldSrc, err := st.SourceLocked(old)
		if err != nil {
			fail(http.StatusInternalServerError, "exception", err.Error())
			return
		}
		merged, err := mergeJSON(oldSrc, u.Doc)
		if err != nil {
			fail(http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		if bytes.Equal(merged, oldSrc) {
			x.status, x.result, x.version, x.seq = http.StatusOK, "noop", old.Version(), old.Seq()
			return
		}
		x.id = strings.Clone(x.id) // as for an upsert
		d := st.PutLocked(ix, x.id, old, merged, old.Version()+1)
		x.status, x.result, x.version, x.seq = http.StatusOK, "updated", d.Version(), d.Seq()
	}
}

// validObject is a cheap check that src is one JSON object.
func validObject(src []byte) bool {
	i := 0
	for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
		i++
	}
	return i < len(src) && src[i] == '{' && validJSON(src)
}

func compactJSON(b []byte) []byte {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}

// mergeJSON applies a partial document the way an update with "doc" does:
// objects merge recursively, everything else is replaced.
func mergeJSON(base, patch []byte) ([]byte, error) {
	if patch == nil {
		return base, nil
	}
	var a, b any
	d := json.NewDecoder(bytes.NewReader(base))
	d.UseNumber()
	if err := d.Decode(&a); err != nil {
		return nil, err
	}
	d = json.NewDecoder(bytes.NewReader(patch))
	d.UseNumber()
	if err := d.Decode(&b); err != nil {
		return nil, err
	}
	bm, ok := b.(map[string]any)
	if !ok {
		return nil, errors.New("[1:1] [UpdateRequest] doc must be an object")
	}
	am, _ := a.(map[string]any)
	if am == nil {
		am = map[string]any{}
	}
	mergeMaps(am, bm)
	out, err := json.Marshal(am)
	if err != nil {
		return nil, err
	}
	// Keep the stored bytes when nothing changed, so the update is a noop.
	var orig any
	d = json.NewDecoder(bytes.NewReader(base))
	d.UseNumber()
	if d.Decode(&orig) == nil {
		if ob, err := json.Marshal(orig); err == nil && bytes.Equal(ob, out) {
			return base, nil
		}
	}
	return out, nil
}

func mergeMaps(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// indexCache holds the last index name appendItem encoded: a bulk's
// items nearly all name the same one.
type indexCache struct {
	name string
	enc  []byte
}

// appendItem renders one write result: as a bulk item (with status) or as
// a single-document response. ic, when not nil, keeps the encoded index
// name from item to item.
func (n *node) appendItem(buf []byte, x *itemResult, bulk bool, ic *indexCache) []byte {
	buf = append(buf, `{"_index":`...)
	switch {
	case ic == nil:
		buf = jsonenc.AppendString(buf, x.index)
	case ic.enc != nil && ic.name == x.index:
		buf = append(buf, ic.enc...)
	default:
		start := len(buf)
		buf = jsonenc.AppendString(buf, x.index)
		ic.name, ic.enc = x.index, append(ic.enc[:0], buf[start:]...)
	}
	buf = append(buf, `,"_id":`...)
	buf = jsonenc.AppendString(buf, x.id)
	if n.s.major < 8 {
		buf = append(buf, `,"_type":"_doc"`...)
	}
	if x.failed() {
		buf = append(buf, `,"status":`...)
		buf = strconv.AppendInt(buf, int64(x.status), 10)
		buf = append(buf, `,"error":{"type":`...)
		buf = jsonenc.AppendString(buf, x.errType)
		buf = append(buf, `,"reason":`...)
		buf = jsonenc.AppendString(buf, x.errReason)
		if x.errIndex {
			buf = append(buf, `,"index_uuid":`...)
			buf = jsonenc.AppendString(buf, x.uuid)
			buf = append(buf, `,"shard":"0","index":`...)
			buf = jsonenc.AppendString(buf, x.index)
		}
		return append(buf, "}}"...)
	}
	// The shards: a primary and a replica, the replica assigned only
	// when there is a second node. result is one of a few plain words.
	shards := `","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":`
	if len(n.s.nodes) > 1 {
		shards = `","_shards":{"total":2,"successful":2,"failed":0},"_seq_no":`
	}
	buf = append(buf, `,"_version":`...)
	buf = strconv.AppendInt(buf, x.version, 10)
	buf = append(buf, `,"result":"`...)
	buf = append(buf, x.result...)
	buf = append(buf, shards...)
	buf = strconv.AppendInt(buf, x.seq, 10)
	buf = append(buf, `,"_primary_term":1`...)
	if bulk {
		buf = append(buf, `,"status":`...)
		buf = strconv.AppendInt(buf, int64(x.status), 10)
	}
	return append(buf, '}')
}
