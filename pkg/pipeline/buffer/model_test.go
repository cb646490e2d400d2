package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// model is the in-memory truth the buffer is checked against.
type model struct {
	t   *testing.T
	rng *rand.Rand
	fs  *faultFS
	dir string
	b   *Buffer

	next  int               // next record number
	recs  map[string]Record // every record ever passed to Append, by id
	acked map[string]bool   // Append returned nil: the sender got its ack
	done  map[string]bool   // delivered and acknowledged (in Elasticsearch)
	// touched: records whose bytes a corrupt step changed. They may be
	// lost; nothing else may.
	touched map[string]bool
	// This incarnation only: records handed out and not acknowledged, and
	// positions of touched records.
	out        map[Pos]string
	touchedPos map[Pos]bool

	appends, failed, reads, corrupts, crashes, lostTouched int
	reused                                                 uint64 // segments made of reused files, all incarnations
	ackAll                                                 bool   // ack acknowledges every record handed out

	segmentBytes int64 // default 4096: many rotations
	// hist is what happened, step by step (appends, corruptions, crashes
	// and what each recovery found), printed when a record goes missing:
	// the timing of background work (spare segments, unlinks, the
	// checkpoint) makes a seed's run differ from one try to the next.
	hist []string

	writeMu     sync.Mutex
	writeEvents []*WriteError // what OnWriteError was told
}

func newModel(t *testing.T, seed int64) *model {
	return &model{t: t, rng: rand.New(rand.NewSource(seed)), fs: newFaultFS(), dir: t.TempDir(),
		recs: map[string]Record{}, acked: map[string]bool{}, done: map[string]bool{}, touched: map[string]bool{},
		segmentBytes: 4096}
}

func (m *model) opts() Options {
	return Options{Dir: m.dir, SegmentBytes: m.segmentBytes, MaxBytes: 256 * m.segmentBytes,
		CheckpointInterval: 5 * time.Millisecond, fs: m.fs, OnWriteError: func(e *WriteError) {
			m.writeMu.Lock()
			m.writeEvents = append(m.writeEvents, e)
			m.writeMu.Unlock()
		}}
}

func (m *model) open() {
	m.t.Helper()
	b, err := Open(m.opts())
	if err != nil {
		m.t.Fatalf("open: %v", err)
	}
	m.b = b
	m.hist = append(m.hist, fmt.Sprintf("open %s: %+v", filepath.Base(m.dir), b.Recovery()))
	m.out = map[Pos]string{}
	m.touchedPos = map[Pos]bool{}
}

func (m *model) newRecord() Record {
	n := m.next
	m.next++
	doc := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, n, bytes.Repeat([]byte{'a' + byte(n%26)}, m.rng.Intn(300)))
	return Record{ID: "m-" + strconv.Itoa(n), Tag: "model", Sec: int64(n), Nsec: uint32(n), Ingest: int64(n) * 3, Doc: []byte(doc)}
}

// appendSome appends a batch; a failed append's records are not acked but
// may still show up (never acked to a sender, so harmless).
func (m *model) appendSome() error { return m.appendConcurrently(1)[0] }

// appendConcurrently appends n batches from n goroutines at once, as
// senders on several connections do: they gather in group commits, and
// each is acked only once the commit that holds it is durable. It returns
// their errors.
func (m *model) appendConcurrently(n int) []error {
	batches := make([][]Record, n)
	for i := range batches {
		batches[i] = make([]Record, 1+m.rng.Intn(8))
		// Half the batches are a forward request's events: one ingest
		// time, stored as sent or not, which the buffer frames as groups.
		group, raw := m.rng.Intn(2) == 0, m.rng.Intn(2) == 0
		for j := range batches[i] {
			r := m.newRecord()
			if group {
				r.Raw = raw
				if j > 0 {
					r.Ingest = batches[i][0].Ingest
				}
			}
			batches[i][j] = r
			m.recs[r.ID] = r
		}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.b.Append(context.Background(), batches[i])
		}()
	}
	wg.Wait()
	for i, recs := range batches {
		if errs[i] != nil {
			m.failed++
			continue
		}
		m.appends++
		at := ""
		if n > 1 {
			at = fmt.Sprintf(" (%d at once)", n)
		}
		m.hist = append(m.hist, fmt.Sprintf("append %s..%s%s", recs[0].ID, recs[len(recs)-1].ID, at))
		for _, r := range recs {
			m.acked[r.ID] = true
		}
	}
	m.checkDurable()
	return errs
}

// checkDurable: everything the buffer holds as committed is on disk as far
// as a power loss is concerned.
func (m *model) checkDurable() {
	m.t.Helper()
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	for _, s := range m.b.segs {
		st := m.fs.state(s.path)
		if durable := m.fs.durablePrefix(s.path); !st.dirSynced || durable < s.size {
			m.t.Fatalf("segment %s: %d bytes committed, %d durable, directory entry synced %v", s.path, s.size, durable, st.dirSynced)
		}
	}
}

func (m *model) read() {
	if m.b.Stats().Undelivered == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	recs, err := m.b.Next(ctx, 1+m.rng.Intn(20), 1<<20, 0)
	cancel()
	if err != nil {
		m.t.Fatalf("next: %v", err)
	}
	m.reads++
	for _, r := range recs {
		if r.Corrupt != nil {
			if !m.touchedPos[r.Pos] {
				m.t.Fatalf("record at %+v handed out corrupt (%v) but no byte of it was changed", r.Pos, r.Corrupt)
			}
			m.b.Ack(r.Pos) // as the output does, after dead-lettering it
			continue
		}
		want, ok := m.recs[r.ID]
		if !ok {
			m.t.Fatalf("record %q was never appended", r.ID)
		}
		if r.Tag != want.Tag || r.Sec != want.Sec || r.Nsec != want.Nsec || r.Ingest != want.Ingest || r.Raw != want.Raw || !bytes.Equal(r.Doc, want.Doc) {
			m.t.Fatalf("record %s differs: got %+v", r.ID, r)
		}
		m.out[r.Pos] = r.ID
	}
}

func (m *model) ack() {
	for p, id := range m.out {
		if !m.ackAll && m.rng.Intn(3) == 0 {
			continue
		}
		m.b.Ack(p)
		m.done[id] = true
		delete(m.out, p)
	}
}

// corrupt flips one byte of a segment file under the running buffer and
// notes which record, if any, it belonged to.
func (m *model) corrupt() {
	files, _ := filepath.Glob(filepath.Join(m.dir, "seg-*.log"))
	if len(files) == 0 {
		return
	}
	path := files[m.rng.Intn(len(files))]
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return // removed meanwhile
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.Size() == 0 {
		return
	}
	off := m.rng.Int63n(fi.Size())
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	for _, s := range m.b.segs {
		if s.path != path {
			continue
		}
		for i := range s.ends {
			from, to := s.offsetOf(i), int64(s.ends[i])
			if off < from || off >= to {
				continue
			}
			// The frame's records, a group's all of them.
			frame := make([]byte, to-from)
			s.st.ReadAt(frame, from)
			if recs, _, err := appendFrameRecords(nil, s.format, s.seal, frame, 1<<20, i-frameFirst(s.ends, i)); err == nil {
				m.touched[recs[0].ID] = true
			}
			m.touchedPos[Pos{Seg: s.id, Idx: uint32(i)}] = true
		}
	}
	var b [1]byte
	f.ReadAt(b[:], off)
	b[0] ^= byte(1 + m.rng.Intn(255))
	f.WriteAt(b[:], off)
	m.fs.damage(path, off, b[0]) // on the disk: a power loss keeps it too
	m.hist = append(m.hist, fmt.Sprintf("corrupt %s at %d of %d bytes", filepath.Base(path), off, fi.Size()))
	m.corrupts++
}

// crash copies the directory as a crash leaves it and reopens the buffer
// there; the old one is closed, its later writes going to the old
// directory.
func (m *model) crash() {
	powerLoss := m.rng.Intn(2) == 0
	snap := m.fs.snapshot(m.t, m.dir, powerLoss, m.rng)
	var files []string
	ents, _ := os.ReadDir(snap)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !e.IsDir() {
			files = append(files, fmt.Sprintf("%s:%d", e.Name(), fi.Size()))
		}
	}
	m.hist = append(m.hist, fmt.Sprintf("crash (power loss %v), left %v", powerLoss, files))
	m.reused += m.b.Stats().ReusedSegments
	m.b.Close()
	m.dir = snap
	m.crashes++
	m.open()
}

// powerLossThenFinish delivers some records, reopens the buffer on what
// a power loss leaves of its directory, and finishes.
func (m *model) powerLossThenFinish() {
	m.read()
	m.ack()
	m.dir = m.fs.snapshot(m.t, m.dir, true, m.rng)
	m.b.Close()
	m.open()
	m.finish()
}

// finish drains everything and checks that every acked record was
// delivered, but for those whose bytes were changed.
func (m *model) finish() {
	m.t.Helper()
	for m.b.Stats().Undelivered > 0 {
		m.read()
		m.ack()
	}
	for len(m.out) > 0 {
		m.ack()
	}
	for id := range m.acked {
		if m.done[id] {
			continue
		}
		if m.touched[id] {
			m.lostTouched++
			continue
		}
		m.t.Logf("what happened:\n%s", strings.Join(m.hist, "\n"))
		m.t.Fatalf("record %s was acked to its sender and never delivered (%d appends, %d crashes, %d corruptions)",
			id, m.appends, m.crashes, m.corrupts)
	}
	m.reused += m.b.Stats().ReusedSegments
	m.b.Close()
}

func modelSeeds(t *testing.T, n int) []int64 {
	if s := os.Getenv("BUFFER_MODEL_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("BUFFER_MODEL_SEED: %v", err)
		}
		return []int64{seed}
	}
	seeds := make([]int64, n)
	for i := range seeds {
		seeds[i] = int64(i + 1)
	}
	return seeds
}

// TestModel runs random sequences of append, read, ack, crash-and-reopen
// (kill -9 or power loss) and one-byte corruption against the in-memory
// model: every record the buffer acknowledged is delivered at least once
// after any crash, and corruption costs only the records whose bytes it
// changed. Reproduce one run with BUFFER_MODEL_SEED=n.
func TestModel(t *testing.T) {
	// Percent thresholds of a step: one append, appends at once, read,
	// ack, crash, else corrupt.
	for _, v := range []struct {
		name   string
		steps  [5]int
		n      int
		ackAll bool
		// pageCache: the filesystem refuses O_DIRECT, so every commit
		// goes through the page cache (elsewhere most go around it).
		pageCache bool
	}{
		// Delivery lags and acks out of order: segments live long.
		{"lagging", [5]int{30, 40, 65, 85, 93}, 400, false, false},
		// Delivery keeps up, so fully acknowledged segments keep freeing
		// their files for new segments; crashes rarer, or each would
		// drop the files kept for reuse.
		{"keeping up", [5]int{25, 33, 66, 97, 99}, 1000, true, false},
		{"page cache", [5]int{30, 40, 65, 85, 93}, 400, false, true},
	} {
		var reused uint64
		direct := 0
		seeds := modelSeeds(t, 8)
		if v.pageCache && len(seeds) > 3 {
			seeds = seeds[:3] // the path every segment's last commits take anyway
		}
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed%d", v.name, seed), func(t *testing.T) {
				m := newModel(t, seed)
				m.ackAll = v.ackAll
				if v.pageCache {
					m.fs.inject("direct", fault{err: syscall.EINVAL})
				}
				m.open()
				for step := 0; step < v.n; step++ {
					switch p := m.rng.Intn(100); {
					case p < v.steps[0]:
						if err := m.appendSome(); err != nil && !errors.Is(err, ErrFull) {
							t.Fatalf("step %d: append: %v", step, err)
						}
					case p < v.steps[1]:
						// Several senders at once.
						for _, err := range m.appendConcurrently(2 + m.rng.Intn(3)) {
							if err != nil && !errors.Is(err, ErrFull) {
								t.Fatalf("step %d: append: %v", step, err)
							}
						}
					case p < v.steps[2]:
						m.read()
					case p < v.steps[3]:
						m.ack()
					case p < v.steps[4]:
						m.crash()
					default:
						m.corrupt()
					}
				}
				m.finish()
				reused += m.reused
				direct += m.fs.direct
				t.Logf("seed %d: %d appends, %d reads, %d crashes, %d corrupted bytes, %d records lost with them, %d acked, %d segments in reused files",
					seed, m.appends, m.reads, m.crashes, m.corrupts, m.lostTouched, len(m.acked), m.reused)
			})
		}
		if v.ackAll && reused == 0 && !t.Failed() {
			t.Errorf("%s: no segment was made of a reused file", v.name)
		}
		if v.pageCache != (direct == 0) && !t.Failed() && takesDirect(t, t.TempDir()) {
			t.Errorf("%s: %d direct writes", v.name, direct)
		}
	}
}

// TestWriteFaults injects ENOSPC, EIO and short writes at append, commit
// (fdatasync) and rotation (creating, syncing the next segment and its
// directory): the append fails with a WriteError naming the operation and
// the file, nothing is acknowledged that was not made durable, and the
// buffer works again once the fault clears. A power-loss crash at the end
// finds every acked record.
func TestWriteFaults(t *testing.T) {
	cases := []struct {
		op     string // where the fault is injected
		ft     fault
		wantOp string
	}{
		{"write", fault{err: errNoSpace}, OpAppend},
		{"write", fault{err: errNoSpace, short: true}, OpAppend},
		{"write", fault{short: true}, OpAppend}, // a short write without an error
		{"write", fault{err: errIO}, OpAppend},
		{"sync", fault{err: errIO}, OpCommit},
		{"sync", fault{err: errNoSpace}, OpCommit},
		{"create", fault{err: errNoSpace}, OpRotate},
		{"magic", fault{err: errNoSpace, short: true}, OpRotate},
		{"syncdir", fault{err: errIO}, OpRotate},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s-%v-short%v", c.op, c.ft.err, c.ft.short)
		t.Run(name, func(t *testing.T) {
			m := newModel(t, 7)
			if c.wantOp != OpRotate {
				m.segmentBytes = 1 << 20 // no rotation while the fault lasts
			}
			m.open()
			for i := 0; i < 20; i++ {
				if err := m.appendSome(); err != nil {
					t.Fatal(err)
				}
			}
			if c.wantOp == OpRotate {
				// Fill the active segment so the next append must rotate.
				for i := 0; !m.nearlyFull(); i++ {
					if i == 1000 {
						t.Fatal("the active segment never filled up")
					}
					if err := m.appendSome(); err != nil {
						t.Fatal(err)
					}
				}
				// Rotation takes the spare when it is ready; a fault in
				// creating segments must hit the plain one.
				m.dropSpare()
			}
			m.fs.inject(c.op, c.ft)
			failures, lastFailed := 0, false
			for i := 0; i < 30; i++ {
				err := m.appendSome()
				lastFailed = err != nil
				if err == nil {
					if c.wantOp != OpRotate {
						t.Fatalf("append %d succeeded with %s failing", i, c.op)
					}
					continue // still room in the active segment
				}
				var we *WriteError
				if !errors.As(err, &we) {
					t.Fatalf("append: %v (%T), want a WriteError", err, err)
				}
				m.writeMu.Lock()
				told := m.writeEvents[len(m.writeEvents)-1]
				m.writeMu.Unlock()
				if told != we {
					t.Fatalf("OnWriteError was told %v before the append returned %v", told, we)
				}
				if we.Op != c.wantOp || !filepath.IsAbs(we.Path) {
					t.Fatalf("WriteError %+v, want op %s with the segment path", we, c.wantOp)
				}
				if c.ft.err != nil && !errors.Is(err, c.ft.err) {
					t.Fatalf("%v does not wrap %v", err, c.ft.err)
				}
				if errors.Is(err, errNoSpace) != we.DiskFull() || (we.DiskFull() && !bytes.Contains([]byte(err.Error()), []byte("disk full"))) {
					t.Fatalf("%q: disk full %v", err, we.DiskFull())
				}
				failures++
			}
			if failures == 0 {
				t.Fatal("no append failed")
			}
			told := 0
			m.writeMu.Lock()
			for _, e := range m.writeEvents {
				if e != nil {
					told++
				}
			}
			m.writeEvents = nil
			m.writeMu.Unlock()
			if got := m.b.Stats().WriteErrors; got != uint64(told) || got != uint64(failures) {
				t.Fatalf("Stats.WriteErrors %d, %d failed appends, OnWriteError told %d", got, failures, told)
			}
			m.fs.clear()
			for i := 0; i < 40; i++ {
				if err := m.appendSome(); err != nil {
					t.Fatalf("append after the fault cleared: %v", err)
				}
			}
			m.writeMu.Lock()
			if want := map[bool]int{true: 1}[lastFailed]; len(m.writeEvents) != want || want == 1 && m.writeEvents[0] != nil {
				t.Fatalf("after the fault cleared, OnWriteError told %v; want nil %d times", m.writeEvents, want)
			}
			m.writeMu.Unlock()
			m.powerLossThenFinish()
			t.Logf("%d failed appends, %d acked records all delivered after a power loss", m.failed, len(m.acked))
		})
	}
}

// TestUndoFailureRetried: a write fails and so does truncating it away;
// the next append retries the truncation before writing, so the segment
// never holds the failed batch's bytes before acknowledged records.
func TestUndoFailureRetried(t *testing.T) {
	m := newModel(t, 3)
	m.segmentBytes = 1 << 20
	m.open()
	for i := 0; i < 5; i++ {
		if err := m.appendSome(); err != nil {
			t.Fatal(err)
		}
	}
	m.fs.inject("sync", fault{err: errIO})
	m.fs.inject("truncate", fault{err: errIO})
	if err := m.appendSome(); err == nil {
		t.Fatal("append succeeded")
	}
	m.fs.clear()
	m.fs.inject("truncate", fault{err: errIO})
	if err := m.appendSome(); err == nil {
		t.Fatal("append succeeded while the failed write could not be removed")
	}
	m.fs.clear()
	for i := 0; i < 5; i++ {
		if err := m.appendSome(); err != nil {
			t.Fatal(err)
		}
	}
	m.b.Close()
	m.open()
	if rc := m.b.Recovery(); rc.CorruptRegions != 0 || rc.TruncatedBytes != 0 {
		t.Fatalf("recovery %+v: the failed batch was left in the segment", rc)
	}
	m.finish()
}

func (m *model) nearlyFull() bool {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	s := m.b.segs[len(m.b.segs)-1]
	return s.size > m.b.opts.SegmentBytes-600
}

// dropSpare waits for the background spare and removes it.
func (m *model) dropSpare() {
	m.b.mu.Lock()
	out := m.b.spareOut && !m.b.spareDiscard
	m.b.mu.Unlock()
	if !out {
		return
	}
	r := <-m.b.spare
	if r.seg != nil {
		r.seg.st.Remove()
	}
	m.b.mu.Lock()
	m.b.spareOut = false
	m.b.mu.Unlock()
}
