package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
)

// shippers locates ../shared/peers once for the package.
var shippers shippertest.Setup

// logdoctorBin is the binary built once in TestMain.
var logdoctorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "logdoctor-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	logdoctorBin = filepath.Join(dir, "logdoctor")
	build := exec.Command("go", "build", "-o", logdoctorBin, "github.com/logdoctor/logdoctor/cmd/logdoctor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a logdoctor run left.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs logdoctor to completion, bounded by timeout.
func run(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, logdoctorBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.code = ee.ExitCode()
	default:
		t.Fatalf("logdoctor %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	return r
}

// daemon is a long-running logdoctor (pipeline run, forward serve, es serve).
type daemon struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	done      chan struct{}
	res       result
}

// start runs logdoctor in the background, waits until waitAddr accepts
// connections (when given) and stops it with SIGTERM at cleanup.
func start(t *testing.T, waitAddr string, args ...string) *daemon {
	t.Helper()
	return startCommand(t, exec.Command(logdoctorBin, args...), waitAddr, canDial, args)
}

// startCommand is start for a prepared command (logdoctor run inside a
// network namespace, say), with dial telling when waitAddr is up.
func startCommand(t *testing.T, cmd *exec.Cmd, waitAddr string, dial func(string) bool, args []string) *daemon {
	t.Helper()
	d := &daemon{done: make(chan struct{})}
	d.cmd = cmd
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.errb
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := d.cmd.Wait()
		d.res = result{stdout: d.out.String(), stderr: d.errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			d.res.code = ee.ExitCode()
		}
		close(d.done)
	}()
	t.Cleanup(func() { d.stop(t) })
	if waitAddr != "" {
		deadline := time.Now().Add(15 * time.Second)
		for !dial(waitAddr) {
			select {
			case <-d.done:
				t.Fatalf("logdoctor %s exited before listening:\n%s", strings.Join(args, " "), d.res)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("logdoctor %s: %s not listening after 15 s", strings.Join(args, " "), waitAddr)
			}
		}
	}
	return d
}

// stop sends SIGTERM and returns what the process printed and its exit
// code; it kills it after 40 s (the pipeline's shutdown flush is 30 s).
func (d *daemon) stop(t *testing.T) result {
	t.Helper()
	select {
	case <-d.done:
		return d.res
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(40 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("logdoctor did not stop within 40 s of SIGTERM")
	}
	return d.res
}

func canDial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// report is the part of every command's JSON report the tests read.
type report struct {
	Command  string `json:"command"`
	Findings []struct {
		ID       string         `json:"id"`
		Severity string         `json:"severity"`
		Summary  string         `json:"summary"`
		Remedy   string         `json:"remedy"`
		Evidence map[string]any `json:"evidence"`
	} `json:"findings"`
	Data json.RawMessage `json:"data"`
}

func parseReport(t *testing.T, r result) report {
	t.Helper()
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, r)
	}
	return rep
}

// ids lists the report's finding ids.
func (r report) ids() []string {
	var ids []string
	for _, f := range r.Findings {
		ids = append(ids, f.ID)
	}
	return ids
}

func (r report) has(id string) bool {
	for _, f := range r.Findings {
		if f.ID == id {
			return true
		}
	}
	return false
}
