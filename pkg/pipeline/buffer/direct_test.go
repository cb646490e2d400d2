package buffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"golang.org/x/sys/unix"
)

// takesDirect reports whether the filesystem under dir accepts an aligned
// O_DIRECT write: what the buffer's commits should then go through.
func takesDirect(t *testing.T, dir string) bool {
	t.Helper()
	path := filepath.Join(dir, "direct-probe")
	defer os.Remove(path)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.WriteAt(alignedBuf(nil, directBlock), 0)
	return err == nil
}

// testDirs is a disk-backed temporary directory and, where the machine
// has one, a tmpfs directory (which takes O_DIRECT only since Linux 6.6).
func testDirs(t *testing.T) []string {
	dirs := []string{t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "ldbuf")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
	return dirs
}

// TestDirectCommitsReadBack: where the filesystem takes O_DIRECT, commits
// go around the page cache, all but those past a segment's preallocated
// blocks; a reader that has just read the block the next commit starts
// in (so the page cache holds it, with zeros after the data) sees that
// commit's records once it returns, intact; and the segments recover
// whole. Where the filesystem refuses, every commit goes through the page
// cache, with the same results.
func TestDirectCommitsReadBack(t *testing.T) {
	for _, dir := range testDirs(t) {
		direct := takesDirect(t, dir)
		const segBytes = 16 << 10
		o := Options{Dir: dir, SegmentBytes: segBytes, MaxBytes: 1 << 24}
		b := open(t, o)
		n := 0
		for i := 0; i < 300; i++ {
			waitSpare(t, b) // a segment without preallocated blocks has no direct commits
			appendN(t, b, n, n+3)
			got := drain(t, b, false) // fails on a corrupt record
			checkSame(t, got, seq(n, n+3))
			n += 3
		}
		st := b.Stats()
		if st.Segments < 4 {
			t.Fatalf("%s: %d segments: no rotation exercised", dir, st.Segments)
		}
		// The commit that outgrows a segment's blocks, and any after it,
		// go through the page cache.
		if want := st.Commits - uint64(st.Segments); st.PlainSegments != 0 || direct && st.DirectCommits < want || !direct && st.DirectCommits != 0 {
			t.Fatalf("%s (O_DIRECT %v): %d of %d commits direct over %d segments (%d plain)", dir, direct, st.DirectCommits, st.Commits, st.Segments, st.PlainSegments)
		}
		// A sealed segment is never written again: its O_DIRECT
		// descriptor is closed at the rotation.
		b.mu.Lock()
		for _, seg := range b.segs[:len(b.segs)-1] {
			if fst := seg.st.(*fileStorage); fst.direct != nil {
				t.Errorf("%s: sealed segment %d keeps its O_DIRECT descriptor", dir, seg.id)
			}
		}
		b.mu.Unlock()
		b.Close()
		b2 := open(t, o)
		if rc := b2.Recovery(); rc.Records != n || rc.TruncatedBytes != 0 || rc.CorruptRecords != 0 {
			t.Fatalf("%s: recovery %+v", dir, rc)
		}
		checkSame(t, drain(t, b2, false), seq(0, n))
		t.Logf("%s: O_DIRECT %v, %d of %d commits direct", dir, direct, st.DirectCommits, st.Commits)
	}
}

// waitSpare returns once the spare segment being prepared, if any, is
// ready for the next rotation.
func waitSpare(t *testing.T, b *Buffer) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		ready := !b.spareOut || b.spareDiscard || len(b.spare) > 0
		b.mu.Unlock()
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the spare segment is not ready after 10s")
		}
	}
}

// TestDirectCommitsConcurrentReader: appenders and a reader at once, the
// reader reading each commit as soon as it is published: every record
// arrives once and intact, under the race detector too.
func TestDirectCommitsConcurrentReader(t *testing.T) {
	dir := t.TempDir()
	b := open(t, Options{Dir: dir, SegmentBytes: 256 << 10, MaxBytes: 1 << 26})
	const senders, per, batch = 4, 600, 5
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i += batch {
				from := s*per + i
				recs := make([]Record, 0, batch)
				for j := from; j < from+batch; j++ {
					recs = append(recs, rec(j))
				}
				if err := b.Append(context.Background(), recs); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := make(map[string]bool)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(seen) < senders*per {
		recs, err := b.Next(ctx, 50, 1<<20, 0)
		if err != nil {
			t.Fatalf("after %d records: %v", len(seen), err)
		}
		for _, r := range recs {
			if r.Corrupt != nil {
				t.Fatalf("record at %+v read corrupt: %v", r.Pos, r.Corrupt)
			}
			var i int
			if _, err := fmt.Sscanf(r.ID, "id-%d", &i); err != nil || seen[r.ID] {
				t.Fatalf("record %q: seen before %v (%v)", r.ID, seen[r.ID], err)
			}
			checkSame(t, []Record{r}, []int{i})
			seen[r.ID] = true
			b.Ack(r.Pos)
		}
	}
	wg.Wait()
	if st := b.Stats(); takesDirect(t, dir) && st.DirectCommits == 0 {
		t.Fatalf("no commit went around the page cache: %+v", st)
	}
}

// TestDirectRefusedFallsBack: a filesystem that refuses O_DIRECT (the
// "direct" fault, as tmpfs before Linux 6.6) costs nothing but the
// speed: every commit goes through the page cache, and the records read
// back and recover. Once it takes them again, commits go direct.
func TestDirectRefusedFallsBack(t *testing.T) {
	dir := t.TempDir()
	if !takesDirect(t, dir) {
		t.Skipf("%s refuses O_DIRECT: TestDirectCommitsReadBack covers the fallback there", dir)
	}
	fs := newFaultFS()
	fs.inject("direct", fault{err: unix.EINVAL})
	o := Options{Dir: dir, SegmentBytes: 32 << 10, MaxBytes: 1 << 24, fs: fs}
	b := open(t, o)
	for i := 0; i < 600; i += 6 {
		appendN(t, b, i, i+6)
	}
	if st := b.Stats(); st.DirectCommits != 0 || fs.direct != 0 || st.Commits < 100 {
		t.Fatalf("refused O_DIRECT: %d of %d commits direct (%d direct writes)", st.DirectCommits, st.Commits, fs.direct)
	}
	checkSame(t, drain(t, b, false), seq(0, 600))
	fs.clear()
	for i := 600; i < 660; i += 6 {
		appendN(t, b, i, i+6)
	}
	if st := b.Stats(); st.DirectCommits == 0 {
		t.Fatalf("O_DIRECT taken again, yet no commit went direct: %+v", st)
	}
	b.Close()
	o.fs = nil
	b2 := open(t, o)
	if rc := b2.Recovery(); rc.Records != 660 || rc.TruncatedBytes != 0 || rc.CorruptRecords != 0 {
		t.Fatalf("recovery %+v", rc)
	}
	checkSame(t, drain(t, b2, false), seq(0, 660))
}

// TestLastPageAfter: the committed bytes of the block a segment's data
// ends in, after a batch that stays in that block, fills it exactly, or
// runs on into later ones.
func TestLastPageAfter(t *testing.T) {
	file := make([]byte, 3*directBlock)
	for i := range file {
		file[i] = byte(i * 7)
	}
	for _, c := range []struct{ start, end int }{
		{8, 100}, {100, directBlock - 1}, {100, directBlock}, {100, directBlock + 1},
		{directBlock, directBlock + 5}, {directBlock - 3, 2*directBlock + 17}, {8, 8 + 1},
	} {
		last := append(make([]byte, 0, directBlock), file[c.start/directBlock*directBlock:c.start]...)
		got := lastPageAfter(last, file[c.start:c.end], int64(c.end))
		want := file[c.end/directBlock*directBlock : c.end]
		if string(got) != string(want) {
			t.Fatalf("batch [%d, %d): last page %d bytes, want %d", c.start, c.end, len(got), len(want))
		}
	}
}

// TestAlignedBuf: the buffers direct writes go through start on a block
// boundary, and one large enough is reused.
func TestAlignedBuf(t *testing.T) {
	var buf []byte
	for _, n := range []int{directBlock, 3 * directBlock, 2 * directBlock, 100 * directBlock} {
		prev := buf
		buf = alignedBuf(buf, n)
		if len(buf) != n || addr(buf)%directBlock != 0 {
			t.Fatalf("alignedBuf(%d): %d bytes at %#x", n, len(buf), addr(buf))
		}
		if cap(prev) >= n && addr(prev) != addr(buf) {
			t.Fatalf("alignedBuf(%d) did not reuse a buffer of %d", n, cap(prev))
		}
	}
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// TestDirectCommitsSyncThemselves: a direct commit is durable when its
// write returns (RWF_DSYNC): no fdatasync follows it, and its bytes are
// in the file's image a power loss keeps. When that write's flush fails,
// the append fails as a write does (OpAppend, wrapping the error), the
// batch is not acknowledged, and the commits after it go through the
// page cache and fdatasync; after a power loss every acknowledged record
// is there.
func TestDirectCommitsSyncThemselves(t *testing.T) {
	m := newModel(t, 11)
	if !takesDirect(t, m.dir) {
		if testenv.InCI() {
			t.Fatalf("CI=true: %s refuses O_DIRECT", m.dir)
		}
		t.Skipf("%s refuses O_DIRECT: no direct commit to check", m.dir)
	}
	m.segmentBytes = 1 << 20 // no rotation
	m.open()
	count := func() (direct, dsyncs, syncs int) {
		m.fs.mu.Lock()
		defer m.fs.mu.Unlock()
		return m.fs.direct, m.fs.dsyncs, m.fs.syncs
	}
	d0, ds0, s0 := count()
	for i := 0; i < 20; i++ {
		if err := m.appendSome(); err != nil {
			t.Fatal(err)
		}
	}
	m.checkDurable()
	st := m.b.Stats()
	d1, ds1, s1 := count()
	if st.DirectCommits != 20 || d1-d0 != 20 || ds1-ds0 != 20 || s1 != s0 {
		t.Fatalf("20 commits: %d direct (Stats), %d direct writes, %d synced by their write, %d fdatasyncs; want 20, 20, 20, 0",
			st.DirectCommits, d1-d0, ds1-ds0, s1-s0)
	}

	m.fs.inject("dsync", fault{err: errIO})
	err := m.appendSome()
	var we *WriteError
	if !errors.As(err, &we) || we.Op != OpAppend || !errors.Is(err, errIO) {
		t.Fatalf("append with the flush failing: %v, want a WriteError (op %s) wrapping %v", err, OpAppend, errIO)
	}
	// The segment's blocks are no longer trusted for direct writes: the
	// next commits go through the page cache and fdatasync, and succeed.
	for i := 0; i < 5; i++ {
		if err := m.appendSome(); err != nil {
			t.Fatalf("append after the failed flush: %v", err)
		}
	}
	m.checkDurable()
	_, ds2, s2 := count()
	if st := m.b.Stats(); st.DirectCommits != 20 || st.WriteErrors != 1 || ds2 != ds1 || s2-s1 != 5 {
		t.Fatalf("after the failed flush: %d direct commits, %d write errors, %d more synced by their write, %d fdatasyncs; want 20, 1, 0, 5",
			st.DirectCommits, st.WriteErrors, ds2-ds1, s2-s1)
	}
	m.fs.clear()
	m.powerLossThenFinish()
}

// TestDirectWithoutDSync: on a kernel that refused RWF_DSYNC (noDSync),
// a direct write still writes, and says it did not sync, so the caller
// runs fdatasync.
func TestDirectWithoutDSync(t *testing.T) {
	dir := t.TempDir()
	if !takesDirect(t, dir) {
		if testenv.InCI() {
			t.Fatalf("CI=true: %s refuses O_DIRECT", dir)
		}
		t.Skipf("%s refuses O_DIRECT", dir)
	}
	st, err := osFS{}.Create(filepath.Join(dir, "seg"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fst := st.(*fileStorage)
	p := alignedBuf(nil, 2*directBlock)
	for i := range p {
		p[i] = byte(i)
	}
	for _, noDSync := range []bool{false, true} {
		fst.noDSync = noDSync
		synced, err := fst.writeDirect(p, directBlock, true)
		if err != nil || synced == noDSync {
			t.Fatalf("noDSync %v: synced %v, err %v", noDSync, synced, err)
		}
		got := make([]byte, len(p))
		if _, err := fst.ReadAt(got, directBlock); err != nil || string(got) != string(p) {
			t.Fatalf("noDSync %v: read back %v, differs %v", noDSync, err, string(got) != string(p))
		}
	}
}
