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
	gz     sync.Pool
	blocks [blockClasses]sync.Pool
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
