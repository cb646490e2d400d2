package esprobe

import (
	"fmt"
	"slices"
	"time"

	"github.com/logdoctor/logdoctor/internal/stats"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// checkTimeout compares a latency p99 with the shipper's request timeout:
// the canary bulks' when there were any, else every request's (lats). It
// returns the p99 in ms: critical from the timeout on, a warning from
// half of it.
func checkTimeout(bulk *Bulk, lats []time.Duration, requestTimeout time.Duration) (float64, outcome) {
	var out outcome
	src := "bulk"
	var p99 float64
	if bulk != nil && len(bulk.Statuses) > 0 {
		p99 = bulk.LatencyP99MS
	} else {
		src = "requests"
		p99 = stats.MS(stats.Percentile(slices.Clone(lats), 0.99))
	}
	limit := stats.MS(requestTimeout)
	if p99 <= 0 {
		return p99, out
	}
	ev := map[string]any{"latency_p99_ms": round2(p99), "request_timeout_ms": requestTimeout.Milliseconds(), "measured_on": src}
	switch {
	case p99 >= limit:
		out.add(report.Finding{ID: FindingRequestTimeout, Severity: report.Critical,
			Summary:  fmt.Sprintf("%s latency p99 %.0f ms reaches the shipper's request timeout (%s): bulks time out and are resent", src, p99, requestTimeout),
			Evidence: ev, Remedy: remedyTimeout})
	case p99 >= limit/2:
		out.add(report.Finding{ID: FindingRequestTimeout, Severity: report.Warning,
			Summary:  fmt.Sprintf("%s latency p99 %.0f ms is over half the shipper's request timeout (%s)", src, p99, requestTimeout),
			Evidence: ev, Remedy: remedyTimeout})
	}
	return p99, out
}
