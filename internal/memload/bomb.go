package memload

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"

	"github.com/vmihailenco/msgpack/v5"
)

// BombUnit is how much one gzip member of a bomb inflates to.
const BombUnit = 1 << 20

// GzipBomb returns a CompressedPackedForward request (with chunk, so a
// server would ack it) whose gzip stream inflates to size bytes (rounded
// down to BombUnit) from about size/1000 on the wire: one small member
// repeated, as concatenated members are valid. With records false the
// stream is zeros, which are not entries; with records true it is a run
// of valid 1 MiB entries [time, {"m": "aaa..."}], which only a size limit
// stops.
func GzipBomb(tag, chunk string, size int64, records bool) []byte {
	unit := make([]byte, BombUnit)
	if records {
		// [EventTime, {"m": str32}] filling the unit exactly.
		hdr := []byte{0x92, 0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0x81, 0xa1, 'm', 0xdb}
		n := BombUnit - len(hdr) - 4
		p := copy(unit, hdr)
		binary.BigEndian.PutUint32(unit[p:], uint32(n))
		p += 4
		for i := p; i < len(unit); i++ {
			unit[i] = 'a'
		}
	}
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	w.Write(unit)
	w.Close()
	member := z.Bytes()
	stream := bytes.Repeat(member, int(size/BombUnit))
	b, err := msgpack.Marshal([]any{tag, stream, map[string]any{"compressed": "gzip", "chunk": chunk}})
	if err != nil {
		panic(err) // a fixed shape: cannot fail
	}
	return b
}
