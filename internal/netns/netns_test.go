package netns_test

import (
	"errors"
	"io/fs"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/logdoctor/logdoctor/internal/netns"
	"github.com/logdoctor/logdoctor/internal/testenv"
)

// Entering this process's own namespace runs fn there and comes back; a
// missing namespace file is a wrapped fs.ErrNotExist; without root the
// setns error wraps EPERM, which callers test to fall back to /proc.
func TestRun(t *testing.T) {
	testenv.RequireLinux(t)
	ran := false
	err := netns.Run("/proc/self/ns/net", func() error { ran = true; return nil })
	switch {
	case os.Geteuid() != 0:
		if !errors.Is(err, unix.EPERM) || ran {
			t.Fatalf("unprivileged: ran %v, err %v; want EPERM", ran, err)
		}
	case err != nil || !ran:
		t.Fatalf("ran %v, err %v", ran, err)
	}
	want := errors.New("from fn")
	if os.Geteuid() == 0 {
		if err := netns.Run("/proc/self/ns/net", func() error { return want }); !errors.Is(err, want) {
			t.Fatalf("fn's error: %v", err)
		}
	}
	if err := netns.Run("/nonexistent/ns/net", func() error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing namespace: %v", err)
	}
}

// Run switches into another namespace and back: fn sees the namespace, and
// the caller's thread never does.
func TestRunOtherNamespace(t *testing.T) {
	ns := testenv.NewNetns(t)
	own, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := netns.Run("/run/netns/"+ns.Name, func() (err error) {
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside == "" || inside == own {
		t.Fatalf("inside %q, own %q", inside, own)
	}
	if got, _ := os.Readlink("/proc/thread-self/ns/net"); got != own {
		t.Fatalf("caller's thread is in %s", got)
	}
}
