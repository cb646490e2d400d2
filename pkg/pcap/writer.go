package pcap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// Link types (LINKTYPE_* in pcap files) the reader understands.
const (
	LinkEthernet = 1
	LinkRaw      = 101 // raw IPv4/IPv6, no link header
	LinkSLL      = 113 // Linux cooked capture (tcpdump -i any)
	LinkIPv4     = 228
	LinkIPv6     = 229
	LinkSLL2     = 276
)

// Writer writes a classic pcap file (microsecond timestamps). It is
// logdoctor's own, so tests and benchmarks build captures without tcpdump,
// and --write keeps what a live run saw.
type Writer struct {
	w       *bufio.Writer
	snaplen uint32
	hdr     [16]byte
}

// NewWriter writes the file header and returns a Writer. Packets longer than
// snaplen are cut to it (their original length is kept in the record), as a
// capture with that snaplen would.
func NewWriter(w io.Writer, snaplen uint32, linkType uint32) (*Writer, error) {
	if snaplen == 0 {
		snaplen = 262144
	}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], snaplen)
	binary.LittleEndian.PutUint32(h[20:], linkType)
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.Write(h[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &Writer{w: bw, snaplen: snaplen}, nil
}

// WritePacket writes one record. origLen is the packet's length on the wire;
// 0 means len(data).
func (w *Writer) WritePacket(ts time.Time, data []byte, origLen int) error {
	if origLen < len(data) {
		origLen = len(data)
	}
	if uint32(len(data)) > w.snaplen {
		data = data[:w.snaplen]
	}
	binary.LittleEndian.PutUint32(w.hdr[0:], uint32(ts.Unix()))
	binary.LittleEndian.PutUint32(w.hdr[4:], uint32(ts.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(w.hdr[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(w.hdr[12:], uint32(origLen))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	if _, err := w.w.Write(data); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	return nil
}

// Flush writes buffered records to the underlying writer.
func (w *Writer) Flush() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("flush pcap: %w", err)
	}
	return nil
}
