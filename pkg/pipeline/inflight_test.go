package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/internal/memload"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/forward"
)

// The in-flight budget covers the handler's copies too: a chunk whose
// documents cannot fit is refused without an ack and counted, gzip bombs
// are refused, and chunks that fit are acked and indexed; the budget is
// all given back.
func TestForwardInFlightBudget(t *testing.T) {
	es := startES(t, "", essim.Config{})
	p := startPipeline(t, Config{ES: esConfig(es), MaxInFlightBytes: 2 << 20})
	addr := p.ForwardAddr().String()
	send := func(req *forward.Request) error {
		c, err := forward.Dial(context.Background(), addr, forward.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Send(req, 5*time.Second)
	}
	// 1 MiB on the wire, 2.5 MiB of documents and their buffered copy.
	big := &forward.Request{Tag: "big", Mode: forward.ModePacked, Chunk: forward.NewChunkID()}
	for i := 0; i < 100; i++ {
		rec, _ := msgpack.Marshal(map[string]any{"m": strings.Repeat("b", 10<<10), "i": i})
		big.Entries = append(big.Entries, forward.Entry{Time: forward.EventTime{Sec: 1}, Record: rec})
	}
	if err := send(big); !errors.Is(err, forward.ErrClosedBeforeAck) {
		t.Fatalf("chunk larger than the budget: %v", err)
	}
	if got := metric(t, p, "logdoctor_pipeline_forward_refused_total", map[string]string{"reason": "in_flight_budget"}); got != 1 {
		t.Fatalf("refused metric %v", got)
	}
	for i, records := range []bool{false, true} {
		c, err := forward.Dial(context.Background(), addr, forward.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		chunk := forward.NewChunkID()
		if err := c.WriteRaw(memload.GzipBomb("bomb", chunk, 1<<30, records)); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitAck(time.Now().Add(5*time.Second), chunk); !errors.Is(err, forward.ErrClosedBeforeAck) {
			t.Fatalf("bomb %d: %v", i, err)
		}
		c.Close()
	}
	for i := 0; i < 5; i++ {
		if err := send(forwardRequest(t, forward.ModeCompressed, "ok", i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, p, 10*time.Second)
	st := p.Stats()
	if st.Output.Indexed != 50 || st.ForwardAcks != 5 || st.InFlight.Limit != 2<<20 || st.InFlight.Refused != 2 {
		t.Fatalf("%+v", st)
	}
	waitFor(t, "budget given back", 5*time.Second, func() bool { return p.Stats().InFlight.Used == 0 })
}
