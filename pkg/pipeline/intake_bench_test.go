package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
)

// BenchmarkIntakeEvent is the per-event work of making a forward event's
// document and _id: the record to JSON, the document, the id. The output
// does it at delivery (prepareRaw), intake only with --id-key. b.N counts
// events.
func BenchmarkIntakeEvent(b *testing.B) {
	d := &docBuilder{timeKey: "@timestamp", tagKey: "tag"}
	pad := strings.Repeat("x", 150)
	const n = 1000
	raws := make([][]byte, n)
	for i := range raws {
		raws[i], _ = msgpack.Marshal(map[string]any{"msg": fmt.Sprintf("c-%d %s", i, pad), "level": "info", "seq": i})
	}
	var ids idHasher
	var js, docs, idBuf []byte
	t := time.Unix(1763719200, 5)
	b.SetBytes(int64(len(raws[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		raw := raws[i%n]
		if i%n == 0 {
			docs = docs[:0]
		}
		var err error
		js, err = forward.RecordToJSON(js[:0], raw)
		if err != nil {
			b.Fatal(err)
		}
		if docs, _, err = d.build(docs, js, "bench.packed", t); err != nil {
			b.Fatal(err)
		}
		idBuf = ids.appendID(idBuf[:0], "bench.packed", 1763719200, uint32(i), raw)
	}
}

// BenchmarkPrepareRaw is the output's per-event work for a record stored
// as the shipper sent it: its JSON, the document and the _id. b.N counts
// events.
func BenchmarkPrepareRaw(b *testing.B) {
	p := &Pipeline{docs: docBuilder{timeKey: "@timestamp", tagKey: "tag"}}
	pad := strings.Repeat("x", 150)
	const n = 1000
	recs := make([]buffer.Record, n)
	for i := range recs {
		raw, _ := msgpack.Marshal(map[string]any{"msg": fmt.Sprintf("c-%d %s", i, pad), "level": "info", "seq": i})
		recs[i] = buffer.Record{Tag: "bench.packed", Sec: 1763719200, Nsec: uint32(i), Doc: raw, Raw: true}
	}
	b.SetBytes(int64(len(recs[0].Doc)))
	b.ReportAllocs()
	var docs []byte
	for i := 0; b.Loop(); i++ {
		if i%n == 0 {
			docs = docs[:0]
		}
		var err error
		if docs, _, err = p.prepareRaw(docs, recs[i%n]); err != nil {
			b.Fatal(err)
		}
	}
}
