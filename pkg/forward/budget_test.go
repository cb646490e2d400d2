package forward_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/memload"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/inflight"
)

func budgetDecoder(r io.Reader, lim forward.Limits, b *inflight.Budget) (*forward.Decoder, *inflight.Lease) {
	dec := forward.NewDecoder(r, lim)
	l := b.Lease()
	dec.UseBudget(context.Background(), l, nil)
	return dec, l
}

// A 1 GiB gzip bomb costs what its wire bytes and one block cost when it
// inflates to zeros (not an entry: refused at the first byte), and at most
// the decompressed limit (or the budget) when it inflates to valid
// entries; every byte goes back to the budget afterwards.
func TestDecoderGzipBombsStayWithinLimits(t *testing.T) {
	const wireMax = 2 << 20
	for _, c := range []struct {
		name      string
		records   bool
		lim       forward.Limits
		budget    int64
		want      error
		peakUnder int64
	}{
		{"zeros", false, forward.Limits{}, 64 << 20, forward.ErrMalformed, wireMax + 1<<20},
		{"records over max-decompressed", true, forward.Limits{MaxDecompressedBytes: 8 << 20}, 64 << 20, forward.ErrTooLarge, wireMax + 8<<20 + 2<<20},
		{"records over the budget", true, forward.Limits{}, 16 << 20, inflight.ErrNeverFits, 16 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			bomb := memload.GzipBomb("bomb", "c1", 1<<30, c.records)
			if len(bomb) > wireMax {
				t.Fatalf("bomb is %d bytes on the wire", len(bomb))
			}
			b := inflight.New(c.budget)
			dec, l := budgetDecoder(bytes.NewReader(bomb), c.lim, b)
			_, err := dec.Next()
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if st := b.Stats(); st.Peak > c.peakUnder {
				t.Fatalf("peak %d bytes held, want under %d", st.Peak, c.peakUnder)
			}
			dec.Release()
			if l.Held() != 0 || b.Stats().Used != 0 {
				t.Fatalf("after Release: lease %d, budget %d", l.Held(), b.Stats().Used)
			}
		})
	}
}

// Entries of every size, crossing the inflate blocks, come out intact
// from a compressed request decoded within a budget, and Release gives
// the whole request back.
func TestDecoderCompressedWithinBudget(t *testing.T) {
	req := &forward.Request{Tag: "t", Mode: forward.ModeCompressed, Chunk: "c"}
	for i, size := range []int{1, 10, 30 << 10, 31 << 10, 70 << 10, 300 << 10, 5, 1 << 20, 3} {
		req.Entries = append(req.Entries, forward.Entry{Time: forward.EventTime{Sec: uint32(i)},
			Record: record(t, map[string]any{"m": strings.Repeat("x", size)})})
	}
	wire, err := forward.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	b := inflight.New(8 << 20)
	dec, l := budgetDecoder(bytes.NewReader(bytes.Repeat(wire, 2)), forward.Limits{}, b)
	for round := 0; round < 2; round++ {
		got, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Entries) != len(req.Entries) {
			t.Fatalf("%d entries, want %d", len(got.Entries), len(req.Entries))
		}
		for i := range got.Entries {
			if got.Entries[i].Time != req.Entries[i].Time || !bytes.Equal(got.Entries[i].Record, req.Entries[i].Record) {
				t.Fatalf("entry %d differs", i)
			}
		}
		if l.Held() < 1<<20 {
			t.Fatalf("decoded request holds %d bytes of the budget", l.Held())
		}
	}
	dec.Release()
	if l.Held() != 0 {
		t.Fatalf("after Release the lease holds %d", l.Held())
	}
}

// A request that does not fit next to another waits, without reading,
// until the other one is released.
func TestDecoderWaitsForRoom(t *testing.T) {
	big := func(tag string) []byte {
		req := &forward.Request{Tag: tag, Mode: forward.ModeForward, Chunk: tag}
		for i := 0; i < 60; i++ {
			req.Entries = append(req.Entries, forward.Entry{Record: record(t, map[string]any{"m": strings.Repeat("y", 10<<10)})})
		}
		w, err := forward.AppendRequest(nil, req)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	b := inflight.New(1 << 20)
	a, la := budgetDecoder(bytes.NewReader(big("a")), forward.Limits{}, b)
	if _, err := a.Next(); err != nil {
		t.Fatal(err)
	}
	held := la.Held()
	second := forward.NewDecoder(bytes.NewReader(big("b")), forward.Limits{})
	var waited time.Duration
	second.UseBudget(context.Background(), b.Lease(), func(d time.Duration) { waited += d })
	done := make(chan error, 1)
	go func() {
		_, err := second.Next()
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("second request decoded (%v) while the first held %d of %d bytes", err, held, b.Limit())
	case <-time.After(200 * time.Millisecond):
	}
	a.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second request still waiting after the first was released")
	}
	if waited < 150*time.Millisecond {
		t.Fatalf("onWait told %v", waited)
	}
}

// Two requests each holding half the budget and both needing more would
// wait forever: the one holding the most is refused, the other finishes.
func TestDecoderBudgetCycleIsBroken(t *testing.T) {
	req := &forward.Request{Tag: "t", Mode: forward.ModeForward, Chunk: "c"}
	for i := 0; i < 70; i++ {
		req.Entries = append(req.Entries, forward.Entry{Record: record(t, map[string]any{"m": strings.Repeat("z", 10<<10)})})
	}
	wire, err := forward.AppendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	b := inflight.New(1 << 20)
	type side struct {
		dec  *forward.Decoder
		l    *inflight.Lease
		w    *io.PipeWriter
		more chan struct{}
		err  chan error
	}
	sides := make([]*side, 2)
	for i := range sides {
		pr, pw := io.Pipe()
		dec, l := budgetDecoder(pr, forward.Limits{}, b)
		s := &side{dec: dec, l: l, w: pw, more: make(chan struct{}), err: make(chan error, 1)}
		sides[i] = s
		go func() {
			pw.Write(wire[:450<<10])
			<-s.more
			pw.Write(wire[450<<10:])
		}()
		go func() {
			_, err := s.dec.Next()
			s.err <- err
		}()
	}
	defer func() {
		for _, s := range sides {
			s.w.Close()
		}
	}()
	// Both hold about half the budget before the rest of their request
	// arrives.
	for deadline := time.Now().Add(5 * time.Second); sides[0].l.Held() < 400<<10 || sides[1].l.Held() < 400<<10; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("held %d and %d", sides[0].l.Held(), sides[1].l.Held())
		}
	}
	for _, s := range sides {
		close(s.more)
	}
	var ok, preempted int
	for range sides {
		select {
		case err := <-sides[0].err:
			ok, preempted = tally(t, err, ok, preempted)
			sides[0].dec.Close()
		case err := <-sides[1].err:
			ok, preempted = tally(t, err, ok, preempted)
			sides[1].dec.Close()
		case <-time.After(10 * time.Second):
			t.Fatalf("requests still waiting: %+v", b.Stats())
		}
	}
	if ok != 1 || preempted != 1 || b.Stats().Preempted != 1 {
		t.Fatalf("%d decoded, %d preempted; %+v", ok, preempted, b.Stats())
	}
}

func tally(t *testing.T, err error, ok, preempted int) (int, int) {
	t.Helper()
	switch {
	case err == nil:
		return ok + 1, preempted
	case errors.Is(err, inflight.ErrPreempted) && errors.Is(err, forward.ErrTooLarge):
		return ok, preempted + 1
	}
	t.Fatalf("unexpected error %v", err)
	return ok, preempted
}

// Decoding JSON into Go values costs many times the JSON: that cost is
// taken from the budget, one record at a time.
func TestDecoderJSONWithinBudget(t *testing.T) {
	rec := `{"m":[` + strings.Repeat("1,", 200<<10) + `1]}`
	one := []byte(`["t",[[1,` + rec + `]],{"chunk":"x"}]`)
	b := inflight.New(8 << 20)
	dec, _ := budgetDecoder(bytes.NewReader(one), forward.Limits{}, b)
	if _, err := dec.Next(); !errors.Is(err, inflight.ErrNeverFits) {
		t.Fatalf("got %v, want ErrNeverFits", err)
	}
	dec.Close()
	// The same records, smaller, fit one at a time.
	small := `{"m":[` + strings.Repeat("1,", 40<<10) + `1]}`
	var sb strings.Builder
	sb.WriteString(`["t",[`)
	for i := 0; i < 8; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "[%d,%s]", i, small)
	}
	sb.WriteString(`],{"chunk":"y"}]`)
	dec, l := budgetDecoder(strings.NewReader(sb.String()), forward.Limits{}, b)
	got, err := dec.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 8 || got.Chunk != "y" || !got.JSON {
		t.Fatalf("%d entries, chunk %q", len(got.Entries), got.Chunk)
	}
	if js, _ := forward.RecordToJSON(nil, got.Entries[7].Record); !bytes.Equal(js, []byte(small)) {
		t.Fatalf("record %.60s...", js)
	}
	dec.Release()
	if l.Held() != 0 {
		t.Fatalf("lease holds %d", l.Held())
	}
}
