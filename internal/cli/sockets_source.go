package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/logdoctor/logdoctor/pkg/sockdiag"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// The --source values.
const (
	sourceAuto    = "auto"
	sourceNetlink = sockstat.SourceNetlink
	sourceProc    = sockstat.SourceProc
)

// DiagConn is an open sock_diag netlink socket (pkg/sockdiag.Conn).
type DiagConn interface {
	Dump(states uint32, info bool, sizeHint int) (*sockdiag.Dump, error)
	AddInfo(d *sockdiag.Dump, idx []int) error
	Close() error
}

// OpenDiag opens a sock_diag socket: in this process's network namespace
// when nsPath is "", else in the namespace that file names.
type OpenDiag func(nsPath string) (DiagConn, error)

func openDiag(nsPath string) (DiagConn, error) {
	if nsPath == "" {
		return sockdiag.Dial()
	}
	return sockdiag.DialNetns(nsPath)
}

// tableSource reads the socket table from the source --source chose, once
// per sample; a netlink socket stays open across --watch samples (and in
// the --pid namespace it was opened in).
type tableSource struct {
	auto    bool
	why     string
	conn    DiagConn // nil: read /proc
	netRoot string   // the proc tree whose net/tcp{,6} the proc source reads
	lastN   int      // sockets in the previous sample, to presize the next
	reads   int
	// netns names the network namespace read ("net:[4026531840]"; "" for
	// a tree that is not a live proc mount), so process attribution scans
	// its processes first.
	netns string
}

// openTableSource resolves --source: auto takes netlink where it works
// (this namespace with /proc as the proc root, or --pid's namespace when
// this process may enter it) and /proc otherwise, and says why.
func openTableSource(o SocketsOptions, netRoot string) (*tableSource, error) {
	open := o.OpenDiag
	if open == nil {
		open = openDiag
	}
	src := o.Source
	if src == "" {
		src = sourceAuto
	}
	s := &tableSource{auto: src == sourceAuto, netRoot: netRoot}
	self := "self"
	if o.PID > 0 {
		self = strconv.Itoa(o.PID)
	}
	s.netns, _ = os.Readlink(filepath.Join(o.ProcRoot, self, "ns", "net"))
	netFiles := filepath.Join(netRoot, "net")
	switch src {
	case sourceProc:
		s.why = "--source proc: reading " + netFiles
		return s, nil
	case sourceAuto, sourceNetlink:
	default:
		return nil, usageErrorf("--source %q: want auto, netlink or proc", o.Source)
	}
	nsPath := ""
	shared := false
	switch {
	case o.PID > 0:
		nsPath = filepath.Join(o.ProcRoot, strconv.Itoa(o.PID), "ns", "net")
		// A process in this very namespace (a host-network shipper seen
		// from the host) needs no setns, nor the privilege for it.
		if own, err := os.Readlink(filepath.Join(o.ProcRoot, "self", "ns", "net")); err == nil && own == s.netns {
			nsPath, shared = "", true
		}
	case filepath.Clean(o.ProcRoot) != "/proc":
		if !s.auto {
			return nil, usageErrorf("--source netlink reads this network namespace (or --pid's), not the tree --proc-root %s names: add --pid or use --source proc", o.ProcRoot)
		}
		s.why = fmt.Sprintf("auto: --proc-root %s is not this host's /proc: reading %s", o.ProcRoot, netFiles)
		return s, nil
	}
	conn, err := open(nsPath)
	if err == nil {
		s.conn = conn
		switch {
		case shared:
			s.why = fmt.Sprintf("%s: sock_diag netlink in this network namespace, which pid %d shares", src, o.PID)
		case nsPath == "":
			s.why = src + ": sock_diag netlink in this network namespace"
		default:
			s.why = fmt.Sprintf("%s: sock_diag netlink in the network namespace of pid %d (entered %s)", src, o.PID, nsPath)
		}
		return s, nil
	}
	if !s.auto {
		return nil, fmt.Errorf("--source netlink: %w", err)
	}
	switch {
	case o.PID > 0 && errors.Is(err, fs.ErrPermission):
		s.why = fmt.Sprintf("auto: entering the network namespace of pid %d needs CAP_SYS_ADMIN (%v): reading %s instead, without tcp_info", o.PID, err, netFiles)
	case o.PID > 0:
		s.why = fmt.Sprintf("auto: sock_diag netlink in the network namespace of pid %d failed (%v): reading %s instead, without tcp_info", o.PID, err, netFiles)
	default:
		s.why = fmt.Sprintf("auto: sock_diag netlink unavailable (%v): reading %s instead, without tcp_info", err, netFiles)
	}
	return s, nil
}

// read takes one look at the table. Through netlink with want set, that
// is a census without tcp_info and then tcp_info for the sockets want
// picks (see pkg/sockdiag); with want nil, one dump with tcp_info for
// every socket. Under auto, a first netlink read that fails (a sandbox
// that lets the socket open but not dump) falls back to /proc for the
// rest of the run.
func (s *tableSource) read(want func([]sockstat.Socket) []int) ([]sockstat.Socket, sockstat.Sources, error) {
	s.reads++
	if s.conn != nil {
		if s.lastN == 0 {
			s.lastN = sockstat.CountHint(s.netRoot)
		}
		d, err := s.conn.Dump(sockdiag.AllStates, want == nil, s.lastN)
		if err == nil && want != nil {
			err = s.conn.AddInfo(d, want(d.Sockets))
		}
		if err == nil {
			s.lastN = len(d.Sockets)
			return d.Sockets, sockstat.Sources{
				Source: sourceNetlink, Why: s.why, Netlink: &d.Source,
				Read: []sockstat.FileSource{}, Skipped: []sockstat.SkippedSource{},
			}, nil
		}
		if !s.auto || s.reads > 1 {
			return nil, sockstat.Sources{}, err
		}
		_ = s.conn.Close()
		s.conn = nil
		s.why = fmt.Sprintf("auto: the sock_diag dump failed (%v): reading %s instead, without tcp_info", err, filepath.Join(s.netRoot, "net"))
	}
	socks, src, err := sockstat.ReadTCP(s.netRoot)
	src.Why = s.why
	return socks, src, err
}

// scanOptions are the process scan's: the namespace's processes first,
// and every process when --by process counts each holder of a socket.
func (s *tableSource) scanOptions(by sockstat.GroupBy) sockstat.ScanOptions {
	return sockstat.ScanOptions{NetNS: s.netns, All: by == sockstat.ByProcess}
}

func (s *tableSource) close() {
	if s.conn != nil {
		_ = s.conn.Close()
	}
}
