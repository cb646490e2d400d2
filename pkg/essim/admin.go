package essim

import (
	"encoding/json"
	"io"
	"net/http"
)

// The admin API that changes faults at runtime (/_essim/faults) and
// reads the counters (/_essim/stats).

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
