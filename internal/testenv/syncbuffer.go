package testenv

import (
	"bytes"
	"sync"
)

// SyncBuffer collects output written from several goroutines (a logger
// shared by connection goroutines, a subprocess's stdout and stderr) and
// can be read while they still write.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
