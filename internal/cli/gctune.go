package cli

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Collecting around an embedded Elasticsearch.
//
// GOGC lets the heap grow by a percentage of what the last collection
// found live. An embedded essim's document and id tables are live,
// pointer-free, grow with every document and never turn into garbage:
// at 3.3M documents they were 170 MB of a 190-217 MB live heap, and 50%
// of all of it let 95 MB of the pipeline's garbage pile up before each
// collection (peak RSS 347 MiB). Marking is the collector's cost and
// those tables hold no pointers, so counting the headroom over the rest
// of the heap only costs more frequent collections of a small heap.
//
// A small heap is the other end: a pipeline that has just started, or
// has been idle, lives in a few MB, and a percentage of that is less than
// one 200 KB chunk from each of 32 senders. The first 40 chunks from 32
// new connections then went through 13 collections in 90 ms, and their
// acks waited 45-75 ms at the median (27-29 ms with GOGC=400). So the
// heap may always grow to minHeapGoal before it is collected; the soft
// memory limit (setMemoryLimit) still caps it. A floor on the goal, not
// on the headroom: with essim's tables large and the rest of the heap
// small, 32 MiB of headroom on top raised the peak RSS at 3.45M
// documents from 267-269 MiB to 282.

// pipelineGCPercent is the headroom `pipeline run` collects at, over the
// heap that churns.
const pipelineGCPercent = 50

// minGCPercent keeps the collector from running back to back when nearly
// all the live heap is fixed.
const minGCPercent = 10

// minHeapGoal is the heap size below which nothing is collected.
const minHeapGoal = 64 << 20

// gcPercentFor is the GOGC that lets the heap grow by percent of its
// live bytes that are not fixed (known never to become garbage), and at
// least to minHeapGoal; at least minGCPercent.
func gcPercentFor(percent int, live, fixed int64) int {
	if live <= 0 {
		return percent
	}
	rest := min(max(live-fixed, 0), live)
	headroom := max(int64(percent)*rest/100, minHeapGoal-live)
	return max(int(headroom*100/live), minGCPercent)
}

// tuneGC sets GOGC to gcPercentFor of the live heap and fixed() (nil:
// nothing fixed) after every collection, until the returned function is
// called, which restores the previous setting. After every collection,
// not on a timer: the live heap of a pipeline that starts under a burst
// grows tenfold within a second, and a GOGC fitted to the heap of a
// second ago lets it grow by ten times that.
func tuneGC(percent int, fixed func() int64) func() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	tune := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		var f int64
		if fixed != nil {
			f = fixed()
		}
		debug.SetGCPercent(gcPercentFor(percent, int64(sample[0].Value.Uint64()), f))
	}
	prev := debug.SetGCPercent(percent)
	tune()
	stop := afterEachGC(tune)
	return func() {
		stop()
		debug.SetGCPercent(prev)
	}
}

// afterEachGC calls f after every collection, from the runtime's
// finalizer goroutine, until the returned function is called; f does not
// run after that returns. The runtime has no callback for a collection:
// a sentinel that is garbage from the moment it is made has its
// finalizer run after the next one, and that finalizer makes the next
// sentinel.
func afterEachGC(f func()) func() {
	g := &gcHook{f: f}
	g.arm()
	return func() {
		g.mu.Lock()
		g.stopped = true
		g.mu.Unlock()
	}
}

type gcHook struct {
	f       func()
	mu      sync.Mutex // held while f runs, so stop waits for it
	stopped bool
}

type gcSentinel struct{ g *gcHook }

func (g *gcHook) arm() {
	runtime.SetFinalizer(&gcSentinel{g: g}, func(s *gcSentinel) {
		s.g.mu.Lock()
		defer s.g.mu.Unlock()
		if s.g.stopped {
			return
		}
		s.g.f()
		s.g.arm()
	})
}
