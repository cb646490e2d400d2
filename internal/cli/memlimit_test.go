package cli

import (
	"math"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// TestSetMemoryLimitFollowsExtra: the limit is the budget, the headroom
// and what extra reports, follows extra as it grows, and goes back to
// what it was when stopped.
func TestSetMemoryLimitFollowsExtra(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(before)
	var extra atomic.Int64
	extra.Store(10 << 20)
	first, restore := setMemoryLimit(100<<20, extra.Load)
	if want := int64(100<<20 + memLimitHeadroom + 10<<20); first != want || debug.SetMemoryLimit(-1) != want {
		t.Fatalf("first limit %d (runtime %d), want %d", first, debug.SetMemoryLimit(-1), want)
	}
	extra.Store(50 << 20)
	want := int64(100<<20 + memLimitHeadroom + 50<<20)
	deadline := time.Now().Add(5 * time.Second)
	// It is read again after each collection.
	for debug.SetMemoryLimit(-1) != want {
		if time.Now().After(deadline) {
			t.Fatalf("limit %d after extra grew, want %d", debug.SetMemoryLimit(-1), want)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit %d after restore, want the previous %d", got, int64(math.MaxInt64))
	}
	// And not after restore.
	extra.Store(90 << 20)
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit %d after restore and 3 collections, want the previous %d", got, int64(math.MaxInt64))
	}
}
