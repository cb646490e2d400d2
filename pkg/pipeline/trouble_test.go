package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
)

// ackedSender streams events with fluent-logger-golang and RequestAck,
// resending an event (same time, same bytes) until it is acked, the way a
// shipper with require_ack_response does.
type ackedSender struct {
	host  string
	port  int
	tag   string
	pad   string
	acked atomic.Int64
	// stop, when closed, ends the senders between events (crash test).
	stop chan struct{}
	// tagPerSender sends as TAG.sID, one index per sender, so that each
	// stays under the 10,000 documents a search returns.
	tagPerSender bool
	mu           sync.Mutex
	byID         map[int]int // events acked per sender (they are sent in order)
}

func (s *ackedSender) run(t *testing.T, ctx context.Context, id, n int, base time.Time) {
	var lg *fluent.Fluent
	defer func() {
		if lg != nil {
			lg.Close()
		}
	}()
	tag := s.tag
	if s.tagPerSender {
		tag = fmt.Sprintf("%s.s%d", s.tag, id)
	}
	for i := 0; i < n; i++ {
		tm := base.Add(time.Duration(id*n+i) * time.Microsecond)
		rec := map[string]any{"msg": fmt.Sprintf("%s-%d-%d %s", s.tag, id, i, s.pad)}
		for {
			if s.stop != nil {
				select {
				case <-s.stop:
					return
				default:
				}
			}
			if ctx.Err() != nil {
				t.Errorf("sender %d: gave up at event %d", id, i)
				return
			}
			if lg == nil {
				var err error
				lg, err = fluent.New(fluent.Config{FluentHost: s.host, FluentPort: s.port, RequestAck: true,
					Timeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetry: 1, RetryWait: 10, MaxRetryWait: 50})
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
			}
			if err := lg.PostWithTime(tag, tm, rec); err != nil {
				lg.Close()
				lg = nil
				time.Sleep(20 * time.Millisecond)
				continue
			}
			s.acked.Add(1)
			s.mu.Lock()
			if s.byID == nil {
				s.byID = map[int]int{}
			}
			s.byID[id] = i + 1
			s.mu.Unlock()
			break
		}
	}
}

func (s *ackedSender) want(senders, n int) map[string]bool {
	w := map[string]bool{}
	for id := 0; id < senders; id++ {
		for i := 0; i < n; i++ {
			w[fmt.Sprintf("%s-%d-%d %s", s.tag, id, i, s.pad)] = true
		}
	}
	return w
}

// wantAcked lists the events each sender got an ack for.
func (s *ackedSender) wantAcked(senders int) map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := map[string]bool{}
	for id := 0; id < senders; id++ {
		for i := 0; i < s.byID[id]; i++ {
			w[fmt.Sprintf("%s-%d-%d %s", s.tag, id, i, s.pad)] = true
		}
	}
	return w
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestElasticsearchTrouble: item rejections (429), whole requests failing
// (503), bulks answered after the client timed out while the documents
// were indexed (duplicates in Elasticsearch, docs/troubleshooting.md), and Elasticsearch down for a while with the
// buffer filling up. Every acked event ends up indexed exactly once, the
// buffer stays under its limit, and it drains after recovery.
func TestElasticsearchTrouble(t *testing.T) {
	data := t.TempDir()
	es := startES(t, "", essim.Config{DataDir: data})
	esAddr := es.Addrs()[0]
	const maxBuf = 512 << 10
	p := startPipeline(t, Config{
		BufferMaxBytes: maxBuf, BufferFullWait: 100 * time.Millisecond,
		ES: esout.Config{URLs: []string{es.URL()}, Workers: 2, BatchCount: 100, RequestTimeout: 300 * time.Millisecond,
			RetryInitial: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
			DeadMin: 50 * time.Millisecond, DeadMax: 200 * time.Millisecond, HealthInterval: 50 * time.Millisecond},
	})
	// Watch the buffer and the heap while everything happens.
	var maxBytes, maxHeap atomic.Int64
	stopWatch := make(chan struct{})
	var watchWG sync.WaitGroup
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if b := p.Stats().Buffer.Bytes; b > maxBytes.Load() {
				maxBytes.Store(b)
			}
			runtime.ReadMemStats(&ms)
			if h := int64(ms.HeapAlloc); h > maxHeap.Load() {
				maxHeap.Store(h)
			}
		}
	}()

	host, port := hostPort(t, p.ForwardAddr())
	s := &ackedSender{host: host, port: port, tag: "trouble", pad: strings.Repeat("p", 1000)}
	const senders, per = 4, 300
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	base := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for id := 0; id < senders; id++ {
		wg.Add(1)
		go func(id int) { defer wg.Done(); s.run(t, ctx, id, per, base) }(id)
	}

	// 1: 20% of items rejected with 429, 30% of requests failing whole.
	es.SetFaults(essim.Faults{RejectRate: 0.2, FailRate: 0.3, FailStatus: 503})
	waitFor(t, "rejections and failures", 20*time.Second, func() bool {
		st := es.Stats()
		return st.Rejected > 0 && st.RequestFailures > 0 && s.acked.Load() >= 200
	})
	// 2: bulks indexed but answered after the pipeline's 300ms timeout.
	es.SetFaults(essim.Faults{IndexLate: true, LateBy: 600 * time.Millisecond})
	waitFor(t, "bulk timeouts", 20*time.Second, func() bool { return p.Stats().Output.TransportErr >= 2 })
	es.SetFaults(essim.Faults{})
	// 3: Elasticsearch down; the buffer fills and forward requests are
	// refused without ack until it comes back.
	waitFor(t, "progress", 20*time.Second, func() bool { return s.acked.Load() >= 500 })
	es.Close()
	waitFor(t, "buffer full", 20*time.Second, func() bool { return p.Stats().ForwardRefused > 0 })
	time.Sleep(300 * time.Millisecond)
	es2 := startES(t, esAddr, essim.Config{DataDir: data})

	wg.Wait()
	flush(t, p, 30*time.Second)
	close(stopWatch)
	watchWG.Wait()

	checkExactlyOnce(t, esDocs(t, es2.URL(), "logs-*", 5000), "msg", s.want(senders, per))
	st := p.Stats()
	t.Logf("stats: %+v; max buffer %d bytes, max heap %d MiB", st, maxBytes.Load(), maxHeap.Load()>>20)
	if st.Output.Duplicates == 0 {
		t.Error("no 409s: the late-answered bulks were not replayed")
	}
	if st.Output.Retried == 0 || metric(t, p, "logdoctor_pipeline_bulk_items_total", map[string]string{"status": "429"}) == 0 ||
		metric(t, p, "logdoctor_pipeline_bulk_requests_total", map[string]string{"status": "503"}) == 0 ||
		metric(t, p, "logdoctor_pipeline_bulk_requests_total", map[string]string{"status": "transport_error"}) == 0 {
		t.Error("retries of 429 items, 503 requests and transport errors not all counted")
	}
	if maxBytes.Load() > maxBuf {
		t.Errorf("buffer reached %d bytes, over its %d limit", maxBytes.Load(), maxBuf)
	}
	if maxHeap.Load() > 256<<20 {
		t.Errorf("heap reached %d MiB", maxHeap.Load()>>20)
	}
	if st.Buffer.Records != 0 || st.Buffer.Segments != 1 {
		t.Errorf("buffer did not drain: %+v", st.Buffer)
	}
	if st.DeadLetters != 0 {
		t.Errorf("%d dead letters", st.DeadLetters)
	}
}
