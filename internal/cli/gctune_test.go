package cli

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live, fixed int64
		want        int
	}{
		{0, 0, 50},                  // nothing measured yet: the plain setting
		{100 << 20, 0, 50},          // no embedded index
		{400 << 20, 200 << 20, 25},  // half the heap fixed: 50% of the other half
		{210 << 20, 170 << 20, 10},  // 9.5% rounds down, then the floor
		{100 << 20, 150 << 20, 10},  // an estimate above the live heap
		{100 << 20, -5, 50},         // a nonsense fixed size counts as none
		{4 << 20, 0, 1500},          // a small heap may grow to 64 MiB
		{40 << 20, 0, 60},           // 50% is 60 MiB: up to 64
		{60 << 20, 50 << 20, 10},    // 5 MiB of headroom reaches past 64 MiB: 8%, then the floor
		{1000 << 20, 990 << 20, 10}, // nearly all fixed: at least minGCPercent
	} {
		if got := gcPercentFor(50, c.live, c.fixed); got != c.want {
			t.Errorf("gcPercentFor(50, %d, %d) = %d, want %d", c.live, c.fixed, got, c.want)
		}
	}
}

func gogc(t *testing.T) int {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC collects until GOGC satisfies ok: the tuner hears of a
// collection through a finalizer, which runs a moment after it.
func waitGOGC(t *testing.T, what string, ok func(int) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(gogc(t)) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC = %d, want %s", gogc(t), what)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTuneGCFollowsCollections: GOGC follows the live heap after each
// collection, and stopping the tuner puts back what GOGC was for good.
func TestTuneGCFollowsCollections(t *testing.T) {
	before := debug.SetGCPercent(73)
	defer debug.SetGCPercent(before)
	stop := tuneGC(50, nil)
	// A test binary's heap is a few MB: 64 MiB is many times that.
	waitGOGC(t, "over 200 for a small heap", func(p int) bool { return p > 200 })
	func() {
		big := make([]byte, 128<<20)
		for i := range big {
			big[i] = 1
		}
		waitGOGC(t, "50 with 128 MiB live", func(p int) bool { return p == 50 })
		runtime.KeepAlive(big)
	}()
	waitGOGC(t, "over 200 once the 128 MiB are garbage", func(p int) bool { return p > 200 })
	stop()
	if got := gogc(t); got != 73 {
		t.Errorf("GOGC after stop = %d, want 73 restored", got)
	}
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := gogc(t); got != 73 {
		t.Errorf("GOGC after stop and 3 collections = %d, want 73", got)
	}
}
