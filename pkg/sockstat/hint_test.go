package sockstat

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCountHint(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, "net", name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if n := CountHint(dir); n != 0 {
		t.Errorf("no files: %d", n)
	}
	write("sockstat", "sockets: used 80\nTCP: inuse 50 orphan 4 tw 682 alloc 21069 mem 5337\nUDP: inuse 4 mem 0\n")
	write("sockstat6", "TCP6: inuse 7\nUDP6: inuse 1\n")
	if n := CountHint(dir); n != 50+682+7 {
		t.Errorf("hint %d", n)
	}
	write("sockstat", "TCP: inuse x tw 99999999999999999999999\n")
	if n := CountHint(dir); n != 7 {
		t.Errorf("garbage: %d", n)
	}
	if n := CountHint("/proc"); n <= 0 {
		t.Errorf("live: %d", n)
	}
}
