package pipeline

import (
	"sync"
	"time"
)

// Yielding to intake (Config.YieldToIntake).
//
// The embedded Elasticsearch indexes on the cores intake needs, and on a
// small machine intake alone keeps them busy during a burst: every core
// second delivery takes then is one the senders' acks wait for, and the
// events delivered meanwhile would have been delivered right after the
// burst at the same cost. So while senders push hard (commits of at
// least hotIntakeRate over the latest hotIntakeWindow), delivery waits
// and the buffer absorbs the burst, until it holds yieldBacklog bytes:
// past that, delivery must keep up or the senders would be pushed back,
// and the wait would only delay searchability. A trickle of events
// (below hotIntakeRate) leaves cores for both, and is never waited on.

const (
	// hotIntakeRate (bytes per second) is a burst: about 250,000 events of
	// 200 bytes a second, half of what intake alone takes on two cores.
	hotIntakeRate = 64 << 20
	// hotIntakeWindow is the span the rate is measured over: senders that
	// wait for acks append every few milliseconds, so intake counts as
	// busy until this long after its latest commit.
	hotIntakeWindow = 20 * time.Millisecond
	// maxYieldBacklog caps the backlog delivery waits for whatever
	// --buffer-max is. At 256 MiB a burst of a million events at two
	// senders' full rate already reached it, and so did two seconds at
	// half that rate: delivery then took the cores in the middle of the
	// burst and the acks' p99 went from 2-4 ms to 8-13 ms, while the
	// end-to-end rate of a longer flood (3M events) stayed the same
	// (450-540k/s with either bound). At 512 MiB (half the default
	// buffer) a burst of 2.5M events at two senders' full rate (about
	// 540 MB: a little over a second, since intake got faster) crossed
	// it before its end, and delivery took the cores for its last
	// 76-330k events: 1.60-2.07M events/s acked over the burst against
	// 2.07-2.59M at 768 MiB (alternating runs), where the burst fits; at
	// 32 senders 2.8-3.2M against 3.9-5.2M.
	maxYieldBacklog = 768 << 20
)

// yieldBacklog is the buffered bytes past which delivery no longer waits:
// three quarters of the buffer's bound, at most maxYieldBacklog. The
// last quarter is the room a flood still has, while delivery catches up
// with every worker, before senders are pushed back.
func yieldBacklog(bufferMax int64) int64 { return min(bufferMax/4*3, maxYieldBacklog) }

// intakeBusy is esout's Busy under YieldToIntake.
func (p *Pipeline) intakeBusy() bool {
	return p.intake.hot(time.Now()) && p.buf.Stats().Bytes < yieldBacklog(p.cfg.BufferMaxBytes)
}

// committed is the buffer's OnCommit: the commit histogram, and the
// intake meter.
func (p *Pipeline) committed(d time.Duration, bytes int) {
	p.bufEvents.commit(d)
	p.intake.add(time.Now(), bytes)
}

// meterBuckets divide hotIntakeWindow.
const meterBuckets = 4

// intakeMeter tells a burst from a trickle: the bytes the buffer's
// commits made durable over the latest hotIntakeWindow, counted as each
// commit reports them (buffer.Options.OnCommit) into buckets of a
// quarter of the window. A burst is seen from its first commits. Output
// workers sampled the buffer's total instead, before each bulk request:
// the first sample after a quiet spell measured the rate over that spell,
// too low, so delivery took the cores for another window at every
// burst's start, where a pipeline that had just started or been idle
// acked the most slowly (its first 300 ms at two senders: 1.17-1.32M
// events/s, against 1.31-1.50M with delivery failing and idle).
type intakeMeter struct {
	mu sync.Mutex
	// base: bucket slots count from here on the monotonic clock (set by
	// the first call), so a wall clock step does not move them.
	base    time.Time
	buckets [meterBuckets]struct {
		slot  int64 // time since base in bucket spans
		bytes int64
	}
}

const meterSpan = hotIntakeWindow / meterBuckets

// slotLocked is now's bucket slot.
func (m *intakeMeter) slotLocked(now time.Time) int64 {
	if m.base.IsZero() {
		// One window back: no bucket holds slot 0 or below, which the
		// zero value of every bucket would otherwise match.
		m.base = now.Add(-hotIntakeWindow)
	}
	return int64(now.Sub(m.base) / meterSpan)
}

// add counts n bytes made durable at now.
func (m *intakeMeter) add(now time.Time, n int) {
	m.mu.Lock()
	slot := m.slotLocked(now)
	b := &m.buckets[slot%meterBuckets]
	if b.slot != slot {
		b.slot, b.bytes = slot, 0
	}
	b.bytes += int64(n)
	m.mu.Unlock()
}

// hot reports whether the bytes of the window ending at now reach
// hotIntakeRate (the bucket now falls in counts whole).
func (m *intakeMeter) hot(now time.Time) bool {
	var sum int64
	m.mu.Lock()
	slot := m.slotLocked(now)
	for _, b := range m.buckets {
		if b.slot > slot-meterBuckets && b.slot <= slot {
			sum += b.bytes
		}
	}
	m.mu.Unlock()
	return float64(sum) >= hotIntakeRate*hotIntakeWindow.Seconds()
}
