package essim

import (
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ServeHTTP routes the REST subset essim speaks.
func (n *node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := n.s
	s.requests.Add(1)
	f := s.Faults()
	if n.s.productHeader() && !f.StripProductHeader {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	p := strings.Trim(r.URL.Path, "/")
	var seg []string
	if p != "" {
		seg = strings.Split(p, "/")
	}
	if len(seg) > 0 && seg[0] == "_essim" {
		n.admin(w, r, seg[1:])
		return
	}
	if !n.authorized(w, r) {
		return
	}
	if f.NoKeepAlive {
		w.Header().Set("Connection", "close")
	}
	release, ok := n.chargeBody(w, r)
	if !ok {
		return
	}
	defer release()
	// Writes spend their latency inside the write thread pool (see
	// write), so slow indexing builds a real queue; other requests here.
	if f.Latency > 0 && !isWrite(r, seg) && !sleepCtx(r.Context(), f.Latency) {
		return
	}
	n.route(w, r, seg)
}

// isWrite reports the requests that go through the write thread pool.
func isWrite(r *http.Request, seg []string) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || len(seg) == 0 {
		return false
	}
	op := seg[0] // /_bulk
	if len(seg) >= 2 {
		op = seg[1] // /{index}/_bulk, /{index}/_doc/{id}, /{index}/_create/{id}
	}
	return op == "_bulk" || op == "_doc" || op == "_create"
}

// sleepCtx waits d or until ctx ends; false means ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// productHeader: Elasticsearch sends X-Elastic-Product from 7.14 on, and
// the official clients of those versions refuse servers without it.
func (s *Server) productHeader() bool {
	if s.opensearch {
		return false
	}
	if s.major >= 8 {
		return true
	}
	parts := strings.Split(s.cfg.Version, ".")
	if s.major == 7 && len(parts) > 1 {
		minor, _ := strconv.Atoi(parts[1])
		return minor >= 14
	}
	return false
}

func (n *node) route(w http.ResponseWriter, r *http.Request, seg []string) {
	m := r.Method
	is := func(methods ...string) bool {
		for _, x := range methods {
			if m == x {
				return true
			}
		}
		n.methodNotAllowed(w, r, methods)
		return false
	}
	switch {
	case len(seg) == 0:
		if is(http.MethodGet, http.MethodHead) {
			n.root(w, r)
		}
	case seg[0] == "_bulk" && len(seg) == 1:
		if is(http.MethodPost, http.MethodPut) {
			n.bulk(w, r, "")
		}
	case len(seg) == 2 && seg[1] == "_bulk" && !strings.HasPrefix(seg[0], "_"):
		if is(http.MethodPost, http.MethodPut) {
			n.bulk(w, r, seg[0])
		}
	case (len(seg) == 1 && seg[0] == "_refresh") || (len(seg) == 2 && seg[1] == "_refresh"):
		if is(http.MethodPost, http.MethodGet) {
			n.refresh(w, r, indexArg(seg))
		}
	case (len(seg) == 1 && seg[0] == "_count") || (len(seg) == 2 && seg[1] == "_count"):
		if is(http.MethodGet, http.MethodPost) {
			n.search(w, r, indexArg(seg), true)
		}
	case seg[0] == "_search" && len(seg) >= 2 && len(seg) <= 3 && seg[1] == "scroll":
		if is(http.MethodGet, http.MethodPost, http.MethodDelete) {
			id := ""
			if len(seg) == 3 {
				id = seg[2]
			}
			n.scrollAPI(w, r, id)
		}
	case (len(seg) == 1 && seg[0] == "_search") || (len(seg) == 2 && seg[1] == "_search"):
		if is(http.MethodGet, http.MethodPost) {
			n.search(w, r, indexArg(seg), false)
		}
	case seg[0] == "_cluster" && len(seg) >= 2 && seg[1] == "health":
		if is(http.MethodGet) {
			n.health(w, r)
		}
	case seg[0] == "_nodes":
		if is(http.MethodGet) {
			n.nodesAPI(w, r, seg[1:])
		}
	case seg[0] == "_cat" && len(seg) >= 2 && seg[1] == "thread_pool":
		if is(http.MethodGet) {
			n.catThreadPool(w, r, seg[2:])
		}
	case seg[0] == "_cat" && len(seg) >= 2 && seg[1] == "indices":
		if is(http.MethodGet) {
			pattern := "_all"
			if len(seg) > 2 {
				pattern = seg[2]
			}
			n.catIndices(w, r, pattern)
		}
	case len(seg) == 2 && isTemplateAPI(seg[0]), len(seg) == 3 && seg[0] == "_ilm" && seg[1] == "policy",
		len(seg) == 3 && seg[0] == "_ingest" && seg[1] == "pipeline":
		n.templateAPI(w, r, strings.Join(seg[:len(seg)-1], "/"), seg[len(seg)-1])
	case strings.HasPrefix(seg[0], "_"):
		n.noHandler(w, r)
	case len(seg) == 1:
		switch m {
		case http.MethodPut:
			n.createIndex(w, r, seg[0])
		case http.MethodGet, http.MethodHead:
			n.getIndex(w, r, seg[0])
		case http.MethodDelete:
			n.deleteIndex(w, r, seg[0])
		default:
			n.methodNotAllowed(w, r, []string{http.MethodPut, http.MethodGet, http.MethodHead, http.MethodDelete})
		}
	case (len(seg) == 2 || len(seg) == 3) && (seg[1] == "_doc" || seg[1] == "_create"):
		id := ""
		if len(seg) == 3 {
			id = seg[2]
		}
		n.docAPI(w, r, seg[0], seg[1], id)
	default:
		n.noHandler(w, r)
	}
}

func isTemplateAPI(s string) bool {
	return s == "_template" || s == "_index_template" || s == "_component_template"
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

// noHandler answers like Elasticsearch for an unknown endpoint: 400 and
// {"error": "no handler found ..."} without a status field.
func (n *node) noHandler(w http.ResponseWriter, r *http.Request) {
	n.respondJSON(w, r, http.StatusBadRequest, map[string]any{
		"error": fmt.Sprintf("no handler found for uri [%s] and method [%s]", r.URL.Path, r.Method)})
}

func indexArg(seg []string) string {
	if len(seg) == 2 {
		return seg[0]
	}
	return "_all"
}

func (n *node) methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed []string) {
	w.Header().Set("Allow", strings.Join(allowed, ","))
	n.respondJSON(w, r, http.StatusMethodNotAllowed, map[string]any{
		"error":  fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]", r.URL.RequestURI(), r.Method, strings.Join(allowed, ", ")),
		"status": 405})
}

// authorized checks basic auth or an API key when the cluster has security
// on, answering 401 security_exception like Elasticsearch otherwise.
func (n *node) authorized(w http.ResponseWriter, r *http.Request) bool {
	c := n.s.cfg
	if c.Username == "" && c.APIKey == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	reason := "missing authentication credentials for REST request [" + r.URL.RequestURI() + "]"
	if h != "" {
		scheme, cred, _ := strings.Cut(h, " ")
		switch strings.ToLower(scheme) {
		case "basic":
			if c.Username != "" {
				raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
				user, pass, _ := strings.Cut(string(raw), ":")
				if err == nil && subtle.ConstantTimeCompare([]byte(user), []byte(c.Username)) == 1 &&
					subtle.ConstantTimeCompare([]byte(pass), []byte(c.Password)) == 1 {
					return true
				}
				reason = "unable to authenticate user [" + user + "] for REST request [" + r.URL.RequestURI() + "]"
			}
		case "apikey":
			if c.APIKey != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), []byte(c.APIKey)) == 1 {
				return true
			}
			reason = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
		}
	}
	w.Header()["WWW-Authenticate"] = []string{`Basic realm="security" charset="UTF-8"`, `ApiKey`}
	n.esError(w, r, http.StatusUnauthorized, "security_exception", reason,
		map[string]any{"header": map[string]any{"WWW-Authenticate": []string{`Basic realm="security" charset="UTF-8"`, "ApiKey"}}})
	return false
}

func (s *Server) versionInfo() map[string]any {
	v := map[string]any{
		"number":                              s.cfg.Version,
		"build_flavor":                        "default",
		"build_type":                          "tar",
		"build_hash":                          "0123456789abcdef0123456789abcdef01234567",
		"build_date":                          "2024-08-05T10:05:34.233336849Z",
		"build_snapshot":                      false,
		"lucene_version":                      "9.11.1",
		"minimum_wire_compatibility_version":  "7.17.0",
		"minimum_index_compatibility_version": "7.0.0",
	}
	if s.opensearch {
		v["distribution"] = "opensearch"
		v["lucene_version"] = "9.7.0"
		v["minimum_wire_compatibility_version"] = "7.10.0"
		v["minimum_index_compatibility_version"] = "7.0.0"
		delete(v, "build_flavor")
	} else if s.major < 8 {
		v["lucene_version"] = "8.11.1"
		v["minimum_wire_compatibility_version"] = "6.8.0"
		v["minimum_index_compatibility_version"] = "6.0.0-beta1"
	}
	return v
}

func (n *node) root(w http.ResponseWriter, r *http.Request) {
	n.respondJSON(w, r, http.StatusOK, map[string]any{
		"name":         n.name,
		"cluster_name": n.s.cfg.ClusterName,
		"cluster_uuid": nodeID(n.s.cfg.ClusterName, -1),
		"version":      n.s.versionInfo(),
		"tagline":      n.s.tagline(),
	})
}

func (s *Server) tagline() string {
	if s.opensearch {
		return "The OpenSearch Project: https://opensearch.org/"
	}
	return "You Know, for Search"
}

// readBody reads a request body up to the cluster's max_content_length,
// inflating gzip; errTooLarge means 413.
func (n *node) readBody(r *http.Request) ([]byte, error) {
	max := n.s.cfg.MaxContentLength
	if r.ContentLength > max {
		return nil, errTooLarge
	}
	var rd io.Reader = io.LimitReader(r.Body, max+1)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		rd = io.LimitReader(zr, max+1)
	}
	size := r.ContentLength
	if size < 0 || size > max || r.Header.Get("Content-Encoding") != "" {
		size = 64 << 10
	}
	buf := make([]byte, 0, size+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		k, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if int64(len(buf)) > max {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading body: %w", err)
		}
	}
}

var errTooLarge = errors.New("request body larger than http.max_content_length")

// tooLarge answers 413 the way Elasticsearch's HTTP layer does: an empty
// body and the connection closed.
func (n *node) tooLarge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
}

func (n *node) bodyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errTooLarge) {
		n.tooLarge(w, r)
		return
	}
	var be *errBreaking
	if errors.As(err, &be) {
		n.discardBody(r)
		n.circuitBreaking(w, r, err)
		return
	}
	n.esError(w, r, http.StatusBadRequest, "parse_exception", err.Error(), nil)
}

func (n *node) refresh(w http.ResponseWriter, r *http.Request, pattern string) {
	n.s.store.mu.RLock()
	ixs, err := n.s.store.resolveRequestLocked(pattern, r.URL.Query())
	n.s.store.mu.RUnlock()
	var nf *errIndexNotFound
	if errors.As(err, &nf) {
		n.indexNotFound(w, r, nf.name)
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
	st.mu.Lock()
	if ix := st.indices[name]; ix != nil {
		st.mu.Unlock()
		n.esError(w, r, http.StatusBadRequest, "resource_already_exists_exception",
			"index ["+name+"/"+ix.uuid+"] already exists", map[string]any{"index_uuid": ix.uuid, "index": name})
		return
	}
	st.createIndexLocked(name)
	err := st.flushLocked()
	st.mu.Unlock()
	if err != nil {
		n.esError(w, r, http.StatusInternalServerError, "exception", err.Error(), nil)
		return
	}
	n.respondJSON(w, r, http.StatusOK, map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name})
}

func (n *node) getIndex(w http.ResponseWriter, r *http.Request, pattern string) {
	st := n.s.store
	st.mu.RLock()
	ixs, err := st.resolveRequestLocked(pattern, r.URL.Query())
	out := map[string]any{}
	for _, ix := range ixs {
		out[ix.name] = map[string]any{
			"aliases":  map[string]any{},
			"mappings": map[string]any{},
			"settings": map[string]any{"index": map[string]any{
				"creation_date":      strconv.FormatInt(ix.created.UnixMilli(), 10),
				"number_of_shards":   "1",
				"number_of_replicas": "1",
				"uuid":               ix.uuid,
				"provided_name":      ix.name,
			}},
		}
	}
	st.mu.RUnlock()
	var nf *errIndexNotFound
	if errors.As(err, &nf) {
		n.indexNotFound(w, r, nf.name)
		return
	}
	n.respondJSON(w, r, http.StatusOK, out)
}

func (n *node) deleteIndex(w http.ResponseWriter, r *http.Request, pattern string) {
	st := n.s.store
	st.mu.Lock()
	ixs, err := st.resolveStrictLocked(pattern)
	var nf *errIndexNotFound
	if errors.As(err, &nf) {
		st.mu.Unlock()
		n.indexNotFound(w, r, nf.name)
		return
	}
	for _, ix := range ixs {
		st.deleteIndexLocked(ix.name)
	}
	ferr := st.flushLocked()
	st.mu.Unlock()
	if ferr != nil {
		n.esError(w, r, http.StatusInternalServerError, "exception", ferr.Error(), nil)
		return
	}
	n.respondJSON(w, r, http.StatusOK, map[string]any{"acknowledged": true})
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
	st.mu.RLock()
	ix := st.indices[index]
	var d doc
	var src []byte
	var err error
	found := false
	if ix != nil {
		var p *doc
		if p, err = st.getLocked(ix, id); p != nil {
			d, found = *p, true
			src, err = st.sourceLocked(p)
		}
	}
	st.mu.RUnlock()
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
	out := map[string]any{"_index": index, "_id": id, "_version": d.version, "_seq_no": d.seq,
		"_primary_term": 1, "found": true, "_source": json.RawMessage(src)}
	if n.s.major < 8 {
		out["_type"] = "_doc"
	}
	n.respondJSON(w, r, http.StatusOK, out)
}

// health answers _cluster/health from Faults.Health: yellow leaves the
// replicas unassigned, red the primaries too.
func (n *node) health(w http.ResponseWriter, r *http.Request) {
	s := n.s
	status := s.Faults().Health
	if status == "" {
		status = "green"
	}
	s.store.mu.RLock()
	indices := len(s.store.indices)
	s.store.mu.RUnlock()
	total := indices * 2
	active, unassigned := total, 0
	switch status {
	case "yellow":
		unassigned = max(indices, 1)
	case "red":
		unassigned = max(total, 2)
	}
	active = max(total-unassigned, 0)
	primaries := indices
	if status == "red" {
		primaries = 0
	}
	pct := 100.0
	if active+unassigned > 0 {
		pct = 100 * float64(active) / float64(active+unassigned)
	}
	n.respondJSON(w, r, http.StatusOK, map[string]any{
		"cluster_name":                     s.cfg.ClusterName,
		"status":                           status,
		"timed_out":                        false,
		"number_of_nodes":                  len(s.nodes),
		"number_of_data_nodes":             len(s.nodes),
		"active_primary_shards":            primaries,
		"active_shards":                    active,
		"relocating_shards":                0,
		"initializing_shards":              0,
		"unassigned_shards":                unassigned,
		"unassigned_primary_shards":        indices - primaries,
		"delayed_unassigned_shards":        0,
		"number_of_pending_tasks":          0,
		"number_of_in_flight_fetch":        0,
		"task_max_waiting_in_queue_millis": 0,
		"active_shards_percent_as_number":  pct,
	})
}

func (n *node) nodeHeader(nd *node) map[string]any {
	host, _, _ := net.SplitHostPort(nd.ln.Addr().String())
	return map[string]any{
		"name":              nd.name,
		"transport_address": net.JoinHostPort(host, strconv.Itoa(9300+nd.idx)),
		"host":              host,
		"ip":                host,
		"roles":             []string{"data", "ingest", "master"},
	}
}

func (n *node) nodesEnvelope(nodes map[string]any) map[string]any {
	k := len(n.s.nodes)
	return map[string]any{
		"_nodes":       map[string]any{"total": k, "successful": k, "failed": 0},
		"cluster_name": n.s.cfg.ClusterName,
		"nodes":        nodes,
	}
}

// nodesAPI serves _nodes[/{nodes}][/http] (info) and
// _nodes[/{nodes}]/stats[/{metrics}].
func (n *node) nodesAPI(w http.ResponseWriter, r *http.Request, seg []string) {
	// Drop a node filter (_all, _local, ids): essim answers for all nodes.
	if len(seg) > 0 && seg[0] != "stats" && seg[0] != "http" && seg[0] != "settings" {
		if len(seg) >= 2 || strings.HasPrefix(seg[0], "_") {
			seg = seg[1:]
		}
	}
	if len(seg) > 0 && seg[0] == "stats" {
		metrics := ""
		if len(seg) > 1 {
			metrics = seg[1]
		}
		n.nodesStats(w, r, metrics)
		return
	}
	f := n.s.Faults()
	out := map[string]any{}
	for _, nd := range n.s.nodes {
		info := n.nodeHeader(nd)
		info["version"] = n.s.cfg.Version
		info["build_flavor"] = "default"
		info["build_type"] = "tar"
		info["build_hash"] = n.s.versionInfo()["build_hash"]
		info["attributes"] = map[string]any{}
		addr := nd.ln.Addr().String()
		publish := addr
		if f.PublishAddress != "" {
			publish = f.PublishAddress
		}
		if f.PublishAddress != "none" {
			info["http"] = map[string]any{
				"bound_address":               []string{addr},
				"publish_address":             publish,
				"max_content_length_in_bytes": n.s.cfg.MaxContentLength,
			}
		}
		out[nd.id] = info
	}
	n.respondJSON(w, r, http.StatusOK, n.nodesEnvelope(out))
}

func (n *node) nodesStats(w http.ResponseWriter, r *http.Request, metrics string) {
	want := map[string]bool{}
	for _, m := range strings.Split(metrics, ",") {
		if m != "" && m != "_all" {
			want[m] = true
		}
	}
	all := len(want) == 0
	s := n.s
	out := map[string]any{}
	for _, nd := range s.nodes {
		st := n.nodeHeader(nd)
		st["timestamp"] = time.Now().UnixMilli()
		if all || want["thread_pool"] {
			st["thread_pool"] = map[string]any{
				"write":  nd.writePoolStats(),
				"search": map[string]any{"threads": 0, "queue": 0, "active": 0, "rejected": 0, "largest": 0, "completed": 0},
			}
		}
		if all || want["http"] {
			st["http"] = map[string]any{"current_open": nd.open.Load(), "total_opened": nd.opened.Load()}
		}
		if all || want["breaker"] {
			used := nd.breaker.used.Load() * inflightOverhead
			st["breakers"] = map[string]any{nd.breakerName(): map[string]any{
				"limit_size_in_bytes": nd.breaker.limit, "limit_size": byteSize(nd.breaker.limit),
				"estimated_size_in_bytes": used, "estimated_size": byteSize(used),
				"overhead": float64(inflightOverhead), "tripped": nd.breaker.tripped.Load()}}
		}
		if all || want["indexing_pressure"] {
			cur := nd.pressure.Load()
			tot := nd.pressureTotal.Load()
			st["indexing_pressure"] = map[string]any{"memory": map[string]any{
				"current": map[string]any{
					"combined_coordinating_and_primary_in_bytes": cur, "coordinating_in_bytes": cur,
					"primary_in_bytes": cur, "replica_in_bytes": 0, "all_in_bytes": cur},
				"total": map[string]any{
					"combined_coordinating_and_primary_in_bytes": tot, "coordinating_in_bytes": tot,
					"primary_in_bytes": tot, "replica_in_bytes": 0, "all_in_bytes": tot,
					"coordinating_rejections": nd.coordRejections.Load(), "primary_rejections": 0, "replica_rejections": 0},
				"limit_in_bytes": s.cfg.MaxContentLength,
			}}
		}
		out[nd.id] = st
	}
	n.respondJSON(w, r, http.StatusOK, n.nodesEnvelope(out))
}

func (nd *node) writePoolStats() map[string]any {
	return map[string]any{
		"threads":   nd.s.cfg.WriteThreads,
		"queue":     nd.writeQueue.Load(),
		"active":    nd.writeActive.Load(),
		"rejected":  nd.rejected.Load(),
		"largest":   nd.largest.Load(),
		"completed": nd.writeCompleted.Load(),
	}
}

// catThreadPool serves _cat/thread_pool[/{pools}] as text or
// ?format=json, with ?h= columns and ?v headers.
func (n *node) catThreadPool(w http.ResponseWriter, r *http.Request, seg []string) {
	q := r.URL.Query()
	pools := []string{"search", "write"}
	if len(seg) > 0 && seg[0] != "" && seg[0] != "*" {
		pools = strings.Split(seg[0], ",")
	}
	cols := []string{"node_name", "name", "active", "queue", "rejected"}
	if h := q.Get("h"); h != "" {
		cols = strings.Split(h, ",")
	}
	var rows []map[string]string
	for _, nd := range n.s.nodes {
		host, port, _ := net.SplitHostPort(nd.ln.Addr().String())
		for _, p := range pools {
			v := map[string]string{"node_name": nd.name, "node_id": nd.id, "name": p, "host": host, "ip": host,
				"port": port, "type": "fixed", "active": "0", "queue": "0", "rejected": "0", "completed": "0",
				"largest": "0", "size": "0", "queue_size": "1000"}
			if p == "write" {
				v["active"] = strconv.FormatInt(nd.writeActive.Load(), 10)
				v["queue"] = strconv.FormatInt(nd.writeQueue.Load(), 10)
				v["rejected"] = strconv.FormatInt(nd.rejected.Load(), 10)
				v["completed"] = strconv.FormatInt(nd.writeCompleted.Load(), 10)
				v["largest"] = strconv.FormatInt(nd.largest.Load(), 10)
				v["size"] = strconv.Itoa(n.s.cfg.WriteThreads)
				v["queue_size"] = strconv.Itoa(n.s.cfg.WriteQueueSize)
			} else if p != "search" {
				continue
			}
			row := map[string]string{}
			for _, c := range cols {
				row[c] = v[c]
			}
			rows = append(rows, row)
		}
	}
	n.catRows(w, r, cols, rows)
}

// catRows writes _cat rows as ?format=json or as text with ?v headers.
func (n *node) catRows(w http.ResponseWriter, r *http.Request, cols []string, rows []map[string]string) {
	q := r.URL.Query()
	if q.Get("format") == "json" {
		if rows == nil {
			rows = []map[string]string{}
		}
		n.respondJSON(w, r, http.StatusOK, rows)
		return
	}
	var b strings.Builder
	if _, ok := q["v"]; ok {
		b.WriteString(strings.Join(cols, " ") + "\n")
	}
	for _, row := range rows {
		vals := make([]string, len(cols))
		for i, c := range cols {
			vals[i] = row[c]
		}
		b.WriteString(strings.Join(vals, " ") + "\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.WriteString(w, b.String())
	}
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
	st.mu.RLock()
	ixs := st.resolveLocked(pattern)
	var rows []map[string]string
	for _, ix := range ixs {
		var size int64
		for _, c := range ix.docs {
			for i := range c {
				size += int64(c[i].n)
			}
		}
		v := map[string]string{"health": health, "status": "open", "index": ix.name, "uuid": ix.uuid, "pri": "1", "rep": "1",
			"docs.count": strconv.Itoa(ix.count()), "docs.deleted": "0", "store.size": strconv.FormatInt(size, 10) + "b",
			"pri.store.size": strconv.FormatInt(size, 10) + "b"}
		row := map[string]string{}
		for _, c := range cols {
			row[c] = v[c]
		}
		rows = append(rows, row)
	}
	st.mu.RUnlock()
	n.catRows(w, r, cols, rows)
}

// admin serves /_essim/faults (GET, POST/PUT with a JSON Faults body;
// durations as strings like "250ms") and /_essim/stats.
func (n *node) admin(w http.ResponseWriter, r *http.Request, seg []string) {
	if !n.authorized(w, r) {
		return
	}
	s := n.s
	switch {
	case len(seg) == 1 && seg[0] == "faults" && r.Method == http.MethodGet:
		n.respondJSON(w, r, http.StatusOK, s.Faults())
	case len(seg) == 1 && seg[0] == "faults" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			n.esError(w, r, http.StatusBadRequest, "parse_exception", err.Error(), nil)
			return
		}
		f, err := ParseFaultsJSON(body)
		if err == nil {
			err = s.SetFaults(f)
		}
		if err != nil {
			n.esError(w, r, http.StatusBadRequest, "illegal_argument_exception", err.Error(), nil)
			return
		}
		n.respondJSON(w, r, http.StatusOK, s.Faults())
	case len(seg) == 1 && seg[0] == "stats" && r.Method == http.MethodGet:
		n.respondJSON(w, r, http.StatusOK, s.Stats())
	default:
		n.respondJSON(w, r, http.StatusNotFound, map[string]any{"error": "essim admin: GET|POST /_essim/faults, GET /_essim/stats", "status": 404})
	}
}

// ParseFaultsJSON decodes the admin endpoint's body: Faults' JSON fields
// with "latency", "idle_close" and "late_by" as Go duration strings.
func ParseFaultsJSON(b []byte) (Faults, error) {
	var f Faults
	err := json.Unmarshal(b, &f)
	return f, err
}
