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

// TestIntakeRate: the rate is measured over spans of at least
// hotIntakeWindow, and a span's verdict holds until the next one.
func TestIntakeRate(t *testing.T) {
	t0 := time.Unix(1763719200, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	perMS := uint64(hotIntakeRate / 1000) // bytes a millisecond at the threshold
	var r intakeRate
	steps := []struct {
		ms       int
		appended uint64
		want     bool
	}{
		{0, 0, false},                        // the first measurement has no span
		{5, 100 * perMS, false},              // too short a span: the verdict so far
		{20, 100 * perMS, true},              // 100 ms of bytes in 20 ms
		{30, 100 * perMS, true},              // too short: still hot
		{40, 100 * perMS, false},             // nothing in the last 20 ms
		{60, 100*perMS + 19*perMS, false},    // just under the rate
		{80, 119*perMS + 21*perMS, true},     // just over
		{1080, 140*perMS + 900*perMS, false}, // a long span at 0.9 of it
	}
	for _, s := range steps {
		if got := r.hot(at(s.ms), s.appended); got != s.want {
			t.Fatalf("at %d ms with %d bytes: hot %v, want %v", s.ms, s.appended, got, s.want)
		}
	}
}

// TestIntakeBusy: with YieldToIntake, delivery waits while events arrive
// fast, not while they trickle in, not once appends stop for intakeQuiet,
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
	// A burst: 1 MB appends back to back (a memory buffer takes them in
	// microseconds), until the rate has been measured over a span.
	deadline := time.Now().Add(5 * time.Second)
	for !p.intakeBusy() {
		if time.Now().After(deadline) || p.buf.Stats().Bytes >= yieldBacklog(bufferMax) {
			t.Fatalf("not busy in a burst: %+v", p.buf.Stats())
		}
		add(100, 10000)
	}
	time.Sleep(intakeQuiet + 10*time.Millisecond)
	if p.intakeBusy() {
		t.Fatalf("still busy %v after the last append", intakeQuiet+10*time.Millisecond)
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

// TestYieldBacklog: half of --buffer-max, at most maxYieldBacklog.
func TestYieldBacklog(t *testing.T) {
	for _, c := range []struct{ max, want int64 }{
		{64 << 20, 32 << 20}, {1 << 30, 512 << 20}, {20 << 30, maxYieldBacklog},
	} {
		if got := yieldBacklog(c.max); got != c.want {
			t.Errorf("yieldBacklog(%d) = %d, want %d", c.max, got, c.want)
		}
	}
}
