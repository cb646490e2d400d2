package forward

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/vmihailenco/msgpack/v5"
)

func mustRecord(t testing.TB, m map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sampleRequest(t testing.TB, mode Mode, n int) *Request {
	req := &Request{Tag: "app.test", Mode: mode, Chunk: NewChunkID()}
	for i := 0; i < n; i++ {
		req.Entries = append(req.Entries, Entry{
			Time:   EventTime{Sec: 1700000000 + uint32(i), Nsec: 123456789},
			Record: mustRecord(t, map[string]any{"seq": i, "msg": fmt.Sprintf("hello %d", i), "nested": map[string]any{"a": []any{1, "x", nil}}}),
		})
	}
	return req
}

func sameEvents(t *testing.T, want, got *Request) {
	t.Helper()
	if got.Tag != want.Tag || got.Chunk != want.Chunk || got.Mode != want.Mode {
		t.Fatalf("got tag %q chunk %q mode %v, want %q %q %v", got.Tag, got.Chunk, got.Mode, want.Tag, want.Chunk, want.Mode)
	}
	if len(got.Entries) != len(want.Entries) {
		t.Fatalf("got %d entries, want %d", len(got.Entries), len(want.Entries))
	}
	for i := range want.Entries {
		if got.Entries[i].Time != want.Entries[i].Time || !bytes.Equal(got.Entries[i].Record, want.Entries[i].Record) {
			t.Fatalf("entry %d: got %+v, want %+v", i, got.Entries[i], want.Entries[i])
		}
	}
}

func TestRoundTripEveryMode(t *testing.T) {
	for _, mode := range Modes() {
		for _, asStr := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/str=%v", mode, asStr), func(t *testing.T) {
				n := 5
				if mode == ModeMessage {
					n = 1
				}
				req := sampleRequest(t, mode, n)
				enc := Encoder{PackedAsStr: asStr}
				b, err := enc.Append(nil, req)
				if err != nil {
					t.Fatal(err)
				}
				// Two requests back to back, delivered one byte per Read.
				stream := append(append([]byte(nil), b...), b...)
				dec := NewDecoder(iotest.OneByteReader(bytes.NewReader(stream)), Limits{})
				for i := 0; i < 2; i++ {
					got, err := dec.Next()
					if err != nil {
						t.Fatalf("request %d: %v", i, err)
					}
					sameEvents(t, req, got)
					if mode != ModeMessage && got.Size != n {
						t.Fatalf("size option %d, want %d", got.Size, n)
					}
					if got.Seq != i+1 || got.Bytes != len(b) {
						t.Fatalf("seq %d bytes %d", got.Seq, got.Bytes)
					}
				}
				if _, err := dec.Next(); !errors.Is(err, io.EOF) {
					t.Fatalf("after last request: %v, want io.EOF", err)
				}
			})
		}
	}
}

// A PackedForward request written in place is the one Append writes, and
// decodes to the same events.
func TestPackedInPlace(t *testing.T) {
	for _, asStr := range []bool{false, true} {
		req := sampleRequest(t, ModePacked, 5)
		enc := Encoder{PackedAsStr: asStr}
		want, err := enc.Append(nil, req)
		if err != nil {
			t.Fatal(err)
		}
		got, at, err := enc.AppendPackedStart([]byte("x"), req.Tag)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range req.Entries {
			got = append(enc.AppendEntryTime(got, en.Time), en.Record...)
		}
		if got, err = enc.AppendPackedEnd(got, at, req.Chunk, len(req.Entries)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[1:], want) {
			t.Fatalf("str=%v: in place\n%x\nAppend\n%x", asStr, got[1:], want)
		}
		dec := NewDecoder(bytes.NewReader(got[1:]), Limits{})
		back, err := dec.Next()
		if err != nil {
			t.Fatal(err)
		}
		sameEvents(t, req, back)
	}
	var enc Encoder
	if _, _, err := enc.AppendPackedStart(nil, ""); err == nil {
		t.Fatal("empty tag accepted")
	}
	if _, err := enc.AppendPackedEnd([]byte{1, 2}, 7, "", 0); err == nil {
		t.Fatal("a stream start past the end accepted")
	}
}

func TestIntegerTimeAndVmihailencoEncoded(t *testing.T) {
	// A Message-mode request encoded by another msgpack library, with an
	// integer time and no option.
	b, err := msgpack.Marshal([]any{"tag.a", 1700000001, map[string]any{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := NewDecoder(bytes.NewReader(b), Limits{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	if req.Mode != ModeMessage || req.Entries[0].Time != (EventTime{Sec: 1700000001}) || req.Chunk != "" {
		t.Fatalf("%+v", req)
	}
	js, err := RecordToJSON(nil, req.Entries[0].Record)
	if err != nil || string(js) != `{"k":"v"}` {
		t.Fatalf("record %s %v", js, err)
	}
	// EventTime marshalled through vmihailenco's encoder (CustomEncoder).
	b, err = msgpack.Marshal([]any{"tag.b", EventTime{Sec: 5, Nsec: 6}, map[string]any{"k": 1}, map[string]any{"chunk": "abc", "x": []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	req, err = NewDecoder(bytes.NewReader(b), Limits{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	if req.Entries[0].Time != (EventTime{5, 6}) || req.Chunk != "abc" {
		t.Fatalf("%+v", req)
	}
}

func TestConcatenatedGzipMembers(t *testing.T) {
	req := sampleRequest(t, ModePacked, 6)
	var stream []byte
	var e Encoder
	for _, en := range req.Entries {
		stream = e.appendEntry(stream, en)
	}
	half := len(stream) / 2
	// Split the entry stream at an arbitrary byte into two gzip members.
	var z bytes.Buffer
	for _, part := range [][]byte{stream[:half], stream[half:]} {
		w := gzip.NewWriter(&z)
		w.Write(part)
		w.Close()
	}
	b, _ := msgpack.Marshal([]any{req.Tag, z.Bytes(), map[string]any{"compressed": "gzip", "chunk": req.Chunk, "size": 6}})
	got, err := NewDecoder(bytes.NewReader(b), Limits{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	req.Mode = ModeCompressed
	sameEvents(t, req, got)
}

func TestGzipBombCapped(t *testing.T) {
	// 8 MiB of zeros: not an entry, refused at the first inflated byte.
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(make([]byte, 8<<20))
	w.Close()
	b, _ := msgpack.Marshal([]any{"t", z.Bytes(), map[string]any{"compressed": "gzip"}})
	_, err := NewDecoder(bytes.NewReader(b), Limits{MaxDecompressedBytes: 1 << 20}).Next()
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("zeros: got %v, want ErrMalformed", err)
	}
	// 8 MiB of valid entries: refused at the limit.
	var stream []byte
	var e Encoder
	big := mustRecord(t, map[string]any{"m": string(bytes.Repeat([]byte("a"), 64<<10))})
	for len(stream) < 8<<20 {
		stream = e.appendEntry(stream, Entry{Time: EventTime{Sec: 1}, Record: big})
	}
	z.Reset()
	w = gzip.NewWriter(&z)
	w.Write(stream)
	w.Close()
	b, _ = msgpack.Marshal([]any{"t", z.Bytes(), map[string]any{"compressed": "gzip"}})
	_, err = NewDecoder(bytes.NewReader(b), Limits{MaxDecompressedBytes: 1 << 20}).Next()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("entries: got %v, want ErrTooLarge", err)
	}
}

func TestDeclaredLengthsCappedBeforeAllocation(t *testing.T) {
	hdr := func(code byte, n uint32) []byte {
		return binary.BigEndian.AppendUint32([]byte{0x93, 0xa1, 't', code}, n)
	}
	cases := map[string][]byte{
		"array32 4GiB": hdr(0xdd, 0xffffffff),
		"map32 4GiB":   append([]byte{0x94, 0xa1, 't', 0xd7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, binary.BigEndian.AppendUint32([]byte{0xdf}, 0xffffffff)...),
		"bin32 4GiB":   hdr(0xc6, 0xffffffff),
		"str32 4GiB":   hdr(0xdb, 0xffffffff),
		"ext32 4GiB":   append(hdr(0xc9, 0xffffffff), 0),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			// The stream ends right after the header: the decoder must
			// reject the declared length, not wait for (or allocate) it.
			allocs := testing.AllocsPerRun(1, func() {
				_, err := NewDecoder(bytes.NewReader(b), Limits{}).Next()
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("got %v, want ErrTooLarge", err)
				}
			})
			_ = allocs
		})
	}
	// And the memory stays small: the decoder's buffer never exceeds what
	// arrived.
	dec := NewDecoder(bytes.NewReader(hdr(0xdd, 0xffffffff)), Limits{})
	dec.Next()
	if cap(dec.buf) > 1<<20 {
		t.Fatalf("decoder buffer grew to %d bytes", cap(dec.buf))
	}
}

func TestRequestSizeLimit(t *testing.T) {
	req := sampleRequest(t, ModeForward, 200)
	b, _ := AppendRequest(nil, req)
	_, err := NewDecoder(bytes.NewReader(b), Limits{MaxRequestBytes: int64(len(b) - 1)}).Next()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	_, err = NewDecoder(bytes.NewReader(b), Limits{MaxArrayLen: 100}).Next()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("array limit: got %v", err)
	}
	// Deep nesting.
	deep := []byte{0x93, 0xa1, 't', 0xd7, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	deep = append(deep[:3], 0x01) // time
	for i := 0; i < 100; i++ {
		deep = append(deep, 0x81, 0xa1, 'k')
	}
	deep = append(deep, 0xc0)
	_, err = NewDecoder(bytes.NewReader(deep), Limits{}).Next()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("depth: got %v", err)
	}
}

func TestMalformed(t *testing.T) {
	cases := map[string][]byte{
		"one element":      {0x91, 0xa1, 't'},
		"empty tag":        {0x93, 0xa0, 0x01, 0x80},
		"record not map":   {0x93, 0xa1, 't', 0x01, 0x01},
		"bad code":         {0x93, 0xa1, 't', 0xc1},
		"entry not pair":   {0x92, 0xa1, 't', 0x91, 0x91, 0x01},
		"time ext type 1":  {0x93, 0xa1, 't', 0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x80},
		"packed garbage":   {0x92, 0xa1, 't', 0xc4, 2, 0x92, 0x01},
		"bad compression":  {0x93, 0xa1, 't', 0xc4, 0, 0x81, 0xaa, 'c', 'o', 'm', 'p', 'r', 'e', 's', 's', 'e', 'd', 0xa3, 'l', 'z', '4'},
		"gzip garbage":     {0x93, 0xa1, 't', 0xc4, 3, 1, 2, 3, 0x81, 0xaa, 'c', 'o', 'm', 'p', 'r', 'e', 's', 's', 'e', 'd', 0xa4, 'g', 'z', 'i', 'p'},
		"json bad time":    []byte(`["t","x",{}]`),
		"json not closed":  []byte(`["t",1,{}`),
		"truncated stream": {0x93, 0xa1, 't'},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewDecoder(bytes.NewReader(b), Limits{}).Next()
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestNotRequestValuesAreSkippable(t *testing.T) {
	// A msgpack string, a JSON object, then a real request on the same
	// stream: the first two are ErrNotRequest, and the decoder carries on.
	good, _ := AppendRequest(nil, sampleRequest(t, ModeMessage, 1))
	stream := append([]byte{0xc0, 0xa1, 'x'}, good...)
	for _, prefix := range [][]byte{stream, append([]byte(`{"a":[1,"}"]}`+"\n"), good...)} {
		dec := NewDecoder(iotest.OneByteReader(bytes.NewReader(prefix)), Limits{})
		if _, err := dec.Next(); !errors.Is(err, ErrNotRequest) {
			t.Fatalf("got %v, want ErrNotRequest", err)
		}
		if req, err := dec.Next(); err != nil || req.Tag != "app.test" {
			t.Fatalf("after a skipped value: %v %v", req, err)
		}
	}
}

func TestJSONRequests(t *testing.T) {
	in := `["app.json",1700000000,{"a":1,"b":"x","c":[1.5,null]},{"chunk":"Y2h1bms="}]
["app.json",[[1700000001,{"n":1}],[1700000002.25,{"n":2}]]]`
	dec := NewDecoder(iotest.OneByteReader(bytes.NewReader([]byte(in))), Limits{})
	r1, err := dec.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !r1.JSON || r1.Chunk != "Y2h1bms=" || r1.Mode != ModeMessage || r1.Entries[0].Time.Sec != 1700000000 {
		t.Fatalf("%+v", r1)
	}
	js, _ := RecordToJSON(nil, r1.Entries[0].Record)
	var got, want any
	json.Unmarshal(js, &got)
	json.Unmarshal([]byte(`{"a":1,"b":"x","c":[1.5,null]}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record %s", js)
	}
	r2, err := dec.Next()
	if err != nil {
		t.Fatal(err)
	}
	if r2.Mode != ModeForward || len(r2.Entries) != 2 || r2.Entries[1].Time != (EventTime{1700000002, 250000000}) {
		t.Fatalf("%+v", r2)
	}
}

func TestRecordToJSON(t *testing.T) {
	rec := mustRecord(t, map[string]any{
		"s": "quote\" back\\ nl\n ctl\x01 é", "i": -5, "u": uint64(1 << 63), "f": 1.25, "b": true, "n": nil,
		"bin": []byte("raw"), "arr": []any{int8(1), "two", 3.5}, "m": map[string]any{"x": map[string]any{}},
		"bad": string([]byte{0xff, 'a'}), "t": EventTime{Sec: 1, Nsec: 5},
	})
	js, err := RecordToJSON(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("invalid JSON %s: %v", js, err)
	}
	if got["s"] != "quote\" back\\ nl\n ctl\x01 é" || got["i"] != -5.0 || got["bin"] != "raw" || got["bad"] != "\ufffda" || got["t"] != 1.000000005 {
		t.Fatalf("%s", js)
	}
	if !bytes.Contains(js, []byte(`"u":9223372036854775808`)) {
		t.Fatalf("uint64 lost: %s", js)
	}
	// Non-string keys and a non-map record.
	b, _ := msgpack.Marshal(map[int]string{7: "x"})
	if js, err := RecordToJSON(nil, b); err != nil || string(js) != `{"7":"x"}` {
		t.Fatalf("%s %v", js, err)
	}
	if _, err := RecordToJSON(nil, []byte{0x91, 0x01}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("array record: %v", err)
	}
	if _, err := RecordToJSON(nil, []byte{0x82, 0xa1, 'a'}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
}

// TestRecordToJSONKeys: the spans name every top-level key of the JSON
// written after what dst held, with its value, as a JSON decoder sees
// them, nested keys not included; the JSON is RecordToJSON's.
func TestRecordToJSONKeys(t *testing.T) {
	rec := mustRecord(t, map[string]any{
		"s": "a\"b", "nested": map[string]any{"inner": 1, "deeper": map[string]any{"x": []any{1, "}"}}},
		"arr": []any{map[string]any{"k": "v"}}, "n": nil, "@timestamp": "mine",
	})
	b, _ := msgpack.Marshal(map[int]string{7: "x"})
	for _, r := range [][]byte{rec, b, {0x80}} {
		prefix := []byte("[earlier documents]")
		js, keys, err := RecordToJSONKeys(prefix, r, []KeySpan{{1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := RecordToJSON(nil, r)
		if !bytes.Equal(js[len(prefix):], plain) {
			t.Fatalf("JSON %s, RecordToJSON %s", js[len(prefix):], plain)
		}
		if keys[0] != (KeySpan{1, 2, 3}) {
			t.Fatalf("keys given were not kept: %v", keys)
		}
		keys = keys[1:]
		var want map[string]json.RawMessage
		if err := json.Unmarshal(plain, &want); err != nil {
			t.Fatal(err)
		}
		if len(keys) != len(want) {
			t.Fatalf("%d spans for %d keys in %s", len(keys), len(want), plain)
		}
		for _, k := range keys {
			var name string
			if js[k.Val-1] != ':' || json.Unmarshal(js[k.Key:k.Val-1], &name) != nil {
				t.Fatalf("span %v is not a key and colon: %q", k, js[k.Key:k.Val])
			}
			if v, ok := want[name]; !ok || !bytes.Equal(js[k.Val:k.End], v) {
				t.Fatalf("key %q: span value %s, decoder %s", name, js[k.Val:k.End], v)
			}
		}
	}
	if _, _, err := RecordToJSONKeys(nil, []byte{0x91, 0x01}, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("array record: %v", err)
	}
}

// Fluentd's out_forward sends compressed: "text" on every uncompressed
// request; in_forward reads it as plain. A codec we cannot read is refused.
func TestCompressedOptionValues(t *testing.T) {
	req := sampleRequest(t, ModePacked, 3)
	var stream []byte
	var e Encoder
	for _, en := range req.Entries {
		stream = e.appendEntry(stream, en)
	}
	for _, tc := range []struct {
		compressed string
		wantErr    error
	}{{"text", nil}, {"", nil}, {"zstd", ErrUnknownCompression}, {"GZIP", ErrUnknownCompression}} {
		t.Run(tc.compressed, func(t *testing.T) {
			b, _ := msgpack.Marshal([]any{req.Tag, stream, map[string]any{"compressed": tc.compressed, "chunk": req.Chunk, "size": 3}})
			got, err := NewDecoder(bytes.NewReader(b), Limits{}).Next()
			if tc.wantErr != nil {
				var ce *CompressionError
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrMalformed) || !errors.As(err, &ce) || ce.Codec != tc.compressed {
					t.Fatalf("got %v, want %v naming %q", err, tc.wantErr, tc.compressed)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameEvents(t, req, got)
		})
	}
}

// Fluent Bit's in_forward rejects a PING whose salt is bin, and Fluentd's
// out_forward sends a hex string: the salt must encode as a msgpack str.
func TestPingSaltIsString(t *testing.T) {
	b := AppendPing(nil, Ping{Hostname: "h", SharedKeySalt: []byte{0xff, 0x00, 0x10}, SharedKeyDigest: "d"})
	var v []any
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if _, ok := v[2].(string); !ok {
		t.Fatalf("salt decoded as %T, want string", v[2])
	}
	p, err := ParsePing(b)
	if err != nil || !bytes.Equal(p.SharedKeySalt, []byte{0xff, 0x00, 0x10}) {
		t.Fatalf("round trip: %v %x", err, p.SharedKeySalt)
	}
}
