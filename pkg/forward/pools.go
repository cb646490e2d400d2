package forward

import (
	"compress/gzip"
	"sync"
)

// blockClasses are the sizes inflate blocks come in: firstBlock doubling
// up to maxBlock.
const blockClasses = 6 // 32 KiB .. 1 MiB

// pools recycle what a server's connections allocate per request: gzip
// readers (a 32 KiB window and tables each) and the blocks compressed
// streams inflate into. A refused bomb's blocks then serve the next
// request instead of becoming garbage the collector has to find before
// the memory can be used again, which is what lets the process stay near
// its in-flight budget. Pooled memory is not in use, so not taken from the
// budget; the collector may free it at any cycle.
type pools struct {
	gz      sync.Pool
	blocks  [blockClasses]sync.Pool
	bufs    [bufClasses]sync.Pool
	entries [entryClasses]sync.Pool
}

// Read buffers come in four sizes per doubling from 32 KiB to 64 MiB, so
// one is at most a quarter larger than asked; event slices in powers of
// two from 512 to 1M events.
const (
	minBuf       = 32 << 10
	bufClasses   = 4*11 + 1
	minEntries   = 512
	entryClasses = 12
)

// bufClass returns the index and size of the smallest read-buffer class
// holding n bytes, or -1 and n beyond the largest.
func bufClass(n int) (int, int) {
	if n <= minBuf {
		return 0, minBuf
	}
	i := 1
	for p := minBuf; i < bufClasses; p *= 2 {
		for step := 1; step <= 4; step, i = step+1, i+1 {
			if s := p + p*step/4; n <= s {
				return i, s
			}
		}
	}
	return -1, n
}

// buf returns a read buffer of len and cap size: recycled when size is a
// class and p has one.
func (p *pools) buf(size int) []byte {
	if i, s := bufClass(size); p != nil && i >= 0 && s == size {
		if b, ok := p.bufs[i].Get().(*[]byte); ok {
			return *b
		}
	}
	return make([]byte, size)
}

// bufSize is what buf would allocate for n bytes: the class's size when
// there is a pool, n otherwise.
func (p *pools) bufSize(n int) int {
	if p == nil {
		return n
	}
	_, s := bufClass(n)
	return s
}

func (p *pools) putBuf(b []byte) {
	if i, s := bufClass(cap(b)); p != nil && i >= 0 && s == cap(b) {
		b = b[:cap(b)]
		p.bufs[i].Put(&b)
	}
}

func entryClass(n int) int {
	for i, c := 0, minEntries; i < entryClasses; i, c = i+1, c*2 {
		if n == c {
			return i
		}
	}
	return -1
}

// events returns an empty event slice of capacity n.
func (p *pools) events(n int) []Entry {
	if i := entryClass(n); p != nil && i >= 0 {
		if e, ok := p.entries[i].Get().(*[]Entry); ok {
			return (*e)[:0]
		}
	}
	return make([]Entry, 0, n)
}

// putEvents takes back an event slice, cleared so that it keeps nothing
// alive.
func (p *pools) putEvents(e []Entry) {
	if i := entryClass(cap(e)); p != nil && i >= 0 {
		e = e[:cap(e)]
		clear(e)
		e = e[:0]
		p.entries[i].Put(&e)
	}
}

// blockClass is the index of the class of exactly size bytes, or -1.
func blockClass(size int) int {
	for i, c := 0, firstBlock; i < blockClasses; i, c = i+1, c*2 {
		if size == c {
			return i
		}
	}
	return -1
}

// roundBlock is the smallest class holding n bytes, or n beyond the
// largest class.
func roundBlock(n int) int {
	for c := firstBlock; c <= maxBlock; c *= 2 {
		if n <= c {
			return c
		}
	}
	return n
}

// block returns an empty slice of capacity size, recycled when size is a
// class and p has one.
func (p *pools) block(size int) []byte {
	if i := blockClass(size); p != nil && i >= 0 {
		if b, ok := p.blocks[i].Get().(*[]byte); ok {
			return (*b)[:0]
		}
	}
	return make([]byte, 0, size)
}

// putBlock takes back a block no record points into any more.
func (p *pools) putBlock(b []byte) {
	if i := blockClass(cap(b)); p != nil && i >= 0 {
		b = b[:0]
		p.blocks[i].Put(&b)
	}
}

func (p *pools) gzipReader() *gzip.Reader {
	if p == nil {
		return nil
	}
	zr, _ := p.gz.Get().(*gzip.Reader)
	return zr
}

func (p *pools) putGzipReader(zr *gzip.Reader) {
	if p != nil {
		p.gz.Put(zr)
	}
}
