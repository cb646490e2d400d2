package cli

import (
	"runtime/debug"
	"testing"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live, fixed int64
		want        int
	}{
		{0, 0, 50},                 // nothing measured yet: the plain setting
		{100 << 20, 0, 50},         // no embedded index
		{200 << 20, 100 << 20, 25}, // half the heap fixed: 50% of the other half
		{210 << 20, 170 << 20, 10}, // 9.5% rounds down, then the floor
		{100 << 20, 150 << 20, 10}, // an estimate above the live heap
		{100 << 20, -5, 50},        // a nonsense fixed size counts as none
	} {
		if got := gcPercentFor(50, c.live, c.fixed); got != c.want {
			t.Errorf("gcPercentFor(50, %d, %d) = %d, want %d", c.live, c.fixed, got, c.want)
		}
	}
}

// TestTuneGCRestores: stopping the tuner puts back what GOGC was.
func TestTuneGCRestores(t *testing.T) {
	before := debug.SetGCPercent(73)
	defer debug.SetGCPercent(before)
	stop := tuneGC(50, func() int64 { return 0 })
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("GOGC while tuning = %d, want 50", got)
	}
	stop()
	if got := debug.SetGCPercent(73); got != 73 {
		t.Errorf("GOGC after stop = %d, want 73 restored", got)
	}
}
