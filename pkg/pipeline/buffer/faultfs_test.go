package buffer

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// faultFS wraps the real files behind the buffer's storage seam. It
// injects errors by operation and tracks what a power loss would keep: each
// file's length as of its last successful fdatasync, and whether its
// directory entry was synced since it was created.
type faultFS struct {
	mu     sync.Mutex
	faults map[string]fault // by operation: create, magic, write, sync, truncate, syncdir
	files  map[string]*fileState
	// writes holds the [start, end) of every successful write after a
	// file's magic, by path.
	writes map[string][][2]int64
}

type fault struct {
	err   error // nil with short: a short write that reports no error
	short bool  // write half of the bytes first
}

type fileState struct {
	durable   int64
	dirSynced bool
}

func newFaultFS() *faultFS {
	return &faultFS{faults: map[string]fault{}, files: map[string]*fileState{}, writes: map[string][][2]int64{}}
}

// inject makes every op fail until clear.
func (f *faultFS) inject(op string, ft fault) {
	f.mu.Lock()
	f.faults[op] = ft
	f.mu.Unlock()
}

func (f *faultFS) clear() {
	f.mu.Lock()
	f.faults = map[string]fault{}
	f.mu.Unlock()
}

func (f *faultFS) check(op string) (fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft, ok := f.faults[op]
	return ft, ok
}

func (f *faultFS) state(path string) fileState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.files[path]; ok {
		return *s
	}
	return fileState{}
}

func (f *faultFS) Create(path string) (storage, error) {
	if ft, ok := f.check("create"); ok {
		return nil, &os.PathError{Op: "open", Path: path, Err: ft.err}
	}
	st, err := osFS{}.Create(path)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.files[path] = &fileState{}
	f.mu.Unlock()
	return &faultStorage{storage: st, fs: f, path: path, fresh: true}, nil
}

func (f *faultFS) Open(path string) (storage, error) {
	st, err := osFS{}.Open(path)
	if err != nil {
		return nil, err
	}
	size, _ := st.Size()
	f.mu.Lock()
	f.files[path] = &fileState{durable: size, dirSynced: true}
	f.mu.Unlock()
	return &faultStorage{storage: st, fs: f, path: path}, nil
}

func (f *faultFS) SyncDir(dir string) error {
	if ft, ok := f.check("syncdir"); ok {
		return &os.PathError{Op: "fsync", Path: dir, Err: ft.err}
	}
	if err := (osFS{}).SyncDir(dir); err != nil {
		return err
	}
	f.mu.Lock()
	for p, s := range f.files {
		if filepath.Dir(p) == filepath.Clean(dir) {
			s.dirSynced = true
		}
	}
	f.mu.Unlock()
	return nil
}

type faultStorage struct {
	storage
	fs    *faultFS
	path  string
	fresh bool // nothing written yet: the next write is the segment magic
	off   int64
}

func (s *faultStorage) Write(p []byte) (int, error) {
	op := "write"
	if s.fresh {
		op, s.fresh = "magic", false
	}
	if ft, ok := s.fs.check(op); ok {
		n := 0
		if ft.short {
			n, _ = s.storage.Write(p[:len(p)/2])
			s.off += int64(n)
		}
		if ft.err == nil {
			return n, nil
		}
		return n, &os.PathError{Op: "write", Path: s.path, Err: ft.err}
	}
	n, err := s.storage.Write(p)
	if err == nil && op == "write" {
		s.fs.mu.Lock()
		s.fs.writes[s.path] = append(s.fs.writes[s.path], [2]int64{s.off, s.off + int64(n)})
		s.fs.mu.Unlock()
	}
	s.off += int64(n)
	return n, err
}

func (s *faultStorage) Sync() error {
	if ft, ok := s.fs.check("sync"); ok {
		return &os.PathError{Op: "fdatasync", Path: s.path, Err: ft.err}
	}
	if err := s.storage.Sync(); err != nil {
		return err
	}
	s.fs.mu.Lock()
	if st := s.fs.files[s.path]; st != nil {
		st.durable = s.off
	}
	s.fs.mu.Unlock()
	return nil
}

func (s *faultStorage) Truncate(size int64) error {
	if ft, ok := s.fs.check("truncate"); ok {
		return &os.PathError{Op: "truncate", Path: s.path, Err: ft.err}
	}
	if err := s.storage.Truncate(size); err != nil {
		return err
	}
	s.off = size
	s.fs.mu.Lock()
	if st := s.fs.files[s.path]; st != nil {
		st.durable = min(st.durable, size)
	}
	s.fs.mu.Unlock()
	return nil
}

func (s *faultStorage) SeekTo(off int64) error {
	if err := s.storage.SeekTo(off); err != nil {
		return err
	}
	s.off = off
	return nil
}

func (s *faultStorage) Remove() error {
	s.fs.mu.Lock()
	delete(s.fs.files, s.path)
	s.fs.mu.Unlock()
	return s.storage.Remove()
}

// snapshot copies the buffer directory as a crash would leave it. With
// powerLoss, a segment keeps only what was fdatasync'd plus a random part
// of the rest (a torn write), and a file whose directory entry was never
// synced is gone; without it the copy is what kill -9 leaves (the page
// cache survives).
func (f *faultFS) snapshot(t *testing.T, dir string, powerLoss bool, rng *rand.Rand) string {
	t.Helper()
	snap := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue // corrupt/: copies, not needed to recover
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			if os.IsNotExist(err) {
				continue // removed meanwhile
			}
			t.Fatal(err)
		}
		if powerLoss && strings.HasPrefix(e.Name(), "seg-") {
			st := f.state(path)
			if !st.dirSynced {
				continue
			}
			if keep := st.durable; keep < int64(len(data)) {
				keep += rng.Int63n(int64(len(data)) - keep + 1)
				data = data[:keep]
			}
		}
		if err := os.WriteFile(filepath.Join(snap, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

var (
	errNoSpace = syscall.ENOSPC
	errIO      = syscall.EIO
)
