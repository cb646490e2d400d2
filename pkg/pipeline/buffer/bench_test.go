package buffer

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// BenchmarkAppend: group commits of 100 records of about 200 bytes, as a
// forward chunk would bring, fsync'd to the temp dir's disk.
func BenchmarkAppend(b *testing.B) {
	buf, err := Open(Options{Dir: b.TempDir(), MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = Record{ID: fmt.Sprintf("id-%022d", i), Tag: "app.bench", Sec: 1700000000, Doc: bytes.Repeat([]byte("x"), 160)}
	}
	b.SetBytes(int64(len(recs) * encodedLen(&recs[0])))
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
}

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
