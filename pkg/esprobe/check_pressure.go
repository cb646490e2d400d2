package esprobe

import (
	"fmt"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// checkPressure compares two stats snapshots taken elapsed apart:
// thread_pool.write rejections and indexing pressure rejections, critical
// when they grew during the probe, a warning for past ones. Past write
// rejections are not reported again when the canary bulk already was
// (bulkRejected).
func checkPressure(before, after *statsSnap, elapsed time.Duration, bulkRejected bool) (*Pressure, outcome) {
	var out outcome
	pr := &Pressure{WriteQueue: after.queue, WriteActive: after.active, WriteRejected: after.rejected,
		WriteRejectedDelta: after.rejected - before.rejected, PressureRejected: after.pressure,
		PressureRejectDelta: after.pressure - before.pressure, IntervalMS: elapsed.Milliseconds(),
		IndexingPressure: after.pressureReported}
	out.check(Check{Name: "write_pressure", OK: pr.WriteRejectedDelta == 0 && pr.PressureRejectDelta == 0,
		Detail: fmt.Sprintf("write rejected %d (+%d), queue %d; indexing_pressure rejections %d (+%d) over %d ms",
			pr.WriteRejected, pr.WriteRejectedDelta, pr.WriteQueue, pr.PressureRejected, pr.PressureRejectDelta, pr.IntervalMS)}, time.Now())
	ev := map[string]any{"write_rejected": pr.WriteRejected, "write_rejected_delta": pr.WriteRejectedDelta,
		"write_queue": pr.WriteQueue, "interval_ms": pr.IntervalMS}
	if pr.WriteRejected > 0 && !bulkRejected {
		sev, sum := report.Warning, fmt.Sprintf("thread_pool.write rejected %d tasks since the nodes started%s", pr.WriteRejected, rejectionCost)
		if pr.WriteRejectedDelta > 0 {
			sev, sum = report.Critical, fmt.Sprintf("thread_pool.write rejected %d tasks during the probe (%d in total): bulk items are getting 429%s",
				pr.WriteRejectedDelta, pr.WriteRejected, rejectionCost)
		}
		out.add(report.Finding{ID: FindingWriteRejections, Severity: sev, Summary: sum, Evidence: ev, Remedy: remedyRejections})
	}
	if pr.PressureRejected > 0 {
		sev, sum := report.Warning, fmt.Sprintf("indexing pressure rejected %d requests since the nodes started", pr.PressureRejected)
		if pr.PressureRejectDelta > 0 {
			sev, sum = report.Critical, fmt.Sprintf("indexing pressure rejected %d requests during the probe (%d in total)", pr.PressureRejectDelta, pr.PressureRejected)
		}
		out.add(report.Finding{ID: FindingIndexingPressure, Severity: sev, Summary: sum,
			Evidence: map[string]any{"rejections": pr.PressureRejected, "rejections_delta": pr.PressureRejectDelta, "interval_ms": pr.IntervalMS},
			Remedy:   remedyPressure})
	}
	return pr, out
}
