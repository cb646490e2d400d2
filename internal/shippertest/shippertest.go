// Package shippertest starts real Fluentd and Fluent Bit processes for
// interop tests: from a configuration template, with their own temporary
// directory and ports, waiting until they are ready, and stopping them (and
// Fluentd's worker child) by process group when the test ends.
//
// The shippers live in ../shared/peers relative to the module root;
// its setup.sh installs what they need and prints $FLUENTD and $FLUENT_BIT.
// Like every test that needs a tool, a test skips with a message when they
// are absent on a developer's machine and fails when CI=true.
package shippertest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

// Kind names a shipper.
type Kind string

const (
	Fluentd   Kind = "fluentd"
	FluentBit Kind = "fluent-bit"
)

// Peers holds the argv prefixes that run each shipper.
type Peers struct {
	Fluentd   []string // env RUBYLIB=... ruby .../fluentd --disable-shared-socket -p ...
	FluentBit []string
}

// Locate runs ../shared/peers/setup.sh from the module root at dir and
// parses what it prints. It takes seconds (Ruby loads the plugin), so call
// it once per test binary (see Setup).
func Locate(moduleRoot string) (Peers, error) {
	setup := filepath.Join(moduleRoot, "..", "shared", "peers", "setup.sh")
	if _, err := os.Stat(setup); err != nil {
		return Peers{}, fmt.Errorf("real shippers: %w", err)
	}
	// setup.sh prints shell assignments quoted with printf %q: let bash
	// evaluate them and hand us the values NUL-separated.
	script := `eval "$("$0")" && printf '%s\0%s' "$FLUENTD" "$FLUENT_BIT"`
	cmd := exec.Command("bash", "-c", script, setup)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Peers{}, fmt.Errorf("%s: %w: %s", setup, err, strings.TrimSpace(stderr.String()))
	}
	fd, fb, ok := strings.Cut(string(out), "\x00")
	if !ok || fd == "" || fb == "" {
		return Peers{}, fmt.Errorf("%s printed no FLUENTD/FLUENT_BIT: %q", setup, out)
	}
	// The paths setup.sh prints come from TMPDIR and the checkout; a space
	// in them would make the split below wrong, so refuse it plainly.
	if strings.ContainsAny(fd+fb, "'\"\\") {
		return Peers{}, fmt.Errorf("%s: paths with quotes are not supported: %q", setup, out)
	}
	return Peers{Fluentd: strings.Fields(fd), FluentBit: []string{fb}}, nil
}

// Setup locates the shippers once for a test binary; Require hands them
// to each test or stops it.
type Setup struct {
	once  sync.Once
	peers Peers
	err   error
}

// Require returns the shippers, or skips the test (fails with CI=true)
// when they cannot be had.
func (s *Setup) Require(t testing.TB) Peers {
	t.Helper()
	s.once.Do(func() { s.peers, s.err = Locate(testenv.ModuleRoot(t)) })
	if s.err != nil {
		if testenv.InCI() {
			t.Fatalf("CI=true: real shippers unavailable: %v", s.err)
		}
		t.Skipf("real shippers unavailable (see ../shared/peers/README.md): %v", s.err)
	}
	return s.peers
}

// Spec says what to start.
type Spec struct {
	Kind Kind
	// Config is a text/template of the configuration file (Fluentd's
	// fluent.conf or Fluent Bit's classic format); Data fills it. The
	// template also sees .Dir, the process's own temporary directory.
	Config string
	Data   map[string]any
	// WaitTCP lists addresses that must accept a connection before Start
	// returns (the shipper's own inputs).
	WaitTCP []string
	// WaitLog is a substring of the shipper's log that must appear before
	// Start returns (for configurations without a listening input).
	WaitLog string
	// StartTimeout bounds the wait; default 30 s (Fluentd needs 2-5 s
	// here, more on a loaded machine).
	StartTimeout time.Duration
	// Env adds environment variables (KEY=VALUE).
	Env []string
	// Netns runs the shipper inside this network namespace (ip netns
	// exec, which execs it: the PID is the shipper's). WaitTCP dials from
	// the test's own namespace, so use WaitLog with it.
	Netns string
}

// Process is a running shipper.
type Process struct {
	Kind    Kind
	Dir     string // its temporary directory: config, buffers, log
	Config  string // path of the rendered configuration
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// Start renders the configuration, starts the shipper in its own process
// group and waits until it is ready. The test's cleanup stops it.
func Start(t testing.TB, peers Peers, spec Spec) *Process {
	t.Helper()
	dir := t.TempDir()
	p := &Process{Kind: spec.Kind, Dir: dir, LogPath: filepath.Join(dir, "shipper.log"), done: make(chan struct{})}
	data := map[string]any{"Dir": dir}
	for k, v := range spec.Data {
		data[k] = v
	}
	tmpl, err := template.New("config").Option("missingkey=error").Parse(spec.Config)
	if err != nil {
		t.Fatalf("shipper config template: %v", err)
	}
	var conf bytes.Buffer
	if err := tmpl.Execute(&conf, data); err != nil {
		t.Fatalf("shipper config template: %v", err)
	}
	var argv []string
	switch spec.Kind {
	case Fluentd:
		p.Config = filepath.Join(dir, "fluent.conf")
		argv = append(append([]string{}, peers.Fluentd...), "-c", p.Config, "--log", p.LogPath)
	case FluentBit:
		p.Config = filepath.Join(dir, "fluent-bit.conf")
		argv = append(append([]string{}, peers.FluentBit...), "-c", p.Config, "--log_file", p.LogPath)
	default:
		t.Fatalf("unknown shipper kind %q", spec.Kind)
	}
	if spec.Netns != "" {
		argv = append([]string{"ip", "netns", "exec", spec.Netns}, argv...)
	}
	if err := os.WriteFile(p.Config, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "stdio.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), spec.Env...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Its own process group, so that stopping it also stops Fluentd's
	// worker, which the supervisor spawns.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", spec.Kind, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.Stop(t) })

	timeout := spec.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for _, addr := range spec.WaitTCP {
		for !canConnect(addr) {
			p.checkAlive(t, deadline, "port "+addr)
		}
	}
	if spec.WaitLog != "" {
		for !strings.Contains(p.Log(), spec.WaitLog) {
			p.checkAlive(t, deadline, fmt.Sprintf("log line %q", spec.WaitLog))
		}
	}
	return p
}

func canConnect(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// checkAlive sleeps a little, failing the test when the shipper exited or
// the deadline passed.
func (p *Process) checkAlive(t testing.TB, deadline time.Time, what string) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited before %s was ready: %v\n%s", p.Kind, what, p.waitErr, p.Log())
	case <-time.After(100 * time.Millisecond):
	}
	if time.Now().After(deadline) {
		t.Fatalf("%s: %s not ready in time\n%s", p.Kind, what, p.Log())
	}
}

// PID is the shipper's (for Fluentd: the supervisor's) process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Log returns the shipper's log and its stdout/stderr so far.
func (p *Process) Log() string {
	var b strings.Builder
	for _, f := range []string{p.LogPath, filepath.Join(p.Dir, "stdio.log")} {
		if data, err := os.ReadFile(f); err == nil {
			b.Write(data)
		}
	}
	return b.String()
}

// LogLines returns the log lines holding substr.
func (p *Process) LogLines(substr string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(p.Log()))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}

// Stop sends SIGTERM to the process group, waits up to 20 s for a clean
// exit (Fluentd flushes its buffers), then kills the group. It is safe to
// call more than once.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
		t.Logf("%s did not stop on SIGTERM within 20 s; killed", p.Kind)
	}
	// The supervisor may exit before a worker that ignored the signal.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if err := p.waitErr; err != nil && !isSignalExit(err) {
		t.Logf("%s exited: %v", p.Kind, err)
	}
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// FreePort returns a port on 127.0.0.1 that nothing uses now for TCP nor
// UDP (Fluentd's in_forward binds both; syslog inputs bind UDP), for a
// shipper under test to bind. The port is below the kernel's ephemeral
// range (ip_local_port_range, 32768-60999 by default), so between this
// check and the shipper's bind no socket bound to port 0 and no outgoing
// connection can take it, as one did to a cli test's port in CI; and
// below the cli tests' own range (20000-31999), which they take on other
// loopback addresses, so a shipper binding every address does not meet
// them either.
func FreePort(t testing.TB) int {
	t.Helper()
	addr, ok := testenv.FreeAddr(func() string { return "127.0.0.1" }, 10000, 10000, testenv.BindTCP, testenv.BindUDP)
	if !ok {
		t.Fatal("no port free for both TCP and UDP in 10000-19999 on 127.0.0.1")
	}
	return int(netip.MustParseAddrPort(addr).Port())
}
