package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// TestWriterReaderRoundTrip: what the writer writes, the reader reads back
// record for record, with the snaplen cut and the length on the wire kept,
// and a damaged record header is counted at its offset and skipped.
func TestWriterReaderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, 100, LinkRaw)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 123456000)
	sizes := []int{40, 300, 100}
	for i, n := range sizes {
		if err := w.WritePacket(ts.Add(time.Duration(i)*time.Second), bytes.Repeat([]byte{byte(i + 1)}, n), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	read := func(b []byte) (*FileReader, []Meta) {
		t.Helper()
		fr, err := NewFileReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var ms []Meta
		for {
			data, m, err := fr.Next()
			if errors.Is(err, io.EOF) {
				return fr, ms
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(data) != m.CapLen || len(data) > 0 && data[0] != data[len(data)-1] {
				t.Fatalf("record %d: %d bytes for caplen %d", len(ms), len(data), m.CapLen)
			}
			ms = append(ms, m)
		}
	}
	fr, ms := read(buf.Bytes())
	if fr.Stats.Format != "pcap" || fr.Stats.LinkType != LinkRaw || fr.Stats.Snaplen != 100 || fr.Stats.Records != 3 || fr.Stats.Corrupt != 0 {
		t.Fatalf("stats %+v", fr.Stats)
	}
	for i, m := range ms {
		if m.OrigLen != sizes[i] || m.CapLen != min(sizes[i], 100) || m.Link != LinkRaw || m.TimeNS != ts.Add(time.Duration(i)*time.Second).UnixNano() {
			t.Errorf("record %d: %+v", i, m)
		}
	}

	damaged := append([]byte(nil), buf.Bytes()...)
	second := 24 + 16 + 40
	binary.LittleEndian.PutUint32(damaged[second+8:], 1<<30) // capture length
	fr, ms = read(damaged)
	if len(ms) != 2 || fr.Stats.Corrupt != 1 || fr.Stats.Corruptions[0].Offset != int64(second) || ms[1].OrigLen != 100 {
		t.Fatalf("damaged: %d records, stats %+v", len(ms), fr.Stats)
	}
}
