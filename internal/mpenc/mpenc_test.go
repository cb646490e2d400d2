package mpenc

import (
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Every size class decodes, with an independent msgpack library, to the
// value written.
func TestAppendsDecode(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000} {
		s := strings.Repeat("x", n)
		var got string
		if err := msgpack.Unmarshal(AppendStr(nil, s), &got); err != nil || got != s {
			t.Fatalf("str %d: %v (len %d)", n, err, len(got))
		}
		arr := AppendArrayHeader(nil, n)
		m := AppendMapHeader(nil, n)
		for i := 0; i < n; i++ {
			arr = AppendUint(arr, uint64(i))
			m = AppendUint(AppendStr(m, strings.Repeat("k", i%40)+string(rune('a'+i%26))+itoa(i)), 1)
		}
		var ga []uint64
		if err := msgpack.Unmarshal(arr, &ga); err != nil || len(ga) != n || n > 0 && ga[n-1] != uint64(n-1) {
			t.Fatalf("array %d: %v", n, err)
		}
		var gm map[string]uint64
		if err := msgpack.Unmarshal(m, &gm); err != nil || len(gm) != n {
			t.Fatalf("map %d: %v (%d keys)", n, err, len(gm))
		}
	}
	for _, v := range []uint64{0, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		var got uint64
		if err := msgpack.Unmarshal(AppendUint(nil, v), &got); err != nil || got != v {
			t.Fatalf("uint %d: %v %d", v, err, got)
		}
	}
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}
