package essim

import (
	"bufio"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logdoctor/logdoctor/internal/clip"
)

// store holds every index; all nodes share it.
type store struct {
	mu      sync.RWMutex
	indices map[string]*index
	seq     int64
	idSeq   uint64
	idSalt  uint64
	seed    maphash.Seed
	mask    uint32
	disk    bool // ids and sources live only in the log (a data dir is set)
	log     *os.File
	// pend holds log records not yet written to the file; they occupy
	// [end-len(pend), end) of the log. Readers under the read lock see it
	// unchanging because only write-lock holders append or flush.
	pend []byte
	end  int64 // log size including pend
	// mem holds ids and sources when there is no log; doc.off indexes it,
	// and free lists slots of deleted documents for reuse.
	mem  []memDoc
	free []int64
}

type memDoc struct {
	id  string
	src []byte
}

// index keeps its documents by value in insertion order, and finds them
// by a hash of the _id (idTable). Neither holds a pointer or a string: at
// a million documents the garbage collector has nothing to scan here, and
// a document costs 32 bytes plus ~11 in the table instead of the ~130
// that an id string, a map[string] key and a pointer-bearing entry took.
type index struct {
	name    string
	uuid    string
	created time.Time
	ids     idTable
	// docs in insertion order, in chunks of chunkDocs entries so that
	// growing never copies them (one slice growing by 1.25x held the old
	// and the new array at once: tens of MB at a million documents);
	// deleted entries stay until compaction.
	docs  [][]doc
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

const chunkDocs = 4096

func (ix *index) at(i int32) *doc { return &ix.docs[i/chunkDocs][i%chunkDocs] }

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

// liveLocked is the number of live documents in every index.
func (s *store) liveLocked() int64 {
	var n int64
	for _, ix := range s.indices {
		n += int64(ix.count())
	}
	return n
}

// count is the number of live documents.
func (ix *index) count() int { return ix.ids.n }

// doc holds neither id nor source: with a data dir both live only in the
// log, the id at off (idn bytes) followed by the source (n bytes); without
// one, off is a slot in store.mem. A deleted entry has off < 0.
type doc struct {
	off     int64
	version int64
	seq     int64
	n       int32
	idn     int32
}

func (d *doc) deleted() bool { return d.off < 0 }

// maxSourceLen bounds one source so its length fits doc.n.
const maxSourceLen = 1<<31 - 1

// pendFlush is how many bytes of records wait in memory before they are
// written to the log file.
const pendFlush = 1 << 20

// readAtLocked fills b from the log at off, from the file or from the
// records still pending; callers hold mu (read or write): the file's
// ReadAt is safe for concurrent readers.
func (s *store) readAtLocked(b []byte, off int64) error {
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

// docLocked returns d's id and source (callers hold mu).
func (s *store) docLocked(d *doc) (id string, src []byte, err error) {
	if d.deleted() {
		return "", nil, errors.New("essim: document deleted")
	}
	if !s.disk {
		if d.off >= int64(len(s.mem)) {
			return "", nil, errors.New("essim: document has no source")
		}
		m := &s.mem[d.off]
		return m.id, m.src, nil
	}
	b := make([]byte, int(d.idn)+int(d.n))
	if err := s.readAtLocked(b, d.off); err != nil {
		return "", nil, err
	}
	return string(b[:d.idn]), b[d.idn:], nil
}

// sourceLocked returns d's source (callers hold mu).
func (s *store) sourceLocked(d *doc) ([]byte, error) {
	if !s.disk {
		_, src, err := s.docLocked(d)
		return src, err
	}
	if d.deleted() {
		return nil, errors.New("essim: document deleted")
	}
	b := make([]byte, d.n)
	if err := s.readAtLocked(b, d.off+int64(d.idn)); err != nil {
		return nil, err
	}
	return b, nil
}

// idIsLocked reports whether d's id is id.
func (s *store) idIsLocked(d *doc, id string) (bool, error) {
	if int(d.idn) != len(id) || d.deleted() {
		return false, nil
	}
	if !s.disk {
		return s.mem[d.off].id == id, nil
	}
	var small [64]byte
	b := small[:0]
	if len(id) <= len(small) {
		b = small[:len(id)]
	} else {
		b = make([]byte, len(id))
	}
	if err := s.readAtLocked(b, d.off); err != nil {
		return false, err
	}
	return string(b) == id, nil
}

func (s *store) hash(id string) uint32 { return uint32(maphash.String(s.seed, id)) & s.mask }

// findLocked returns the table slot of id's live document, or -1.
func (s *store) findLocked(ix *index, id string) (int, error) {
	return ix.ids.lookup(s.hash(id), func(p int32) (bool, error) { return s.idIsLocked(ix.at(p), id) })
}

// getLocked returns the live document with id, or nil; the pointer is
// valid until the next write to the index.
func (s *store) getLocked(ix *index, id string) (*doc, error) {
	slot, err := s.findLocked(ix, id)
	if slot < 0 {
		return nil, err
	}
	return ix.at(ix.ids.pos(slot)), nil
}

const (
	logName  = "essim.log"
	logMagic = "essim-log\t2\n"
)

// openStore loads dir's log when dir is set. After the magic line, records
// are "I\tindex\tversion\tidlen\tsrclen\n<id><source>\n",
// "D\tindex\tidlen\n<id>\n", "C\tindex\n" and "X\tindex\n": lengths, not
// delimiters, bound ids and sources, so neither may contain anything it
// likes. A torn last record (crash mid-write) is ignored.
func openStore(dir string, hashMask uint32) (*store, error) {
	if hashMask == 0 {
		hashMask = ^uint32(0)
	}
	s := &store{indices: map[string]*index{}, idSalt: uint64(time.Now().UnixNano()), seed: maphash.MakeSeed(), mask: hashMask}
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
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("essim: data log: %w", err)
	}
	s.log, s.end = f, fi.Size()
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
	s.end = good
	if good == 0 {
		s.pend = append(s.pend, logMagic...)
		s.end = int64(len(logMagic))
		if err := s.flushLocked(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return s, nil
}

// replay applies the log and returns the offset after the last whole
// record.
func (s *store) replay(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.ReadString('\n')
	if err != nil {
		if magic == "" || strings.HasPrefix(logMagic, magic) {
			return 0, nil // empty, or torn while writing the magic
		}
	}
	if magic != logMagic {
		return 0, fmt.Errorf("not an essim data log of this version (first line %q, want %q); move the directory away", clip.String(magic, 32), logMagic)
	}
	off := int64(len(logMagic))
	var body []byte
	// readBody reads n bytes plus the closing newline.
	readBody := func(n int64) ([]byte, bool) {
		if int64(cap(body)) < n+1 {
			body = make([]byte, n+1)
		}
		body = body[:n+1]
		if _, err := io.ReadFull(br, body); err != nil || body[n] != '\n' {
			return nil, false
		}
		return body[:n], true
	}
	for {
		hdr, err := br.ReadBytes('\n')
		if err != nil {
			return off, nil
		}
		n := int64(len(hdr))
		f := strings.Split(string(hdr[:len(hdr)-1]), "\t")
		bad := func(what string) (int64, error) {
			return off, fmt.Errorf("record at offset %d: %s in %q", off, what, clip.Bytes(hdr, 64))
		}
		switch {
		case f[0] == "I" && len(f) == 5:
			v, err1 := strconv.ParseInt(f[2], 10, 64)
			idn, err2 := strconv.Atoi(f[3])
			srcn, err3 := strconv.ParseInt(f[4], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil || idn < 0 || idn > 512 || srcn < 0 || srcn > maxSourceLen {
				return bad("bad number")
			}
			b, ok := readBody(int64(idn) + srcn)
			if !ok {
				return off, nil
			}
			ix := s.ensureIndexLocked(f[1])
			if _, err := s.putLocked(ix, string(b[:idn]), off+n, b[idn:], v); err != nil {
				return off, err
			}
			n += int64(len(b)) + 1
		case f[0] == "D" && len(f) == 3:
			idn, err := strconv.Atoi(f[2])
			if err != nil || idn < 0 || idn > 512 {
				return bad("bad id length")
			}
			b, ok := readBody(int64(idn))
			if !ok {
				return off, nil
			}
			if ix := s.indices[f[1]]; ix != nil {
				if _, err := s.deleteLocked(ix, string(b)); err != nil {
					return off, err
				}
			}
			n += int64(len(b)) + 1
		case f[0] == "C" && len(f) == 2:
			s.ensureIndexLocked(f[1])
		case f[0] == "X" && len(f) == 2:
			delete(s.indices, f[1])
		default:
			return bad("unknown header")
		}
		off += n
	}
}

// flushLocked writes pending log records; callers hold mu for writing. A
// failed write keeps what was not written, to be tried again.
func (s *store) flushLocked() error {
	if s.log == nil || len(s.pend) == 0 {
		return nil
	}
	n, err := s.log.Write(s.pend)
	s.pend = s.pend[:copy(s.pend, s.pend[n:])]
	if err != nil {
		return fmt.Errorf("essim: data log: %w", err)
	}
	return nil
}

// maybeFlushLocked writes pending records once there are enough of them;
// an error stays for the flush that ends the request to report.
func (s *store) maybeFlushLocked() {
	if len(s.pend) >= pendFlush {
		_ = s.flushLocked()
	}
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
	s.log, s.pend = nil, nil
	return err
}

// logRecord appends a header of tab-separated fields, then body and a
// newline when body is not nil.
func (s *store) logRecord(body []string, fields ...string) {
	if !s.disk || s.log == nil {
		return
	}
	start := len(s.pend)
	for i, f := range fields {
		if i > 0 {
			s.pend = append(s.pend, '\t')
		}
		s.pend = append(s.pend, f...)
	}
	s.pend = append(s.pend, '\n')
	if body != nil {
		for _, b := range body {
			s.pend = append(s.pend, b...)
		}
		s.pend = append(s.pend, '\n')
	}
	s.end += int64(len(s.pend) - start)
	s.maybeFlushLocked()
}

func (s *store) ensureIndexLocked(name string) *index {
	ix := s.indices[name]
	if ix == nil {
		ix = &index{name: name, uuid: nodeID(name, int(s.seq)), created: time.Now()}
		s.indices[name] = ix
	}
	return ix
}

// createIndexLocked makes an index and logs it.
func (s *store) createIndexLocked(name string) *index {
	if ix := s.indices[name]; ix != nil {
		return ix
	}
	s.logRecord(nil, "C", name)
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
	s.logRecord(nil, "X", name)
}

// putLocked stores a document version whose id and source are at off in
// the log (they are kept in memory only when there is no log) and returns
// it.
func (s *store) putLocked(ix *index, id string, off int64, src []byte, version int64) (*doc, error) {
	s.seq++
	d, err := s.getLocked(ix, id)
	if err != nil {
		return nil, err
	}
	if d != nil {
		ix.epoch++
	} else {
		p := int32(ix.ndocs)
		ix.docs = appendDoc(ix.docs, ix.ndocs, doc{off: -1})
		ix.ndocs++
		ix.ids.insert(s.hash(id), p)
		d = ix.at(p)
	}
	if !s.disk {
		if d.off < 0 {
			d.off = s.memSlotLocked()
		}
		s.mem[d.off] = memDoc{id: id, src: src}
		off = d.off
	}
	d.off, d.n, d.idn, d.version, d.seq = off, int32(len(src)), int32(len(id)), version, s.seq
	return d, nil
}

// memSlotLocked returns a free slot of mem.
func (s *store) memSlotLocked() int64 {
	if k := len(s.free); k > 0 {
		slot := s.free[k-1]
		s.free = s.free[:k-1]
		return slot
	}
	s.mem = append(s.mem, memDoc{})
	return int64(len(s.mem) - 1)
}

// freeSlotLocked releases d's mem slot (in-memory stores only).
func (s *store) freeSlotLocked(d *doc) {
	if !s.disk && !d.deleted() {
		s.mem[d.off] = memDoc{}
		s.free = append(s.free, d.off)
	}
}

// indexLocked stores and logs a document version. Sources longer than
// maxSourceLen are refused by the callers (MaxContentLength is smaller).
func (s *store) indexLocked(ix *index, id string, src []byte, version int64) (*doc, error) {
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
	d, err := s.putLocked(ix, id, off, src, version)
	s.maybeFlushLocked()
	return d, err
}

// deleteLocked removes id's live document and reports whether there was
// one.
func (s *store) deleteLocked(ix *index, id string) (bool, error) {
	slot, err := s.findLocked(ix, id)
	if slot < 0 {
		return false, err
	}
	d := ix.at(ix.ids.pos(slot))
	s.seq++
	s.freeSlotLocked(d)
	d.off, d.n, d.idn = -1, 0, 0
	ix.ids.remove(slot)
	ix.dead++
	if ix.dead > 1024 && ix.dead > ix.ndocs/2 && ix.pins.Load() == 0 {
		ix.compact()
	}
	return true, nil
}

// compact drops deleted entries and renumbers the maps.
func (ix *index) compact() {
	remap := make([]int32, ix.ndocs)
	var live [][]doc
	n := 0
	for ci, c := range ix.docs {
		for i := range c {
			if c[i].deleted() {
				continue
			}
			remap[ci*chunkDocs+i] = int32(n)
			live = appendDoc(live, n, c[i])
			n++
		}
	}
	ix.ids.renumber(remap)
	ix.docs, ix.ndocs, ix.dead = live, n, 0
	ix.epoch++
}

func (s *store) deleteDocLocked(ix *index, id string) (bool, error) {
	ok, err := s.deleteLocked(ix, id)
	if !ok {
		return false, err
	}
	s.logRecord([]string{id}, "D", ix.name, strconv.Itoa(len(id)))
	return true, nil
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
