package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/logdoctor/logdoctor/pkg/inflight"
)

var fuzzLimits = Limits{MaxArrayLen: 1000, MaxMapLen: 100, MaxStrLen: 1 << 16, MaxBinLen: 1 << 16, MaxDepth: 16,
	MaxRequestBytes: 1 << 18, MaxDecompressedBytes: 1 << 18}

func fuzzSeeds(f *testing.F) {
	for _, mode := range Modes() {
		n := 3
		if mode == ModeMessage {
			n = 1
		}
		b, err := AppendRequest(nil, sampleRequest(f, mode, n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`["t",1,{"a":1},{"chunk":"x"}]`))
	f.Add([]byte(`["t",[[1,{"a":[1,2,{"b":"c"}]}],[2.5,{}]],{"chunk":"y","size":2}] {"x":1}`))
	f.Add([]byte{0x93, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff})
}

// FuzzDecoder feeds arbitrary bytes to the streaming decoder, whole and one
// byte at a time: it must not panic, must agree with itself, must keep its
// buffer near what it was given, and every record it returns must convert
// to valid JSON.
func FuzzDecoder(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		whole := decodeAll(t, NewDecoder(bytes.NewReader(data), fuzzLimits))
		split := decodeAll(t, NewDecoder(iotest.OneByteReader(bytes.NewReader(data)), fuzzLimits))
		if whole != split {
			t.Fatalf("whole stream gave %q, byte by byte %q", whole, split)
		}
		// With a budget ample for the limits, and a server's pools, the
		// same; everything taken is given back.
		b := inflight.New(64 << 20)
		dec := NewDecoder(iotest.HalfReader(bytes.NewReader(data)), fuzzLimits)
		l := b.Lease()
		dec.UseBudget(context.Background(), l, nil)
		dec.pools = &pools{}
		if budgeted := decodeAll(t, dec); budgeted != whole {
			t.Fatalf("whole stream gave %q, within a budget %q", whole, budgeted)
		}
		dec.Close()
		if st := b.Stats(); st.Used != 0 || l.Held() != 0 {
			t.Fatalf("after Close the budget holds %d", st.Used)
		}
	})
}

func decodeAll(t *testing.T, d *Decoder) string {
	var out bytes.Buffer
	for i := 0; i < 100; i++ {
		req, err := d.Next()
		if cap(d.buf) > 4*int(fuzzLimits.MaxRequestBytes)+(128<<10) {
			t.Fatalf("decoder buffer %d bytes", cap(d.buf))
		}
		if err != nil {
			if errors.Is(err, ErrNotRequest) {
				out.WriteString("skip;")
				continue
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error %v", err)
			}
			out.WriteString("err")
			return out.String()
		}
		out.WriteString(req.Tag + req.Chunk + req.Mode.String())
		for _, e := range req.Entries {
			js, err := RecordToJSON(nil, e.Record)
			if err != nil {
				t.Fatalf("record from decoder does not convert: %v", err)
			}
			if !json.Valid(js) {
				t.Fatalf("invalid JSON %q", js)
			}
			out.Write(js)
		}
	}
	return out.String()
}

// FuzzHandshake parses arbitrary frames as HELO, PING and PONG.
func FuzzHandshake(f *testing.F) {
	f.Add(AppendHelo(nil, Helo{Nonce: []byte("nonce"), Auth: []byte("salt"), Keepalive: true}))
	f.Add(AppendPing(nil, Ping{Hostname: "h", SharedKeySalt: []byte("s"), SharedKeyDigest: "d", Username: "u", PasswordDigest: "p"}))
	f.Add(AppendPong(nil, Pong{OK: true, Reason: "", Hostname: "h", SharedKeyDigest: "d"}))
	f.Add([]byte{0x92, 0xa4, 'H', 'E', 'L', 'O', 0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseHelo(data)
		if p, err := ParsePing(data); err == nil {
			a := serverAuth{sharedKey: "k", users: map[string]string{"u": "p"}, hostname: "srv", nonce: []byte("n"), authSalt: []byte("s")}
			if pong := a.verify(p); pong.OK {
				t.Fatalf("random PING authenticated: %+v", p)
			}
		}
		ParsePong(data)
		ParseAck(data)
	})
}

// FuzzSkipFlatMap: skipValue's fast path, whenever it answers, agrees with
// the scanner, under the fuzz limits and under limits small enough for
// its own checks to matter.
func FuzzSkipFlatMap(f *testing.F) {
	for _, rec := range []map[string]any{
		{"host": "web-01", "level": "info", "seq": 1, "n": -300, "f": 1.5, "ok": true, "nil": nil},
		{"message": string(bytes.Repeat([]byte("x"), 300)), "big": 1 << 40, "neg": -1 << 40},
		{"nested": map[string]any{"a": 1}},
		{"arr": []any{1, "x"}},
		{"bin": []byte("abc")},
		{},
	} {
		b, err := json.Marshal(rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(mustRecord(f, rec))
		f.Add(b) // not msgpack: neither may accept more than the other
	}
	f.Add([]byte{0xde, 0x00, 0x01, 0xa1, 'k', 0xd9, 0x03, 'a', 'b', 'c'})
	f.Add([]byte{0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k', 0xda, 0x00, 0x01, 'z'})
	f.Add([]byte{0x81, 0xa1, 'k', 0xdb, 0x00, 0x00, 0x00, 0x02, 'z'})
	f.Add([]byte{0x82, 0xa1, 'k', 0xcb, 0, 0, 0, 0, 0, 0, 0})
	tight := Limits{MaxArrayLen: 4, MaxMapLen: 2, MaxStrLen: 3, MaxBinLen: 3, MaxDepth: 2}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, lim := range []Limits{fuzzLimits, tight} {
			s := &scanner{lim: lim}
			n, ok := s.skipFlatMap(b)
			if !ok {
				continue
			}
			want, err := s.skipScanned(b)
			if err != nil || want != n {
				t.Fatalf("limits %+v: fast path %d bytes, scanner %d (%v) for % x", lim, n, want, err, b)
			}
		}
	})
}

// TestSkipFlatMapTakesRecords: the records shippers send take the fast
// path (else FuzzSkipFlatMap would hold for a path never taken).
func TestSkipFlatMapTakesRecords(t *testing.T) {
	rec := mustRecord(t, map[string]any{"host": "web-01", "level": "info", "seq": 70000, "f": 0.5,
		"message": string(bytes.Repeat([]byte("x"), 140)), "ok": false, "none": nil})
	s := &scanner{lim: DefaultLimits}
	if n, ok := s.skipFlatMap(append(rec, 0x01)); !ok || n != len(rec) {
		t.Fatalf("fast path: %d bytes, %v; want %d", n, ok, len(rec))
	}
}
