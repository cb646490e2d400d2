// Package sockstat reads the kernel's TCP socket table from /proc, classifies
// each socket as outbound or inbound, aggregates state counts and queue bytes
// per peer, attributes sockets to processes, and turns what it sees into
// findings (CLOSE_WAIT pile-ups, TIME_WAIT churn, stuck Send-Q, no
// connection to a peer that should have one).
package sockstat

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/prometheus/procfs"
)

// Socket is one line of /proc/net/tcp or tcp6. IPv4-mapped IPv6 addresses
// are unmapped, so Local and Remote compare equal to what Go's net package
// reports for the same connection.
type Socket struct {
	Local, Remote netip.AddrPort
	State         State
	SendQ, RecvQ  uint64 // bytes (tx_queue, rx_queue); for LISTEN the accept backlog
	Inode         uint64 // 0 for TIME_WAIT and request sockets, which no process owns
	UID           uint32
}

// Sources says which files a read used and which it skipped.
type Sources struct {
	Read    []FileSource    `json:"read"`
	Skipped []SkippedSource `json:"skipped"`
	// Processes is filled in by process attribution; nil when it was off.
	Processes *ProcScan `json:"processes,omitempty"`
}

// FileSource is one socket file that was read.
type FileSource struct {
	Path    string `json:"path"`
	Sockets int    `json:"sockets"`
	// Parser is "procfs" when prometheus/procfs parsed the file, "line" when
	// the file had malformed lines and logdoctor's own line parser took over
	// to count the rest.
	Parser         string          `json:"parser"`
	MalformedLines int             `json:"malformed_lines"`
	Malformed      []MalformedLine `json:"malformed,omitempty"`
}

// SkippedSource is a socket file that was not read, and why.
type SkippedSource struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// ErrNoSocketTable means neither tcp nor tcp6 could be read.
var ErrNoSocketTable = errors.New("no TCP socket table readable")

// ReadTCP reads procRoot/net/tcp and procRoot/net/tcp6. procRoot is a proc
// mount ("/proc"), a process's directory ("/proc/1234", whose net/ is that
// process's network namespace) or a fixture tree. A missing file (tcp6 with
// IPv6 disabled) is skipped and noted in Sources; a malformed line is
// noted with its line number and the other lines are still returned.
func ReadTCP(procRoot string) ([]Socket, Sources, error) {
	src := Sources{Read: []FileSource{}, Skipped: []SkippedSource{}}
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, src, fmt.Errorf("proc root %s: %w", procRoot, err)
	}
	var all []Socket
	for _, v6 := range []bool{false, true} {
		name := "net/tcp"
		if v6 {
			name = "net/tcp6"
		}
		path := filepath.Join(procRoot, name)
		socks, fsrc, err := readOne(pfs, path, v6)
		if err != nil {
			src.Skipped = append(src.Skipped, SkippedSource{Path: path, Reason: skipReason(err)})
			continue
		}
		all = append(all, socks...)
		src.Read = append(src.Read, fsrc)
	}
	if len(src.Read) == 0 {
		return nil, src, fmt.Errorf("%w under %s: %s", ErrNoSocketTable, procRoot, src.Skipped[0].Reason)
	}
	return all, src, nil
}

func skipReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "not present (IPv6 disabled, or not a proc tree)"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

// readOne reads one socket file, through procfs first. procfs fails the
// whole file on its first bad line (and keeps its line parser private), so
// on a parse error the file is read again with ParseLine, which reports the
// line number and counts the rest.
func readOne(pfs procfs.FS, path string, v6 bool) ([]Socket, FileSource, error) {
	fsrc := FileSource{Path: path, Parser: "procfs"}
	lines, err := netTCP(pfs, v6)
	if err == nil {
		socks, ok := fromProcfs(lines)
		if ok {
			fsrc.Sockets = len(socks)
			return socks, fsrc, nil
		}
	} else if !errors.Is(err, procfs.ErrFileParse) {
		return nil, fsrc, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fsrc, err
	}
	defer f.Close()
	t, err := ParseTable(f)
	if err != nil {
		return nil, fsrc, fmt.Errorf("%s: %w", path, err)
	}
	fsrc.Parser = "line"
	fsrc.Sockets = len(t.Sockets)
	fsrc.MalformedLines = t.MalformedCount
	fsrc.Malformed = t.Malformed
	return t.Sockets, fsrc, nil
}

// netTCP is the one place logdoctor calls procfs's NetTCP/NetTCP6, which
// procfs marks deprecated in favour of netlink (sock_diag). Reading /proc
// is the point here: it works unprivileged in any container, needs no
// netlink socket (often filtered by seccomp), and reads another process's
// network namespace through /proc/PID/net without entering it, which
// netlink cannot do.
func netTCP(pfs procfs.FS, v6 bool) (procfs.NetTCP, error) {
	if v6 {
		return pfs.NetTCP6() //nolint:staticcheck // see above: /proc is the point
	}
	return pfs.NetTCP() //nolint:staticcheck // see above: /proc is the point
}

// fromProcfs converts procfs's lines; ok is false when a value is out of
// range for a real socket (an unknown state, a port over 65535), which
// procfs does not check, so the caller falls back to ParseLine and reports
// the line.
func fromProcfs(lines procfs.NetTCP) ([]Socket, bool) {
	out := make([]Socket, 0, len(lines))
	for _, l := range lines {
		la, ok1 := netip.AddrFromSlice(l.LocalAddr)
		ra, ok2 := netip.AddrFromSlice(l.RemAddr)
		if !ok1 || !ok2 || l.LocalPort > 0xffff || l.RemPort > 0xffff ||
			l.St > 0xff || !State(l.St).Valid() || l.UID > 1<<32-1 {
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

// Find returns the socket whose local and remote endpoints are local and
// remote (IPv4-mapped forms match their IPv4 addresses), e.g. to read the
// Send-Q of a connection this process holds: Find(socks,
// conn.LocalAddr().(*net.TCPAddr).AddrPort(), ...RemoteAddr()...).
func Find(socks []Socket, local, remote netip.AddrPort) (Socket, bool) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	for _, s := range socks {
		if s.Local == local && s.Remote == remote {
			return s, true
		}
	}
	return Socket{}, false
}
