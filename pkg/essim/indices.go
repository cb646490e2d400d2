package essim

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/essim/store"
)

// Documents and indices: create, get and delete an index, refresh, the
// single-document API, _cat/indices, and the templates, ILM policies and
// ingest pipelines shippers install.

func (n *node) createIndex(w http.ResponseWriter, r *http.Request, name string) {
	if msg := checkIndexName(name); msg != "" {
		n.esError(w, r, http.StatusBadRequest, "invalid_index_name_exception", "Invalid index name ["+name+"], "+msg,
			map[string]any{"index_uuid": "_na_", "index": name})
		return
	}
	if _, err := n.readBody(r); err != nil {
		n.bodyError(w, r, err)
		return
	}
	st := n.s.store
	st.Lock()
	if ix := st.LookupLocked(name); ix != nil {
		st.Unlock()
		n.esError(w, r, http.StatusBadRequest, "resource_already_exists_exception",
			"index ["+name+"/"+ix.UUID()+"] already exists", map[string]any{"index_uuid": ix.UUID(), "index": name})
		return
	}
	st.CreateIndexLocked(name)
	err := st.FlushLocked()
	st.Unlock()
	if err != nil {
		n.esError(w, r, http.StatusInternalServerError, "exception", err.Error(), nil)
		return
	}
	n.respondJSON(w, r, http.StatusOK, map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name})
}

func (n *node) getIndex(w http.ResponseWriter, r *http.Request, pattern string) {
	st := n.s.store
	st.RLock()
	ixs, err := resolveRequestLocked(st, pattern, r.URL.Query())
	out := map[string]any{}
	for _, ix := range ixs {
		out[ix.Name()] = map[string]any{
			"aliases":  map[string]any{},
			"mappings": map[string]any{},
			"settings": map[string]any{"index": map[string]any{
				"creation_date":      strconv.FormatInt(ix.Created().UnixMilli(), 10),
				"number_of_shards":   "1",
				"number_of_replicas": "1",
				"uuid":               ix.UUID(),
				"provided_name":      ix.Name(),
			}},
		}
	}
	st.RUnlock()
	var nf *store.ErrIndexNotFound
	if errors.As(err, &nf) {
		n.indexNotFound(w, r, nf.Name)
		return
	}
	n.respondJSON(w, r, http.StatusOK, out)
}

func (n *node) deleteIndex(w http.ResponseWriter, r *http.Request, pattern string) {
	st := n.s.store
	st.Lock()
	ixs, err := st.ResolveStrictLocked(pattern)
	var nf *store.ErrIndexNotFound
	if errors.As(err, &nf) {
		st.Unlock()
		n.indexNotFound(w, r, nf.Name)
		return
	}
	for _, ix := range ixs {
		st.DeleteIndexLocked(ix.Name())
	}
	ferr := st.FlushLocked()
	st.Unlock()
	if ferr != nil {
		n.esError(w, r, http.StatusInternalServerError, "exception", ferr.Error(), nil)
		return
	}
	n.respondJSON(w, r, http.StatusOK, map[string]any{"acknowledged": true})
}

func (n *node) refresh(w http.ResponseWriter, r *http.Request, pattern string) {
	n.s.store.RLock()
	ixs, err := resolveRequestLocked(n.s.store, pattern, r.URL.Query())
	n.s.store.RUnlock()
	var nf *store.ErrIndexNotFound
	if errors.As(err, &nf) {
		n.indexNotFound(w, r, nf.Name)
		return
	}
	shards := len(ixs) * 2
	n.respondJSON(w, r, http.StatusOK, map[string]any{"_shards": map[string]any{
		"total": shards, "successful": n.s.successfulShards(len(ixs)), "failed": 0}})
}

// successfulShards: one primary and one replica per index; the replica is
// only assigned when there is a second node.
func (s *Server) successfulShards(indices int) int {
	if len(s.nodes) > 1 {
		return indices * 2
	}
	return indices
}

// docAPI serves /{index}/_doc[/{id}] and /{index}/_create/{id} by running a
// one-item bulk, so single writes see the same faults and counters.
func (n *node) docAPI(w http.ResponseWriter, r *http.Request, index, kind, id string) {
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && kind == "_doc" && id != "":
		n.getDoc(w, r, index, id)
		return
	case r.Method == http.MethodDelete && kind == "_doc" && id != "":
		n.writeOne(w, r, BulkItem{Op: OpDelete, Index: index, ID: id, Line: 1})
		return
	case r.Method == http.MethodPost || r.Method == http.MethodPut:
	default:
		n.methodNotAllowed(w, r, []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete})
		return
	}
	if r.Method == http.MethodPut && id == "" {
		n.methodNotAllowed(w, r, []string{http.MethodPost})
		return
	}
	body, err := n.readBody(r)
	if err != nil {
		n.bodyError(w, r, err)
		return
	}
	op := OpIndex
	if kind == "_create" || r.URL.Query().Get("op_type") == "create" {
		op = OpCreate
	}
	n.writeOne(w, r, BulkItem{Op: op, Index: index, ID: id, Source: trimNewlines(body), Line: 1})
}

func trimNewlines(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func (n *node) getDoc(w http.ResponseWriter, r *http.Request, index, id string) {
	st := n.s.store
	st.RLock()
	ix := st.LookupLocked(index)
	var d store.Doc
	var src []byte
	var err error
	found := false
	if ix != nil {
		var p *store.Doc
		if p, err = st.GetLocked(ix, id); p != nil {
			d, found = *p, true
			src, err = st.SourceLocked(p)
		}
	}
	st.RUnlock()
	if err != nil {
		n.esError(w, r, http.StatusInternalServerError, "exception", err.Error(), nil)
		return
	}
	if ix == nil {
		n.indexNotFound(w, r, index)
		return
	}
	if !found {
		n.respondJSON(w, r, http.StatusNotFound, map[string]any{"_index": index, "_id": id, "found": false})
		return
	}
	out := map[string]any{"_index": index, "_id": id, "_version": d.Version(), "_seq_no": d.Seq(),
		"_primary_term": 1, "found": true, "_source": json.RawMessage(src)}
	if n.s.major < 8 {
		out["_type"] = "_doc"
	}
	n.respondJSON(w, r, http.StatusOK, out)
}

// catIndices serves _cat/indices[/{pattern}].
func (n *node) catIndices(w http.ResponseWriter, r *http.Request, pattern string) {
	cols := []string{"health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted", "store.size", "pri.store.size"}
	if h := r.URL.Query().Get("h"); h != "" {
		cols = strings.Split(h, ",")
	}
	health := n.s.Faults().Health
	if health == "" {
		health = "green"
	}
	st := n.s.store
	st.RLock()
	ixs := st.ResolveLocked(pattern)
	var rows []map[string]string
	for _, ix := range ixs {
		size := ix.SourceBytes()
		v := map[string]string{"health": health, "status": "open", "index": ix.Name(), "uuid": ix.UUID(), "pri": "1", "rep": "1",
			"docs.count": strconv.Itoa(ix.Count()), "docs.deleted": "0", "store.size": strconv.FormatInt(size, 10) + "b",
			"pri.store.size": strconv.FormatInt(size, 10) + "b"}
		row := map[string]string{}
		for _, c := range cols {
			row[c] = v[c]
		}
		rows = append(rows, row)
	}
	st.RUnlock()
	n.catRows(w, r, cols, rows)
}

// templateAPI keeps index templates, ILM policies and ingest pipelines as
// opaque JSON so shippers that install them at startup
// (fluent-plugin-elasticsearch template_name, ilm_policy) work; essim does
// not apply them.
func (n *node) templateAPI(w http.ResponseWriter, r *http.Request, kind, name string) {
	s := n.s
	key := kind + "/" + name
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		body, err := n.readBody(r)
		if err != nil {
			n.bodyError(w, r, err)
			return
		}
		if !validJSON(body) {
			n.esError(w, r, http.StatusBadRequest, "x_content_parse_exception", "[1:1] "+kind+" body is not JSON", nil)
			return
		}
		s.mu.Lock()
		if s.templates == nil {
			s.templates = map[string]json.RawMessage{}
		}
		s.templates[key] = append(json.RawMessage(nil), body...)
		s.mu.Unlock()
		n.respondJSON(w, r, http.StatusOK, map[string]any{"acknowledged": true})
	case http.MethodGet, http.MethodHead, http.MethodDelete:
		s.mu.Lock()
		body, ok := s.templates[key]
		if ok && r.Method == http.MethodDelete {
			delete(s.templates, key)
		}
		s.mu.Unlock()
		switch {
		case !ok:
			n.esError(w, r, http.StatusNotFound, "resource_not_found_exception", kind+" ["+name+"] missing", nil)
		case r.Method == http.MethodDelete:
			n.respondJSON(w, r, http.StatusOK, map[string]any{"acknowledged": true})
		case kind == "_index_template":
			n.respondJSON(w, r, http.StatusOK, map[string]any{"index_templates": []any{map[string]any{"name": name, "index_template": body}}})
		case kind == "_component_template":
			n.respondJSON(w, r, http.StatusOK, map[string]any{"component_templates": []any{map[string]any{"name": name, "component_template": body}}})
		case kind == "_ilm/policy":
			n.respondJSON(w, r, http.StatusOK, map[string]any{name: map[string]any{"version": 1, "policy": body}})
		default:
			n.respondJSON(w, r, http.StatusOK, map[string]any{name: body})
		}
	default:
		n.methodNotAllowed(w, r, []string{http.MethodPut, http.MethodGet, http.MethodHead, http.MethodDelete})
	}
}

// checkIndexName applies Elasticsearch's index name rules.
func checkIndexName(name string) string {
	switch {
	case name == "":
		return "index name must not be empty"
	case name != strings.ToLower(name):
		return "must be lowercase"
	case strings.HasPrefix(name, "_") || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "+"):
		return "must not start with '_', '-', or '+'"
	case name == "." || name == "..":
		return "must not be '.' or '..'"
	case len(name) > 255:
		return "index name is too long, (" + strconv.Itoa(len(name)) + " > 255)"
	case strings.ContainsAny(name, "\\/*?\"<>| ,#:"):
		return `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`
	}
	return ""
}

// resolveRequestLocked resolves pattern for a read request, honouring
// ignore_unavailable (skip missing concrete names) and allow_no_indices
// (default true: wildcards matching nothing are fine).
func resolveRequestLocked(st *store.Store, pattern string, q url.Values) ([]*store.Index, error) {
	ixs, err := st.ResolveStrictLocked(pattern)
	if err != nil && q.Get("ignore_unavailable") == "true" {
		err = nil
	}
	if err == nil && len(ixs) == 0 && q.Get("allow_no_indices") == "false" {
		err = &store.ErrIndexNotFound{Name: pattern}
	}
	return ixs, err
}
