package forwardprobe

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// pacer hands out send times so that all workers together stay at rate
// events per second.
type pacer struct {
	mu    sync.Mutex
	rate  float64
	start time.Time
	sent  float64
}

func (p *pacer) wait(ctx context.Context, n int) error {
	if p.rate <= 0 {
		return nil
	}
	p.mu.Lock()
	at := p.start.Add(time.Duration(p.sent / p.rate * float64(time.Second)))
	p.sent += float64(n)
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// load sends Count events in chunks from Concurrency workers, each on its
// own connection (kept alive, or a new one per chunk as out_forward does
// without keepalive), one chunk in flight per connection as out_forward
// does with require_ack_response.
func (p *prober) load(ctx context.Context, first *forward.Conn) {
	o := p.opts
	l := &Load{Mode: o.Modes[0].String(), ChunkEvents: o.ChunkEvents, Concurrency: o.Concurrency,
		KeepAlive: !o.NewConnPerChunk, RateLimit: o.Rate, Errors: map[string]int{}, firstErr: map[string]string{}}
	p.res.Load = l
	chunks := (o.Count + o.ChunkEvents - 1) / o.ChunkEvents
	l.Connections = 1 // the one dialFirst opened, used by worker 0
	var (
		next     atomic.Int64 // next chunk sequence number, warm-up included
		measured atomic.Int64 // next counted chunk
	)
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, chunks)
		warmLat   []time.Duration
		fatal     atomic.Bool // connect/auth failures stop every worker
	)
	pc := &pacer{rate: o.Rate, start: time.Now()}
	// The pacer's schedule runs on through the end of the warm-up, so
	// counting starts in the steady state and not with a burst.
	var warmEnd time.Time
	if o.Warmup > 0 {
		l.Warmup = &Warmup{}
		warmEnd = pc.start.Add(o.Warmup)
	}
	cfg := p.redialConfig()
	fail := func(kind string, err error) {
		mu.Lock()
		l.Errors[kind]++
		if _, ok := l.firstErr[kind]; !ok && err != nil {
			l.firstErr[kind] = report.Redact(err.Error())
		}
		mu.Unlock()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Concurrency; w++ {
		var c *forward.Conn
		if w == 0 {
			c = first
		}
		wg.Add(1)
		go func(c *forward.Conn) {
			defer wg.Done()
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			var (
				wire  []byte
				samp  []SocketSample
				chunk string
				build = p.chunkBuilder(&chunk)
			)
			for ctx.Err() == nil && !fatal.Load() {
				// seq numbers the records; i counts chunks toward Count.
				// A chunk is warm-up when its turn comes before the
				// warm-up ends.
				seq := int(next.Add(1)) - 1
				warm, i, n := false, 0, o.ChunkEvents
				if o.Warmup > 0 {
					if err := pc.wait(ctx, n); err != nil {
						return
					}
					warm = time.Now().Before(warmEnd)
				}
				if !warm {
					if i = int(measured.Add(1)) - 1; i >= chunks {
						return
					}
					n = min(o.ChunkEvents, o.Count-i*o.ChunkEvents)
					if o.Warmup == 0 {
						if err := pc.wait(ctx, n); err != nil {
							return
						}
					}
				}
				if c == nil {
					var err error
					if c, err = forward.Dial(ctx, o.Addr, cfg); err != nil {
						kind := classify(err)
						fail(kind, err)
						if kind != "closed_before_ack" {
							fatal.Store(true)
						}
						continue
					}
					atomicAdd(&l.Connections, 1)
				}
				// Records carry the run id and a global sequence number.
				var err error
				if wire, err = build(wire[:0], seq*o.ChunkEvents, n); err != nil {
					fail("error", err)
					return
				}
				if warm {
					atomicAdd(&l.Warmup.ChunksSent, 1)
				} else {
					atomicAdd(&l.ChunksSent, 1)
					atomicAdd(&l.EventsSent, int64(n))
					atomicAdd(&l.Bytes, int64(len(wire)))
				}
				samp = samp[:0]
				_, d, err := p.sendAndWait(ctx, c, wire, chunk, &samp)
				for _, s := range samp {
					mu.Lock()
					l.MaxSendQ = max(l.MaxSendQ, s.SendQ)
					mu.Unlock()
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					fail(classify(err), err)
					c.Close()
					c = nil
					continue
				}
				mu.Lock()
				if warm {
					l.Warmup.ChunksAcked++
					l.Warmup.EventsAcked += int64(n)
					warmLat = append(warmLat, d)
				} else {
					l.ChunksAcked++
					l.EventsAcked += int64(n)
					latencies = append(latencies, d)
				}
				mu.Unlock()
				if o.NewConnPerChunk {
					c.Close()
					c = nil
				}
			}
		}(c)
	}
	wg.Wait()
	if l.Warmup != nil {
		// Counting started when the warm-up ended, or when the run did
		// if it ended first.
		l.Warmup.Seconds = min(o.Warmup, time.Since(pc.start)).Seconds()
		start = warmEnd
		if len(warmLat) > 0 {
			l.Warmup.AckLatency = summarize(warmLat)
		}
	}
	el := max(time.Since(start), 0)
	l.Seconds = el.Seconds()
	if l.Seconds > 0 {
		l.AckedPerSecond = float64(l.EventsAcked) / l.Seconds
	}
	if len(latencies) > 0 {
		l.AckLatency = summarize(latencies)
		p.slowAck(l.AckLatency)
	}
	for kind, n := range l.Errors {
		cn := Canary{Mode: l.Mode, Error: l.firstErr[kind]}
		f, ok := p.outcomeFinding(kind, n, []Canary{cn})
		if !ok {
			continue
		}
		f.Evidence["count"] = n
		f.Evidence["chunks_sent"] = l.ChunksSent
		if l.ChunksSent > 0 {
			f.Summary = fmt.Sprintf("%d of %d chunks: %s", n, l.ChunksSent, f.Summary)
		}
		if kind == "no_ack" && l.MaxSendQ > 0 {
			f.Evidence["send_q_max"] = l.MaxSendQ
			f.Summary += "; our Send-Q reached " + strconv.Itoa(l.MaxSendQ) + " bytes (nothing takes them: a receiver that stopped reading, or packets dropped on the way)"
		}
		p.add(f)
	}
}

func atomicAdd(p *int64, n int64) { atomic.AddInt64(p, n) }

// chunkBuilder returns what builds a load chunk of n records, numbered
// from first+1, in the mode asked; it sets *chunk to the chunk's id.
// PackedForward, what shippers send, is built where it goes: each
// record right in the wire buffer.
func (p *prober) chunkBuilder(chunk *string) func(wire []byte, first, n int) ([]byte, error) {
	o := p.opts
	mode := o.Modes[0]
	var enc forward.Encoder
	recs := newProbeRecords(o.RunID, mode, o.RecordSize)
	if mode == forward.ModePacked {
		return func(wire []byte, first, n int) ([]byte, error) {
			*chunk = forward.NewChunkID()
			now := forward.NewEventTime(time.Now())
			wire, at, err := enc.AppendPackedStart(wire, o.Tag)
			if err != nil {
				return wire, err
			}
			for j := 1; j <= n; j++ {
				wire = recs.append(enc.AppendEntryTime(wire, now), first+j)
			}
			return enc.AppendPackedEnd(wire, at, *chunk, n)
		}
	}
	var (
		buf  []byte
		offs []int
		req  = &forward.Request{Tag: o.Tag, Mode: mode}
	)
	return func(wire []byte, first, n int) ([]byte, error) {
		*chunk = forward.NewChunkID()
		req.Chunk = *chunk
		buf, offs = recs.fill(req, buf, offs, first, n)
		return enc.Append(wire, req)
	}
}
