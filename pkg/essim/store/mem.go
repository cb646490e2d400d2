package store

// memDoc is an in-memory store's copy of a document's id and source.
type memDoc struct {
	id  string
	src []byte
}

// memChunk is how many slots memSlots allocates at a time.
const memChunk = 4096

// memSlots holds an in-memory store's memDocs in fixed chunks, like an
// index's docs and for the same reasons: one slice grown by append copied
// every slot at each growth (at a million documents a 40 MB copy, with
// its write barriers, every quarter more documents: a tenth of the bulk
// path's CPU) and held the old and the new array at once.
type memSlots struct {
	chunks [][]memDoc
	n      int
}

func (m *memSlots) len() int { return m.n }

func (m *memSlots) at(i int64) *memDoc { return &m.chunks[i/memChunk][i%memChunk] }

// add appends an empty slot and returns its number. The first chunk
// grows by append (a small store stays small); later ones are allocated
// whole.
func (m *memSlots) add() int64 {
	switch {
	case m.n == 0:
		m.chunks = append(m.chunks, nil)
	case m.n%memChunk == 0:
		m.chunks = append(m.chunks, make([]memDoc, 0, memChunk))
	}
	last := len(m.chunks) - 1
	m.chunks[last] = append(m.chunks[last], memDoc{})
	m.n++
	return int64(m.n - 1)
}
