package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/forward"
)

// BenchmarkPipelinePacked: PackedForward chunks of 1,000 200-byte records
// with acks, from 4 connections, through the durable buffer into an
// in-process essim; b.N counts events indexed.
func BenchmarkPipelinePacked(b *testing.B) {
	es := essimtest.Start(b, essim.Config{})
	p, err := New(Config{ForwardAddr: "127.0.0.1:0", BufferDir: b.TempDir(), Logger: slog.New(slog.DiscardHandler),
		ES: esConfig(es)})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	const chunk, conns = 1000, 4
	pad := strings.Repeat("x", 150)
	reqs := make([]*forward.Request, conns)
	for c := range reqs {
		req := &forward.Request{Tag: "bench.packed", Mode: forward.ModePacked}
		for i := 0; i < chunk; i++ {
			rec, _ := msgpack.Marshal(map[string]any{"msg": fmt.Sprintf("c%d-%d %s", c, i, pad), "level": "info"})
			req.Entries = append(req.Entries, forward.Entry{Time: forward.EventTime{Sec: 1763719200, Nsec: uint32(i)}, Record: rec})
		}
		reqs[c] = req
	}
	chunks := (b.N + chunk - 1) / chunk
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			conn, err := forward.Dial(context.Background(), p.ForwardAddr().String(), forward.ClientConfig{})
			if err != nil {
				b.Error(err)
				return
			}
			defer conn.Close()
			for {
				mu.Lock()
				k := next
				next++
				mu.Unlock()
				if k >= chunks {
					return
				}
				req := *reqs[c]
				// A new time per chunk: new events, new ids.
				req.Entries = append([]forward.Entry(nil), reqs[c].Entries...)
				for i := range req.Entries {
					req.Entries[i].Time.Sec += uint32(k)
				}
				req.Chunk = forward.NewChunkID()
				if err := conn.Send(&req, 30*time.Second); err != nil {
					b.Error(err)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	acked := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(chunks*chunk)/acked.Seconds(), "acked-events/s")
	b.ReportMetric(float64(chunks*chunk)/time.Since(start).Seconds(), "indexed-events/s")
}
