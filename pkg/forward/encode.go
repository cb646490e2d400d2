package forward

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/logdoctor/logdoctor/internal/mpenc"
)

// Encoder appends requests in wire form. Its zero value sends EventTime
// times and PackedForward entries as bin; it reuses a gzip writer, so one
// Encoder per goroutine.
type Encoder struct {
	// PackedAsStr sends PackedForward entries as str32, as Fluentd does.
	PackedAsStr bool
	// IntegerTime sends times as integer seconds (nanoseconds dropped).
	IntegerTime bool
	// GzipLevel for CompressedPackedForward; 0 means gzip.BestSpeed.
	GzipLevel int

	gz   *gzip.Writer
	zbuf bytes.Buffer
	tmp  []byte
}

// AppendRequest appends req with a zero Encoder.
func AppendRequest(dst []byte, req *Request) ([]byte, error) {
	var e Encoder
	return e.Append(dst, req)
}

// Append appends req in req.Mode. Message mode needs exactly one entry.
// The option carries chunk when set, size for the batched modes, and
// compressed for ModeCompressed.
func (e *Encoder) Append(dst []byte, req *Request) ([]byte, error) {
	if req.Tag == "" {
		return dst, fmt.Errorf("forward: empty tag")
	}
	for _, en := range req.Entries {
		if len(en.Record) == 0 || !isMapCode(en.Record[0]) {
			return dst, fmt.Errorf("forward: record is not a msgpack map")
		}
	}
	switch req.Mode {
	case ModeMessage:
		if len(req.Entries) != 1 {
			return dst, fmt.Errorf("forward: Message mode carries one event, got %d", len(req.Entries))
		}
		n := 3
		if req.Chunk != "" {
			n = 4
		}
		dst = append(dst, 0x90|byte(n))
		dst = mpenc.AppendStr(dst, req.Tag)
		dst = e.appendTime(dst, req.Entries[0].Time)
		dst = append(dst, req.Entries[0].Record...)
		if req.Chunk != "" {
			dst = appendOption(dst, req.Chunk, -1, false)
		}
		return dst, nil
	case ModeForward:
		dst = append(dst, 0x93)
		dst = mpenc.AppendStr(dst, req.Tag)
		dst = mpenc.AppendArrayHeader(dst, len(req.Entries))
		for _, en := range req.Entries {
			dst = e.appendEntry(dst, en)
		}
		return appendOption(dst, req.Chunk, len(req.Entries), false), nil
	case ModePacked, ModeCompressed:
		e.tmp = e.tmp[:0]
		for _, en := range req.Entries {
			e.tmp = e.appendEntry(e.tmp, en)
		}
		stream := e.tmp
		if req.Mode == ModeCompressed {
			z, err := e.gzip(stream)
			if err != nil {
				return dst, err
			}
			stream = z
		}
		dst, at := e.appendPackedHead(dst, req.Tag)
		dst = append(dst, stream...)
		return e.endPacked(dst, at, req.Chunk, len(req.Entries), req.Mode == ModeCompressed), nil
	}
	return dst, fmt.Errorf("forward: cannot encode %v", req.Mode)
}

// AppendPackedStart, AppendEntryTime and AppendPackedEnd write a
// PackedForward request in place, for a sender that builds its records
// where they go (load generators): no Entries slice, and the stream is
// not copied. Between start and end, each entry is AppendEntryTime and
// then the record, a msgpack map the caller appends itself:
//
//	dst, at, err := e.AppendPackedStart(dst, tag)
//	for ... { dst = e.AppendEntryTime(dst, t); dst = appendRecord(dst) }
//	dst, err = e.AppendPackedEnd(dst, at, chunk, n)
//
// at is where the stream starts; the records are not checked.
func (e *Encoder) AppendPackedStart(dst []byte, tag string) ([]byte, int, error) {
	if tag == "" {
		return dst, 0, fmt.Errorf("forward: empty tag")
	}
	dst, at := e.appendPackedHead(dst, tag)
	return dst, at, nil
}

// AppendEntryTime appends the head of one PackedForward entry: the
// two-element array header and the time. The record follows.
func (e *Encoder) AppendEntryTime(dst []byte, t EventTime) []byte {
	return e.appendTime(append(dst, 0x92), t)
}

// AppendPackedEnd fills in the stream's length, counted from at, and
// appends the option (chunk when set, size n).
func (e *Encoder) AppendPackedEnd(dst []byte, at int, chunk string, n int) ([]byte, error) {
	if at < 5 || at > len(dst) || uint64(len(dst)-at) > math.MaxUint32 {
		return dst, fmt.Errorf("forward: packed stream at %d of %d bytes", at, len(dst))
	}
	return e.endPacked(dst, at, chunk, n, false), nil
}

// appendPackedHead appends the array header, the tag and a bin32 (str32)
// header whose length endPacked fills in; it returns where the stream
// starts.
func (e *Encoder) appendPackedHead(dst []byte, tag string) ([]byte, int) {
	dst = append(dst, 0x93)
	dst = mpenc.AppendStr(dst, tag)
	if e.PackedAsStr {
		dst = append(dst, 0xdb)
	} else {
		dst = append(dst, 0xc6)
	}
	dst = append(dst, 0, 0, 0, 0)
	return dst, len(dst)
}

func (e *Encoder) endPacked(dst []byte, at int, chunk string, n int, gz bool) []byte {
	binary.BigEndian.PutUint32(dst[at-4:at], uint32(len(dst)-at))
	return appendOption(dst, chunk, n, gz)
}

func (e *Encoder) gzip(b []byte) ([]byte, error) {
	e.zbuf.Reset()
	if e.gz == nil {
		lvl := e.GzipLevel
		if lvl == 0 {
			lvl = gzip.BestSpeed
		}
		gz, err := gzip.NewWriterLevel(&e.zbuf, lvl)
		if err != nil {
			return nil, fmt.Errorf("forward: gzip: %w", err)
		}
		e.gz = gz
	} else {
		e.gz.Reset(&e.zbuf)
	}
	if _, err := e.gz.Write(b); err != nil {
		return nil, fmt.Errorf("forward: gzip: %w", err)
	}
	if err := e.gz.Close(); err != nil {
		return nil, fmt.Errorf("forward: gzip: %w", err)
	}
	return e.zbuf.Bytes(), nil
}

func (e *Encoder) appendEntry(dst []byte, en Entry) []byte {
	dst = append(dst, 0x92)
	dst = e.appendTime(dst, en.Time)
	return append(dst, en.Record...)
}

func (e *Encoder) appendTime(dst []byte, t EventTime) []byte {
	if e.IntegerTime {
		return mpenc.AppendUint(dst, uint64(t.Sec))
	}
	return appendEventTime(dst, t)
}

func appendOption(dst []byte, chunk string, size int, gz bool) []byte {
	n := 0
	if chunk != "" {
		n++
	}
	if size >= 0 {
		n++
	}
	if gz {
		n++
	}
	dst = append(dst, 0x80|byte(n))
	if chunk != "" {
		dst = mpenc.AppendStr(dst, "chunk")
		dst = mpenc.AppendStr(dst, chunk)
	}
	if size >= 0 {
		dst = mpenc.AppendStr(dst, "size")
		dst = mpenc.AppendUint(dst, uint64(size))
	}
	if gz {
		dst = mpenc.AppendStr(dst, "compressed")
		dst = mpenc.AppendStr(dst, "gzip")
	}
	return dst
}

// AppendAck appends the msgpack ack {"ack": chunk}.
func AppendAck(dst []byte, chunk string) []byte {
	return mpenc.AppendStr(mpenc.AppendStr(append(dst, 0x81), "ack"), chunk)
}

// AppendJSONAck appends the JSON ack, for requests that came as JSON.
func AppendJSONAck(dst []byte, chunk string) []byte {
	b, _ := json.Marshal(map[string]string{"ack": chunk})
	return append(dst, b...)
}

// ParseAck extracts the chunk from an ack frame (msgpack map or JSON
// object). A frame without an "ack" key is an error.
func ParseAck(frame []byte) (string, error) {
	if len(frame) > 0 && frame[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(frame, &m); err != nil {
			return "", fmt.Errorf("%w: JSON ack: %w", ErrMalformed, err)
		}
		s, ok := m["ack"].(string)
		if !ok {
			return "", fmt.Errorf("%w: JSON response without ack", ErrMalformed)
		}
		return s, nil
	}
	r := mp{b: frame, sc: &scanner{lim: DefaultLimits}}
	n, err := r.mapLen()
	if err != nil {
		return "", fmt.Errorf("ack: %w", err)
	}
	for i := 0; i < n; i++ {
		k, err := r.bytesVal()
		if err != nil {
			return "", fmt.Errorf("ack key: %w", err)
		}
		if string(k) == "ack" {
			v, err := r.bytesVal()
			if err != nil {
				return "", fmt.Errorf("ack value: %w", err)
			}
			return string(v), nil
		}
		if _, err := r.skip(); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("%w: response without ack key", ErrMalformed)
}

// NewChunkID returns 16 random bytes, base64 encoded, as Fluentd's
// out_forward makes them.
func NewChunkID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.StdEncoding.EncodeToString(b[:])
}
