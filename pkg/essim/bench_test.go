package essim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bulkBody builds n index actions with ~300-byte documents.
func bulkBody(n int, index string, seq int) []byte {
	var b bytes.Buffer
	pad := strings.Repeat("x", 200)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "{\"index\":{\"_index\":%q}}\n", index)
		fmt.Fprintf(&b, "{\"@timestamp\":\"2026-11-21T17:00:00.000Z\",\"host\":\"web-%d\",\"seq\":%d,\"level\":\"info\",\"message\":\"%s\"}\n", i%7, seq*n+i, pad)
	}
	return b.Bytes()
}

// BenchmarkBulk measures essim's bulk endpoint over loopback HTTP with
// 1,000-document bulks of ~300-byte documents; docs/s is the figure the
// pipeline benchmarks rely on (>= 100,000).
func BenchmarkBulk(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchBulk(b, "") })
	b.Run("disk", func(b *testing.B) { benchBulk(b, b.TempDir()) })
}

func benchBulk(b *testing.B, dataDir string) {
	s, err := Start(context.Background(), "127.0.0.1:0", Config{DataDir: dataDir})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := bulkBody(1000, "bench", 0)
	c := &http.Client{}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := c.Post(s.URL()+"/_bulk", "application/x-ndjson", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatal(res.Status)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "docs/s")
}

func BenchmarkParseBulk(b *testing.B) {
	body := bulkBody(1000, "bench", 0)
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		n := 0
		if err := ParseBulk(body, "", func(BulkItem) error { n++; return nil }); err != nil || n != 1000 {
			b.Fatal(err, n)
		}
	}
}

// BenchmarkTermsQuery counts documents matching a terms query of 100 and
// 2,000 values over 20,000 documents. Before the term index (a scan
// comparing every value with every document) this took 1.04 s and 13.2 s
// a query on the 2-core build machine; with it 0.14 ms and 1.1 ms, and
// 0.1 s when the field's index is rebuilt first.
func BenchmarkTermsQuery(b *testing.B) {
	s, err := Start(context.Background(), "127.0.0.1:0", Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &http.Client{}
	for i := 0; i < 20; i++ {
		res, err := c.Post(s.URL()+"/_bulk", "application/x-ndjson", bytes.NewReader(bulkBody(1000, "bench", i)))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	overwrite := []byte(`{"index":{"_index":"bench","_id":"fixed"}}` + "\n" + `{"seq":-1}` + "\n")
	for _, tc := range []struct {
		values  int
		rebuild bool
	}{{100, false}, {2000, false}, {100, true}} {
		values := tc.values
		name := fmt.Sprintf("values=%d", values)
		if tc.rebuild {
			// An in-place overwrite before each query makes the term
			// index start over: the cost of a first query.
			name += "/rebuild"
		}
		b.Run(name, func(b *testing.B) {
			var q strings.Builder
			q.WriteString(`{"query":{"terms":{"seq":[`)
			for v := 0; v < values; v++ {
				if v > 0 {
					q.WriteByte(',')
				}
				fmt.Fprint(&q, v*7)
			}
			q.WriteString(`]}}}`)
			want := fmt.Sprintf(`"count":%d}`, values)
			for i := 0; i < b.N; i++ {
				if tc.rebuild {
					b.StopTimer()
					res, err := c.Post(s.URL()+"/_bulk", "application/x-ndjson", bytes.NewReader(overwrite))
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					b.StartTimer()
				}
				res, err := c.Post(s.URL()+"/bench/_count", "application/json", strings.NewReader(q.String()))
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if !strings.Contains(string(body), want) {
					b.Fatalf("%s: want %s", body, want)
				}
			}
		})
	}
}

// createBulk builds n create actions with deterministic 22-character ids
// (the pipeline's base64url eventIDs) numbered from first, with documents
// of about 200 bytes, or tiny ones when small.
func createBulk(n, first int, index string, small bool) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, 0, n*300)
	for i := first; i < first+n; i++ {
		var id [22]byte
		x := uint64(i) * 0x9E3779B97F4A7C15
		for k := range id {
			id[k] = alphabet[x%64]
			x = x/64 ^ uint64(i)<<uint(k%7)
		}
		b = fmt.Appendf(b, "{\"create\":{\"_index\":%q,\"_id\":%q}}\n", index, id[:])
		if small {
			b = fmt.Appendf(b, "{\"seq\":%d}\n", i)
			continue
		}
		b = fmt.Appendf(b, "{\"@timestamp\":\"2026-11-29T17:35:23.%09dZ\",\"tag\":\"app.web\",\"log\":\"GET /api/v1/items?id=%d HTTP/1.1 200 512 \\\"-\\\" \\\"curl/8.5\\\"\",\"stream\":\"stdout\",\"seq\":%d}\n", i%1000000000, i, i)
	}
	return b
}

// discardWriter is the least a handler needs to answer into.
type discardWriter struct {
	h      http.Header
	status int
	head   []byte // the answer's first bytes
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(s int)   { w.status = s }
func (w *discardWriter) Write(b []byte) (int, error) {
	if len(w.head) < 64 {
		w.head = append(w.head, b[:min(len(b), 64-len(w.head))]...)
	}
	return len(b), nil
}

// BenchmarkBulkCreate measures essim's own CPU per bulk item, without
// sockets: 2,000-item create bulks of ~200-byte documents with fresh
// 22-character ids, handed to a node's handler, into a store that
// already holds a million ids (the shape of a pipeline run's output: its
// id table is far larger than the caches), in memory and with a data dir
// (the pipeline's embedded essim keeps one). items/s is the figure to
// compare with the pipeline's end-to-end rate.
func BenchmarkBulkCreate(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchBulkCreate(b, "") })
	b.Run("disk", func(b *testing.B) { benchBulkCreate(b, b.TempDir()) })
}

func benchBulkCreate(b *testing.B, dataDir string) {
	s, err := Start(context.Background(), "127.0.0.1:0", Config{DataDir: dataDir})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	n := s.nodes[0]
	post := func(body []byte) *discardWriter {
		r, err := http.NewRequest(http.MethodPost, "/_bulk", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/x-ndjson")
		w := &discardWriter{h: http.Header{}}
		n.ServeHTTP(w, r)
		return w
	}
	const items, preload = 2000, 1_000_000
	for first := 0; first < preload; first += 10000 {
		if w := post(createBulk(10000, first, "logs", true)); w.status != http.StatusOK {
			b.Fatalf("preload: status %d", w.status)
		}
	}
	if got := s.Count("logs"); got != preload {
		b.Fatalf("preloaded %d documents, want %d", got, preload)
	}
	next := preload
	b.Run(fmt.Sprintf("items=%d", items), func(b *testing.B) {
		b.ReportAllocs()
		var cpu time.Duration // the process's, garbage collector included
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			body := createBulk(items, next, "logs", false)
			next += items
			b.SetBytes(int64(len(body)))
			b.StartTimer() // reads memory statistics, stopping the world: not in cpu
			c0 := processCPU(b)
			w := post(body)
			cpu += processCPU(b) - c0
			if w.status != http.StatusOK || !bytes.Contains(w.head, []byte(`"errors":false`)) {
				b.Fatalf("status %d: %s", w.status, w.head)
			}
		}
		b.ReportMetric(float64(b.N*items)/b.Elapsed().Seconds(), "items/s")
		// CPU time is steadier than wall time on a shared machine.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
}

// BenchmarkBulkAnswer renders the answer to a 2000-item bulk of creates.
func BenchmarkBulkAnswer(b *testing.B) {
	s, err := Start(context.Background(), "127.0.0.1:0", Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	n := s.nodes[0]
	res := make([]itemResult, 2000)
	for i := range res {
		res[i] = itemResult{op: OpCreate, index: "logs-2026.11.29", id: fmt.Sprintf("d5a8c0f3a1b2c3d4e5f6%06d", i),
			status: http.StatusCreated, result: "created", version: 1, seq: int64(1000000 + i)}
	}
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = n.appendBulkAnswer(buf[:0], time.Millisecond, false, res)
	}
	b.SetBytes(int64(len(buf)))
}

// processCPU is the CPU time the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
