package doctor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// TargetFiles reads files as a process sees them: absolute paths under
// its root (/proc/PID/root, which is the container's file system when the
// process runs in one, seen from a node or from a debug container that
// shares its process namespace), relative ones under its working
// directory. It implements shipconf.Files, so the configuration, its
// includes and the files it names are read where the shipper reads them,
// and file names stay the shipper's own (fluent.conf:41, not
// /proc/1234/root/etc/fluent/fluent.conf:41).
type TargetFiles struct {
	Root string // /proc/PID/root
	Cwd  string // /proc/PID/cwd
}

// NewTargetFiles reads through pid's root and working directory.
func NewTargetFiles(procRoot string, pid int) TargetFiles {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	return TargetFiles{Root: filepath.Join(dir, "root"), Cwd: filepath.Join(dir, "cwd")}
}

// open opens name inside the target's root. Absolute symlinks in the
// container (a Kubernetes ConfigMap's, say) must resolve inside the
// container too, not on this host: openat2 with RESOLVE_IN_ROOT does
// that; kernels before 5.6 fall back to a plain path under the root.
func (f TargetFiles) open(name string) (*os.File, error) {
	base, rel := f.Root, name
	if !filepath.IsAbs(name) {
		base = f.Cwd
	}
	dir, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(dir)
		how := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
		if !filepath.IsAbs(name) {
			how.Resolve = unix.RESOLVE_NO_MAGICLINKS
		}
		fd, err := unix.Openat2(dir, strings.TrimPrefix(rel, "/"), how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), name), nil
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES):
			// no openat2 (old kernel, or a seccomp filter): plain path
		default:
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
	}
	return os.Open(f.host(name))
}

// host is the path of name from this process's point of view.
func (f TargetFiles) host(name string) string {
	if filepath.IsAbs(name) {
		return filepath.Join(f.Root, name)
	}
	return filepath.Join(f.Cwd, name)
}

// ReadFile reads name, at most max bytes (shipconf.Files).
func (f TargetFiles) ReadFile(name string, max int64) ([]byte, error) {
	fh, err := f.open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: is a directory", name)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, above the %d byte limit: %w", name, st.Size(), max, shipconf.ErrTooLarge)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(fh, max+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > max {
		return nil, fmt.Errorf("%s grew above the %d byte limit: %w", name, max, shipconf.ErrTooLarge)
	}
	return buf.Bytes(), nil
}

// Glob matches pattern in the target's file system and returns the names
// as the target sees them (shipconf.Files).
func (f TargetFiles) Glob(pattern string) ([]string, error) {
	prefix := f.Root
	if !filepath.IsAbs(pattern) {
		prefix = f.Cwd
	}
	matches, err := filepath.Glob(f.host(pattern))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(matches))
	for _, m := range matches {
		rel, err := filepath.Rel(prefix, m)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		if filepath.IsAbs(pattern) {
			rel = "/" + rel
		}
		out = append(out, rel)
	}
	return out, nil
}

// Exists reports whether name is a regular file in the target.
func (f TargetFiles) Exists(name string) bool {
	fh, err := f.open(name)
	if err != nil {
		return false
	}
	defer fh.Close()
	st, err := fh.Stat()
	return err == nil && st.Mode().IsRegular()
}

// DirSize sums the sizes of the regular files under dir in the target (a
// Fluent Bit storage.path), bounded to limit files.
func (f TargetFiles) DirSize(dir string, limit int) (total int64, files int, err error) {
	root := f.host(dir)
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if files >= limit {
			return filepath.SkipAll
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
				files++
			}
		}
		return nil
	})
	return total, files, err
}
