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
