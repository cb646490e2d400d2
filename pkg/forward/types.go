package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/internal/clip"
)

// Mode is one of the forward protocol's request layouts.
type Mode int

const (
	ModeMessage Mode = iota + 1
	ModeForward
	ModePacked
	ModeCompressed
)

var modeNames = [...]string{"", "message", "forward", "packed", "compressed"}

func (m Mode) String() string {
	if m > 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode accepts message, forward, packed and compressed.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if i > 0 && n == s {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown forward mode %q (want message, forward, packed or compressed)", s)
}

// Modes lists every mode in protocol order.
func Modes() []Mode { return []Mode{ModeMessage, ModeForward, ModePacked, ModeCompressed} }

// EventTime is Fluentd's nanosecond timestamp (msgpack ext type 0). Plain
// integer seconds decode to an EventTime with Nsec 0.
type EventTime struct{ Sec, Nsec uint32 }

// NewEventTime converts a time.Time (seconds are truncated to uint32, as
// the wire format demands).
func NewEventTime(t time.Time) EventTime {
	return EventTime{Sec: uint32(t.Unix()), Nsec: uint32(t.Nanosecond())}
}

// Time converts back to a time.Time.
func (t EventTime) Time() time.Time { return time.Unix(int64(t.Sec), int64(t.Nsec)) }

// EncodeMsgpack writes the ext 0 form, so EventTime can sit inside values
// passed to msgpack.Marshal without a global ext registration.
func (t EventTime) EncodeMsgpack(enc *msgpack.Encoder) error {
	var b [10]byte
	_, err := enc.Writer().Write(appendEventTime(b[:0], t))
	return err
}

func appendEventTime(dst []byte, t EventTime) []byte {
	dst = append(dst, 0xd7, 0x00)
	dst = binary.BigEndian.AppendUint32(dst, t.Sec)
	return binary.BigEndian.AppendUint32(dst, t.Nsec)
}

func eventTimeFromFloat(f float64) (EventTime, error) {
	if f < 0 || f >= math.MaxUint32+1 || math.IsNaN(f) {
		return EventTime{}, fmt.Errorf("%w: time %v out of range", ErrMalformed, f)
	}
	sec := math.Floor(f)
	return EventTime{Sec: uint32(sec), Nsec: uint32((f - sec) * 1e9)}, nil
}

// Entry is one event. Record is the raw msgpack map; on the server side it
// aliases the read buffer and is valid only during HandleForward.
type Entry struct {
	Time   EventTime
	Record []byte
}

// Request is one decoded forward request.
type Request struct {
	Tag     string
	Entries []Entry
	// Chunk is the option's chunk id; the ack echoes it. Empty: no ack wanted.
	Chunk string
	Mode  Mode
	// Size is the option's size (event count the sender claims), 0 if absent.
	Size int
	// Bytes is the size of the request on the wire.
	Bytes int
	// JSON is set when the request arrived as a bare JSON array.
	JSON bool
	// Seq numbers requests on their connection from 1.
	Seq int

	dec *Decoder // the decoder that read it, for Reserve
}

// Reserve takes n more bytes for this request from the server's in-flight
// budget, waiting while it is spent: a handler calls it before allocating
// memory in proportion to the request (converted copies of the events),
// so that memory is bounded with the rest. The bytes are given back when
// the connection moves to its next request. Errors wrap ErrTooLarge when
// the request can never fit; the handler should then refuse it. Without a
// budget it does nothing.
func (r *Request) Reserve(n int64) error {
	if r.dec == nil {
		return nil
	}
	return r.dec.grow(n)
}

// Limits caps what a peer may make the decoder hold. Zero fields take the
// DefaultLimits value.
type Limits struct {
	MaxArrayLen          int   // elements in one array (events in a Forward request)
	MaxMapLen            int   // pairs in one map
	MaxStrLen            int   // bytes in one str (PackedForward entries may be a str)
	MaxBinLen            int   // bytes in one bin or ext
	MaxDepth             int   // nesting of arrays and maps
	MaxRequestBytes      int64 // one request on the wire
	MaxDecompressedBytes int64 // one CompressedPackedForward stream after gunzip
}

// DefaultLimits are generous for Fluentd's default 8 MiB chunks.
var DefaultLimits = Limits{
	MaxArrayLen:          1 << 20,
	MaxMapLen:            1 << 16,
	MaxStrLen:            32 << 20,
	MaxBinLen:            32 << 20,
	MaxDepth:             64,
	MaxRequestBytes:      32 << 20,
	MaxDecompressedBytes: 128 << 20,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxArrayLen > 0 {
		d.MaxArrayLen = l.MaxArrayLen
	}
	if l.MaxMapLen > 0 {
		d.MaxMapLen = l.MaxMapLen
	}
	if l.MaxStrLen > 0 {
		d.MaxStrLen = l.MaxStrLen
	}
	if l.MaxBinLen > 0 {
		d.MaxBinLen = l.MaxBinLen
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxRequestBytes > 0 {
		d.MaxRequestBytes = l.MaxRequestBytes
	}
	if l.MaxDecompressedBytes > 0 {
		d.MaxDecompressedBytes = l.MaxDecompressedBytes
	}
	return d
}

var (
	// ErrMalformed marks bytes that are not a valid forward request.
	ErrMalformed = errors.New("malformed forward request")
	// ErrNotRequest marks a well-formed value that is not a request (a JSON
	// object, a msgpack string...). Like Fluentd ("incoming chunk is
	// broken") the server logs and drops it and keeps the connection: the
	// framing is intact.
	ErrNotRequest = errors.New("value is not a forward request")
	// ErrUnknownCompression marks a PackedForward request whose
	// "compressed" option names a codec we cannot read (zstd from newer
	// Fluentd, for instance). It wraps ErrMalformed: treating the bytes as
	// uncompressed would index garbage, so the request is refused unacked.
	ErrUnknownCompression = fmt.Errorf("%w: unknown compression", ErrMalformed)
	// ErrTooLarge marks a declared or actual size over a Limits cap.
	ErrTooLarge = errors.New("forward request over limit")
	// ErrCloseConnection, wrapped in a Handler's error, makes the server
	// close the connection instead of merely withholding the ack.
	ErrCloseConnection = errors.New("close connection")
	// ErrAuth marks a handshake the peer rejected or failed.
	ErrAuth = errors.New("forward handshake failed")
	// ErrNoAck: no ack arrived within the deadline.
	ErrNoAck = errors.New("no ack within timeout")
	// ErrAckMismatch: an ack arrived for another chunk.
	ErrAckMismatch = errors.New("ack does not match chunk")
	// ErrClosedBeforeAck: the peer closed the connection before acking.
	ErrClosedBeforeAck = errors.New("connection closed before ack")
)

// CompressionError names the "compressed" value of a request we refused;
// it wraps ErrUnknownCompression, so servers can count and report the
// codecs their senders use.
type CompressionError struct{ Codec string }

func (e *CompressionError) Error() string {
	return fmt.Sprintf("%v %q (want gzip or text)", ErrUnknownCompression, clip.String(e.Codec, 64))
}

func (e *CompressionError) Unwrap() error { return ErrUnknownCompression }
