// Package netns runs code inside another network namespace, for the
// readers that must open their sockets there (sock_diag for `sockets
// --pid`, doctor's connections to a shipper's own endpoints) and for the
// tests that build namespaces of their own (internal/testenv).
package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Run runs fn on an OS thread switched into the network namespace
// nsPath (a /proc/PID/ns/net or /run/netns/NAME file), then switches the
// thread back. It runs on a goroutine of its own: if the way back fails,
// that goroutine exits with its thread still locked, and the runtime ends
// the thread instead of handing a thread in the wrong namespace to other
// goroutines (the caller's thread, if it were used, might be the main
// one, which the runtime never ends). So fn runs off the caller's
// goroutine: in a test it returns errors, and never calls t.Fatal. Sockets
// fn creates stay in the namespace whichever thread uses them later.
// Entering needs CAP_SYS_ADMIN; the error then wraps EPERM.
func Run(nsPath string, fn func() error) error {
	target, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns %s (needs CAP_SYS_ADMIN): %w", nsPath, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Still locked: the thread dies with this goroutine.
			done <- fmt.Errorf("return to own network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}
