package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// runError is an error found before a command runs that is still not a
// usage error: a file a global flag names cannot be written (exit 1).
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

var errNotDir = errors.New("not a directory")

// checkHTMLPath refuses an --html FILE that cannot be written: its
// directory must exist and FILE must not be a directory.
func checkHTMLPath(file string) error {
	dir := filepath.Dir(file)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--html %s: %w", file, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--html %s: %s is %w", file, dir, errNotDir)
	}
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		return fmt.Errorf("--html %s: is a directory", file)
	}
	return nil
}

// writeHTMLFile renders r as a page and replaces file with it at once, so
// a reader (or a --watch sample cut short) never sees half a page.
func writeHTMLFile(file string, r *report.Report) error {
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, r); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return fmt.Errorf("--html %s: %w", file, err)
	}
	_, werr := tmp.Write(buf.Bytes())
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("--html %s: %w", file, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("--html %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("--html %s: %w", file, err)
	}
	return nil
}
