package esprobe

import (
	"fmt"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// otherClients is what the other-clients check adds to Pool.
type otherClients struct {
	opened    int64
	windowMS  int64
	perSecond float64
}

func (r otherClients) apply(p *Pool) {
	p.OthersOpened, p.WindowMS, p.OthersPerSecond = r.opened, r.windowMS, r.perSecond
}

// checkOtherClients compares the growth of the cluster's
// http.total_opened between two snapshots with the connections the probe
// itself opened meanwhile (ours): the rest were opened by other clients.
// Many per second is the TIME_WAIT trail of a shipper without keep-alive
// (stalled Elasticsearch connections, docs/troubleshooting.md).
func checkOtherClients(before, after *statsSnap, ours int64) (otherClients, outcome) {
	var out outcome
	window := after.at.Sub(before.at)
	r := otherClients{opened: max(after.opened-before.opened-ours, 0), windowMS: window.Milliseconds()}
	if window > 0 {
		r.perSecond = float64(r.opened) / window.Seconds()
	}
	if r.opened >= 3 && r.perSecond >= 10 {
		out.add(report.Finding{ID: FindingConnectionChurn, Severity: report.Warning,
			Summary: fmt.Sprintf("other clients opened %d HTTP connections in %d ms (%.0f/s): some client does not reuse connections",
				r.opened, r.windowMS, r.perSecond),
			Evidence: map[string]any{"other_clients_opened": r.opened, "window_ms": r.windowMS,
				"per_second": round2(r.perSecond), "probe_opened": ours},
			Remedy: remedyChurn})
	}
	return r, out
}
