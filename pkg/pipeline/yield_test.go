package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
)

// TestIntakeMeter: a burst is hot from its first commits, even after a
// long quiet spell; a rate just under the threshold is not; bytes older
// than the window, or from a bucket's earlier turn, do not count.
func TestIntakeMeter(t *testing.T) {
	t0 := time.Unix(1763719200, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	window := int(hotIntakeRate*hotIntakeWindow.Seconds()) + 1 // bytes in a window at the threshold
	var m intakeMeter
	if m.hot(at(0)) {
		t.Fatal("hot before any commit")
	}
	// Quiet for ten seconds, then one window's worth in one millisecond.
	m.add(at(10_000), window)
	if !m.hot(at(10_001)) {
		t.Fatal("a burst's first commits are not hot")
	}
	if !m.hot(at(10_000 + 15)) {
		t.Fatal("not hot within the window")
	}
	if m.hot(at(10_000 + int(hotIntakeWindow/time.Millisecond) + int(meterSpan/time.Millisecond))) {
		t.Fatal("still hot a window after the last commit")
	}
	// Just under the rate, spread over the window; then just over it.
	var m2 intakeMeter
	step := int(meterSpan / time.Millisecond)
	for k := range meterBuckets {
		m2.add(at(20_000+k*step), window/meterBuckets-1000)
	}
	now := at(20_000 + (meterBuckets-1)*step)
	if m2.hot(now) {
		t.Fatal("hot just under the rate")
	}
	m2.add(now, 5000)
	if !m2.hot(now) {
		t.Fatal("not hot just over the rate")
	}
	// A bucket's earlier turn (one window ago) does not count.
	m2.add(now.Add(hotIntakeWindow), 10)
	if m2.hot(now.Add(hotIntakeWindow)) {
		t.Fatal("bytes of the window before counted")
	}
}

// TestIntakeBusy: with YieldToIntake, delivery waits while events arrive
// fast (from the first commit of a burst), not while they trickle in, not
// once commits stop for a window,
// and never once the buffer holds yieldBacklog (delivery must then keep
// up, or the senders would be pushed back).
func TestIntakeBusy(t *testing.T) {
	const bufferMax = 64 << 20
	// Nothing listens on 127.0.0.2:1: what is appended stays buffered.
	p := startPipeline(t, Config{ES: esout.Config{URLs: []string{"http://127.0.0.2:1"}},
		BufferMaxBytes: bufferMax, YieldToIntake: true, MemoryBuffer: true})
	if p.intakeBusy() {
		t.Fatal("busy before any event arrived")
	}
	add := func(n, size int) {
		t.Helper()
		doc := bytes.Repeat([]byte("x"), size)
		recs := make([]buffer.Record, n)
		for i := range recs {
			recs[i] = buffer.Record{ID: fmt.Sprint(time.Now().UnixNano(), i), Tag: "t", Sec: 1763719200, Doc: doc}
		}
		if err := p.buf.Append(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
	// A trickle: 10 KB every 5 ms (2 MB/s).
	for range 10 {
		add(10, 1000)
		if p.intakeBusy() {
			t.Fatalf("busy with events trickling in, %d bytes appended", p.buf.Stats().AppendedBytes)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A burst: a window's worth at the threshold rate in one append (a
	// memory buffer takes it in microseconds): busy at once.
	add(150, 10000)
	if !p.intakeBusy() {
		t.Fatalf("not busy after the first commit of a burst: %+v", p.buf.Stats())
	}
	quiet := hotIntakeWindow + meterSpan + 5*time.Millisecond
	time.Sleep(quiet)
	if p.intakeBusy() {
		t.Fatalf("still busy %v after the last append", quiet)
	}
	// A burst past yieldBacklog.
	for p.buf.Stats().Bytes < yieldBacklog(bufferMax) {
		add(100, 10000)
	}
	if p.intakeBusy() {
		t.Fatalf("busy with %d of %d buffer bytes held", p.buf.Stats().Bytes, bufferMax)
	}
	// Nothing can be flushed: do not wait for it.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Close(ctx)
}

// TestYieldBacklog: three quarters of --buffer-max, at most maxYieldBacklog.
func TestYieldBacklog(t *testing.T) {
	for _, c := range []struct{ max, want int64 }{
		{64 << 20, 48 << 20}, {1 << 30, 768 << 20}, {20 << 30, maxYieldBacklog},
	} {
		if got := yieldBacklog(c.max); got != c.want {
			t.Errorf("yieldBacklog(%d) = %d, want %d", c.max, got, c.want)
		}
	}
}
