package forward

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchRequest builds n events with records of about 200 bytes, the size
// bench/forward.sh uses.
func benchRequest(b *testing.B, mode Mode, n int) *Request {
	req := &Request{Tag: "bench.events", Mode: mode, Chunk: NewChunkID()}
	for i := 0; i < n; i++ {
		req.Entries = append(req.Entries, Entry{
			Time: EventTime{Sec: 1700000000, Nsec: uint32(i)},
			Record: mustRecord(b, map[string]any{"host": "web-01", "level": "info", "seq": i,
				"message": strings.Repeat("x", 140)}),
		})
	}
	return req
}

func BenchmarkEncode(b *testing.B) {
	for _, mode := range Modes() {
		n := 1000
		if mode == ModeMessage {
			n = 1
		}
		b.Run(mode.String(), func(b *testing.B) {
			req := benchRequest(b, mode, n)
			var e Encoder
			var buf []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf, _ = e.Append(buf[:0], req)
			}
			b.SetBytes(int64(len(buf)))
			reportPerEvent(b, n)
		})
	}
}

// loopReader replays one encoded request forever.
type loopReader struct {
	b []byte
	p int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.p:])
	r.p = (r.p + n) % len(r.b)
	return n, nil
}

func BenchmarkDecode(b *testing.B) {
	for _, mode := range Modes() {
		n := 1000
		if mode == ModeMessage {
			n = 1
		}
		b.Run(mode.String(), func(b *testing.B) {
			wire, err := AppendRequest(nil, benchRequest(b, mode, n))
			if err != nil {
				b.Fatal(err)
			}
			dec := NewDecoder(&loopReader{b: wire}, Limits{})
			dec.pools = &pools{}                  // as a Server's connections do
			if _, err := dec.Next(); err != nil { // warm the reused buffers
				b.Fatal(err)
			}
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req, err := dec.Next()
				if err != nil || len(req.Entries) != n {
					b.Fatal(err, len(req.Entries))
				}
			}
			reportPerEvent(b, n)
		})
	}
}

func BenchmarkRecordToJSON(b *testing.B) {
	rec := benchRequest(b, ModeMessage, 1).Entries[0].Record
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = RecordToJSON(buf[:0], rec)
	}
	b.SetBytes(int64(len(rec)))
}

func reportPerEvent(b *testing.B, n int) {
	el := b.Elapsed().Seconds()
	if el > 0 {
		b.ReportMetric(float64(b.N*n)/el, "events/s")
	}
}

var _ = io.EOF
var _ = bytes.MinRead
var _ = fmt.Sprint
