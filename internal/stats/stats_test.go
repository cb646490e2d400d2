package stats

import (
	"testing"
	"time"
)

func TestMS(t *testing.T) {
	if got := MS(1500 * time.Microsecond); got != 1.5 {
		t.Fatalf("MS(1.5ms) = %v", got)
	}
	if got := MS(999 * time.Nanosecond); got != 0 {
		t.Fatalf("MS(999ns) = %v, want 0 (microsecond precision)", got)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0: 1, 0.5: 50, 0.9: 90, 0.99: 99, 1: 100} {
		if got := Percentile(d, q); got != want*time.Millisecond {
			t.Errorf("p%v of 1..100 ms = %v, want %v ms", q*100, got, want)
		}
	}
	if d[0] != time.Millisecond || d[99] != 100*time.Millisecond {
		t.Fatalf("not sorted in place: %v .. %v", d[0], d[99])
	}
	// 60 samples: the nearest rank of p99 is the 60th (ceil(59.4)), the
	// maximum; rounding to the nearest would give the 59th.
	d = d[:0]
	for i := 1; i <= 60; i++ {
		d = append(d, time.Duration(i))
	}
	if got := PercentileSorted(d, 0.99); got != 60 {
		t.Fatalf("p99 of 60 samples = %v, want 60", got)
	}
	if Percentile(nil, 0.5) != 0 || PercentileSorted(nil, 0.5) != 0 {
		t.Fatal("no samples must give 0")
	}
	if got := Percentile([]time.Duration{3}, 0.99); got != 3 {
		t.Fatalf("one sample: %v", got)
	}
}
