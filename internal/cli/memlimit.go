package cli

import (
	"os"
	"runtime/debug"
)

// memLimitHeadroom is what a server may use besides its in-flight budget
// before the collector works harder: the runtime, idle connections' small
// buffers, output batches, garbage not yet collected. Under gzip bombs the
// peaks measured (bench/memory.sh) sit 10-30 MiB above the limit, so the
// budget plus 64 MiB holds.
const memLimitHeadroom = 24 << 20

// setMemoryLimit gives the Go runtime a soft memory limit of the in-flight
// budget plus headroom plus extra() (memory the command holds by design,
// such as an embedded Elasticsearch's index or a memory buffer, re-read
// after every collection), so the collector works to stay under it and returns
// freed memory to the system instead of letting the heap double past what
// the budget allows. GOMEMLIMIT, when set, wins. It returns the first
// limit (0: none set here) and a function that stops following extra and
// restores the previous limit.
func setMemoryLimit(budget int64, extra func() int64) (int64, func()) {
	if budget <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return 0, func() {}
	}
	limitFor := func() int64 {
		e := int64(0)
		if extra != nil {
			e = max(extra(), 0)
		}
		return budget + memLimitHeadroom + e
	}
	first := limitFor()
	prev := debug.SetMemoryLimit(first)
	stop := func() {}
	if extra != nil {
		stop = afterEachGC(func() { debug.SetMemoryLimit(limitFor()) })
	}
	return first, func() {
		stop()
		debug.SetMemoryLimit(prev)
	}
}
