package essim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// respond writes a JSON body with Elasticsearch's headers, honouring
// filter_path, and nothing but headers for HEAD.
func (n *node) respond(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	if fp := r.URL.Query().Get("filter_path"); fp != "" && len(body) > 0 {
		body = filterPath(body, fp)
	}
	h := w.Header()
	h.Set("Content-Type", n.contentType(r))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// contentType mirrors the compatible-with media type when a client asks for
// it (elasticsearch-py 8 and the Go client v8 do).
func (n *node) contentType(r *http.Request) string {
	if a := r.Header.Get("Accept"); strings.Contains(a, "vnd.elasticsearch+json") {
		v := strconv.Itoa(n.s.major)
		if i := strings.Index(a, "compatible-with="); i >= 0 {
			rest := a[i+len("compatible-with="):]
			if j := strings.IndexAny(rest, ",; "); j >= 0 {
				rest = rest[:j]
			}
			v = rest
		}
		return "application/vnd.elasticsearch+json;compatible-with=" + v
	}
	return "application/json"
}

func (n *node) respondJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		n.esError(w, r, http.StatusInternalServerError, "exception", "essim: encoding response: "+err.Error(), nil)
		return
	}
	n.respond(w, r, status, b)
}

// esError writes Elasticsearch's error envelope:
// {"error":{"root_cause":[{type,reason,...}],"type","reason",...},"status":N}.
func (n *node) esError(w http.ResponseWriter, r *http.Request, status int, typ, reason string, extra map[string]any) {
	cause := map[string]any{"type": typ, "reason": reason}
	for k, v := range extra {
		cause[k] = v
	}
	top := map[string]any{"root_cause": []any{cause}}
	for k, v := range cause {
		top[k] = v
	}
	n.respondJSON(w, r, status, map[string]any{"error": top, "status": status})
}

func (n *node) indexNotFound(w http.ResponseWriter, r *http.Request, name string) {
	n.esError(w, r, http.StatusNotFound, "index_not_found_exception", "no such index ["+name+"]",
		map[string]any{"resource.type": "index_or_alias", "resource.id": name, "index_uuid": "_na_", "index": name})
}

// filterPath keeps only the fields matching Elasticsearch's filter_path
// patterns (comma-separated, dot paths, * within a segment, ** for any
// depth). Exclusions (-) are not supported. An unparseable body is returned
// unchanged.
func filterPath(body []byte, spec string) []byte {
	var v any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return body
	}
	var pats [][]string
	for _, p := range strings.Split(spec, ",") {
		if p = strings.TrimSpace(p); p != "" && !strings.HasPrefix(p, "-") {
			pats = append(pats, strings.Split(p, "."))
		}
	}
	out, ok := filterValue(v, pats)
	if !ok {
		return []byte("{}")
	}
	b, err := json.Marshal(out)
	if err != nil {
		return body
	}
	return b
}

// filterValue returns the parts of v matched by pats; ok is false when
// nothing matched.
func filterValue(v any, pats [][]string) (any, bool) {
	for _, p := range pats {
		if len(p) == 0 {
			return v, true
		}
	}
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, child := range t {
			var sub [][]string
			seen := map[string]bool{} // "**" keeps itself and its rest: without this the list doubles per level
			add := func(q []string) {
				key := strings.Join(q, "\x00")
				if !seen[key] {
					seen[key] = true
					sub = append(sub, q)
				}
			}
			for _, p := range pats {
				if p[0] == "**" {
					add(p) // ** may match more levels
					if len(p) > 1 {
						if ok, _ := path.Match(p[1], k); ok {
							add(p[2:])
						}
					}
					continue
				}
				if ok, _ := path.Match(p[0], k); ok {
					add(p[1:])
				}
			}
			if len(sub) == 0 {
				continue
			}
			if fv, ok := filterValue(child, sub); ok {
				out[k] = fv
			}
		}
		return out, len(out) > 0
	case []any:
		// Arrays are transparent: patterns apply to their elements.
		var out []any
		for _, e := range t {
			if fv, ok := filterValue(e, pats); ok {
				out = append(out, fv)
			}
		}
		return out, len(out) > 0
	}
	return nil, false
}
