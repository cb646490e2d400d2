package essim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// store holds every index; all nodes share it.
type store struct {
	mu      sync.RWMutex
	indices map[string]*index
	seq     int64
	idSeq   uint64
	idSalt  uint64
	disk    bool // sources live only in the log (a data dir is set)
	log     *os.File
	w       *bufio.Writer
	end     int64  // log size including what w still buffers
	hdr     []byte // scratch for record headers
	// mem holds the sources when there is no log; doc.off indexes it, and
	// free lists slots of deleted documents for reuse.
	mem  [][]byte
	free []int64
}

// index keeps its documents by value in insertion order, with a map from
// _id to position: two pointers per document instead of five, which keeps
// the garbage collector's work small when essim holds millions of them.
type index struct {
	name    string
	uuid    string
	created time.Time
	ids     map[string]int32
	// docs in insertion order, in chunks of chunkDocs entries so that
	// growing never copies them (one slice growing by 1.25x held the old
	// and the new array at once: tens of MB at a million documents);
	// deleted entries stay until compaction.
	docs  [][]doc
	ndocs int // entries in docs, deleted ones included
	dead  int
}

const chunkDocs = 4096

// get returns the live document with id; the pointer is valid until the
// next write to the index.
func (ix *index) get(id string) *doc {
	if i, ok := ix.ids[id]; ok {
		return &ix.docs[i/chunkDocs][i%chunkDocs]
	}
	return nil
}

// appendDoc adds d at position n of docs and returns docs. The first chunk
// grows by append (small indices stay small); later ones are allocated
// whole.
func appendDoc(docs [][]doc, n int, d doc) [][]doc {
	if n%chunkDocs == 0 && n > 0 {
		docs = append(docs, make([]doc, 0, chunkDocs))
	}
	if len(docs) == 0 {
		docs = append(docs, nil)
	}
	docs[len(docs)-1] = append(docs[len(docs)-1], d)
	return docs
}

// count is the number of live documents.
func (ix *index) count() int { return len(ix.ids) }

// doc holds no source bytes: with a data dir the source (raw JSON as
// received, never re-encoded) lives only in the log at off, n bytes long,
// so memory per document stays ~48 bytes plus the id however large the
// documents are; without one, off is a slot in store.mem.
type doc struct {
	id      string
	off     int64
	version int64
	seq     int64
	n       int32
	deleted bool
}

// maxSourceLen bounds one source so its length fits doc.n.
const maxSourceLen = 1<<31 - 1

// errUnflushed means a source is still in the log writer's buffer: a
// failed flush left it there.
var errUnflushed = errors.New("essim: document source not yet written to the data log")

// sourceLocked returns d's source; callers hold mu (read or write). With a
// log it reads the bytes back with ReadAt, which is safe for concurrent
// readers; every write path flushes before it releases the write lock, so
// readers see flushed records.
func (s *store) sourceLocked(d *doc) ([]byte, error) {
	if !s.disk {
		if d.off < 0 || d.off >= int64(len(s.mem)) {
			return nil, errors.New("essim: document has no source")
		}
		return s.mem[d.off], nil
	}
	if s.log == nil {
		return nil, errors.New("essim: data log closed")
	}
	if d.off+int64(d.n) > s.end-int64(s.w.Buffered()) {
		return nil, errUnflushed
	}
	b := make([]byte, d.n)
	if _, err := s.log.ReadAt(b, d.off); err != nil {
		return nil, fmt.Errorf("essim: data log: read source: %w", err)
	}
	return b, nil
}

// sourceWriteLocked is sourceLocked for holders of the write lock: it
// flushes first when d's record is still buffered (an update reading a
// document written earlier in the same bulk).
func (s *store) sourceWriteLocked(d *doc) ([]byte, error) {
	if s.w != nil && d.off+int64(d.n) > s.end-int64(s.w.Buffered()) {
		if err := s.flushLocked(); err != nil {
			return nil, err
		}
	}
	return s.sourceLocked(d)
}

const logName = "essim.log"

// openStore loads dir's log when dir is set; records are
// "I\tindex\tid\tversion\n<source>\n", "D\tindex\tid\n", "C\tindex\n" and
// "X\tindex\n". A torn last record (crash mid-write) is ignored.
func openStore(dir string) (*store, error) {
	s := &store{indices: map[string]*index{}, idSalt: uint64(time.Now().UnixNano())}
	if dir == "" {
		return s, nil
	}
	s.disk = true
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("essim: data dir: %w", err)
	}
	p := filepath.Join(dir, logName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("essim: data log: %w", err)
	}
	good, err := s.replay(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("essim: replay %s: %w", p, err)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("essim: data log: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("essim: data log: %w", err)
	}
	s.log = f
	s.w = bufio.NewWriterSize(f, 1<<20)
	s.end = good
	return s, nil
}

// replay applies the log and returns the offset after the last whole record.
func (s *store) replay(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var off int64
	readLine := func() ([]byte, bool) {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return nil, false
		}
		return line, true
	}
	for {
		hdr, ok := readLine()
		if !ok {
			return off, nil
		}
		n := int64(len(hdr))
		f := strings.Split(strings.TrimSuffix(string(hdr), "\n"), "\t")
		switch {
		case f[0] == "I" && len(f) == 4:
			src, ok := readLine()
			if !ok {
				return off, nil
			}
			v, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				return off, fmt.Errorf("record at offset %d: version %q", off, f[3])
			}
			if len(src)-1 > maxSourceLen {
				return off, fmt.Errorf("record at offset %d: source of %d bytes", off, len(src)-1)
			}
			ix := s.ensureIndexLocked(f[1])
			s.putLocked(ix, f[2], off+n, bytes.TrimSuffix(src, []byte("\n")), v)
			n += int64(len(src))
		case f[0] == "D" && len(f) == 3:
			if ix := s.indices[f[1]]; ix != nil {
				s.deleteLocked(ix, f[2])
			}
		case f[0] == "C" && len(f) == 2:
			s.ensureIndexLocked(f[1])
		case f[0] == "X" && len(f) == 2:
			delete(s.indices, f[1])
		default:
			return off, fmt.Errorf("record at offset %d: unknown header %q", off, truncate(string(hdr), 64))
		}
		off += n
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// flushLocked writes buffered log records; callers hold mu.
func (s *store) flushLocked() error {
	if s.w == nil {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("essim: data log: %w", err)
	}
	return nil
}

func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return nil
	}
	err := s.flushLocked()
	if e := s.log.Close(); e != nil && err == nil {
		err = e
	}
	s.log, s.w = nil, nil
	return err
}

func (s *store) logf(format string, a ...any) {
	if s.w != nil {
		n, _ := fmt.Fprintf(s.w, format, a...)
		s.end += int64(n)
	}
}

func (s *store) ensureIndexLocked(name string) *index {
	ix := s.indices[name]
	if ix == nil {
		ix = &index{name: name, uuid: nodeID(name, int(s.seq)), created: time.Now(), ids: map[string]int32{}}
		s.indices[name] = ix
	}
	return ix
}

// createIndexLocked makes an index and logs it.
func (s *store) createIndexLocked(name string) *index {
	if ix := s.indices[name]; ix != nil {
		return ix
	}
	s.logf("C\t%s\n", name)
	return s.ensureIndexLocked(name)
}

func (s *store) deleteIndexLocked(name string) {
	if ix := s.indices[name]; ix != nil {
		for _, c := range ix.docs {
			for i := range c {
				s.freeSlotLocked(&c[i])
			}
		}
	}
	delete(s.indices, name)
	s.logf("X\t%s\n", name)
}

// putLocked stores a document version whose source is at off in the log
// (src itself is kept only when there is no log) and returns it.
func (s *store) putLocked(ix *index, id string, off int64, src []byte, version int64) *doc {
	s.seq++
	d := ix.get(id)
	if d == nil {
		ix.docs = appendDoc(ix.docs, ix.ndocs, doc{id: id, off: -1})
		ix.ids[id] = int32(ix.ndocs)
		ix.ndocs++
		last := ix.docs[len(ix.docs)-1]
		d = &last[len(last)-1]
	}
	if !s.disk {
		if d.off < 0 {
			d.off = s.memSlotLocked()
		}
		s.mem[d.off] = src
		off = d.off
	}
	d.off, d.n, d.version, d.seq = off, int32(len(src)), version, s.seq
	return d
}

// memSlotLocked returns a free slot of mem.
func (s *store) memSlotLocked() int64 {
	if k := len(s.free); k > 0 {
		slot := s.free[k-1]
		s.free = s.free[:k-1]
		return slot
	}
	s.mem = append(s.mem, nil)
	return int64(len(s.mem) - 1)
}

// freeSlotLocked releases d's mem slot (in-memory stores only).
func (s *store) freeSlotLocked(d *doc) {
	if !s.disk && !d.deleted && d.off >= 0 {
		s.mem[d.off] = nil
		s.free = append(s.free, d.off)
	}
}

// indexLocked stores and logs a document version. Sources longer than
// maxSourceLen are refused by the callers (MaxContentLength is smaller).
func (s *store) indexLocked(ix *index, id string, src []byte, version int64) *doc {
	var off int64
	if s.w != nil {
		h := append(s.hdr[:0], "I\t"...)
		h = append(h, ix.name...)
		h = append(h, '\t')
		h = append(h, id...)
		h = append(h, '\t')
		h = strconv.AppendInt(h, version, 10)
		h = append(h, '\n')
		s.hdr = h
		s.w.Write(h)
		s.w.Write(src)
		s.w.WriteByte('\n')
		off = s.end + int64(len(h))
		s.end = off + int64(len(src)) + 1
	}
	return s.putLocked(ix, id, off, src, version)
}

func (s *store) deleteLocked(ix *index, id string) bool {
	d := ix.get(id)
	if d == nil {
		return false
	}
	s.seq++
	s.freeSlotLocked(d)
	d.deleted, d.off, d.n = true, -1, 0
	delete(ix.ids, id)
	ix.dead++
	if ix.dead > 1024 && ix.dead > ix.ndocs/2 {
		var live [][]doc
		n := 0
		for _, c := range ix.docs {
			for _, d := range c {
				if !d.deleted {
					ix.ids[d.id] = int32(n)
					live = appendDoc(live, n, d)
					n++
				}
			}
		}
		ix.docs, ix.ndocs, ix.dead = live, n, 0
	}
	return true
}

func (s *store) deleteDocLocked(ix *index, id string) bool {
	if !s.deleteLocked(ix, id) {
		return false
	}
	s.logf("D\t%s\t%s\n", ix.name, id)
	return true
}

// newID makes a 20-character URL-safe id like Elasticsearch's generated
// ones: unique per store and process.
func (s *store) newIDLocked() string {
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

// errIndexNotFound carries the name of the missing concrete index.
type errIndexNotFound struct{ name string }

func (e *errIndexNotFound) Error() string { return "no such index [" + e.name + "]" }

// resolveRequest resolves pattern for a read request, honouring
// ignore_unavailable (skip missing concrete names) and allow_no_indices
// (default true: wildcards matching nothing are fine).
func (s *store) resolveRequestLocked(pattern string, q url.Values) ([]*index, error) {
	ixs, err := s.resolveStrictLocked(pattern)
	if err != nil && q.Get("ignore_unavailable") == "true" {
		err = nil
	}
	if err == nil && len(ixs) == 0 && q.Get("allow_no_indices") == "false" {
		err = &errIndexNotFound{name: pattern}
	}
	return ixs, err
}

// resolveLocked expands a comma-separated list of names and patterns
// (*, _all, empty) into existing indices, sorted by name. Missing concrete
// names are skipped; resolveStrictLocked reports them.
func (s *store) resolveLocked(pattern string) []*index {
	ixs, _ := s.resolveStrictLocked(pattern)
	return ixs
}

func (s *store) resolveStrictLocked(pattern string) ([]*index, error) {
	seen := map[string]bool{}
	var out []*index
	add := func(ix *index) {
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
				missing = &errIndexNotFound{name: p}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, missing
}

// checkIndexName applies Elasticsearch's index name rules.
func checkIndexName(name string) string {
	switch {
	case name == "":
		return "index name must not be empty"
	case name != strings.ToLower(name):
		return "must be lowercase"
	case strings.HasPrefix(name, "_") || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "+"):
		return "must not start with '_', '-', or '+'"
	case name == "." || name == "..":
		return "must not be '.' or '..'"
	case len(name) > 255:
		return "index name is too long, (" + strconv.Itoa(len(name)) + " > 255)"
	case strings.ContainsAny(name, "\\/*?\"<>| ,#:"):
		return `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`
	}
	return ""
}
