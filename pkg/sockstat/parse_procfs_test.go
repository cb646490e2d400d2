package sockstat

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/procfs"
)

// netTCP is the one place logdoctor calls procfs's FS.NetTCP/NetTCP6,
// which procfs marks deprecated in favour of netlink (sock_diag). Reading
// /proc is the point of `logdoctor sockets` (it works unprivileged in any
// container and reads another process's namespace through /proc/PID/net);
// ReadTCP does it with its own parser (see readOne for why), and procfs's
// parser serves here as the reference it is held to.
func netTCP(pfs procfs.FS, v6 bool) (procfs.NetTCP, error) {
	if v6 {
		//lint:ignore SA1019 see above: /proc is the point
		return pfs.NetTCP6()
	}
	//lint:ignore SA1019 see above: /proc is the point
	return pfs.NetTCP()
}

// fromProcfs converts procfs's lines the way ParseLine reads them.
func fromProcfs(lines procfs.NetTCP) ([]Socket, bool) {
	out := make([]Socket, 0, len(lines))
	for _, l := range lines {
		la, ok1 := netip.AddrFromSlice(l.LocalAddr)
		ra, ok2 := netip.AddrFromSlice(l.RemAddr)
		if !ok1 || !ok2 || l.LocalPort > 0xffff || l.RemPort > 0xffff || l.St > 0xff || l.UID > 1<<32-1 {
			return nil, false
		}
		out = append(out, Socket{
			Local:  netip.AddrPortFrom(la.Unmap(), uint16(l.LocalPort)),
			Remote: netip.AddrPortFrom(ra.Unmap(), uint16(l.RemPort)),
			State:  State(l.St),
			SendQ:  l.TxQueue,
			RecvQ:  l.RxQueue,
			Inode:  l.Inode,
			UID:    uint32(l.UID),
		})
	}
	return out, true
}

// The parser ReadTCP uses agrees with procfs's, socket for socket, on this
// host's live tables and on the well-formed fixtures; on a malformed table
// procfs gives up where ReadTCP names the line and counts the rest.
func TestParserAgreesWithProcfs(t *testing.T) {
	for _, root := range []string{"/proc", "/proc/self", "testdata/v6", "testdata/no-tcp6"} {
		for _, v6 := range []bool{false, true} {
			name := map[bool]string{false: "net/tcp", true: "net/tcp6"}[v6]
			path := filepath.Join(root, name)
			data, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			// A live table changes between two reads (other tests open
			// sockets all the time), so both parsers read one snapshot of
			// it, taken once into a proc root of our own.
			snap := t.TempDir()
			if err := os.MkdirAll(filepath.Join(snap, "net"), 0o755); err != nil {
				t.Fatal(err)
			}
			snapPath := filepath.Join(snap, name)
			if err := os.WriteFile(snapPath, data, 0o600); err != nil {
				t.Fatal(err)
			}
			pfs, err := procfs.NewFS(snap)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := netTCP(pfs, v6)
			if err != nil {
				t.Fatalf("procfs %s: %v", path, err)
			}
			want, ok := fromProcfs(lines)
			if !ok {
				t.Fatalf("procfs %s: out-of-range values", path)
			}
			got, fsrc, _, err := readOne(snapPath, nil)
			if err != nil || fsrc.MalformedLines != 0 {
				t.Fatalf("readOne %s: %v %+v", path, err, fsrc)
			}
			if diff := compareSockets(got, want); diff != "" {
				t.Errorf("%s: %s", path, diff)
			}
		}
	}
	pfs, err := procfs.NewFS("testdata/malformed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netTCP(pfs, false); err == nil {
		t.Error("procfs now accepts the malformed fixture: revisit readOne's comment")
	}
}

func compareSockets(got, want []Socket) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d sockets, procfs %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("line %d: %+v, procfs %+v", i+2, got[i], want[i])
		}
	}
	return ""
}
