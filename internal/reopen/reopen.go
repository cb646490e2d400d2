// Package reopen is an append-only file that can be reopened at its path,
// so SIGHUP after logrotate moved it starts a new file instead of writing
// to the renamed one. The pipeline's log and its dead-letter file use it.
package reopen

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("file closed")

// File is safe for concurrent use.
type File struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// Open opens (creating, mode 0600) path for appending.
func Open(path string) (*File, error) {
	w := &File{path: path}
	if err := w.Reopen(); err != nil {
		return nil, err
	}
	return w, nil
}

// Write appends p as one write, so concurrent lines do not interleave.
func (w *File) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, fmt.Errorf("%s: %w", w.path, ErrClosed)
	}
	return w.f.Write(p)
}

// Reopen opens the path anew and closes the old file once writers use the
// new one.
func (w *File) Reopen() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	w.mu.Lock()
	old := w.f
	w.f = f
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the file; closing twice is not an error.
func (w *File) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
