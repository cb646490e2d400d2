// Package stats holds the summary statistics every report shares: a
// duration in the reports' millisecond unit and the nearest-rank
// percentile. One definition, so a p99 means the same in es probe,
// forward probe and smoke.
package stats

import (
	"slices"
	"time"
)

// MS is d in milliseconds, to the microsecond: the unit of every *_ms
// field of a report.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Percentile is the nearest-rank q-quantile of ds (q in [0, 1]): the
// smallest sample with at least q of the samples at or below it. It sorts
// ds in place and is 0 for no samples.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[rank(len(ds), q)]
}

// PercentileSorted is Percentile of samples already in ascending order.
func PercentileSorted(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[rank(len(sorted), q)]
}

// rank is the index of the nearest-rank q-quantile of n samples:
// ceil(q*n)-1, where the ceiling forgives the float error of q*n (0.99*100
// must be rank 99, not 100).
func rank(n int, q float64) int {
	k := int(q*float64(n)+0.999999) - 1
	return max(0, min(k, n-1))
}
