package essim

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The cluster and its nodes: the root answer and version, product
// header, _cluster/health, _nodes info and stats, _cat/thread_pool.

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

// health answers _cluster/health from Faults.Health: yellow leaves the
// replicas unassigned, red the primaries too.
func (n *node) health(w http.ResponseWriter, r *http.Request) {
	s := n.s
	status := s.Faults().Health
	if status == "" {
		status = "green"
	}
	s.store.RLock()
	indices := s.store.NumIndicesLocked()
	s.store.RUnlock()
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
	host, _, _ := net.SplitHostPort(nd.addr)
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
		addr := nd.addr
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
		host, port, _ := net.SplitHostPort(nd.addr)
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
