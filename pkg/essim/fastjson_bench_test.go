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

// benchDocLong is one with a long message, where the string scan is
// most of the validation.
var benchDocLong = []byte(`{"@timestamp":"2026-11-29T17:35:23.123456789Z","message":"2026-11-29 17:35:23,123 INFO  [http-nio-8080-exec-7] c.e.shop.web.OrderController - order 8d1f0e2a-55c3-4f7e-9b1a-0c2d3e4f5a6b placed by customer 1234567 for 3 items, total 149.97 EUR, payment authorised by provider acme-pay in 212 ms"}`)

var benchAction = []byte(`{"create":{"_index":"logs-2026.11.29","_id":"d5a8c0f3a1b2c3d4e5f60718293a4b5c"}}`)

func BenchmarkFastJSONValid(b *testing.B) {
	for _, impl := range []struct {
		name  string
		valid func([]byte) bool
	}{{"fast", validJSON}, {"encoding_json", json.Valid}} {
		for _, doc := range []struct {
			name string
			b    []byte
		}{{"", benchDoc}, {"/long", benchDocLong}} {
			b.Run(impl.name+doc.name, func(b *testing.B) {
				b.SetBytes(int64(len(doc.b)))
				for i := 0; i < b.N; i++ {
					if !impl.valid(doc.b) {
						b.Fatal("document rejected")
					}
				}
			})
		}
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
