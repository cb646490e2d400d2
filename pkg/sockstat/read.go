// Package sockstat reads the kernel's TCP socket table from /proc (pkg/sockdiag
// reads it through netlink into the same Socket type), classifies
// each socket as outbound or inbound, aggregates state counts and queue bytes
// per peer, attributes sockets to processes, and turns what it sees into
// findings (CLOSE_WAIT pile-ups, TIME_WAIT churn, stuck Send-Q, no
// connection to a peer that should have one).
package sockstat

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/prometheus/procfs"
)

// Socket is one TCP socket: a line of /proc/net/tcp or tcp6, or a netlink
// sock_diag message. IPv4-mapped IPv6 addresses are unmapped, so Local and
// Remote compare equal to what Go's net package reports for the same
// connection.
type Socket struct {
	Local, Remote netip.AddrPort
	State         State
	SendQ, RecvQ  uint64 // bytes (tx_queue, rx_queue); for LISTEN Recv-Q is the accept backlog
	Inode         uint64 // 0 for TIME_WAIT and request sockets, which no process owns
	UID           uint32
	// TCP is the kernel's tcp_info: nil from /proc, and for TIME_WAIT and
	// request sockets, which have none.
	TCP *TCPInfo
}

// Sources says where the socket table came from: which source and why,
// and for /proc which files a read used and which it skipped.
type Sources struct {
	// Source is SourceNetlink or SourceProc; Why says why that one.
	Source string `json:"source"`
	Why    string `json:"why,omitempty"`
	// Netlink is filled by the netlink source.
	Netlink *DiagSource     `json:"netlink,omitempty"`
	Read    []FileSource    `json:"read"`
	Skipped []SkippedSource `json:"skipped"`
	// Processes is filled in by process attribution; nil when it was off.
	Processes *ProcScan `json:"processes,omitempty"`
}

// The socket table sources.
const (
	SourceNetlink = "netlink" // sock_diag netlink: binary, with tcp_info
	SourceProc    = "proc"    // /proc/net/tcp{,6}: text, any namespace readable through /proc/PID/net
)

// DiagSource says how a sock_diag netlink dump went.
type DiagSource struct {
	// Namespace is "self" (the network namespace logdoctor runs in) or
	// the namespace file entered (/proc/PID/ns/net).
	Namespace string `json:"namespace"`
	Sockets   int    `json:"sockets"`
	IPv4      int    `json:"ipv4"`
	IPv6      int    `json:"ipv6"`
	// TCPInfo counts the sockets that came with tcp_info. It is read
	// only for the sockets that need it (TCPInfoAsked: those with data in
	// Send-Q, and those matching --peer), after the census of the table;
	// TCPInfoVanished of them had closed by then. Listeners, TIME_WAIT
	// and request sockets have none.
	TCPInfo         int `json:"tcp_info"`
	TCPInfoAsked    int `json:"tcp_info_asked"`
	TCPInfoVanished int `json:"tcp_info_vanished"`
	Messages        int `json:"-"`
	// Malformed counts messages that could not be parsed (the first 20
	// are kept with their reason); the rest of the dump still counts.
	Malformed         int      `json:"malformed_messages"`
	MalformedMessages []string `json:"malformed,omitempty"`
	// Interrupted is set when the kernel flagged the dump as inconsistent
	// (NLM_F_DUMP_INTR): the table changed while it was being read.
	Interrupted bool `json:"interrupted,omitempty"`
}

// FileSource is one socket file that was read.
type FileSource struct {
	Path           string          `json:"path"`
	Sockets        int             `json:"sockets"`
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

// ReadTCP reads procRoot/net/tcp and procRoot/net/tcp6.
//
// /proc is the fallback to the netlink source (pkg/sockdiag) and the only
// way where netlink is not: it works unprivileged in any container, needs
// no netlink socket (seccomp profiles often block them), and shows another
// process's network namespace through /proc/PID/net without entering it.
// procRoot is a proc
// mount ("/proc"), a process's directory ("/proc/1234", whose net/ is that
// process's network namespace) or a fixture tree. A missing file (tcp6 with
// IPv6 disabled) is skipped and noted in Sources; a malformed line is
// noted with its line number and the other lines are still returned.
func ReadTCP(procRoot string) ([]Socket, Sources, error) {
	src := Sources{Source: SourceProc, Read: []FileSource{}, Skipped: []SkippedSource{}}
	// procfs checks the root is a directory (and knows a real proc mount
	// from a fixture tree) before anything is read.
	if _, err := procfs.NewFS(procRoot); err != nil {
		return nil, src, fmt.Errorf("proc root %s: %w", procRoot, err)
	}
	var all []Socket
	var buf []byte // shared by both files: nothing keeps a reference into it
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		path := filepath.Join(procRoot, name)
		socks, fsrc, nbuf, err := readOne(path, buf)
		buf = nbuf
		if err != nil {
			src.Skipped = append(src.Skipped, SkippedSource{Path: path, Reason: skipReason(err)})
			continue
		}
		if all == nil {
			all = socks // usually tcp6 is small or empty: no copy of tcp
		} else {
			all = append(all, socks...)
		}
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

// readOne reads one socket file in one go and parses it in place.
//
// Why not procfs's FS.NetTCP/NetTCP6 (the library this project reads /proc
// with): it fails the whole file on its first bad line, where logdoctor must
// name the line and count the rest, and it allocates about ten objects per
// line (330,000 for a 30,000-socket table), which measured 2-4x the user CPU
// of this parser and put `logdoctor sockets` above `ss -tan`'s wall time
// (see bench/sockets.sh). parse_procfs_test.go holds this parser to
// procfs's results on the live table and the fixtures, so the two agree.
func readOne(path string, buf []byte) ([]Socket, FileSource, []byte, error) {
	fsrc := FileSource{Path: path}
	f, err := os.Open(path)
	if err != nil {
		return nil, fsrc, buf, err
	}
	defer f.Close()
	buf, err = readAll(f, buf)
	if err != nil {
		return nil, fsrc, buf, fmt.Errorf("%s: %w", path, err)
	}
	t := parseBytes(buf)
	fsrc.Sockets = len(t.Sockets)
	fsrc.MalformedLines = t.MalformedCount
	fsrc.Malformed = t.Malformed
	return t.Sockets, fsrc, buf, nil
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

// CountHint estimates how many TCP sockets the namespace of
// procRoot/net holds, from net/sockstat and sockstat6 (sockets in use
// plus TIME_WAIT): a few hundred bytes to read, so a reader can size its
// table once instead of growing it. 0 when the files cannot be read.
func CountHint(procRoot string) int {
	n := 0
	for _, f := range []string{"net/sockstat", "net/sockstat6"} {
		b, err := os.ReadFile(filepath.Join(procRoot, f))
		if err != nil {
			continue
		}
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			fields := bytes.Fields(line)
			if len(fields) == 0 || (string(fields[0]) != "TCP:" && string(fields[0]) != "TCP6:") {
				continue
			}
			for i := 1; i+1 < len(fields); i += 2 {
				if k := string(fields[i]); k == "inuse" || k == "tw" {
					if v, ok := parseDec(fields[i+1]); ok && v < 1<<31 {
						n += int(v)
					}
				}
			}
		}
	}
	return n
}
