// Package testenv holds what logdoctor's tests share: the rule that tests
// needing root or a system tool skip when run by hand without them but fail
// in CI (CI=true), network namespaces joined by veth pairs, free addresses
// for a command under test to bind, and building the logdoctor binary for
// end-to-end tests.
package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// InCI reports whether the tests run in CI, where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// unavailable skips by hand and fails in CI.
func unavailable(t testing.TB, format string, a ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true: "+format, a...)
	}
	t.Skipf(format, a...)
}

// RequireRoot stops a test that needs root (namespaces, raw capture).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "needs root (network namespaces / raw sockets); run 'sudo make test'")
	}
}

// RequireCommands stops a test when a system tool is missing; make test
// installs them (scripts/test-deps.sh).
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			unavailable(t, "needs %s on PATH; run 'sudo make test-deps'", n)
		}
	}
}

// RequireFiles stops a test when a file (a Debian package's module, say)
// is missing.
func RequireFiles(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			unavailable(t, "needs %s; run 'sudo make test-deps'", p)
		}
	}
}

// RandomSuffix returns n random hex characters for unique names.
func RandomSuffix(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

// Run runs a command and fails the test with its output when it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ModuleRoot finds the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// BuildLogdoctor builds the logdoctor binary into a temp dir and returns its
// path, for tests that need a separate process (a child in another network
// namespace, a process to SIGKILL).
func BuildLogdoctor(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "logdoctor")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/logdoctor")
	cmd.Dir = ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v\n%s", err, stderr.String())
	}
	return bin
}

// GOOS guards Linux-only tests (procfs, namespaces).
func RequireLinux(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
}

// RequireOpenFiles raises this process's soft RLIMIT_NOFILE to at least n
// (within the hard limit), for tests that hold thousands of sockets, and
// stops the test when the hard limit is lower.
func RequireOpenFiles(t testing.TB, n uint64) {
	t.Helper()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	if rl.Max < n {
		unavailable(t, "needs %d open files, the hard limit is %d (ulimit -Hn)", n, rl.Max)
	}
	rl.Cur = n
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("raising RLIMIT_NOFILE to %d: %v", n, err)
	}
}

// ClosedAddr is a loopback HOST:PORT (on 127.0.0.2) where nothing
// listens: a connect is refused at once.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
