package buffer

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// BenchmarkAppend: group commits of 100 records of about 200 bytes, and
// of 1,000 (a forward chunk of the pipeline benchmark's), one tag and
// ingest time (so group frames), fsync'd to the temp dir's disk, written
// around the page cache where the filesystem takes O_DIRECT (RWF_DSYNC,
// no fdatasync) and through it (pageCacheFS, write and fdatasync). On
// this machine's ext4, two runs: 1,000-record commits took 0.27-0.30 ms
// direct against 0.35-0.37 ms through the page cache, 100-record ones
// 0.17 against 0.20-0.23 (the disk's speed moves between runs more than
// that).
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, pageCache := range []bool{false, true} {
			b.Run(fmt.Sprintf("records=%d/pagecache=%v", n, pageCache), func(b *testing.B) {
				o := Options{Dir: b.TempDir(), MaxBytes: 1 << 30}
				if pageCache {
					o.fs = pageCacheFS{}
				}
				benchAppend(b, o, n)
			})
		}
	}
}

func benchAppend(b *testing.B, o Options, n int) {
	buf, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{ID: fmt.Sprintf("id-%022d", i), Tag: "app.bench", Sec: 1700000000, Doc: bytes.Repeat([]byte("x"), 160)}
	}
	b.SetBytes(int64(groupedLen(recs, buf.opts.MaxRecordBytes)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := buf.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		if i%50 == 49 {
			b.StopTimer()
			drainAck(b, buf)
			b.StartTimer()
		}
	}
	b.StopTimer()
	st := buf.Stats()
	b.ReportMetric(float64(st.DirectCommits)/float64(st.Commits), "direct/commit")
}

// pageCacheFS is the real filesystem with O_DIRECT refused: commits go
// through the page cache.
type pageCacheFS struct{ osFS }

func (f pageCacheFS) Create(path string) (storage, error) {
	st, err := f.osFS.Create(path)
	if err != nil {
		return nil, err
	}
	return pageCacheStorage{st.(*fileStorage)}, nil
}

func (f pageCacheFS) Open(path string) (storage, error) {
	st, err := f.osFS.Open(path)
	if err != nil {
		return nil, err
	}
	return pageCacheStorage{st.(*fileStorage)}, nil
}

// pageCacheStorage is a segment file that refuses direct writes (and
// still reserves blocks with fallocate).
type pageCacheStorage struct{ *fileStorage }

func (pageCacheStorage) writeDirect([]byte, int64, bool) (bool, error) { return false, errNoDirect }

func drainAck(b *testing.B, buf *Buffer) {
	for buf.Stats().Undelivered > 0 {
		recs, err := buf.Next(context.Background(), 10000, 64<<20, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			buf.Ack(r.Pos)
		}
	}
}

// benchSegment is a 32 MiB segment of 200-byte records; damage, when set,
// breaks the header of every 1000th record.
func benchSegment(damage bool) []byte {
	seg := append([]byte(nil), segmentMagic...)
	r := Record{ID: "id-0000000000000000000000", Tag: "app.bench", Sec: 1700000000, Doc: bytes.Repeat([]byte("x"), 140)}
	for i := 0; len(seg) < 32<<20-256; i++ {
		start := len(seg)
		seg, _ = appendRecord(seg, &r, sealOf(1))
		if damage && i%1000 == 999 {
			seg[start+5] ^= 0xff
		}
	}
	return seg
}

// BenchmarkScan is recovery's pass over one full segment: clean, and with
// damaged headers that make it search for the next sync marker.
func BenchmarkScan(b *testing.B) {
	for _, damage := range []bool{false, true} {
		data := benchSegment(damage)
		b.Run(fmt.Sprintf("damaged=%v", damage), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				sc, err := scanSegmentData(bytes.NewReader(data), int64(len(data)), 16<<20, 1)
				if err != nil || len(sc.ends) == 0 {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncode: framing a forward request's 1,000 events of 200
// bytes, one frame per record against group frames (what Append does for
// a request before it waits for the commit).
func BenchmarkEncode(b *testing.B) {
	recs := request(0, 1000, 180)
	seal := sealOf(1)
	b.Run("per-record", func(b *testing.B) {
		var buf []byte
		for i := 0; i < b.N; i++ {
			buf = buf[:0]
			for j := range recs {
				buf, _ = appendRecord(buf, &recs[j], seal)
			}
		}
		b.ReportMetric(float64(len(buf))/float64(len(recs)), "bytes/record")
	})
	b.Run("group", func(b *testing.B) {
		var buf []byte
		for i := 0; i < b.N; i++ {
			buf = buf[:0]
			for rest := recs; len(rest) > 0; {
				k, plen := nextGroup(rest, 16<<20)
				buf = appendGroup(buf, rest[:k], plen, seal)
				rest = rest[k:]
			}
		}
		b.ReportMetric(float64(len(buf))/float64(len(recs)), "bytes/record")
	})
}
