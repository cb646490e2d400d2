package essim

import (
	"encoding/json"
	"testing"
)

// The hand-written validator and action reader exist only because they
// are faster than encoding/json on the bulk hot path. These benchmarks
// keep that claim checkable: run them with
//
//	go test -run '^$' -bench 'FastJSON|ActionLine' ./pkg/essim
//
// and compare each fast/encoding_json pair. If encoding/json catches up,
// fastjson.go should go.

// benchDoc is a log document shaped like what shippers send: strings,
// numbers, a nested object and an array.
var benchDoc = []byte(`{"@timestamp":"2026-11-29T17:35:23.123456789Z","log":"GET /api/v1/items?id=42 HTTP/1.1 200 512 \"-\" \"curl/8.5\"","stream":"stdout","kubernetes":{"namespace_name":"shop","pod_name":"web-7d9f","labels":{"app":"web","tier":"frontend"}},"seq":123456,"latency_ms":12.5,"tags":["a","b","c"],"ok":true}`)

var benchAction = []byte(`{"create":{"_index":"logs-2026.11.29","_id":"d5a8c0f3a1b2c3d4e5f60718293a4b5c"}}`)

func BenchmarkFastJSONValid(b *testing.B) {
	for _, impl := range []struct {
		name  string
		valid func([]byte) bool
	}{{"fast", validJSON}, {"encoding_json", json.Valid}} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(int64(len(benchDoc)))
			for i := 0; i < b.N; i++ {
				if !impl.valid(benchDoc) {
					b.Fatal("benchDoc rejected")
				}
			}
		})
	}
}

func BenchmarkActionLine(b *testing.B) {
	b.Run("fast", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if op, index, id, ok := fastAction(benchAction); !ok || op != OpCreate || len(index) == 0 || len(id) == 0 {
				b.Fatal("fastAction missed the common shape")
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var al actionLine
			if err := json.Unmarshal(benchAction, &al); err != nil || al.Create == nil {
				b.Fatalf("unmarshal: %v", err)
			}
		}
	})
}
