package esout

import (
	"testing"

	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
)

// FuzzBulkResponse feeds arbitrary bulk answers to the per-item handling:
// it must never panic, and only the request's own items may come back
// for a retry.
func FuzzBulkResponse(f *testing.F) {
	f.Add([]byte(`{"took":3,"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}},{"create":{"status":201}}]}`))
	f.Add([]byte(`{"took":3,"errors":true,"items":[{"create":{"status":201}},{"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception"}}}]}`))
	f.Add([]byte(`{"errors":true,"items":[{"create":{"status":409}},{},{"index":{"status":503},"x":1}]}`))
	f.Add([]byte(`{"took":1,"errors":false,`))
	buf, err := buffer.Open(buffer.Options{Memory: true})
	if err != nil {
		f.Fatal(err)
	}
	defer buf.Close()
	o, err := New(buf, Config{URLs: []string{"http://127.0.0.2:1"}, DeadLetter: func(buffer.Record, string) error { return nil }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, resp []byte) {
		items := []*item{{rec: buffer.Record{ID: "a"}}, {rec: buffer.Record{ID: "b"}}, {rec: buffer.Record{ID: "c"}}}
		retry := o.handleItems(items, resp)
		if len(retry) > len(items) {
			t.Fatalf("%d items to retry out of %d", len(retry), len(items))
		}
		for _, r := range retry {
			if r != items[0] && r != items[1] && r != items[2] {
				t.Fatal("retry holds an item that was not sent")
			}
		}
	})
}
