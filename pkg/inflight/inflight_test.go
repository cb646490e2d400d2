package inflight

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func grow(t *testing.T, l *Lease, n int64) {
	t.Helper()
	if _, err := l.Grow(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}

// growAsync starts a Grow and returns its result channel.
func growAsync(l *Lease, n int64) chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := l.Grow(context.Background(), n)
		ch <- err
	}()
	return ch
}

func pending(t *testing.T, ch chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("Grow returned %v, want it waiting", err)
	case <-time.After(50 * time.Millisecond):
	}
}

func done(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Grow still waiting")
		return nil
	}
}

func waitWaiting(t *testing.T, b *Budget, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); b.Stats().Waiting != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want %d", b.Stats().Waiting, n)
		}
	}
}

func TestGrowWaitsForRoom(t *testing.T) {
	b := New(100)
	a, c := b.Lease(), b.Lease()
	grow(t, a, 70)
	ch := growAsync(c, 40)
	pending(t, ch)
	a.Shrink(10)
	if err := done(t, ch); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Used != 100 || st.Peak != 100 || st.Waits != 1 || a.Held() != 60 || c.Held() != 40 {
		t.Fatalf("%+v, held %d and %d", st, a.Held(), c.Held())
	}
	a.Release()
	c.Release()
	if st := b.Stats(); st.Used != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestNeverFits(t *testing.T) {
	b := New(100)
	l := b.Lease()
	grow(t, l, 60)
	if _, err := l.Grow(context.Background(), 41); !errors.Is(err, ErrNeverFits) || !errors.Is(err, ErrExceeded) {
		t.Fatalf("got %v", err)
	}
	if l.Held() != 60 || b.Stats().Refused != 1 {
		t.Fatalf("held %d, %+v", l.Held(), b.Stats())
	}
}

func TestCancelledWaitHoldsNothingMore(t *testing.T) {
	b := New(100)
	a, c := b.Lease(), b.Lease()
	grow(t, a, 90)
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { _, err := c.Grow(ctx, 20); ch <- err }()
	waitWaiting(t, b, 1)
	cancel()
	if err := done(t, ch); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if c.Held() != 0 || b.Stats().Waiting != 0 || b.Stats().Used != 90 {
		t.Fatalf("held %d, %+v", c.Held(), b.Stats())
	}
}

// Requests already holding bytes are served before new ones: finishing
// them is what gives memory back.
func TestHoldersFirst(t *testing.T) {
	b := New(100)
	busy, fresh, holder := b.Lease(), b.Lease(), b.Lease()
	grow(t, busy, 60)
	grow(t, holder, 30)
	chFresh := growAsync(fresh, 20)
	waitWaiting(t, b, 1)
	chHolder := growAsync(holder, 20)
	waitWaiting(t, b, 2)
	busy.Shrink(25) // room for one of them
	if err := done(t, chHolder); err != nil {
		t.Fatal(err)
	}
	pending(t, chFresh)
	busy.Release()
	if err := done(t, chFresh); err != nil {
		t.Fatal(err)
	}
}

// Every request holding bytes waits for more: nothing would ever be given
// back, so the largest holder is refused and the others proceed.
func TestCycleIsBroken(t *testing.T) {
	b := New(100)
	small, large := b.Lease(), b.Lease()
	grow(t, small, 30)
	grow(t, large, 60)
	chSmall := growAsync(small, 20)
	waitWaiting(t, b, 1)
	chLarge := growAsync(large, 20)
	if err := done(t, chLarge); !errors.Is(err, ErrPreempted) {
		t.Fatalf("largest holder: %v", err)
	}
	pending(t, chSmall)
	// Refused until it lets go.
	if _, err := large.Grow(context.Background(), 1); !errors.Is(err, ErrPreempted) {
		t.Fatalf("after preemption: %v", err)
	}
	large.Release()
	if err := done(t, chSmall); err != nil {
		t.Fatal(err)
	}
	grow(t, large, 10) // usable again after Release
	if st := b.Stats(); st.Preempted != 1 || st.Used != 60 {
		t.Fatalf("%+v", st)
	}
}

func TestNilAndUnlimited(t *testing.T) {
	var nb *Budget
	l := nb.Lease()
	if _, err := l.Grow(context.Background(), 1<<40); err != nil || l.Held() != 0 {
		t.Fatal(err)
	}
	l.Shrink(5)
	l.Release()
	b := New(0)
	u := b.Lease()
	grow(t, u, 1<<40)
	if st := b.Stats(); st.Limit != 0 || st.Used != 1<<40 {
		t.Fatalf("%+v", st)
	}
}

// Many requests growing, shrinking and giving up at random never hold more
// than the budget together, and never all wait forever.
func TestRandomLoadNeverExceedsOrStalls(t *testing.T) {
	const limit = 1000
	b := New(limit)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			l := b.Lease()
			for i := 0; i < 400; i++ {
				switch rng.IntN(4) {
				case 0, 1:
					if _, err := l.Grow(context.Background(), int64(1+rng.IntN(300))); err != nil {
						if !errors.Is(err, ErrExceeded) {
							t.Error(err)
							return
						}
						l.Release()
					}
				case 2:
					l.Shrink(int64(rng.IntN(200)))
				case 3:
					l.Release()
				}
				if st := b.Stats(); st.Used > limit {
					t.Errorf("used %d", st.Used)
					return
				}
			}
			l.Release()
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatalf("stalled: %+v", b.Stats())
	}
	if st := b.Stats(); st.Used != 0 || st.Peak > limit {
		t.Fatalf("%+v", st)
	}
}
