package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

// runCLI runs logdoctor in process with captured IO.
func runCLI(t *testing.T, args ...string) (code ExitCode, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// runCLITTY is runCLI with stdout taken for a terminal: the boxed-table
// code path a person sees.
func runCLITTY(t *testing.T, args ...string) (code ExitCode, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb, OutTTY: true})
	return code, out.String(), errb.String()
}

// startCLI runs Main in the background (a long-running command such as
// pipeline run); wait returns its exit code and output once it ended.
func startCLI(args ...string) (wait func() (code ExitCode, stdout, stderr string)) {
	return startCLIHangups(nil, args...)
}

// startCLIHangups is startCLI with hangups delivered on hups, as main
// delivers SIGHUP.
func startCLIHangups(hups <-chan os.Signal, args ...string) (wait func() (code ExitCode, stdout, stderr string)) {
	var out, errb bytes.Buffer
	done := make(chan ExitCode, 1)
	io := IO{In: strings.NewReader(""), Out: &out, Err: &errb}
	if hups != nil {
		io.Hangups = func() (<-chan os.Signal, func()) { return hups, func() {} }
	}
	go func() { done <- Main(context.Background(), args, io) }()
	return func() (ExitCode, string, string) {
		code := <-done
		return code, out.String(), errb.String()
	}
}

// startCLIStoppable is startCLI for a command that runs until stopped:
// stop cancels its context (as SIGTERM does) and waits for its exit code
// and output.
func startCLIStoppable(args ...string) (stop func() (code ExitCode, stdout, stderr string)) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan ExitCode, 1)
	go func() { done <- Main(ctx, args, IO{In: strings.NewReader(""), Out: &out, Err: &errb}) }()
	return func() (ExitCode, string, string) {
		cancel()
		code := <-done
		return code, out.String(), errb.String()
	}
}

// freeTCPAddr returns host:port with a port nothing listens on right now,
// for a command under test to bind (or, on 127.0.0.2, to find closed).
func freeTCPAddr(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freeBindAddr returns a TCP address nothing listens on, for a command
// under test to bind, chosen as freeUDPAddr chooses: in CI a pipeline
// failed to bind its forward port, taken meanwhile by another package's
// listener, and the test's sender talked to that listener instead (ack
// EOF).
func freeBindAddr(t *testing.T) string {
	t.Helper()
	return freeLowAddr(t, testenv.BindTCP)
}

// otherLoopback is a loopback address other than 127.0.0.1 (and
// 127.0.0.2, the tests' closed-port address), picked at random.
func otherLoopback() string { return fmt.Sprintf("127.0.0.%d", 3+rand.IntN(250)) }

// freeUDPAddr returns a UDP address nothing listens on, for a command
// under test to bind: a loopback address other than 127.0.0.1, picked at
// random, and a port below the kernel's ephemeral range
// (ip_local_port_range, 32768-60999 by default). Between closing it here
// and the command binding it, no socket bound to port 0 can take it: one
// on 127.0.0.1:0 did in CI once, and later one bound to every address
// (a peer's heartbeat socket on 0.0.0.0) did with the random loopback
// address (bind: address already in use).
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	return freeLowAddr(t, testenv.BindUDP)
}

// freeLowAddr returns an address on a random loopback address other than
// 127.0.0.1 with a port of 20000-31999 (shippertest.FreePort takes
// 10000-19999 on 127.0.0.1) that bind takes.
func freeLowAddr(t *testing.T, bind testenv.Bind) string {
	t.Helper()
	addr, ok := testenv.FreeAddr(otherLoopback, 20000, 12000, bind)
	if !ok {
		t.Fatal("no free port below the ephemeral range")
	}
	return addr
}

func TestVersionAndUsageErrors(t *testing.T) {
	code, out, _ := runCLI(t, "--version")
	if code != ExitOK || !strings.Contains(out, "commit") {
		t.Fatalf("--version: code %d out %q", code, out)
	}
	code, _, errOut := runCLI(t, "--no-such-flag")
	if code != ExitUsage || !strings.Contains(errOut, "no-such-flag") {
		t.Fatalf("unknown flag: code %d err %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "no-such-command")
	if code != ExitUsage {
		t.Fatalf("unknown command: code %d err %q", code, errOut)
	}
}

func TestSecretHelpers(t *testing.T) {
	dir := t.TempDir()
	pw := dir + "/pw"
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOGDOCTOR_ES_PASSWORD", "from-env")
	for _, c := range []struct{ flag, file, want string }{
		{"given", "", "given"}, {"", pw, "s3cret"}, {"", "", "from-env"},
	} {
		got, err := esPassword(c.flag, "--password-file", c.file)
		if err != nil || got != c.want {
			t.Errorf("esPassword(%q, %q) = %q, %v; want %q", c.flag, c.file, got, err, c.want)
		}
	}
	if _, err := esPassword("", "--password-file", dir+"/missing"); err == nil || !strings.Contains(err.Error(), "--password-file") {
		t.Errorf("missing password file: %v", err)
	}
	if _, err := certPool("--ca", pw); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("non-PEM CA accepted: %v", err)
	}
	if c, err := keyPair("--cert", "", "--key", ""); c != nil || err != nil {
		t.Errorf("no pair: %v %v", c, err)
	}
	if _, err := keyPair("--cert", pw, "--key", ""); !errors.Is(err, errPairIncomplete) {
		t.Errorf("half a pair: %v", err)
	}
	if _, err := keyPair("--cert", pw, "--key", pw); err == nil || errors.Is(err, errPairIncomplete) {
		t.Errorf("bad pair: %v", err)
	}
}
