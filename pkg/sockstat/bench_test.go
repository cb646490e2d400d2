package sockstat

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/procfs"
)

// benchTable writes a 30,000-line tcp file (the size bench/sockets.sh
// builds) into a temp proc tree.
func benchTable(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	buf.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i := range 30000 {
		s := Socket{
			Local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), uint16(32768+i%20000)),
			Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, 0, byte(i % 8)}), 9200),
			State:  State(1 + i%11), Inode: uint64(100000 + i), UID: 1000,
		}
		fmt.Fprintln(&buf, formatLine(s))
	}
	if err := os.WriteFile(filepath.Join(dir, "net/tcp"), buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func BenchmarkReadTCPProcfs(b *testing.B) {
	dir := benchTable(b)
	pfs, err := procfs.NewFS(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		lines, err := netTCP(pfs, false)
		if err != nil {
			b.Fatal(err)
		}
		if s, ok := fromProcfs(lines); !ok || len(s) != 30000 {
			b.Fatal(len(s))
		}
	}
}

// BenchmarkReadTCP is the path `logdoctor sockets` takes; compare with
// BenchmarkReadTCPProcfs for why it does not go through procfs.
func BenchmarkReadTCP(b *testing.B) {
	dir := benchTable(b)
	b.ReportAllocs()
	for b.Loop() {
		socks, _, err := ReadTCP(dir)
		if err != nil || len(socks) != 30000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkAggregate(b *testing.B) {
	dir := benchTable(b)
	socks, _, err := ReadTCP(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		Aggregate(socks, AggregateOptions{Aliases: DefaultAliases(), SendQMin: 65536})
	}
}
