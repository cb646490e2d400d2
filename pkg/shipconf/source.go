package shipconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"unicode/utf8"
)

// Files is what the loader reads through: the operating system's files
// by default (OSFiles), a map in tests and fuzzing (MapFiles).
type Files interface {
	// ReadFile returns the file's content; a file larger than max bytes
	// is an error wrapping ErrTooLarge (and must not be read whole).
	ReadFile(name string, max int64) ([]byte, error)
	// Glob returns the names matching pattern (path.Match syntax), in
	// any order.
	Glob(pattern string) ([]string, error)
}

// ErrTooLarge is wrapped by ReadFile for a file above the size limit.
var ErrTooLarge = errors.New("file too large")

// ErrBinary is wrapped in problems about files that are not text.
var ErrBinary = errors.New("not a text file")

// OSFiles reads the real file system.
type OSFiles struct{}

func (OSFiles) ReadFile(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s: %w", name, errIsDir)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, above the %d byte limit: %w", name, st.Size(), max, ErrTooLarge)
	}
	// The size can change under us (a growing file, /proc): never read
	// more than the limit. Sized from Stat, one allocation per file.
	buf := bytes.NewBuffer(make([]byte, 0, st.Size()+1))
	if _, err := buf.ReadFrom(io.LimitReader(f, max+1)); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s grew above the %d byte limit: %w", name, max, ErrTooLarge)
	}
	return b, nil
}

var errIsDir = errors.New("is a directory")

func (OSFiles) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

// MapFiles is an in-memory file system keyed by cleaned path.
type MapFiles map[string]string

func (m MapFiles) ReadFile(name string, max int64) ([]byte, error) {
	s, ok := m[filepath.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if int64(len(s)) > max {
		return nil, fmt.Errorf("%s is %d bytes, above the %d byte limit: %w", name, len(s), max, ErrTooLarge)
	}
	return []byte(s), nil
}

func (m MapFiles) Glob(pattern string) ([]string, error) {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return nil, err
	}
	var out []string
	for k := range m {
		if ok, _ := filepath.Match(filepath.Clean(pattern), k); ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// checkText rejects what is not a configuration file: NUL bytes or invalid
// UTF-8 (both shippers read text; a binary file given by mistake must
// give one clear problem, not a thousand syntax errors).
func checkText(b []byte) error {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return fmt.Errorf("NUL byte at offset %d: %w", i, ErrBinary)
	}
	if !utf8.Valid(b) {
		i := 0
		for i < len(b) {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return fmt.Errorf("invalid UTF-8 at offset %d: %w", i, ErrBinary)
	}
	return nil
}

// longLine returns the 1-based number of the first line longer than max
// bytes, or 0.
func longLine(b []byte, max int) (line, length int) {
	n := 1
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		l := i
		if i < 0 {
			l = len(b)
		}
		if l > max {
			return n, l
		}
		if i < 0 {
			break
		}
		b = b[i+1:]
		n++
	}
	return 0, 0
}

// lineIndex turns byte offsets into line and column.
type lineIndex struct {
	src    []byte
	starts []int
}

func newLineIndex(src []byte) lineIndex {
	starts := []int{0}
	for i, c := range src {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return lineIndex{src: src, starts: starts}
}

func (li lineIndex) pos(file string, off int) Pos {
	if off > len(li.src) {
		off = len(li.src)
	}
	if off < 0 {
		off = 0
	}
	l := sort.Search(len(li.starts), func(i int) bool { return li.starts[i] > off }) - 1
	return Pos{File: file, Line: l + 1, Col: utf8.RuneCount(li.src[li.starts[l]:off]) + 1}
}
