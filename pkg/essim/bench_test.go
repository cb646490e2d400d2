package essim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
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
