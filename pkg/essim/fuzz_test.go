package essim

import (
	"bytes"
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
