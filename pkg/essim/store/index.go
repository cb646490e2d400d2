package store

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Index keeps its documents by value in insertion order, and finds them
// by a hash of the _id (idTable). Neither holds a pointer or a string: at
// a million documents the garbage collector has nothing to scan here, and
// a document costs 32 bytes plus ~11 in the table instead of the ~130
// that an id string, a map[string] key and a pointer-bearing entry took.
type Index struct {
	name    string
	uuid    string
	created time.Time
	ids     idTable
	// docs in insertion order, in chunks of ChunkDocs entries so that
	// growing never copies them (one slice growing by 1.25x held the old
	// and the new array at once: tens of MB at a million documents);
	// deleted entries stay until compaction.
	docs  [][]Doc
	ndocs int // entries in docs, deleted ones included
	dead  int
	// epoch changes whenever a position's document changes in place or
	// positions are renumbered; the term index rebuilds then (appends
	// and deletes leave it valid).
	epoch uint64
	// pins counts open scroll contexts holding positions of this index:
	// compaction waits for them, as Lucene keeps segments a search
	// context still reads.
	pins  atomic.Int32
	terms termIndex
}

// ChunkDocs is how many document entries an index allocates at a time.
const ChunkDocs = 4096

// memBytes is what ix's document entries and id table occupy.
func (ix *Index) memBytes() int64 {
	var entries int
	for _, c := range ix.docs {
		entries += cap(c)
	}
	return int64(entries)*int64(unsafe.Sizeof(Doc{})) + int64(ix.ids.slotCount())*int64(unsafe.Sizeof(uint64(0)))
}

// Name is the index's name.
func (ix *Index) Name() string { return ix.name }

// UUID is the index's uuid.
func (ix *Index) UUID() string { return ix.uuid }

// Created is when the index was made (in this process: a replayed index
// is created again).
func (ix *Index) Created() time.Time { return ix.created }

// Count is the number of live documents.
func (ix *Index) Count() int { return ix.ids.n }

// Len is the number of positions, deleted documents included: positions
// run from 0 to Len()-1, in insertion order. Callers hold the store's
// lock.
func (ix *Index) Len() int { return ix.ndocs }

// Dead is the number of deleted entries waiting for compaction.
func (ix *Index) Dead() int { return ix.dead }

// At is the document at position p (it may be deleted); valid until the
// next write to the index.
func (ix *Index) At(p int32) *Doc { return &ix.docs[p/ChunkDocs][p%ChunkDocs] }

// SourceBytes sums the sizes of the live documents' sources.
func (ix *Index) SourceBytes() int64 {
	var n int64
	for _, c := range ix.docs {
		for i := range c {
			n += int64(c[i].Len())
		}
	}
	return n
}

// Pin keeps the index's positions as they are (no compaction) until the
// matching Unpin: a scroll context holds positions across requests.
func (ix *Index) Pin() { ix.pins.Add(1) }

// Unpin releases a Pin.
func (ix *Index) Unpin() { ix.pins.Add(-1) }

// Pins is the number of Pins not released yet.
func (ix *Index) Pins() int { return int(ix.pins.Load()) }

// appendDoc adds d at position n of docs and returns docs. The first chunk
// grows by append (small indices stay small); later ones are allocated
// whole.
func appendDoc(docs [][]Doc, n int, d Doc) [][]Doc {
	if n%ChunkDocs == 0 && n > 0 {
		docs = append(docs, make([]Doc, 0, ChunkDocs))
	}
	if len(docs) == 0 {
		docs = append(docs, nil)
	}
	docs[len(docs)-1] = append(docs[len(docs)-1], d)
	return docs
}

// compact drops deleted entries and renumbers the maps.
func (ix *Index) compact() {
	remap := make([]int32, ix.ndocs)
	var live [][]Doc
	n := 0
	for ci, c := range ix.docs {
		for i := range c {
			if c[i].Deleted() {
				continue
			}
			remap[ci*ChunkDocs+i] = int32(n)
			live = appendDoc(live, n, c[i])
			n++
		}
	}
	ix.ids.renumber(remap)
	ix.docs, ix.ndocs, ix.dead = live, n, 0
	ix.epoch++
}

// Doc holds neither id nor source: with a data dir both live only in the
// log, the id at off (idn bytes) followed by the source (n bytes); without
// one, off is a slot of the store's memory. 24 bytes, so a few fields
// share a word: at 4M documents the table is 96 MB where 32-byte entries
// took 128.
type Doc struct {
	loc int64  // off<<idnBits | idn, or -1 when deleted
	seq int64  // _seq_no
	nv  uint64 // version<<nBits | n
}

// idn fits ids of up to 512 bytes (Elasticsearch's bound, checked on
// every write and on replay); n sources of up to MaxSourceLen. That
// leaves 33 bits of version, which grows by one a write of the same id.
const (
	idnBits = 10
	nBits   = 31
)

// set describes a live document.
func (d *Doc) set(off int64, idn, n int, version int64) {
	d.loc = off<<idnBits | int64(idn)
	d.nv = uint64(version)<<nBits | uint64(n)
}

// setDeleted marks the entry deleted, keeping its version and seq.
func (d *Doc) setDeleted() {
	d.loc = -1
	d.nv &^= 1<<nBits - 1
}

func (d *Doc) off() int64 { return d.loc >> idnBits }
func (d *Doc) idn() int   { return int(d.loc & (1<<idnBits - 1)) }

// Deleted reports a deleted entry.
func (d *Doc) Deleted() bool { return d.loc < 0 }

// Version is the document's _version.
func (d *Doc) Version() int64 { return int64(d.nv >> nBits) }

// Seq is the document's _seq_no.
func (d *Doc) Seq() int64 { return d.seq }

// Len is the length of the document's source.
func (d *Doc) Len() int { return int(d.nv & (1<<nBits - 1)) }

// Offset is where the document's id and source start in the data log
// (with a data dir; always past the log's magic line), or its memory slot
// (without one); negative when deleted.
func (d *Doc) Offset() int64 {
	if d.loc < 0 {
		return -1
	}
	return d.off()
}
