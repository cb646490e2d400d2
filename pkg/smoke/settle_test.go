package smoke

import (
	"context"
	"sync"
	"testing"
	"time"
)

// ackAll acknowledges every chunk at once and remembers when.
type ackAll struct {
	mu   sync.Mutex
	done time.Time
}

func (a *ackAll) Send(ctx context.Context, tag string, events []Event) (bool, error) {
	a.mu.Lock()
	a.done = time.Now()
	a.mu.Unlock()
	return true, nil
}

// copiesOverTime is an index where every canary is there once from the
// start and extra copies of canary 3 arrive at the given offsets after
// the sending ended, as a shipper's resends do.
type copiesOverTime struct {
	sender *ackAll
	late   []time.Duration
}

func (c *copiesOverTime) Count(ctx context.Context, runID string, canaries int) (Counts, error) {
	copies := make([]int, canaries)
	for i := range copies {
		copies[i] = 1
	}
	c.sender.mu.Lock()
	done := c.sender.done
	c.sender.mu.Unlock()
	for _, d := range c.late {
		if !done.IsZero() && time.Since(done) >= d {
			copies[3]++
		}
	}
	return Counts{Copies: copies, Total: canaries + copies[3] - 1}, nil
}

// TestSettleWaitsUntilTheCountStopsMoving: copies arriving 300 ms and
// 700 ms after the canaries were all seen are counted with a 500 ms
// settle window, because each restarts it; a count that keeps moving
// ends only at the timeout.
func TestSettleWaitsUntilTheCountStopsMoving(t *testing.T) {
	s := &ackAll{}
	es := &copiesOverTime{sender: s, late: []time.Duration{300 * time.Millisecond, 700 * time.Millisecond}}
	res, err := Run(context.Background(), Config{Count: 10, Timeout: 10 * time.Second, Poll: 20 * time.Millisecond,
		Settle: 500 * time.Millisecond}, s, es)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicated != 1 || res.Documents != 12 || res.TimedOut || res.SettledMS < 500 || res.WaitedMS < 1200 {
		t.Fatalf("%+v", res)
	}

	// Without a settle window the first complete count is the verdict:
	// the late copies are not seen.
	s = &ackAll{}
	es = &copiesOverTime{sender: s, late: []time.Duration{300 * time.Millisecond}}
	res, err = Run(context.Background(), Config{Count: 10, Timeout: 10 * time.Second, Poll: 20 * time.Millisecond}, s, es)
	if err != nil || res.Duplicated != 0 || res.WaitedMS > 250 {
		t.Fatalf("no settle: %+v %v", res, err)
	}

	// A copy every 200 ms: never stable for 500 ms, so the timeout ends it.
	s = &ackAll{}
	var late []time.Duration
	for d := 100 * time.Millisecond; d < 5*time.Second; d += 200 * time.Millisecond {
		late = append(late, d)
	}
	es = &copiesOverTime{sender: s, late: late}
	res, err = Run(context.Background(), Config{Count: 10, Timeout: 1500 * time.Millisecond, Poll: 20 * time.Millisecond,
		Settle: 500 * time.Millisecond}, s, es)
	if err != nil || !res.TimedOut || res.Duplicated != 1 {
		t.Fatalf("moving count: %+v %v", res, err)
	}
}
