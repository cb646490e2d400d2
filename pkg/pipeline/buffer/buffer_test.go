package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fileSegID is the id in a segment file's name.
func fileSegID(t *testing.T, path string) uint64 {
	t.Helper()
	var id uint64
	if _, err := fmt.Sscanf(filepath.Base(path), "seg-%d.log", &id); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return id
}

func rec(i int) Record {
	return Record{
		ID:     fmt.Sprintf("id-%06d", i),
		Tag:    "app.test",
		Sec:    1700000000 + int64(i),
		Nsec:   uint32(i),
		Ingest: int64(i) * 7,
		Doc:    []byte(fmt.Sprintf(`{"n":%d,"msg":"%s"}`, i, bytes.Repeat([]byte("x"), i%50))),
	}
}

func open(t *testing.T, o Options) *Buffer {
	t.Helper()
	b, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// drain takes everything currently available and returns it, acking when
// ack is set.
func drain(t *testing.T, b *Buffer, ack bool) []Record {
	t.Helper()
	var all []Record
	for {
		if b.Stats().Undelivered == 0 {
			return all
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := b.Next(ctx, 100, 1<<20, 0)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Corrupt != nil {
				t.Fatalf("corrupt record: %v", r.Corrupt)
			}
			if ack {
				b.Ack(r.Pos)
			}
		}
		all = append(all, recs...)
	}
}

func checkSame(t *testing.T, got []Record, want []int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		w := rec(want[i])
		if r.ID != w.ID || r.Tag != w.Tag || r.Sec != w.Sec || r.Nsec != w.Nsec || r.Ingest != w.Ingest || !bytes.Equal(r.Doc, w.Doc) {
			t.Fatalf("record %d: got %+v want %+v", i, r, w)
		}
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func appendN(t *testing.T, b *Buffer, from, to int) {
	t.Helper()
	var recs []Record
	for i := from; i < to; i++ {
		recs = append(recs, rec(i))
	}
	if err := b.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

func TestAppendNextAckDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	b := open(t, Options{Dir: dir, SegmentBytes: 4096, MaxBytes: 1 << 20})
	for i := 0; i < 500; i += 10 {
		appendN(t, b, i, i+10)
	}
	st := b.Stats()
	if st.Records != 500 || st.Segments < 5 {
		t.Fatalf("stats after append: %+v", st)
	}
	got := drain(t, b, true)
	checkSame(t, got, seq(0, 500))
	st = b.Stats()
	if st.Records != 0 || st.Segments != 1 || st.Acked != 500 {
		t.Fatalf("stats after ack: %+v", st)
	}
	b.removeWG.Wait() // segment files are unlinked (or kept) in the background
	files, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	// The active segment, perhaps a spare, and files kept for reuse.
	b.mu.Lock()
	kept := len(b.reusable)
	b.mu.Unlock()
	if len(files) < 1 || len(files) > 2+kept {
		t.Fatalf("segment files left: %v (%d kept for reuse)", files, kept)
	}
	b.Close()
	// The active segment, and the kept files emptied: the next Open
	// keeps them for reuse (the active one too, all its records being
	// acknowledged, unless it is a plain file shorter than a segment)
	// and has nothing to deliver.
	kept = min(kept, keptAtClose) // Close removes the others
	if files, _ = filepath.Glob(filepath.Join(dir, "seg-*.log")); len(files) != 1+kept {
		t.Fatalf("segment files after Close: %v (%d kept)", files, kept)
	}
	b2 := open(t, Options{Dir: dir, SegmentBytes: 4096, MaxBytes: 1 << 20})
	if rc := b2.Recovery(); rc.Records != 0 || rc.KeptForReuse < kept || rc.KeptForReuse+rc.Removed != 1+kept || rc.CorruptRegions != 0 || rc.TruncatedBytes != 0 {
		t.Fatalf("recovery %+v, want %d files kept and nothing else", rc, 1+kept)
	}
}

func TestRecoveryReplaysUnacked(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Options{Dir: dir, SegmentBytes: 4096, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 0, 300)
	ctx := context.Background()
	// Ack the first 100 in order and a few later ones out of order.
	recs, _ := b.Next(ctx, 100, 1<<20, 0)
	for len(recs) < 100 {
		more, _ := b.Next(ctx, 100-len(recs), 1<<20, 0)
		recs = append(recs, more...)
	}
	for _, r := range recs {
		b.Ack(r.Pos)
	}
	rest := drain(t, b, false)
	b.Ack(rest[5].Pos)
	b.Close()

	b2 := open(t, Options{Dir: dir, SegmentBytes: 4096, MaxBytes: 1 << 20})
	rc := b2.Recovery()
	if rc.TruncatedBytes != 0 {
		t.Fatalf("recovery cut bytes on a clean shutdown: %+v", rc)
	}
	got := drain(t, b2, true)
	// The acknowledged prefix is never replayed; an out-of-order ack may be
	// (the output answers it with 409).
	var ids []int
	for _, r := range got {
		var n int
		fmt.Sscanf(r.ID, "id-%d", &n)
		ids = append(ids, n)
	}
	want := seq(100, 300)
	wantNo5 := append(seq(100, 105), seq(106, 300)...)
	if fmt.Sprint(ids) != fmt.Sprint(want) && fmt.Sprint(ids) != fmt.Sprint(wantNo5) {
		t.Fatalf("replayed %v", ids)
	}
	checkSame(t, got[:5], seq(100, 105))
}

// TestTornTail cuts the last segment at every kind of point and appends
// garbage: recovery must keep exactly the intact records before the cut.
func TestTornTail(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 40; trial++ {
		dir := t.TempDir()
		b, err := Open(Options{Dir: dir, SegmentBytes: 1 << 20, MaxBytes: 1 << 24})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i += 5 {
			appendN(t, b, i, i+5)
		}
		b.Close()
		files, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
		sort.Strings(files)
		last := files[len(files)-1]
		data, _ := os.ReadFile(last)
		cut := rng.Intn(len(data) + 1)
		data = data[:cut]
		if trial%3 == 0 {
			junk := make([]byte, rng.Intn(64))
			rng.Read(junk)
			data = append(data, junk...)
		}
		if trial%5 == 0 && cut > 20 {
			data[cut-3] ^= 0xff // flip a bit inside the last kept bytes
		}
		os.WriteFile(last, data, 0o600)

		// Expected: the records whose frame ends at or before the cut and
		// are intact.
		sc, err := scanSegmentData(bytes.NewReader(data), int64(len(data)), 1<<20, fileSegID(t, last))
		if err != nil {
			t.Fatal(err)
		}
		ends := sc.ends
		b2, err := Open(Options{Dir: dir, SegmentBytes: 1 << 20, MaxBytes: 1 << 24})
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		got := drain(t, b2, false)
		if len(got) != len(ends) {
			t.Fatalf("trial %d: %d records after recovery, scan says %d", trial, len(got), len(ends))
		}
		checkSame(t, got, seq(0, len(ends)))
		// New appends after recovery land after the intact prefix.
		appendN(t, b2, 1000, 1003)
		more := drain(t, b2, false)
		checkSame(t, more, seq(1000, 1003))
		b2.Close()
		b3 := open(t, Options{Dir: dir, SegmentBytes: 1 << 20, MaxBytes: 1 << 24})
		all := drain(t, b3, false)
		checkSame(t, all, append(seq(0, len(ends)), seq(1000, 1003)...))
		b3.Close()
	}
}

// TestGroupCommit runs many concurrent appenders: each returns only after
// its record is durable, and one fsync covers many of them.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	b := open(t, Options{Dir: dir, MaxBytes: 1 << 26})
	const workers, per = 32, 40
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				n := w*per + i
				if err := b.Append(context.Background(), []Record{rec(n)}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	st := b.Stats()
	if st.Appended != workers*per {
		t.Fatalf("appended %d", st.Appended)
	}
	if st.Commits >= st.Appended {
		t.Fatalf("no group commit: %d fsyncs for %d appends", st.Commits, st.Appended)
	}
	t.Logf("%d appends in %d fsyncs", st.Appended, st.Commits)
	// Every acknowledged append is on disk: a fresh Open (as after a crash,
	// without Close) finds them all.
	b2, err := Open(Options{Dir: dir, MaxBytes: 1 << 26})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	got := drain(t, b2, false)
	if len(got) != workers*per {
		t.Fatalf("reopened buffer has %d records", len(got))
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.ID] = true
	}
	if len(seen) != workers*per {
		t.Fatalf("distinct ids %d", len(seen))
	}
}

func TestFullBackpressure(t *testing.T) {
	b := open(t, Options{Memory: true, MaxBytes: 64 << 10, SegmentBytes: 4096})
	n := 0
	var err error
	for ; n < 10000; n++ {
		if err = b.Append(context.Background(), []Record{rec(n)}); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("append %d: %v, want ErrFull", n, err)
	}
	if b.Stats().Bytes > 64<<10 {
		t.Fatalf("buffer holds %d bytes over its limit", b.Stats().Bytes)
	}
	// With FullWait, an append blocks until acks free a segment.
	b.opts.FullWait = 5 * time.Second
	done := make(chan error, 1)
	go func() { done <- b.Append(context.Background(), []Record{rec(n)}) }()
	select {
	case err := <-done:
		t.Fatalf("append returned %v while full", err)
	case <-time.After(50 * time.Millisecond):
	}
	drain(t, b, true)
	if err := <-done; err != nil {
		t.Fatalf("append after drain: %v", err)
	}
}

func TestNextLingerAndClose(t *testing.T) {
	b := open(t, Options{Memory: true})
	appendN(t, b, 0, 3)
	recs, err := b.Next(context.Background(), 10, 1<<20, 20*time.Millisecond)
	if err != nil || len(recs) != 3 {
		t.Fatalf("linger: %d %v", len(recs), err)
	}
	go func() { time.Sleep(20 * time.Millisecond); b.Close() }()
	if _, err := b.Next(context.Background(), 10, 1<<20, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if err := b.Append(context.Background(), []Record{rec(1)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

func TestWait(t *testing.T) {
	b := open(t, Options{Memory: true})
	appendN(t, b, 0, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx); err == nil {
		t.Fatal("Wait returned with unacknowledged records")
	}
	drain(t, b, true)
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// FuzzScan reads arbitrary bytes as segment 1.
func FuzzScan(f *testing.F) {
	seal := sealOf(1)
	segOf := func(magic []byte, format int) []byte {
		seg := append([]byte(nil), magic...)
		for i := 0; i < 3; i++ {
			r := rec(i)
			seg, _ = appendRecordFormat(seg, &r, format, seal)
		}
		// A record stored as the shipper sent it (version 2).
		raw := Record{Tag: "app.test", Sec: 1700000000, Raw: true, Doc: []byte{0x81, 0xa1, 'n', 1}}
		seg, _ = appendRecordFormat(seg, &raw, format, seal)
		if format == formatV3 {
			// A forward request's events: a group frame.
			group := []Record{raw, raw, raw}
			group[1].Sec, group[2].ID = 1700000001, "id-2"
			_, plen := nextGroup(group, 1<<16)
			seg = appendGroup(seg, group, plen, seal)
		}
		return seg
	}
	seg := segOf(segmentMagic, formatV3)
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add(segOf(segmentMagicV2, formatV2))
	// A reused file: a terminator, then frames of the segment it held
	// before.
	reused := append(segOf(segmentMagicReused, formatV3), make([]byte, frameHeaderLen)...)
	old := segOf(segmentMagic, formatV3)
	reused = append(reused, old[len(segmentMagic):]...)
	f.Add(reused)
	f.Add(append([]byte{}, segmentMagic...))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := scanSegmentData(bytes.NewReader(data), int64(len(data)), 1<<16, 1)
		if err != nil {
			t.Fatal(err)
		}
		good := sc.end
		if good > int64(len(data)) {
			t.Fatalf("intact prefix %d beyond %d bytes", good, len(data))
		}
		prev := uint32(len(segmentMagic))
		for i := 0; i < len(sc.ends); {
			e := sc.ends[i]
			start := uint32(sc.start(i))
			if start < prev || e <= start || int64(e) > good {
				t.Fatalf("bad record [%d, %d) after %d (good %d)", start, e, prev, good)
			}
			recs, n, err := appendFrameRecords(nil, sc.format, seal, data[start:e], 1<<16, 0)
			if err != nil || n != int(e-start) {
				t.Fatalf("record at %d: %v", start, err)
			}
			// The scan counted the frame's records, a group's all of them.
			k := 1
			for i+k < len(sc.ends) && sc.ends[i+k] == e {
				k++
			}
			if len(recs) != k {
				t.Fatalf("frame at %d: %d records, scanned as %d", start, len(recs), k)
			}
			// Re-encoding gives the same bytes.
			var again []byte
			switch {
			case sc.format == formatV1:
				again = data[start:e]
			case data[start+frameHeaderLen] == recordVersionGroup:
				_, plen := nextGroup(recs, 1<<16)
				again = appendGroup(nil, recs, plen, seal)
			default:
				again, _ = appendRecordFormat(nil, &recs[0], sc.format, seal)
			}
			if !bytes.Equal(again, data[start:e]) {
				t.Fatalf("re-encoded record differs")
			}
			prev = e
			i += k
		}
		checkScanCovers(t, sc, data)
	})
}

// TestCheckpointAheadOfSegments: with the checkpoint naming a segment that
// no longer exists, new segments are numbered above it and survive the
// next recovery.
func TestCheckpointAheadOfSegments(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "checkpoint"), []byte(`{"segment":57,"index":3}`), 0o600)
	b, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 0, 5)
	b.Close()
	b2 := open(t, Options{Dir: dir})
	checkSame(t, drain(t, b2, false), seq(0, 5))
}

// TestRecoverWithSpare: a copy of the directory taken while the buffer
// runs (as after a crash) holds zero-filled spare segments and a
// preallocated active one; recovery finds exactly the appended records.
func TestRecoverWithSpare(t *testing.T) {
	dir := t.TempDir()
	b := open(t, Options{Dir: dir, SegmentBytes: 8192, MaxBytes: 1 << 24})
	for i := 0; i < 400; i += 4 {
		appendN(t, b, i, i+4)
	}
	snap := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(snap, filepath.Base(f)), data, 0o600)
	}
	if b.Stats().Segments < 4 {
		t.Fatalf("only %d segments: no rotation exercised", b.Stats().Segments)
	}
	b2 := open(t, Options{Dir: snap, SegmentBytes: 8192, MaxBytes: 1 << 24})
	if rc := b2.Recovery(); rc.TruncatedBytes != 0 || rc.Records != 400 {
		t.Fatalf("recovery %+v", rc)
	}
	checkSame(t, drain(t, b2, false), seq(0, 400))
}

// TestCommitsEndOnPageBoundaries: over a preallocated segment every
// commit writes on with zeros to a page boundary, so no write ends inside
// a page the page cache lacks (the filesystem would read the block from
// disk first, in every commit); the zeros change nothing: the records
// read back, and again after a restart.
func TestCommitsEndOnPageBoundaries(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	const segBytes = 64<<10 + 100
	o := Options{Dir: dir, SegmentBytes: segBytes, MaxBytes: 1 << 24, fs: fs}
	b := open(t, o)
	for i := 0; i < 3000; i += 7 {
		appendN(t, b, i, i+7)
	}
	checkSame(t, drain(t, b, false), seq(0, 3003))
	b.Close()

	commits := 0
	for path, ws := range fs.writes {
		if len(ws) == 0 || ws[0] != [2]int64{int64(len(segmentMagic)), segBytes} {
			continue // not preallocated (a plain segment)
		}
		for _, w := range ws[1:] {
			commits++
			if w[1]%pageSize != 0 && w[1] != segBytes {
				t.Fatalf("%s: a commit wrote [%d, %d), ending inside a page", filepath.Base(path), w[0], w[1])
			}
		}
	}
	if commits < 100 {
		t.Fatalf("only %d commits to preallocated segments: the case is not exercised", commits)
	}
	b2 := open(t, o)
	if rc := b2.Recovery(); rc.Records != 3003 || rc.TruncatedBytes != 0 || rc.CorruptRecords != 0 {
		t.Fatalf("recovery %+v", rc)
	}
	checkSame(t, drain(t, b2, false), seq(0, 3003))
}

// TestCommitTerminator: after its frames a commit writes zeros, a frame
// header's worth at least, up to a page boundary and never past the
// file's blocks: in a reused file they are what recovery stops at, and
// the leftover after them stays as it was. The next commit starts where
// the data ends, over the terminator. The same through the page cache
// (memory storage) and around it (a file that takes O_DIRECT), where the
// committed bytes of the first block are written again unchanged.
func TestCommitTerminator(t *testing.T) {
	const alloc = 3 * pageSize
	const start = 100
	leftover := bytes.Repeat([]byte{0xaa}, alloc) // an earlier segment's
	for _, file := range []bool{false, true} {
		for _, end := range []int64{pageSize - 100, pageSize - frameHeaderLen - 1, pageSize - frameHeaderLen, pageSize - 8, pageSize, pageSize + 100, alloc - 8, alloc + 50} {
			var st storage
			read := func() []byte { return st.(*memStorage).data }
			if file {
				path := filepath.Join(t.TempDir(), "seg")
				if err := os.WriteFile(path, leftover, 0o600); err != nil {
					t.Fatal(err)
				}
				fst, err := osFS{}.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer fst.Close()
				st = fst
				read = func() []byte {
					data, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					return data
				}
			} else {
				m := &memStorage{}
				m.Write(leftover)
				st = m
			}
			seg := &segment{st: st, allocEnd: alloc, lastPage: append(make([]byte, 0, directBlock), leftover[:start]...)}
			b := &Buffer{}
			p := &pendingBatch{buf: bytes.Repeat([]byte{1}, int(end-start))}
			if err := b.writeBatch(p, seg, start); err != nil {
				t.Fatal(err)
			}
			data := read()
			zerosTo := end
			for zerosTo < int64(len(data)) && data[zerosTo] == 0 {
				zerosTo++
			}
			want := min(alignUp(end+frameHeaderLen, pageSize), alloc)
			if end >= alloc {
				want = end // past the blocks: nothing to pad, the file ends there
			}
			if zerosTo != want || int64(len(data)) != max(alloc, end) || !bytes.Equal(data[:start], leftover[:start]) {
				t.Fatalf("file %v, batch ending at %d: zeros to %d, want %d; file %d bytes; first %d bytes changed %v",
					file, end, zerosTo, want, len(data), start, !bytes.Equal(data[:start], leftover[:start]))
			}
			if wantDirect := file && end < alloc && takesDirect(t, os.TempDir()); p.direct != wantDirect {
				t.Fatalf("file %v, batch ending at %d: direct %v, want %v", file, end, p.direct, wantDirect)
			}
			p2 := &pendingBatch{buf: bytes.Repeat([]byte{2}, 10)}
			if err := b.writeBatch(p2, seg, end); err != nil {
				t.Fatal(err)
			}
			data = read()
			if !bytes.Equal(data[start:end], p.buf) || !bytes.Equal(data[end:end+10], p2.buf) {
				t.Fatalf("file %v, batch ending at %d: the next commit did not go on from there", file, end)
			}
		}
	}
}

// TestRawRecordsKeepTheirKind: a record stored as the shipper sent it
// (Raw, no id) comes back as one, next to ordinary records, and again
// after a restart, so its reader knows to make the document and the id.
func TestRawRecordsKeepTheirKind(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 4096, MaxBytes: 1 << 20}
	b, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	var want []Record
	for i := 0; i < 50; i++ {
		r := rec(i)
		if i%3 != 0 {
			r.ID, r.Raw, r.Doc = "", true, []byte{0x81, 0xa1, 'n', byte(i)}
		}
		want = append(want, r)
	}
	if err := b.Append(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	check := func(got []Record) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("got %d records, want %d", len(got), len(want))
		}
		for i, r := range got {
			w := want[i]
			if r.Raw != w.Raw || r.ID != w.ID || r.Tag != w.Tag || r.Sec != w.Sec || r.Nsec != w.Nsec || !bytes.Equal(r.Doc, w.Doc) {
				t.Fatalf("record %d: got %+v want %+v", i, r, w)
			}
		}
	}
	check(drain(t, b, false))
	b.Close()
	b2 := open(t, o)
	if rc := b2.Recovery(); rc.CorruptRecords != 0 || rc.TruncatedBytes != 0 {
		t.Fatalf("recovery: %+v", rc)
	}
	check(drain(t, b2, true))
}

// TestPreallocateZeros: a preallocated segment is its magic and zeros up
// to SegmentBytes (an end that is not block-aligned included), on a
// disk filesystem (the test directory: blocks reserved, nothing through
// the page cache) and on tmpfs.
func TestPreallocateZeros(t *testing.T) {
	const segBytes = 3<<20 + 100
	for _, dir := range testDirs(t) {
		b := open(t, Options{Dir: dir, SegmentBytes: segBytes, MaxBytes: 64 * segBytes})
		seg, err := b.createSegment(1000, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { seg.st.Remove() })
		// Look at the page cache before reading the file fills it.
		resident := residentPages(t, seg.path, segBytes)
		data, err := os.ReadFile(seg.path)
		if err != nil {
			t.Fatal(err)
		}
		nonZero := bytes.ContainsFunc(data[len(segmentMagic):], func(r rune) bool { return r != 0 })
		if len(data) != segBytes || !bytes.Equal(data[:len(segmentMagic)], segmentMagic) || nonZero {
			t.Fatalf("%s: %d bytes (want %d), magic %q, non-zero bytes after it: %v", dir, len(data), segBytes,
				data[:len(segmentMagic)], nonZero)
		}
		var fs unix.Statfs_t
		if err := unix.Statfs(dir, &fs); err != nil {
			t.Fatal(err)
		}
		if fs.Type == unix.TMPFS_MAGIC {
			t.Logf("%s: tmpfs keeps every page in memory (%d resident)", dir, resident)
			continue
		}
		// The head block and the unaligned tail are written through the
		// cache; everything between went around it.
		if resident > 2 {
			t.Fatalf("%s: %d of %d pages in the page cache after preallocating: the zeros went through it",
				dir, resident, (segBytes+directBlock-1)/directBlock)
		}
	}
}

// residentPages counts the pages of the file's first size bytes that sit
// in the page cache.
func residentPages(t *testing.T, path string, size int) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (size+os.Getpagesize()-1)/os.Getpagesize())
	// x/sys/unix has no mincore wrapper.
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestFirstSegmentPreallocated: the segment Open starts is preallocated
// like the spares after it (commits into a plain file made every
// fdatasync write the file's new size and blocks, 5-36 ms at the start of
// each run), and a preallocation that fails (a full disk) leaves a plain
// segment rather than no buffer.
func TestFirstSegmentPreallocated(t *testing.T) {
	const segBytes = 64<<10 + 100
	for _, failing := range []bool{false, true} {
		dir := t.TempDir()
		fs := newFaultFS()
		if failing {
			fs.inject("write", fault{err: unix.ENOSPC})
		}
		b := open(t, Options{Dir: dir, SegmentBytes: segBytes, MaxBytes: 1 << 24, fs: fs})
		fs.clear()
		appendN(t, b, 0, 10)
		checkSame(t, drain(t, b, false), seq(0, 10))
		b.Close()
		fs.mu.Lock()
		ws := fs.writes[filepath.Join(dir, segName(1))]
		fs.mu.Unlock()
		if prealloc := len(ws) > 0 && ws[0] == [2]int64{int64(len(segmentMagic)), segBytes}; prealloc == failing {
			t.Fatalf("preallocation failing %v: first segment preallocated %v (writes %v)", failing, prealloc, ws)
		}
		if got, want := b.Stats().PlainSegments, map[bool]uint64{false: 0, true: 1}[failing]; got != want {
			t.Fatalf("preallocation failing %v: Stats.PlainSegments %d, want %d", failing, got, want)
		}
	}
}

// TestOnCommitTellsDurableCommits: OnCommit hears of every commit that
// made records durable, with their bytes and a duration, and of none that
// failed.
func TestOnCommitTellsDurableCommits(t *testing.T) {
	type told struct {
		d     time.Duration
		bytes int
	}
	var mu sync.Mutex
	var got []told
	fs := newFaultFS()
	b := open(t, Options{Dir: t.TempDir(), MaxBytes: 1 << 24, SegmentBytes: 1 << 20, fs: fs,
		OnCommit: func(d time.Duration, bytes int) {
			mu.Lock()
			got = append(got, told{d, bytes})
			mu.Unlock()
		}})
	// appendN appends n records from from, one commit, and returns their
	// framed size.
	appendN := func(from, n int) (int, error) {
		recs := make([]Record, n)
		size := 0
		for i := range recs {
			recs[i] = rec(from + i)
			size += encodedLen(&recs[i])
		}
		return size, b.Append(context.Background(), recs)
	}
	var want []int
	for i := range 3 {
		size, err := appendN(10*i, i+1)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, size)
	}
	fs.inject("sync", fault{err: errIO})
	if _, err := appendN(100, 4); err == nil {
		t.Fatal("append succeeded with fdatasync failing")
	}
	fs.clear()
	size, err := appendN(200, 5)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, size)
	mu.Lock()
	defer mu.Unlock()
	st := b.Stats()
	if uint64(len(got)) != st.Commits || len(got) != len(want) {
		t.Fatalf("OnCommit told %d commits, Stats.Commits %d; want %d (the failed one untold)", len(got), st.Commits, len(want))
	}
	total := 0
	for i, c := range got {
		if c.d <= 0 || c.bytes != want[i] {
			t.Errorf("commit %d: %d bytes in %v, want %d bytes", i, c.bytes, c.d, want[i])
		}
		total += c.bytes
	}
	if uint64(total) != st.AppendedBytes {
		t.Fatalf("told %d bytes; the buffer appended %d", total, st.AppendedBytes)
	}
}

// allocStorage is a segment file whose allocate fails with err (none when
// nil), counting the writes that reach it.
type allocStorage struct {
	*fileStorage
	err       error
	allocated bool
	writes    int
}

func (s *allocStorage) allocate(from, to int64) error {
	if s.err != nil {
		return &os.PathError{Op: "fallocate", Path: s.path, Err: s.err}
	}
	s.allocated = true
	return s.fileStorage.allocate(from, to)
}

func (s *allocStorage) Write(p []byte) (int, error) {
	s.writes++
	return s.fileStorage.Write(p)
}

func (s *allocStorage) writeZerosDirect(from, to int64) int64 {
	s.writes++
	return s.fileStorage.writeZerosDirect(from, to)
}

// TestPreallocateReservesOrWritesZeros: a file's preallocation reserves
// the blocks without writing them; where the filesystem cannot reserve
// (EOPNOTSUPP) the zeros are written instead; on a full disk it fails
// and writes nothing. Either way what succeeds reads as zeros to the end.
func TestPreallocateReservesOrWritesZeros(t *testing.T) {
	const from, to = 4096, 3<<20 + 100
	for _, c := range []struct {
		name   string
		err    error
		fails  bool
		writes bool
	}{
		{"reserved", nil, false, false},
		{"not supported", unix.EOPNOTSUPP, false, true},
		{"disk full", unix.ENOSPC, true, false},
	} {
		path := filepath.Join(t.TempDir(), "seg")
		st, err := osFS{}.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		s := &allocStorage{fileStorage: st.(*fileStorage), err: c.err}
		err = preallocate(s, from, to)
		if (err != nil) != c.fails || (c.fails && !errors.Is(err, unix.ENOSPC)) {
			t.Fatalf("%s: preallocate = %v", c.name, err)
		}
		if (s.writes > 0) != c.writes || (c.err == nil) != s.allocated {
			t.Fatalf("%s: %d writes, reserved %v", c.name, s.writes, s.allocated)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.fails {
			if fi.Size() != 0 {
				t.Fatalf("%s: %d bytes after a failed preallocation", c.name, fi.Size())
			}
			continue
		}
		data, _ := os.ReadFile(path)
		if fi.Size() != to || bytes.ContainsFunc(data, func(r rune) bool { return r != 0 }) {
			t.Fatalf("%s: %d bytes (want %d), all zeros %v", c.name, fi.Size(), to, !bytes.ContainsFunc(data, func(r rune) bool { return r != 0 }))
		}
		if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks < to-from {
			t.Fatalf("%s: %d bytes of blocks held, want the %d preallocated", c.name, blocks, to-from)
		}
		st.Close()
	}
}

// TestPlainSegmentsCounted: a rotation to the spare starts no plain
// segment; one while the spare is not ready does, and
// Stats.PlainSegments counts it.
func TestPlainSegmentsCounted(t *testing.T) {
	for _, drop := range []bool{false, true} {
		const segBytes = 64 << 10
		b := open(t, Options{Dir: t.TempDir(), SegmentBytes: segBytes, MaxBytes: 1 << 24})
		doc := bytes.Repeat([]byte("x"), 1000)
		add := func(i int) {
			t.Helper()
			if err := b.Append(context.Background(), []Record{{ID: fmt.Sprint(i), Tag: "t", Doc: doc}}); err != nil {
				t.Fatal(err)
			}
		}
		i := 0
		for ; b.Stats().AppendedBytes <= segBytes/4+2000; i++ {
			add(i)
		}
		// The spare is on its way; wait for it. Held back, it is not
		// ready at the rotation; handed over afterwards, it is discarded.
		r := <-b.spare
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !drop {
			b.spare <- r
		}
		for start := b.Stats().Segments; b.Stats().Segments == start; i++ {
			add(i)
		}
		if drop {
			b.spare <- r
		}
		if got, want := b.Stats().PlainSegments, map[bool]uint64{false: 0, true: 1}[drop]; got != want {
			t.Fatalf("spare dropped %v: Stats.PlainSegments %d, want %d", drop, got, want)
		}
	}
}

// ackBacklog appends records [from, to) five at a time and only then
// acknowledges them all, as delivery does after a burst: their segments'
// files are kept for reuse. It returns how many files are kept.
func ackBacklog(t *testing.T, b *Buffer, from, to int) int {
	t.Helper()
	for i := from; i < to; i += 5 {
		appendN(t, b, i, min(i+5, to))
	}
	drain(t, b, true)
	b.removeWG.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reusable)
}

// TestReusedFiles: files of fully acknowledged segments become the next
// segments (as many wait as fit in MaxBytes), and what is written into them
// reads back alone after a clean restart and after a power loss: the
// earlier segments' frames past the data never come back, and nothing is
// reported damaged or torn.
func TestReusedFiles(t *testing.T) {
	for _, powerLoss := range []bool{false, true} {
		t.Run(fmt.Sprint("power loss ", powerLoss), func(t *testing.T) {
			dir := t.TempDir()
			fs := newFaultFS()
			// Segments of four pages: a commit's terminator ends at a page
			// boundary, and the leftover past it shows.
			opts := Options{Dir: dir, SegmentBytes: 4 * pageSize, MaxBytes: 1 << 20, fs: fs}
			b := open(t, opts)
			for i := 0; i < 2000; i += 5 {
				appendN(t, b, i, i+5)
				drain(t, b, true)
			}
			ackBacklog(t, b, 2000, 3000)
			// Not acknowledged, until they fill a segment made of a reused
			// file and go on into the next one.
			b.removeWG.Wait()
			before := b.Stats().ReusedSegments
			n := 3000
			for ; b.Stats().ReusedSegments < before+1 || n < 3030; n += 5 {
				if n > 4000 {
					t.Fatal("no segment was made of a reused file")
				}
				appendN(t, b, n, n+5)
			}
			appendN(t, b, n, n+5)
			n += 5
			st := b.Stats()
			b.mu.Lock()
			kept := len(b.reusable)
			var reusedData bool
			for _, seg := range b.segs {
				reusedData = reusedData || seg.reused && len(seg.ends) > 0
			}
			b.mu.Unlock()
			if st.ReusedSegments < 5 || kept == 0 || st.Bytes+int64(kept)*opts.SegmentBytes > opts.MaxBytes || !reusedData {
				t.Fatalf("%d segments in reused files (one with records %v), %d files kept", st.ReusedSegments, reusedData, kept)
			}
			b.Close()
			if powerLoss {
				// After Close: the checkpoint is written, so nothing
				// acknowledged is replayed; what a power loss keeps is
				// what was synced, directory entries included.
				dir = fs.snapshot(t, dir, true, rand.New(rand.NewSource(1)))
				opts.Dir, opts.fs = dir, nil
			}
			b2 := open(t, opts)
			if rc := b2.Recovery(); rc.CorruptRegions != 0 || rc.TruncatedBytes != 0 || rc.Replay != n-3000 {
				t.Fatalf("recovery %+v, damage %+v", rc, b2.Corruptions())
			}
			checkSame(t, drain(t, b2, false), seq(3000, n))
			// The files kept at Close are kept again: the first new
			// segments are made of them, before anything is delivered.
			if rc := b2.Recovery(); rc.KeptForReuse < min(kept, keptAtClose) {
				t.Fatalf("recovery %+v: %d files were kept before Close", rc, kept)
			}
			// The first one at Open already.
			if b2.Stats().ReusedSegments != 1 {
				t.Fatalf("%d segments made of kept files at Open", b2.Stats().ReusedSegments)
			}
			b2.mu.Lock()
			first := b2.segs[len(b2.segs)-1]
			b2.mu.Unlock()
			if !first.reused {
				t.Fatal("the segment Open started is not made of a kept file")
			}
			for i := n; b2.Stats().ReusedSegments < 2; i += 5 {
				if i > n+2000 {
					t.Fatal("no spare made of a kept file")
				}
				appendN(t, b2, i, i+5)
			}
		})
	}
}

// TestReusedFilesWithinMaxBytes: files kept for reuse give their room
// back as unacknowledged records fill the buffer: the segment files on
// disk never exceed MaxBytes plus the spare and the active segment's
// overshoot.
func TestReusedFilesWithinMaxBytes(t *testing.T) {
	dir := t.TempDir()
	const maxBytes, segBytes = 64 << 10, 4096
	b := open(t, Options{Dir: dir, SegmentBytes: segBytes, MaxBytes: maxBytes})
	onDisk := func() int64 {
		b.removeWG.Wait()
		files, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
		var n int64
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	// (Fewer than the backlog's segments: with segments this small a
	// rotation often finds its spare not ready and takes a plain file,
	// too short to keep.)
	if kept := ackBacklog(t, b, 0, 500); kept < 2 {
		t.Fatalf("%d files kept for reuse after a backlog of 500 records was acknowledged", kept)
	}
	// Now nothing is acknowledged until the buffer is full.
	for i := 1500; ; i += 5 {
		if i == 1500 && onDisk() > maxBytes+2*segBytes {
			t.Fatalf("%d bytes of segment files with the buffer empty, limit %d", onDisk(), maxBytes)
		}
		var recs []Record
		for j := i; j < i+5; j++ {
			recs = append(recs, rec(j))
		}
		err := b.Append(context.Background(), recs)
		if got := onDisk(); got > maxBytes+2*segBytes {
			t.Fatalf("after %d records: %d bytes of segment files, limit %d", i-1500, got, maxBytes)
		}
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i > 10000 {
			t.Fatal("the buffer never filled up")
		}
	}
}

// TestReuseFailureFallsBack: when a kept file cannot be made the next
// segment (its rename fails here), the spare is a new file instead, the
// kept file is removed rather than leaked, and no append notices.
func TestReuseFailureFallsBack(t *testing.T) {
	dir := t.TempDir()
	fs := newFaultFS()
	b := open(t, Options{Dir: dir, SegmentBytes: 4 * pageSize, MaxBytes: 1 << 20, fs: fs})
	kept := ackBacklog(t, b, 0, 600)
	if kept < 2 {
		t.Fatalf("%d files kept", kept)
	}
	fs.inject("rename", fault{err: errIO})
	before := b.Stats()
	for i := 600; b.Stats().Segments < 3; i += 5 {
		if i > 5000 {
			t.Fatal("no rotation")
		}
		appendN(t, b, i, i+5)
	}
	fs.clear()
	st := b.Stats()
	b.mu.Lock()
	left := len(b.reusable)
	b.mu.Unlock()
	if st.ReusedSegments != before.ReusedSegments || st.PlainSegments != before.PlainSegments || st.WriteErrors != 0 {
		t.Fatalf("stats %+v after %+v", st, before)
	}
	if left >= kept {
		t.Fatalf("%d files kept before, %d after reuse failed: the failed one was not removed", kept, left)
	}
	// Close removes an unused spare and empties the files kept (a few:
	// the others it removes): what is left are the live segments and
	// those, nothing else.
	b.Close()
	left = min(left, keptAtClose)
	if files, _ := filepath.Glob(filepath.Join(dir, "seg-*.log")); len(files) != st.Segments+left {
		t.Fatalf("%d segment files after Close for %d segments and %d kept: %v", len(files), st.Segments, left, files)
	}
}

// TestNextIntoReusesMemory: batches taken with one Scratch come in the
// memory of the batch before once it is large enough (no new bytes or
// records), whole and in order, here from the middle of a group frame;
// without a Scratch a batch has memory of its own.
func TestNextIntoReusesMemory(t *testing.T) {
	b := open(t, Options{Dir: t.TempDir(), SegmentBytes: 1 << 20, MaxBytes: 8 << 20})
	var in []Record
	for i := range 100 {
		r := rec(i)
		r.Ingest = 7 // one tag, one ingest time: one group frame
		in = append(in, r)
	}
	if err := b.Append(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	next := func(sc *Scratch, from, to int) []Record {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		recs, err := b.NextInto(ctx, sc, to-from, 1<<20, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != to-from {
			t.Fatalf("%d records, want %d", len(recs), to-from)
		}
		for i, r := range recs {
			if r.ID != in[from+i].ID || !bytes.Equal(r.Doc, in[from+i].Doc) || r.Pos.Idx != uint32(from+i) {
				t.Fatalf("record %d: %+v", from+i, r)
			}
		}
		return recs
	}
	var sc Scratch
	first := next(&sc, 0, 30)
	data, recs := &sc.data[0], &first[0]
	for from := 30; from < 90; from += 30 {
		got := next(&sc, from, from+30)
		if &sc.data[0] != data || &got[0] != recs {
			t.Fatalf("batch from %d: new memory", from)
		}
	}
	// The first batch's records now hold the third's.
	if first[0].ID != in[60].ID {
		t.Fatalf("first record after reuse: %s", first[0].ID)
	}
	if last := next(nil, 90, 100); &last[0] == recs {
		t.Fatal("a batch without a Scratch in the Scratch's memory")
	}
}
