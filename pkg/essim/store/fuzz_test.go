package store

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzReplay opens a data log of arbitrary bytes: it is refused with an
// error or loaded (a torn tail cut off), never a panic, and what was loaded
// loads again the same after the cut.
func FuzzReplay(f *testing.F) {
	f.Add([]byte(logMagic + "C\ta\nI\ta\t1\t2\t7\nid{\"x\":1}\nD\ta\t2\nid\nX\ta\n"))
	f.Add([]byte(logMagic + "I\ta\t1\t2\t7\nid{\"x\":1}\nI\ta\t2\t2\t7\nid{\"x\":2}\nI\ta\t1\t2\t99\nid{"))
	f.Add([]byte(logMagic + "I\ta\t1\t-1\t5\n"))
	f.Add([]byte("I\tm\t1\t1\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, LogName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		counts := func() map[string]int {
			s, err := Open(Options{Dir: dir})
			if err != nil {
				return nil
			}
			defer s.Close()
			out := map[string]int{}
			for name, ix := range s.indices {
				out[name] = ix.Count()
			}
			return out
		}
		first := counts()
		if first == nil {
			return
		}
		if again := counts(); !reflect.DeepEqual(first, again) {
			t.Fatalf("loaded %v, then %v from the cut log", first, again)
		}
	})
}
