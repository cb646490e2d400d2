package forwardprobe

import (
	"testing"

	"github.com/logdoctor/logdoctor/pkg/forward"
)

// BenchmarkLoadChunk times building one 1,000-event load chunk of
// 200-byte records: the load generator's own share of the cores it
// measures a receiver on.
func BenchmarkLoadChunk(b *testing.B) {
	for _, m := range []forward.Mode{forward.ModePacked, forward.ModeForward} {
		b.Run(m.String(), func(b *testing.B) {
			p := &prober{opts: Options{Modes: []forward.Mode{m}, RunID: "0123456789abcdef", RecordSize: 200, Tag: "bench"}}
			var chunk string
			build := p.chunkBuilder(&chunk)
			var wire []byte
			for it := 0; it < b.N; it++ {
				wire, _ = build(wire[:0], it*1000, 1000)
			}
		})
	}
}
