package cli

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
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

// pipelineGCPercent is the headroom `pipeline run` collects at, over the
// heap that churns.
const pipelineGCPercent = 50

// minGCPercent keeps the collector from running back to back when nearly
// all the live heap is fixed.
const minGCPercent = 10

// gcTuneEvery is how often tuneGC looks again: essim grows by at most a
// few hundred thousand documents a second, tens of MB.
const gcTuneEvery = time.Second

// gcPercentFor is the GOGC that makes the heap's growth before the next
// collection percent of live-fixed bytes, where fixed bytes of the live
// heap are known never to become garbage; at least minGCPercent.
func gcPercentFor(percent int, live, fixed int64) int {
	if live <= 0 {
		return percent
	}
	rest := min(max(live-fixed, 0), live)
	return max(int(int64(percent)*rest/live), minGCPercent)
}

// tuneGC sets GOGC to percent, then every gcTuneEvery to gcPercentFor
// of the live heap the last collection found and fixed(), until the
// returned function is called, which restores the previous setting.
func tuneGC(percent int, fixed func() int64) func() {
	prev := debug.SetGCPercent(percent)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	stop := every(gcTuneEvery, func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetGCPercent(gcPercentFor(percent, int64(sample[0].Value.Uint64()), fixed()))
		}
	})
	return func() {
		stop()
		debug.SetGCPercent(prev)
	}
}
