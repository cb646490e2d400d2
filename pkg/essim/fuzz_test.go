package essim

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParseBulk: the parser never panics, every item it yields has a known
// op, and a source only when the op carries one, aliasing the input.
func FuzzParseBulk(f *testing.F) {
	for _, s := range []string{
		"{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n",
		"{\"create\":{}}\n{}\n{\"delete\":{\"_index\":\"a\",\"_id\":\"2\"}}\n",
		"{\"update\":{\"_id\":\"1\"}}\n{\"doc\":{\"a\":1}}\r\n",
		"\n\n{\"index\":{}}\n",
		"{\"index\":{\"_id\":5}}\n{}\n",
		"{\"bogus\":{}}\n",
	} {
		f.Add([]byte(s), "def")
	}
	f.Fuzz(func(t *testing.T, body []byte, def string) {
		n := 0
		_ = ParseBulk(body, def, func(it BulkItem) error {
			n++
			if it.Op < OpIndex || it.Op > OpDelete {
				t.Fatalf("op %d", it.Op)
			}
			if (it.Op == OpDelete) != (it.Source == nil) {
				t.Fatalf("op %s with source %q", it.Op, it.Source)
			}
			if it.Source != nil && len(it.Source) > 0 && !bytes.Contains(body, it.Source) {
				t.Fatalf("source %q not from body", it.Source)
			}
			if it.Line < 1 {
				t.Fatalf("line %d", it.Line)
			}
			return nil
		})
		if n > len(body) {
			t.Fatalf("%d items from %d bytes", n, len(body))
		}
	})
}

// FuzzValidJSON holds the fast validator to encoding/json's verdict and the
// fast action reader to encoding/json's reading.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":[1,2.5e-3,"x\\u00e9",true,null]}`, `{"index":{"_index":"a","_id":"b"}}`,
		`{"a":01}`, `{"a":"\x"}`, `[1,]`, `{"create":{"_id":"x","routing":"r"}} `, `-0.0E+1`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid = %v", b, got, want)
		}
		op, index, id, ok := fastAction(b)
		if !ok {
			return
		}
		var al map[string]map[string]any
		if err := json.Unmarshal(b, &al); err != nil || len(al) != 1 {
			t.Fatalf("fastAction accepted %q that encoding/json reads as %v (%v)", b, al, err)
		}
		m := al[op.String()]
		if m == nil || (m["_index"] != nil && m["_index"] != index) || (m["_id"] != nil && m["_id"] != id) {
			t.Fatalf("fastAction(%q) = %s %q %q, encoding/json %v", b, op, index, id, al)
		}
	})
}
