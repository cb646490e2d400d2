package store

import (
	"errors"
	"fmt"
	"strconv"
)

// MaxSourceLen bounds one source so its length fits a Doc.
const MaxSourceLen = 1<<31 - 1

// readAtLocked fills b from the log at off, from the file or from the
// records still pending; callers hold the lock (read or write): the
// file's ReadAt is safe for concurrent readers.
func (s *Store) readAtLocked(b []byte, off int64) error {
	if s.log == nil {
		return errors.New("essim: data log closed")
	}
	if off < 0 || off+int64(len(b)) > s.end {
		return fmt.Errorf("essim: data log: read of %d bytes at %d past its end %d", len(b), off, s.end)
	}
	fileEnd := s.end - int64(len(s.pend))
	n := 0
	if off < fileEnd {
		n = int(min(int64(len(b)), fileEnd-off))
		if _, err := s.log.ReadAt(b[:n], off); err != nil {
			return fmt.Errorf("essim: data log: read at %d: %w", off, err)
		}
	}
	if n < len(b) {
		copy(b[n:], s.pend[off+int64(n)-fileEnd:])
	}
	return nil
}

// DocLocked returns d's id and source.
func (s *Store) DocLocked(d *Doc) (id string, src []byte, err error) {
	if d.Deleted() {
		return "", nil, errDeleted
	}
	if !s.disk {
		if d.off() >= int64(s.mem.len()) {
			return "", nil, errors.New("essim: document has no source")
		}
		m := s.mem.at(d.off())
		return m.id, m.src, nil
	}
	b := make([]byte, d.idn()+d.Len())
	if err := s.readAtLocked(b, d.off()); err != nil {
		return "", nil, err
	}
	return string(b[:d.idn()]), b[d.idn():], nil
}

// SourceLocked returns d's source.
func (s *Store) SourceLocked(d *Doc) ([]byte, error) {
	if !s.disk {
		_, src, err := s.DocLocked(d)
		return src, err
	}
	if d.Deleted() {
		return nil, errDeleted
	}
	b := make([]byte, d.Len())
	if err := s.readAtLocked(b, d.off()+int64(d.idn())); err != nil {
		return nil, err
	}
	return b, nil
}

// idIsLocked reports whether d's id is id.
func (s *Store) idIsLocked(d *Doc, id string) (bool, error) {
	if d.Deleted() || d.idn() != len(id) {
		return false, nil
	}
	if !s.disk {
		return s.mem.at(d.off()).id == id, nil
	}
	var small [64]byte
	var b []byte
	if len(id) <= len(small) {
		b = small[:len(id)]
	} else {
		b = make([]byte, len(id))
	}
	if err := s.readAtLocked(b, d.off()); err != nil {
		return false, err
	}
	return string(b) == id, nil
}

// findLocked returns the table slot of id's live document, or -1.
func (s *Store) findLocked(ix *Index, id string) (int, error) {
	return ix.ids.lookup(s.HashOf(id), func(p int32) (bool, error) { return s.idIsLocked(ix.At(p), id) })
}

// WarmBatch is how many ids WarmLocked hashes before it loads their
// slots: enough for the loads to overlap, few enough that the slots are
// still cached when the caller looks the ids up.
const WarmBatch = 64

// WarmLocked brings into the CPU cache the id table slots where lookups
// of ids in ix will start; a caller about to look up many ids (a bulk
// request) calls it for the next few. In a table of millions of ids
// nearly every lookup misses the cache; warmed together, the misses
// overlap instead of coming one after the other. It changes nothing.
func (s *Store) WarmLocked(ix *Index, ids []string) {
	var hs [WarmBatch]uint32
	for len(ids) > 0 {
		k := min(len(ids), len(hs))
		for i, id := range ids[:k] {
			hs[i] = s.HashOf(id)
		}
		s.warmed ^= ix.ids.touch(hs[:k])
		ids = ids[k:]
	}
}

// GetLocked returns the live document with id, or nil; the pointer is
// valid until the next write to the index.
func (s *Store) GetLocked(ix *Index, id string) (*Doc, error) {
	slot, err := s.findLocked(ix, id)
	if slot < 0 {
		return nil, err
	}
	return ix.At(ix.ids.pos(slot)), nil
}

// PositionLocked is the position of id's live document, if there is one.
func (s *Store) PositionLocked(ix *Index, id string) (int32, bool, error) {
	slot, err := s.findLocked(ix, id)
	if slot < 0 {
		return 0, false, err
	}
	return ix.ids.pos(slot), true, nil
}

// putLocked stores a document version whose id and source are at off in
// the log (they are kept in memory only when there is no log) and returns
// it.
func (s *Store) putLocked(ix *Index, id string, off int64, src []byte, version int64) (*Doc, error) {
	d, err := s.GetLocked(ix, id)
	if err != nil {
		return nil, err
	}
	return s.storeLocked(ix, id, d, off, src, version), nil
}

// storeLocked is putLocked once id's live document d (nil: none) is known.
func (s *Store) storeLocked(ix *Index, id string, d *Doc, off int64, src []byte, version int64) *Doc {
	s.seq++
	if d != nil {
		ix.epoch++
	} else {
		p := int32(ix.ndocs)
		ix.docs = appendDoc(ix.docs, ix.ndocs, Doc{loc: -1})
		ix.ndocs++
		ix.ids.insert(s.HashOf(id), p)
		d = ix.At(p)
	}
	if !s.disk {
		if d.Deleted() {
			off = s.memSlotLocked()
		} else {
			off = d.off()
		}
		*s.mem.at(off) = memDoc{id: id, src: src}
	}
	d.set(off, len(id), len(src), version)
	d.seq = s.seq
	return d
}

// memSlotLocked returns a free slot of mem.
func (s *Store) memSlotLocked() int64 {
	if k := len(s.free); k > 0 {
		slot := s.free[k-1]
		s.free = s.free[:k-1]
		return slot
	}
	return s.mem.add()
}

// freeSlotLocked releases d's mem slot (in-memory stores only).
func (s *Store) freeSlotLocked(d *Doc) {
	if !s.disk && !d.Deleted() {
		*s.mem.at(d.off()) = memDoc{}
		s.free = append(s.free, d.off())
	}
}

// PutLocked stores and logs a version of the document id, a new one or
// one replacing the live document old in place, and returns it. old is
// what GetLocked returned for id (nil: no live document), with nothing
// written to the index since: every writer checks for the id anyway
// (create answers 409, update merges), and looking it up a second time
// here was the largest single cost of indexing. Sources longer than
// MaxSourceLen are the caller's to refuse (a cluster's
// max_content_length is smaller).
func (s *Store) PutLocked(ix *Index, id string, old *Doc, src []byte, version int64) *Doc {
	var off int64
	if s.disk && s.log != nil {
		h := append(s.pend, "I\t"...)
		h = append(h, ix.name...)
		h = append(h, '\t')
		h = strconv.AppendInt(h, version, 10)
		h = append(h, '\t')
		h = strconv.AppendInt(h, int64(len(id)), 10)
		h = append(h, '\t')
		h = strconv.AppendInt(h, int64(len(src)), 10)
		h = append(h, '\n')
		off = s.end + int64(len(h)-len(s.pend))
		h = append(h, id...)
		h = append(h, src...)
		h = append(h, '\n')
		s.end += int64(len(h) - len(s.pend))
		s.pend = h
	}
	d := s.storeLocked(ix, id, old, off, src, version)
	s.maybeFlushLocked()
	return d
}

// deleteLocked removes id's live document and reports whether there was
// one.
func (s *Store) deleteLocked(ix *Index, id string) (bool, error) {
	slot, err := s.findLocked(ix, id)
	if slot < 0 {
		return false, err
	}
	d := ix.At(ix.ids.pos(slot))
	s.seq++
	s.freeSlotLocked(d)
	d.setDeleted()
	ix.ids.remove(slot)
	ix.dead++
	if ix.dead > 1024 && ix.dead > ix.ndocs/2 && ix.pins.Load() == 0 {
		ix.compact()
	}
	return true, nil
}

// DeleteLocked deletes (and logs) id's live document and reports whether
// there was one.
func (s *Store) DeleteLocked(ix *Index, id string) (bool, error) {
	ok, err := s.deleteLocked(ix, id)
	if !ok {
		return false, err
	}
	s.logRecord([]string{id}, "D", ix.name, strconv.Itoa(len(id)))
	return true, nil
}
