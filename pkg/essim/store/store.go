// Package store is essim's storage engine: the indices, their documents
// and the _id lookup, the term index that answers term-level queries, and
// the data log that keeps them across restarts. essim's HTTP API reads and
// writes through it and knows nothing of how documents are kept.
//
// # Layout
//
// An index keeps its documents by value in insertion order (positions), in
// chunks of ChunkDocs entries, and finds them by a hash of the _id
// (idTable). Neither holds a pointer or a string: with a data dir, ids and
// sources live only in the log and a document records where; without one
// they live in the store's slots. At a million documents the garbage
// collector has nothing to scan here.
//
// # Locking
//
// One read-write lock guards everything: Lock for writes, RLock for reads,
// held by the caller around any number of calls to the methods named
// ...Locked (a bulk request applies all its items under one Lock and one
// FlushLocked). Pointers to a Doc are valid until the next write to its
// index. The term index has its own lock inside, since concurrent searches
// under RLock extend it.
//
// # The data log
//
// After a magic line, records are "I\tindex\tversion\tidlen\tsrclen\n<id><source>\n"
// (a document version), "D\tindex\tidlen\n<id>\n" (a delete),
// "C\tindex\n" (an index created) and "X\tindex\n" (an index deleted):
// lengths, not delimiters, bound ids and sources, so neither may contain
// anything it likes. Open replays it; a torn last record (a crash
// mid-write) is cut off. Records wait in memory up to 1 MiB, and every
// write request ends with FlushLocked.
package store

import (
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Store holds every index of a simulated cluster; all its nodes share it.
type Store struct {
	mu      sync.RWMutex
	indices map[string]*Index
	seq     int64
	idSeq   uint64
	idSalt  uint64
	seed    maphash.Seed
	mask    uint32
	uuid    func(name string, seq int64) string
	disk    bool // ids and sources live only in the log (a data dir is set)
	log     *os.File
	// pend holds log records not yet written to the file; they occupy
	// [end-len(pend), end) of the log. Readers under the read lock see it
	// unchanging because only write-lock holders append or flush.
	pend []byte
	end  int64 // log size including pend
	// mem holds ids and sources when there is no log; Doc.off indexes it,
	// and free lists slots of deleted documents for reuse.
	mem  memSlots
	free []int64
	// warmed folds the slots WarmLocked loaded, only so that the loads
	// happen.
	warmed uint64
}

// Options configures Open.
type Options struct {
	// Dir keeps the data log (LogName) there; "" keeps everything in
	// memory.
	Dir string
	// HashMask keeps only these bits of the _id hash (0: all of them), so
	// tests can make ids collide.
	HashMask uint32
	// IndexUUID makes the uuid of a new index from its name and the
	// store's sequence number at creation (nil: the name).
	IndexUUID func(name string, seq int64) string
}

// LogName is the data log's file name in Options.Dir.
const LogName = "essim.log"

// Open makes a store, loading Dir's data log when Dir is set.
func Open(o Options) (*Store, error) {
	if o.HashMask == 0 {
		o.HashMask = ^uint32(0)
	}
	if o.IndexUUID == nil {
		o.IndexUUID = func(name string, _ int64) string { return name }
	}
	s := &Store{indices: map[string]*Index{}, idSalt: uint64(time.Now().UnixNano()), seed: maphash.MakeSeed(),
		mask: o.HashMask, uuid: o.IndexUUID}
	if o.Dir == "" {
		return s, nil
	}
	s.disk = true
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("essim: data dir: %w", err)
	}
	if err := s.openLog(filepath.Join(o.Dir, LogName)); err != nil {
		return nil, err
	}
	return s, nil
}

// Close writes what is pending and closes the log.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return nil
	}
	err := s.FlushLocked()
	if e := s.log.Close(); e != nil && err == nil {
		err = e
	}
	s.log, s.pend = nil, nil
	return err
}

// Lock, Unlock, RLock and RUnlock take the store's one lock (see the
// package documentation).
func (s *Store) Lock()    { s.mu.Lock() }
func (s *Store) Unlock()  { s.mu.Unlock() }
func (s *Store) RLock()   { s.mu.RLock() }
func (s *Store) RUnlock() { s.mu.RUnlock() }

// LookupLocked is the index named name, or nil.
func (s *Store) LookupLocked(name string) *Index { return s.indices[name] }

// NumIndicesLocked is the number of indices.
func (s *Store) NumIndicesLocked() int { return len(s.indices) }

// LiveLocked is the number of live documents in every index.
func (s *Store) LiveLocked() int64 {
	var n int64
	for _, ix := range s.indices {
		n += int64(ix.Count())
	}
	return n
}

// IndexBytesLocked is what every index's document table and id table
// hold in memory: pointer-free arrays that only grow while documents
// are added, so a process embedding the store can tell them from the
// garbage its collector works on.
func (s *Store) IndexBytesLocked() int64 {
	var n int64
	for _, ix := range s.indices {
		n += ix.memBytes()
	}
	return n
}

// SeqLocked is the store's sequence number: every document write and
// delete moves it on (_seq_no).
func (s *Store) SeqLocked() int64 { return s.seq }

// NextSeqLocked moves the sequence number on and returns it, for a write
// that is answered but not stored (a fault that drops it).
func (s *Store) NextSeqLocked() int64 {
	s.seq++
	return s.seq
}

// HashOf is the (masked) hash the id table keys id under; tests use it to
// see that a HashMask makes ids collide.
func (s *Store) HashOf(id string) uint32 { return uint32(maphash.String(s.seed, id)) & s.mask }

// Usage is what an in-memory store holds in its source slots.
type Usage struct {
	MemSlots  int // slots of ids and sources (0 with a data dir)
	FreeSlots int // of those, freed by deletes and waiting for reuse
}

// UsageLocked reports the slots.
func (s *Store) UsageLocked() Usage { return Usage{MemSlots: s.mem.len(), FreeSlots: len(s.free)} }

func (s *Store) ensureIndexLocked(name string) *Index {
	ix := s.indices[name]
	if ix == nil {
		ix = &Index{name: name, uuid: s.uuid(name, s.seq), created: time.Now()}
		s.indices[name] = ix
	}
	return ix
}

// CreateIndexLocked makes (and logs) the index name, or returns it if it
// exists.
func (s *Store) CreateIndexLocked(name string) *Index {
	if ix := s.indices[name]; ix != nil {
		return ix
	}
	s.logRecord(nil, "C", name)
	return s.ensureIndexLocked(name)
}

// DeleteIndexLocked deletes (and logs) the index name with its documents.
func (s *Store) DeleteIndexLocked(name string) {
	if ix := s.indices[name]; ix != nil {
		for _, c := range ix.docs {
			for i := range c {
				s.freeSlotLocked(&c[i])
			}
		}
	}
	delete(s.indices, name)
	s.logRecord(nil, "X", name)
}

// NewIDLocked makes a 20-character URL-safe id like Elasticsearch's
// generated ones: unique per store and process.
func (s *Store) NewIDLocked() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	s.idSeq++
	var b [20]byte
	x := s.idSeq
	for i := 19; i >= 9; i-- {
		b[i] = alphabet[x%64]
		x /= 64
	}
	y := s.idSalt
	for i := 8; i >= 0; i-- {
		b[i] = alphabet[y%64]
		y /= 64
	}
	return string(b[:])
}

// ErrIndexNotFound names a missing concrete index.
type ErrIndexNotFound struct{ Name string }

func (e *ErrIndexNotFound) Error() string { return "no such index [" + e.Name + "]" }

// ResolveLocked expands a comma-separated list of names and patterns
// (*, _all, empty) into existing indices, sorted by name. Missing concrete
// names are skipped; ResolveStrictLocked reports them.
func (s *Store) ResolveLocked(pattern string) []*Index {
	ixs, _ := s.ResolveStrictLocked(pattern)
	return ixs
}

// ResolveStrictLocked is ResolveLocked with an *ErrIndexNotFound for the
// first concrete name that does not exist (the indices found come back
// too).
func (s *Store) ResolveStrictLocked(pattern string) ([]*Index, error) {
	seen := map[string]bool{}
	var out []*Index
	add := func(ix *Index) {
		if !seen[ix.name] {
			seen[ix.name] = true
			out = append(out, ix)
		}
	}
	var missing error
	for _, p := range strings.Split(pattern, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "" || p == "_all" || p == "*":
			for _, ix := range s.indices {
				add(ix)
			}
		case strings.ContainsAny(p, "*?["):
			for name, ix := range s.indices {
				if ok, _ := path.Match(p, name); ok {
					add(ix)
				}
			}
		default:
			if ix := s.indices[p]; ix != nil {
				add(ix)
			} else if missing == nil {
				missing = &ErrIndexNotFound{Name: p}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, missing
}

// errDeleted: a deleted document's id or source was asked for.
var errDeleted = errors.New("essim: document deleted")
