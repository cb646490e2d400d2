// Package inflight bounds the memory a server spends on requests it is
// reading, decoding and handling: one process-wide budget of bytes shared
// by every connection. A request takes bytes from the budget before it
// allocates them; when the budget is spent it waits (its connection is
// simply not read meanwhile: backpressure) instead of allocating, and a
// request that would need more than the whole budget is refused.
//
// Waiting requests can wait on each other: when every request holding
// bytes is waiting for more, none would ever finish. The budget detects
// that state and refuses the waiting request holding the most bytes, so
// its bytes go back and the others make progress.
package inflight

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

var (
	// ErrExceeded is wrapped by every refusal of the budget.
	ErrExceeded = errors.New("in-flight memory budget exceeded")
	// ErrNeverFits: the request alone needs more than the whole budget.
	ErrNeverFits = fmt.Errorf("%w: the request alone needs more than the whole budget", ErrExceeded)
	// ErrPreempted: every request holding bytes was waiting for more, and
	// this one, holding the most, was refused to let the others finish.
	ErrPreempted = fmt.Errorf("%w: refused to free memory for other requests (every request holding memory was waiting for more)", ErrExceeded)
)

// Budget is a byte budget shared by many leases. The zero value is not
// usable; call New.
type Budget struct {
	limit int64

	mu      sync.Mutex
	used    int64
	holders int // leases holding bytes
	waiting []*waiter
	stuck   int // waiters whose lease holds bytes

	peak, waits, refused, preempted int64
}

type waiter struct {
	l     *Lease
	n     int64
	ready chan error // buffered; receives nil (granted) or a refusal
}

// New returns a budget of limit bytes; limit <= 0 means no limit (leases
// only count).
func New(limit int64) *Budget { return &Budget{limit: limit} }

// Limit is the budget in bytes (0: unlimited).
func (b *Budget) Limit() int64 {
	if b.limit <= 0 {
		return 0
	}
	return b.limit
}

// Stats are the budget's counters.
type Stats struct {
	Limit     int64 `json:"limit"`     // bytes; 0 unlimited
	Used      int64 `json:"used"`      // bytes held now
	Peak      int64 `json:"peak"`      // most bytes held at once
	Waiting   int   `json:"waiting"`   // requests waiting for room now
	Waits     int64 `json:"waits"`     // times a request had to wait for room
	Refused   int64 `json:"refused"`   // requests refused: larger than the whole budget
	Preempted int64 `json:"preempted"` // requests refused to break a wait cycle
}

// Stats returns a snapshot.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Limit: b.Limit(), Used: b.used, Peak: b.peak, Waiting: len(b.waiting),
		Waits: b.waits, Refused: b.refused, Preempted: b.preempted}
}

// Lease is the share of the budget held by one connection's current
// request. It is used by one goroutine at a time.
type Lease struct {
	b         *Budget
	held      int64
	preempted bool // refused to break a cycle; sticky until Release
}

// Lease returns an empty lease on b. A nil *Budget gives a nil lease, on
// which every method is a no-op that never fails.
func (b *Budget) Lease() *Lease {
	if b == nil {
		return nil
	}
	return &Lease{b: b}
}

// Held is what the lease holds.
func (l *Lease) Held() int64 {
	if l == nil {
		return 0
	}
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	return l.held
}

// Grow takes n more bytes, waiting for room while the budget is spent. It
// returns how long it waited. Errors: ErrNeverFits when the lease would
// hold more than the whole budget, ErrPreempted when it was chosen to
// break a wait cycle, or ctx's error. On error nothing more is held; what
// was held before stays until Shrink or Release.
func (l *Lease) Grow(ctx context.Context, n int64) (time.Duration, error) {
	if l == nil || n <= 0 {
		return 0, nil
	}
	b := l.b
	b.mu.Lock()
	if l.preempted {
		b.mu.Unlock()
		return 0, ErrPreempted
	}
	if b.limit > 0 && l.held+n > b.limit {
		b.refused++
		b.mu.Unlock()
		return 0, fmt.Errorf("%w: %d bytes wanted, %d held, budget %d", ErrNeverFits, n, l.held, b.limit)
	}
	if b.limit <= 0 || len(b.waiting) == 0 && b.used+n <= b.limit {
		b.grantLocked(l, n)
		b.mu.Unlock()
		return 0, nil
	}
	w := &waiter{l: l, n: n, ready: make(chan error, 1)}
	b.waiting = append(b.waiting, w)
	if l.held > 0 {
		b.stuck++
	}
	b.waits++
	b.settleLocked()
	b.mu.Unlock()

	start := time.Now()
	select {
	case err := <-w.ready:
		return time.Since(start), err
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case err := <-w.ready: // answered while ctx ended: keep the answer
		return time.Since(start), err
	default:
	}
	b.removeLocked(w)
	b.settleLocked()
	return time.Since(start), ctx.Err()
}

// Shrink gives n bytes back (at most what is held).
func (l *Lease) Shrink(n int64) {
	if l == nil || n <= 0 {
		return
	}
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.takeBackLocked(l, min(n, l.held))
}

// Release gives everything back and clears a preemption: the lease is
// ready for the connection's next request.
func (l *Lease) Release() {
	if l == nil {
		return
	}
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	l.preempted = false
	b.takeBackLocked(l, l.held)
}

func (b *Budget) grantLocked(l *Lease, n int64) {
	if l.held == 0 {
		b.holders++
	}
	l.held += n
	b.used += n
	b.peak = max(b.peak, b.used)
}

func (b *Budget) takeBackLocked(l *Lease, n int64) {
	if n <= 0 {
		return
	}
	l.held -= n
	b.used -= n
	if l.held == 0 {
		b.holders--
	}
	b.settleLocked()
}

func (b *Budget) removeLocked(w *waiter) {
	for i, x := range b.waiting {
		if x == w {
			b.waiting = append(b.waiting[:i], b.waiting[i+1:]...)
			if w.l.held > 0 {
				b.stuck--
			}
			return
		}
	}
}

// settleLocked grants what fits, then breaks a wait cycle if one is left.
// Requests already holding bytes go first, in arrival order, each one that
// fits: finishing them is what returns memory. New requests then go in
// arrival order, stopping at the first that does not fit so a large one
// is not starved by a stream of small ones.
func (b *Budget) settleLocked() {
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < len(b.waiting); {
			w := b.waiting[i]
			if (w.l.held > 0) != (pass == 0) {
				i++
				continue
			}
			if b.used+w.n > b.limit {
				if pass == 1 {
					break
				}
				i++
				continue
			}
			b.removeLocked(w)
			b.grantLocked(w.l, w.n)
			w.ready <- nil
		}
	}
	// A cycle: requests wait, and every request holding bytes is among
	// them, so nothing will be given back.
	if len(b.waiting) == 0 || b.stuck == 0 || b.stuck < b.holders {
		return
	}
	var victim *waiter
	for _, w := range b.waiting {
		if victim == nil || w.l.held > victim.l.held {
			victim = w
		}
	}
	b.removeLocked(victim)
	victim.l.preempted = true
	b.preempted++
	victim.ready <- fmt.Errorf("%w: %d bytes held, %d more wanted, budget %d", ErrPreempted, victim.l.held, victim.n, b.limit)
}
