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
// burst at the same cost. So while senders push hard (at least
// hotIntakeRate, the latest append within intakeQuiet), delivery waits
// and the buffer absorbs the burst, until it holds yieldBacklog bytes:
// past that, delivery must keep up or the senders would be pushed back,
// and the wait would only delay searchability. A trickle of events
// (below hotIntakeRate) leaves cores for both, and is never waited on.

const (
	// intakeQuiet is how long after the latest append intake still counts
	// as busy: senders that wait for acks append every few milliseconds.
	intakeQuiet = 20 * time.Millisecond
	// hotIntakeRate (bytes per second) is a burst: about 250,000 events of
	// 200 bytes a second, half of what intake alone takes on two cores.
	hotIntakeRate = 64 << 20
	// hotIntakeWindow is the shortest span the rate is measured over.
	hotIntakeWindow = 20 * time.Millisecond
	// maxYieldBacklog caps the backlog delivery waits for whatever
	// --buffer-max is: about eight seconds of intake at hotIntakeRate,
	// two of the fastest intake two cores reach. At 256 MiB a burst of a
	// million events at two senders' full rate already reached it, and
	// so did two seconds at half that rate: delivery then took the cores
	// in the middle of the burst and the acks' p99 went from 2-4 ms to
	// 8-13 ms, while the end-to-end rate of a longer flood (3M events)
	// stayed the same (450-540k/s with either bound).
	maxYieldBacklog = 512 << 20
)

// yieldBacklog is the buffered bytes past which delivery no longer waits:
// half the buffer's bound, at most maxYieldBacklog. The other half is the
// room a flood still has while delivery catches up, before senders are
// pushed back.
func yieldBacklog(bufferMax int64) int64 { return min(bufferMax/2, maxYieldBacklog) }

// intakeBusy is esout's Busy under YieldToIntake.
func (p *Pipeline) intakeBusy() bool {
	s := p.buf.Stats()
	now := time.Now()
	hot := p.intake.hot(now, s.AppendedBytes)
	return hot && now.Sub(s.LastAppend) < intakeQuiet && s.Bytes < yieldBacklog(p.cfg.BufferMaxBytes)
}

// intakeRate tells a burst from a trickle: the rate at which bytes were
// appended, over the span since the previous measurement, at least
// hotIntakeWindow long. Output workers ask it before every bulk request
// and every esout.BusyPoll while they wait.
type intakeRate struct {
	mu    sync.Mutex
	at    time.Time // the previous measurement
	bytes uint64    // buffer.Stats.AppendedBytes then
	isHot bool      // what it found
}

// hot reports whether appended (the buffer's AppendedBytes at now) grew
// at hotIntakeRate or more over the latest span measured.
func (r *intakeRate) hot(now time.Time, appended uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at.IsZero() {
		r.at, r.bytes = now, appended
		return false
	}
	if span := now.Sub(r.at); span >= hotIntakeWindow {
		r.isHot = float64(appended-r.bytes) >= hotIntakeRate*span.Seconds()
		r.at, r.bytes = now, appended
	}
	return r.isHot
}
