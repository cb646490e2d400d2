package buffer

import (
	"fmt"
	"io"
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
// file's bytes as of its last successful fdatasync (its image), and
// whether its directory entry was synced since it was created or renamed.
type faultFS struct {
	mu     sync.Mutex
	faults map[string]fault // by operation: create, magic, write, direct, dsync, sync, truncate, syncdir, rename
	files  map[string]*fileState
	// writes holds the [start, end) of every successful write after a
	// file's magic, by path.
	writes map[string][][2]int64
	direct int // direct writes that succeeded
	dsyncs int // of them, those durable when they returned (RWF_DSYNC)
	syncs  int // fdatasyncs of segment files that succeeded
}

type fault struct {
	err   error // nil with short: a short write that reports no error
	short bool  // write half of the bytes first
}

type fileState struct {
	image     []byte // the file as of its last fdatasync
	dirSynced bool
	// prevPath is the name a rename not yet synced replaced: a power loss
	// leaves the file there.
	prevPath string
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

// durablePrefix is how many leading bytes of the file at path a power
// loss keeps for certain: up to the first byte written since its last
// fdatasync.
func (f *faultFS) durablePrefix(path string) int64 {
	cur, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	img := f.state(path).image
	n := min(len(cur), len(img))
	for i := 0; i < n; i++ {
		if cur[i] != img[i] {
			return int64(i)
		}
	}
	return int64(n)
}

// damage records a byte changed on the disk behind the buffer's back.
func (f *faultFS) damage(path string, off int64, b byte) {
	f.mu.Lock()
	if st := f.files[path]; st != nil && off < int64(len(st.image)) {
		st.image = append([]byte(nil), st.image...)
		st.image[off] = b
	}
	f.mu.Unlock()
}

// capture records the file's bytes as durable.
func (f *faultFS) capture(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	f.mu.Lock()
	if st := f.files[path]; st != nil {
		st.image = data
	}
	f.mu.Unlock()
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
	f.mu.Lock()
	f.files[path] = &fileState{dirSynced: true}
	f.mu.Unlock()
	f.capture(path) // what is there was there before: durable
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
			s.dirSynced, s.prevPath = true, ""
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

// writeDirect is the real file's direct write, so that the tests run
// O_DIRECT where the filesystem has it; with dsync the bytes it wrote are
// durable (the file's image) once it succeeds. A "direct" fault refuses
// it, as a filesystem without O_DIRECT does; a "write" fault fails it as
// any write (short: half of the blocks written, then the error or,
// without one, a short write); a "dsync" fault fails the flush of a dsync
// write: the bytes reach the file but not the image, and the write
// reports the error. Under a "sync" fault a dsync write is a plain one
// (a kernel without RWF_DSYNC), so that the fault hits the fdatasync the
// caller then runs.
func (s *faultStorage) writeDirect(p []byte, off int64, dsync bool) (bool, error) {
	if ft, ok := s.fs.check("direct"); ok {
		return false, fmt.Errorf("%w: %w", errNoDirect, ft.err)
	}
	da, ok := s.storage.(directAppender)
	if !ok {
		return false, errNoDirect
	}
	if ft, ok := s.fs.check("write"); ok {
		if half := len(p) / 2 / directBlock * directBlock; ft.short && half > 0 {
			if _, err := da.writeDirect(p[:half], off, false); err != nil {
				return false, err
			}
		}
		if ft.err == nil {
			return false, io.ErrShortWrite
		}
		return false, &os.PathError{Op: "write", Path: s.path, Err: ft.err}
	}
	if _, ok := s.fs.check("sync"); ok {
		dsync = false
	}
	flush, failFlush := s.fs.check("dsync")
	failFlush = failFlush && dsync
	synced, err := da.writeDirect(p, off, dsync && !failFlush)
	if err != nil {
		return false, err
	}
	if failFlush {
		return false, &os.PathError{Op: "pwritev2", Path: s.path, Err: flush.err}
	}
	s.fs.mu.Lock()
	s.fs.writes[s.path] = append(s.fs.writes[s.path], [2]int64{off, off + int64(len(p))})
	s.fs.direct++
	if synced {
		s.fs.dsyncs++
		if st := s.fs.files[s.path]; st != nil {
			// A copy: images are shared, as damage assumes.
			img := append([]byte(nil), st.image...)
			if end := int(off) + len(p); end > len(img) {
				img = append(img, make([]byte, end-len(img))...)
			}
			copy(img[off:], p)
			st.image = img
		}
	}
	s.fs.mu.Unlock()
	return synced, nil
}

func (s *faultStorage) closeDirect() {
	if da, ok := s.storage.(directAppender); ok {
		da.closeDirect()
	}
}

func (s *faultStorage) Sync() error {
	if ft, ok := s.fs.check("sync"); ok {
		return &os.PathError{Op: "fdatasync", Path: s.path, Err: ft.err}
	}
	if err := s.storage.Sync(); err != nil {
		return err
	}
	s.fs.capture(s.path)
	s.fs.mu.Lock()
	s.fs.syncs++
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
	return nil
}

func (s *faultStorage) Rename(path string) error {
	if ft, ok := s.fs.check("rename"); ok {
		return &os.PathError{Op: "rename", Path: s.path, Err: ft.err}
	}
	if err := s.storage.Rename(path); err != nil {
		return err
	}
	s.fs.mu.Lock()
	if st := s.fs.files[s.path]; st != nil {
		delete(s.fs.files, s.path)
		if st.dirSynced {
			st.prevPath = s.path
		}
		st.dirSynced = false
		s.fs.files[path] = st
	}
	s.fs.writes[path] = nil
	s.fs.mu.Unlock()
	s.path = path
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
// powerLoss, a segment keeps what was fdatasync'd and of what was written
// since, a random prefix (a torn write: past the cut the file holds what
// it held at the last fdatasync, zeros or a reused file's leftover), and
// a file whose directory entry was never synced is gone, or under its
// name before a rename not yet synced; without it the copy is what kill
// -9 leaves (the page cache survives).
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
		name := e.Name()
		if powerLoss && strings.HasPrefix(name, "seg-") {
			st := f.state(path)
			if !st.dirSynced {
				if st.prevPath == "" {
					continue
				}
				name = filepath.Base(st.prevPath)
			}
			data = tornImage(data, st.image, rng)
		}
		if err := os.WriteFile(filepath.Join(snap, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

// tornImage is what a power loss leaves of a file that holds cur and held
// img at its last fdatasync: the bytes written since then persisted up to
// a random sector boundary, the old ones after it (a 512-byte sector is
// written whole or not at all, as disks promise).
func tornImage(cur, img []byte, rng *rand.Rand) []byte {
	n := max(len(cur), len(img))
	at := func(b []byte, i int) int {
		if i < len(b) {
			return int(b[i])
		}
		return -1
	}
	first, last := n, 0
	for i := 0; i < n; i++ {
		if at(cur, i) != at(img, i) {
			first = min(first, i)
			last = i + 1
		}
	}
	if first == n {
		return cur
	}
	k := first + rng.Intn(last-first+1)
	if k < last {
		k -= k % 512
	}
	out := append([]byte(nil), cur[:min(k, len(cur))]...)
	if k < len(img) && k <= len(cur) {
		out = append(out, img[k:]...)
	}
	return out
}

var (
	errNoSpace = syscall.ENOSPC
	errIO      = syscall.EIO
)
