package buffer

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// storage is one segment's bytes: a file, or memory in memory-only mode.
type storage interface {
	io.ReaderAt
	Write(p []byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
	Remove() error
}

type fileStorage struct {
	f    *os.File
	path string
}

func (s *fileStorage) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }
func (s *fileStorage) Write(p []byte) (int, error)             { return s.f.Write(p) }

// Sync uses fdatasync: the file's size is data for this purpose, and the
// inode times are not worth a second disk write per commit.
func (s *fileStorage) Sync() error {
	for {
		err := unix.Fdatasync(int(s.f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return fmt.Errorf("fdatasync %s: %w", s.path, err)
			}
			return nil
		}
	}
}

func (s *fileStorage) Truncate(size int64) error {
	if err := s.f.Truncate(size); err != nil {
		return err
	}
	_, err := s.f.Seek(size, io.SeekStart)
	return err
}

func (s *fileStorage) Close() error { return s.f.Close() }

func (s *fileStorage) Remove() error {
	s.f.Close()
	return os.Remove(s.path)
}

// memStorage keeps a segment in memory: what memory-only mode loses on a
// crash.
type memStorage struct {
	mu   sync.RWMutex
	data []byte
}

func (m *memStorage) ReadAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memStorage) Write(p []byte) (int, error) {
	m.mu.Lock()
	m.data = append(m.data, p...)
	m.mu.Unlock()
	return len(p), nil
}

func (m *memStorage) Sync() error { return nil }

func (m *memStorage) Truncate(size int64) error {
	m.mu.Lock()
	if size < int64(len(m.data)) {
		m.data = m.data[:size]
	}
	m.mu.Unlock()
	return nil
}

func (m *memStorage) Close() error  { return nil }
func (m *memStorage) Remove() error { m.mu.Lock(); m.data = nil; m.mu.Unlock(); return nil }
