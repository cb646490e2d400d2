package store

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
)

// TestEntriesHoldNoPointers: a document entry carries neither id nor
// source, nor anything else the garbage collector must scan, and fits 32
// bytes; the id table holds hashes and positions only. essim's
// TestDiskStoreKeepsNoSources checks the same store through the HTTP API.
func TestEntriesHoldNoPointers(t *testing.T) {
	dt := reflect.TypeOf(Doc{})
	for i := 0; i < dt.NumField(); i++ {
		f := dt.Field(i)
		switch f.Type.Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Array, reflect.String:
			t.Fatalf("doc.%s is a %s: documents must hold neither id nor source in memory", f.Name, f.Type)
		}
	}
	if sz := dt.Size(); sz > 24 {
		t.Fatalf("doc is %d bytes, want <= 24", sz)
	}
	if et := reflect.TypeOf(Index{}.ids.shards[0].slots).Elem(); et.Kind() != reflect.Uint64 {
		t.Fatalf("index.ids holds %s, want hashes and positions only", et)
	}
}

// TestEngineWithoutTheAPI drives the engine directly, on disk: writes,
// an in-place overwrite, deletes, the term index, pattern resolution, and
// a reopen that replays the log to the same state.
func TestEngineWithoutTheAPI(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, IndexUUID: func(name string, seq int64) string { return name + "-uuid" }})
	if err != nil {
		t.Fatal(err)
	}
	s.Lock()
	ix := s.CreateIndexLocked("logs-a")
	for i, src := range []string{`{"h":"x"}`, `{"h":"y"}`, `{"h":"x"}`} {
		s.PutLocked(ix, string(rune('a'+i)), nil, []byte(src), 1)
	}
	old, err := s.GetLocked(ix, "b")
	if err != nil || old == nil {
		t.Fatalf("get b: %+v %v", old, err)
	}
	d := s.PutLocked(ix, "b", old, []byte(`{"h":"x"}`), 2) // in place: position 1 keeps its place
	if d.Version() != 2 || ix.Len() != 3 {
		t.Fatalf("overwrite: %+v, %d positions", d, ix.Len())
	}
	if ok, err := s.DeleteLocked(ix, "a"); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, _ := s.DeleteLocked(ix, "a"); ok {
		t.Fatal("deleted twice")
	}
	s.CreateIndexLocked("other")
	if err := s.FlushLocked(); err != nil {
		t.Fatal(err)
	}
	s.Unlock()

	check := func(s *Store) {
		t.Helper()
		s.RLock()
		defer s.RUnlock()
		ix := s.LookupLocked("logs-a")
		if ix == nil || ix.Count() != 2 || s.LiveLocked() != 2 || s.NumIndicesLocked() != 2 {
			t.Fatalf("state: %+v live %d indices %d", ix, s.LiveLocked(), s.NumIndicesLocked())
		}
		d, err := s.GetLocked(ix, "b")
		if d == nil || err != nil {
			t.Fatalf("get b: %v", err)
		}
		if src, err := s.SourceLocked(d); string(src) != `{"h":"x"}` || d.Version() != 2 || err != nil {
			t.Fatalf("b: %q v%d %v", src, d.Version(), err)
		}
		if p, ok, err := s.PositionLocked(ix, "c"); !ok || p != 2 || err != nil {
			t.Fatalf("position of c: %d %v %v", p, ok, err)
		}
		// The term index, with a caller's notion of a document's keys.
		keysOf := func(src []byte) []string { return []string{string(src)} }
		if ps, err := s.PostingsLocked(ix, "whole", []string{`{"h":"x"}`}, keysOf); err != nil || len(ps) != 2 || ps[0] != 1 || ps[1] != 2 {
			t.Fatalf("postings %v %v", ps, err)
		}
		if ixs := s.ResolveLocked("logs-*,other"); len(ixs) != 2 || ixs[0].Name() != "logs-a" {
			t.Fatalf("resolve: %v", ixs)
		}
		_, err = s.ResolveStrictLocked("logs-*,nope")
		var nf *ErrIndexNotFound
		if !errors.As(err, &nf) || nf.Name != "nope" {
			t.Fatalf("strict: %v", err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
}

// TestMemorySlotsAcrossChunks: an in-memory store keeps ids and sources in
// chunks of memChunk slots; documents on both sides of chunk boundaries,
// deleted ones and the slots reused after them all read back right.
func TestMemorySlotsAcrossChunks(t *testing.T) {
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Lock()
	defer s.Unlock()
	ix := s.CreateIndexLocked("a")
	n := 3*memChunk + 5
	src := func(i int) string { return `{"i":` + strconv.Itoa(i) + `}` }
	for i := 0; i < n; i++ {
		s.PutLocked(ix, strconv.Itoa(i), nil, []byte(src(i)), 1)
	}
	for i := memChunk - 2; i < memChunk+2; i++ {
		if ok, err := s.DeleteLocked(ix, strconv.Itoa(i)); !ok || err != nil {
			t.Fatalf("delete %d: %v %v", i, ok, err)
		}
	}
	for i := n; i < n+4; i++ { // these take the four freed slots
		s.PutLocked(ix, strconv.Itoa(i), nil, []byte(src(i)), 1)
	}
	if u := s.UsageLocked(); u.MemSlots != n || u.FreeSlots != 0 {
		t.Fatalf("usage %+v, want %d slots, none free", u, n)
	}
	for i := 0; i < n+4; i++ {
		d, err := s.GetLocked(ix, strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if deleted := i >= memChunk-2 && i < memChunk+2; deleted != (d == nil) {
			t.Fatalf("id %d: found %v, deleted %v", i, d != nil, deleted)
		}
		if d == nil {
			continue
		}
		id, got, err := s.DocLocked(d)
		if id != strconv.Itoa(i) || string(got) != src(i) || err != nil {
			t.Fatalf("id %d: %q %q %v", i, id, got, err)
		}
	}
}

// TestWarmChangesNothing: warming the id table for ids present and
// absent, more than a batch of them, on an empty and a full index, leaves
// every lookup as it was.
func TestWarmChangesNothing(t *testing.T) {
	s, err := Open(Options{HashMask: 0xff}) // collisions: probes run long
	if err != nil {
		t.Fatal(err)
	}
	s.Lock()
	defer s.Unlock()
	ix := s.CreateIndexLocked("a")
	ids := make([]string, 3*WarmBatch+1)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	s.WarmLocked(ix, ids) // empty table
	for _, id := range ids[:len(ids)/2] {
		s.PutLocked(ix, id, nil, []byte(`{}`), 1)
	}
	s.WarmLocked(ix, ids)
	s.WarmLocked(ix, nil)
	for i, id := range ids {
		d, err := s.GetLocked(ix, id)
		if err != nil || (d != nil) != (i < len(ids)/2) {
			t.Fatalf("id %s: %+v %v", id, d, err)
		}
	}
}

// TestIndexBytes: the memory reported covers every index's document
// entries (allocated a chunk at a time) and id table, and grows with the
// documents.
func TestIndexBytes(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Lock()
	defer s.Unlock()
	if got := s.IndexBytesLocked(); got != 0 {
		t.Fatalf("empty store: %d bytes", got)
	}
	a, b := s.CreateIndexLocked("a"), s.CreateIndexLocked("b")
	s.PutLocked(b, "x", nil, []byte(`{}`), 1)
	small := s.IndexBytesLocked()
	const docs = 2*ChunkDocs + 1
	for i := range docs {
		s.PutLocked(a, strconv.Itoa(i), nil, []byte(`{}`), 1)
	}
	const entry, slot = 24, 8
	slots := int64(a.ids.slotCount() + b.ids.slotCount())
	least := (docs+1)*entry + slots*slot
	// Each index's last chunk may be partly used, and the first grows by
	// append.
	most := least + 3*ChunkDocs*entry
	if got := s.IndexBytesLocked(); got < least || got > most || got <= small {
		t.Fatalf("IndexBytesLocked = %d, want %d to %d (%d documents, %d slots) and more than the %d of one document", got, least, most, docs+1, slots, small)
	}
	if a.ids.slotCount() < docs {
		t.Fatalf("id table of %d slots for %d documents", a.ids.slotCount(), docs)
	}
}

// TestDocPacking: the fields that share a word keep their bounds: the
// longest id Elasticsearch takes (512 bytes), the longest source, a log
// offset far past any disk, and versions up to 2^33-1; deleting keeps
// the version and the seq_no.
func TestDocPacking(t *testing.T) {
	for _, c := range []struct {
		off          int64
		idn, n       int
		version, seq int64
	}{
		{0, 0, 0, 1, 0},
		{1<<53 - 1, 512, MaxSourceLen, 1<<33 - 1, 1<<62 + 5},
		{12345, 1, 1, 7, 9},
		{1 << 40, 511, 1 << 30, 1 << 32, 1},
	} {
		var d Doc
		d.set(c.off, c.idn, c.n, c.version)
		d.seq = c.seq
		if d.Deleted() || d.Offset() != c.off || d.idn() != c.idn || d.Len() != c.n || d.Version() != c.version || d.Seq() != c.seq {
			t.Fatalf("%+v: offset %d idn %d len %d version %d seq %d deleted %v", c, d.Offset(), d.idn(), d.Len(), d.Version(), d.Seq(), d.Deleted())
		}
		d.setDeleted()
		if !d.Deleted() || d.Offset() >= 0 || d.Len() != 0 || d.Version() != c.version || d.Seq() != c.seq {
			t.Fatalf("%+v deleted: offset %d len %d version %d seq %d", c, d.Offset(), d.Len(), d.Version(), d.Seq())
		}
	}
}
