package buffer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// request is a forward request's events as the pipeline appends them:
// one tag and ingest time, stored as sent, no id. Events are numbered
// from, from+1, ...; size pads each record.
func request(from, n, size int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		k := from + i
		doc := fmt.Appendf(nil, "\x82\xa1n\xce%08x\xa3pad\xda%04x", k, size)
		recs[i] = Record{Tag: "app.forward", Sec: 1700000000 + int64(k), Nsec: uint32(k), Ingest: int64(from) * 1000, Raw: true,
			Doc: append(doc, bytes.Repeat([]byte{'a' + byte(k%26)}, size)...)}
	}
	return recs
}

// checkRequests checks that got holds the events of request(from, ...)
// for each from, in order.
func checkRequests(t *testing.T, got []Record, want ...[]Record) {
	t.Helper()
	var all []Record
	for _, w := range want {
		all = append(all, w...)
	}
	if len(got) != len(all) {
		t.Fatalf("got %d records, want %d", len(got), len(all))
	}
	for i, r := range got {
		w := all[i]
		if r.Corrupt != nil || r.ID != w.ID || r.Tag != w.Tag || r.Sec != w.Sec || r.Nsec != w.Nsec || r.Ingest != w.Ingest || r.Raw != w.Raw || !bytes.Equal(r.Doc, w.Doc) {
			t.Fatalf("record %d: got %+v, want %+v", i, r, w)
		}
	}
}

// appendRequests appends each request in turn.
func appendRequests(t *testing.T, b *Buffer, reqs ...[]Record) {
	t.Helper()
	for _, r := range reqs {
		if err := b.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

// frames counts the frames a segment's records are in.
func frames(ends []uint32) int {
	n := 0
	for i, e := range ends {
		if i+1 == len(ends) || ends[i+1] != e {
			n++
		}
	}
	return n
}

// TestGroupFrames: a request's events go into one frame (a group) as long
// as it fits in maxGroupPayload, into several past that; events of mixed
// tags go one per frame. Next hands out a group's records in pieces
// (maxCount smaller than the group), each once, intact and in order; a
// restart replays them all the same.
func TestGroupFrames(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 8 << 20, MaxBytes: 1 << 30}
	b := open(t, o)
	small := request(0, 10, 100)
	large := request(10, 3000, 200) // about 700 KB: three frames
	mixed := request(3010, 4, 50)
	mixed[1].Tag = "other"
	appendRequests(t, b, small, large, mixed)
	st := b.Stats()
	wantBytes := groupedLen(small, 16<<20) + groupedLen(large, 16<<20)
	for i := range mixed {
		wantBytes += encodedLen(&mixed[i])
	}
	if st.Appended != 3014 || st.Records != 3014 || st.AppendedBytes != uint64(wantBytes) {
		t.Fatalf("stats %+v: want 3014 records in %d bytes", st, wantBytes)
	}
	b.mu.Lock()
	seg := b.segs[len(b.segs)-1]
	nFrames := frames(seg.ends)
	b.mu.Unlock()
	if want := 1 + (len(large)*(groupEntryLen+len(large[0].Doc))+maxGroupPayload-1)/maxGroupPayload + len(mixed); nFrames != want {
		t.Fatalf("%d frames, want %d", nFrames, want)
	}
	// Pieces of 7: reads start in the middle of groups.
	var got []Record
	for b.Stats().Undelivered > 0 {
		recs, err := b.Next(context.Background(), 7, 1<<20, 0)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, recs...)
	}
	checkRequests(t, got, small, large, mixed)
	for i, r := range got {
		if r.Pos != (Pos{Seg: seg.id, Idx: uint32(i)}) {
			t.Fatalf("record %d at %+v", i, r.Pos)
		}
	}
	b.Close()
	b2 := open(t, o)
	if rc := b2.Recovery(); rc.Records != 3014 || rc.Replay != 3014 || rc.CorruptRecords != 0 || rc.TruncatedBytes != 0 {
		t.Fatalf("recovery %+v", rc)
	}
	checkRequests(t, drain(t, b2, true), small, large, mixed)
}

// TestGroupCheckpointWholeFrames: with the first records of a group
// acknowledged and the rest not, the checkpoint covers only the groups
// before it, so a restart delivers all of that group again (its
// acknowledged records are replays, 409s in Elasticsearch) and loses
// none of it.
func TestGroupCheckpointWholeFrames(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, CheckpointInterval: time.Hour}
	b := open(t, o)
	a, c := request(0, 10, 100), request(10, 10, 100)
	appendRequests(t, b, a, c)
	recs, err := b.Next(context.Background(), 100, 1<<20, 0)
	if err != nil || len(recs) != 20 {
		t.Fatalf("next: %d records, %v", len(recs), err)
	}
	for _, r := range recs[:14] {
		b.Ack(r.Pos)
	}
	b.writeCheckpoint()
	ck := readCheckpoint(dir)
	b.mu.Lock()
	aEnd := int64(b.segs[0].ends[9])
	b.mu.Unlock()
	if ck.Index != 10 || ck.Offset != aEnd {
		t.Fatalf("checkpoint %+v: want index 10, offset %d (the end of the first group)", ck, aEnd)
	}
	b.Close()
	// Close acknowledged nothing more: the same checkpoint.
	if ck2 := readCheckpoint(dir); ck2 != ck {
		t.Fatalf("checkpoint after close %+v, want %+v", ck2, ck)
	}
	b2 := open(t, o)
	if rc := b2.Recovery(); rc.Records != 20 || rc.Replay != 10 {
		t.Fatalf("recovery %+v: want 20 records, the second group's 10 to replay", rc)
	}
	checkRequests(t, drain(t, b2, true), c)
}

// TestGroupDamaged: a byte changed inside a group frame loses that
// frame's records (counted: the group's declared size) and no other: the
// groups around it are delivered, and the damaged bytes kept in corrupt/.
func TestGroupDamaged(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir}
	b := open(t, o)
	reqs := [][]Record{request(0, 50, 100), request(50, 40, 100), request(90, 30, 100)}
	appendRequests(t, b, reqs...)
	b.mu.Lock()
	seg := b.segs[0]
	from, to := seg.offsetOf(50), int64(seg.ends[50])
	path := seg.path
	b.mu.Unlock()
	b.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// In a record's doc, past the group's header.
	at := (from + to) / 2
	var c [1]byte
	f.ReadAt(c[:], at)
	c[0] ^= 0x5a
	f.WriteAt(c[:], at)
	f.Close()

	b2 := open(t, o)
	rc := b2.Recovery()
	if rc.Records != 80 || rc.CorruptRegions != 1 || rc.CorruptRecords < 40 {
		t.Fatalf("recovery %+v: want 80 intact records, one damaged region of at least 40", rc)
	}
	cs := b2.Corruptions()
	if len(cs) != 1 || cs[0].From != from || cs[0].To != to {
		t.Fatalf("corruptions %+v: want [%d, %d)", cs, from, to)
	}
	kept, err := os.ReadFile(cs[0].Quarantine)
	if err != nil || len(kept) != int(to-from) {
		t.Fatalf("quarantine %s: %d bytes, %v", cs[0].Quarantine, len(kept), err)
	}
	if filepath.Dir(cs[0].Quarantine) != filepath.Join(dir, "corrupt") {
		t.Fatalf("quarantine in %s", cs[0].Quarantine)
	}
	checkRequests(t, drain(t, b2, true), reqs[0], reqs[2])
}

// TestGroupDamagedAfterCommit: a group damaged while the buffer runs is
// handed out as corrupt records, one per event of the group that Next
// reaches, and the groups around it intact.
func TestGroupDamagedAfterCommit(t *testing.T) {
	dir := t.TempDir()
	b := open(t, Options{Dir: dir})
	reqs := [][]Record{request(0, 5, 100), request(5, 6, 100), request(11, 4, 100)}
	appendRequests(t, b, reqs...)
	b.mu.Lock()
	seg := b.segs[0]
	at := (seg.offsetOf(5) + int64(seg.ends[5])) / 2
	b.mu.Unlock()
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xee}, at)
	f.Close()
	// From the middle of the damaged group: records 7..10 of it.
	recs, err := b.Next(context.Background(), 7, 1<<20, 0)
	if err != nil || len(recs) != 7 {
		t.Fatalf("next: %d records, %v", len(recs), err)
	}
	checkRequests(t, recs[:5], reqs[0])
	var rest []Record
	for b.Stats().Undelivered > 0 {
		r, err := b.Next(context.Background(), 100, 1<<20, 0)
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, r...)
	}
	corrupt := append(recs[5:], rest[:4]...)
	for i, r := range corrupt {
		if r.Corrupt == nil || r.Pos.Idx != uint32(5+i) {
			t.Fatalf("record %d of the damaged group: %+v", i, r)
		}
	}
	checkRequests(t, rest[4:], reqs[2])
	if st := b.Stats(); st.CorruptRecords != 6 {
		t.Fatalf("stats %+v: want the group's 6 records corrupt", st)
	}
}
