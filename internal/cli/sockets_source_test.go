package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/logdoctor/logdoctor/internal/sockettest"
	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/sockdiag"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// failingDump opens but cannot dump, like a sandbox that allows the
// socket and refuses the request.
type failingDump struct{ closed *bool }

func (f failingDump) Dump(uint32, bool, int) (*sockdiag.Dump, error) { return nil, unix.EPERM }
func (f failingDump) AddInfo(*sockdiag.Dump, []int) error            { return unix.EPERM }
func (f failingDump) Close() error                                   { *f.closed = true; return nil }

// auto falls back to /proc where netlink is blocked, and says why; an
// explicit --source netlink fails instead; --source is validated.
func TestSocketsSourceFallback(t *testing.T) {
	cw := sockettest.CloseWait(t, "127.42.0.9", "127.42.1.9", 1)
	base := SocketsOptions{
		ProcRoot: "/proc", Peers: []string{cw.Server.String()}, States: []string{"CLOSE_WAIT"}, NoProcesses: true,
		Thresholds: sockstat.DefaultThresholds(),
	}
	sample := func(o SocketsOptions) (*sockstat.Report, error) {
		var d *sockstat.Report
		err := runSockets(context.Background(), o, func(r *report.Report) error {
			d = r.Data.(*sockstat.Report)
			return nil
		})
		return d, err
	}

	blocked := base
	blocked.OpenDiag = func(string) (DiagConn, error) { return nil, unix.EACCES }
	d, err := sample(blocked)
	if err != nil {
		t.Fatal(err)
	}
	if d.Sources.Source != "proc" || d.Sources.Why != "auto: sock_diag netlink unavailable (permission denied): reading /proc/net instead, without tcp_info" ||
		len(d.Peers) != 1 || d.Peers[0].States[sockstat.CloseWait] != 1 {
		t.Errorf("blocked: %+v %+v", d.Sources, d.Peers)
	}

	closed := false
	noDump := base
	noDump.OpenDiag = func(string) (DiagConn, error) { return failingDump{&closed}, nil }
	d, err = sample(noDump)
	if err != nil || d.Sources.Source != "proc" || !strings.HasPrefix(d.Sources.Why, "auto: the sock_diag dump failed (operation not permitted)") || !closed {
		t.Errorf("dump refused: %v %+v closed %v", err, d.Sources, closed)
	}

	// --pid of a process in this very namespace needs no setns.
	var opened []string
	same := base
	same.PID = os.Getpid()
	same.OpenDiag = func(ns string) (DiagConn, error) { opened = append(opened, ns); return openDiag(ns) }
	d, err = sample(same)
	if err != nil || len(opened) != 1 || opened[0] != "" || d.Sources.Source != "netlink" ||
		d.Sources.Why != fmt.Sprintf("auto: sock_diag netlink in this network namespace, which pid %d shares", os.Getpid()) {
		t.Errorf("--pid self: opened %q, %v %+v", opened, err, d.Sources)
	}

	explicit := blocked
	explicit.Source = "netlink"
	if _, err := sample(explicit); !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), "--source netlink") {
		t.Errorf("--source netlink with netlink blocked: %v", err)
	}
	explicit = noDump
	explicit.Source = "netlink"
	if _, err := sample(explicit); !errors.Is(err, unix.EPERM) {
		t.Errorf("--source netlink with the dump refused: %v", err)
	}

	root := filepath.Join(testenv.ModuleRoot(t), "pkg/sockstat/testdata/malformed")
	for _, c := range []struct {
		args []string
		code ExitCode
		msg  string
	}{
		{[]string{"--source", "kernel"}, ExitUsage, `"kernel" for "--source" flag: want auto, netlink or proc`},
		{[]string{"--source", "netlink", "--proc-root", root}, ExitUsage, "add --pid or use --source proc"},
	} {
		code, _, errOut := runCLI(t, append([]string{"sockets"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%v: exit %d %q", c.args, code, errOut)
		}
	}
	// A fixture tree under auto is read as files, and the report says so.
	code, out, _ := runCLI(t, "sockets", "--proc-root", root, "--no-processes", "-o", "json")
	r := decodeSockets(t, out)
	if code != ExitOK || r.Data.Sources.Source != "proc" || r.Data.Sources.Why != "auto: --proc-root "+root+" is not this host's /proc: reading "+root+"/net" {
		t.Errorf("fixture: exit %d %+v", code, r.Data.Sources)
	}
}
