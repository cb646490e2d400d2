package essim

import (
	"bufio"
	"bytes"
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
	log     *os.File
	w       *bufio.Writer
}

// index keeps its documents by value in insertion order, with a map from
// _id to position: two pointers per document instead of five, which keeps
// the garbage collector's work small when essim holds millions of them.
type index struct {
	name    string
	uuid    string
	created time.Time
	ids     map[string]int32
	docs    []doc // insertion order; deleted entries stay until compaction
	dead    int
}

// get returns the live document with id; the pointer is valid until the
// next write to the index.
func (ix *index) get(id string) *doc {
	if i, ok := ix.ids[id]; ok {
		return &ix.docs[i]
	}
	return nil
}

// count is the number of live documents.
func (ix *index) count() int { return len(ix.ids) }

type doc struct {
	id      string
	src     []byte // raw JSON as received: never re-encoded
	version int64
	seq     int64
	deleted bool
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
			n += int64(len(src))
			v, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				return off, fmt.Errorf("record at offset %d: version %q", off, f[3])
			}
			ix := s.ensureIndexLocked(f[1])
			s.putLocked(ix, f[2], bytes.TrimSuffix(src, []byte("\n")), v)
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
		fmt.Fprintf(s.w, format, a...)
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
	delete(s.indices, name)
	s.logf("X\t%s\n", name)
}

// putLocked stores src under id and returns the new document.
func (s *store) putLocked(ix *index, id string, src []byte, version int64) *doc {
	s.seq++
	if d := ix.get(id); d != nil {
		d.src, d.version, d.seq = src, version, s.seq
		return d
	}
	ix.docs = append(ix.docs, doc{id: id, src: src, version: version, seq: s.seq})
	ix.ids[id] = int32(len(ix.docs) - 1)
	return &ix.docs[len(ix.docs)-1]
}

// indexLocked stores and logs a document version.
func (s *store) indexLocked(ix *index, id string, src []byte, version int64) *doc {
	if s.w != nil {
		s.w.WriteString("I\t")
		s.w.WriteString(ix.name)
		s.w.WriteByte('\t')
		s.w.WriteString(id)
		s.w.WriteByte('\t')
		s.w.WriteString(strconv.FormatInt(version, 10))
		s.w.WriteByte('\n')
		s.w.Write(src)
		s.w.WriteByte('\n')
	}
	return s.putLocked(ix, id, src, version)
}

func (s *store) deleteLocked(ix *index, id string) bool {
	d := ix.get(id)
	if d == nil {
		return false
	}
	s.seq++
	d.deleted, d.src = true, nil
	delete(ix.ids, id)
	ix.dead++
	if ix.dead > 1024 && ix.dead > len(ix.docs)/2 {
		live := ix.docs[:0]
		for _, d := range ix.docs {
			if !d.deleted {
				ix.ids[d.id] = int32(len(live))
				live = append(live, d)
			}
		}
		clear(ix.docs[len(live):])
		ix.docs, ix.dead = live, 0
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
