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

// TestIntakeBusy: with YieldToIntake, intake counts as busy right after
// an append, not once appends stop for intakeQuiet, and never once the
// buffer is a quarter full (delivery must then use every worker, or the
// senders would be pushed back).
func TestIntakeBusy(t *testing.T) {
	// Nothing listens on 127.0.0.2:1: what is appended stays buffered.
	p := startPipeline(t, Config{ES: esout.Config{URLs: []string{"http://127.0.0.2:1"}},
		BufferMaxBytes: 8 << 20, YieldToIntake: true})
	if p.intakeBusy() {
		t.Fatal("busy before any event arrived")
	}
	doc := bytes.Repeat([]byte("x"), 1000)
	add := func(n int) {
		t.Helper()
		recs := make([]buffer.Record, n)
		for i := range recs {
			recs[i] = buffer.Record{ID: fmt.Sprint(time.Now().UnixNano(), i), Tag: "t", Sec: 1763719200, Doc: doc}
		}
		if err := p.buf.Append(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
	add(10)
	if !p.intakeBusy() {
		t.Fatal("not busy right after an append")
	}
	time.Sleep(intakeQuiet + 10*time.Millisecond)
	if p.intakeBusy() {
		t.Fatalf("still busy %v after the last append", intakeQuiet+10*time.Millisecond)
	}
	for p.buf.Stats().Bytes < 2<<20 {
		add(100)
	}
	if p.intakeBusy() {
		t.Fatalf("busy with %d of %d buffer bytes held", p.buf.Stats().Bytes, 8<<20)
	}
	// Nothing can be flushed: do not wait for it.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Close(ctx)
}
