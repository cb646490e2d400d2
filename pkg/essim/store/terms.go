package store

import (
	"slices"
	"sync"
)

// termIndex is an index's inverted index: for each field a term-level
// query asked about, the positions of the documents holding each value.
// Elasticsearch answers term, terms and ids queries from its term
// dictionary instead of reading documents; comparing every query value
// with every document made a terms query of 2,000 values over 20,000
// documents take half a minute here.
//
// It is built the first time a field is queried and then kept up to date
// lazily: documents are only ever appended at new positions, so each
// query first indexes the positions added since the last one. An
// in-place overwrite or a compaction changes the index's epoch, and the
// field is rebuilt from scratch on its next query. Deleted documents stay
// in the postings and are skipped when read, as Lucene skips deleted docs.
type termIndex struct {
	mu     sync.Mutex
	fields map[string]*fieldTerms
}

// fieldTerms holds one field's postings: key (the form in which the
// query layer compares values) -> ascending positions.
type fieldTerms struct {
	upto  int    // positions below upto are indexed
	epoch uint64 // the index's epoch they were indexed at
	post  map[string][]int32
}

// maxTermFields bounds the fields indexed per index: past it the cache
// starts over, so a client querying ever new fields cannot grow it
// without bound.
const maxTermFields = 16

// PostingsLocked returns the ascending positions of ix's documents whose
// field holds one of keys. keysOf gives the keys of a document's source
// for field; the query layer owns what a key is (how "42" and 42 compare),
// so it must give the same keys for the same field on every call, since
// they are cached per field. Callers hold the lock for reading at least;
// the term index has its own lock because concurrent searches extend it.
func (s *Store) PostingsLocked(ix *Index, field string, keys []string, keysOf func(src []byte) []string) ([]int32, error) {
	t := &ix.terms
	t.mu.Lock()
	defer t.mu.Unlock()
	ft := t.fields[field]
	if ft == nil || ft.epoch != ix.epoch {
		if t.fields == nil || (ft == nil && len(t.fields) >= maxTermFields) {
			t.fields = map[string]*fieldTerms{}
		}
		ft = &fieldTerms{epoch: ix.epoch, post: map[string][]int32{}}
		t.fields[field] = ft
	}
	for ; ft.upto < ix.ndocs; ft.upto++ {
		p := int32(ft.upto)
		d := ix.At(p)
		if d.Deleted() {
			continue // positions are never reused: it stays deleted
		}
		src, err := s.SourceLocked(d)
		if err != nil {
			return nil, err // upto stays: the next query tries again
		}
		for _, k := range keysOf(src) {
			if l := ft.post[k]; len(l) == 0 || l[len(l)-1] != p {
				ft.post[k] = append(l, p)
			}
		}
	}
	var out []int32
	for _, k := range keys {
		out = append(out, ft.post[k]...)
	}
	if len(keys) > 1 {
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out, nil
}
