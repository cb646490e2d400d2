package pipeline

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
)

func TestDocBuild(t *testing.T) {
	d := docBuilder{timeKey: "@timestamp", tagKey: "tag", idKey: "req"}
	tm := time.Unix(1700000000, 123456789)
	cases := []struct {
		in, want, id string
	}{
		{`{"a":1}`, `{"@timestamp":"2023-11-14T22:13:20.123456789Z","tag":"app","a":1}`, ""},
		{`{}`, `{"@timestamp":"2023-11-14T22:13:20.123456789Z","tag":"app"}`, ""},
		{` { "tag" : "mine", "x":{"tag":1}} `, `{"@timestamp":"2023-11-14T22:13:20.123456789Z", "tag" : "mine", "x":{"tag":1}} `, ""},
		{`{"@timestamp":"t","req":"abc"}`, `{"tag":"app","@timestamp":"t","req":"abc"}`, "abc"},
		{`{"@timestamp":"t","tag":"x","req":42}`, `{"@timestamp":"t","tag":"x","req":42}`, "42"},
		{`{"s":"a\"b,}{","req":"q\u0041"}`, `{"@timestamp":"2023-11-14T22:13:20.123456789Z","tag":"app","s":"a\"b,}{","req":"q\u0041"}`, "qA"},
	}
	for _, c := range cases {
		got, id, err := d.build(nil, []byte(c.in), "app", tm)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if string(got) != c.want || id != c.id {
			t.Errorf("%s:\n got %s id %q\nwant %s id %q", c.in, got, id, c.want, c.id)
		}
		if !json.Valid(got) {
			t.Errorf("%s: invalid JSON %s", c.in, got)
		}
	}
	for _, bad := range []string{`[1]`, `"x"`, ``} {
		if _, _, err := d.build(nil, []byte(bad), "app", tm); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestEventIDDeterministic(t *testing.T) {
	a := eventID("app", 1, 2, []byte{0x81, 0xa1, 'a', 1})
	if a != eventID("app", 1, 2, []byte{0x81, 0xa1, 'a', 1}) || len(a) != 22 {
		t.Fatalf("id %q not stable", a)
	}
	for _, other := range []string{
		eventID("app2", 1, 2, []byte{0x81, 0xa1, 'a', 1}),
		eventID("app", 2, 2, []byte{0x81, 0xa1, 'a', 1}),
		eventID("app", 1, 3, []byte{0x81, 0xa1, 'a', 1}),
		eventID("app", 1, 2, []byte{0x81, 0xa1, 'a', 2}),
		eventID("ap", 1, 2, []byte("p")), // tag/record boundary is length-prefixed
	} {
		if other == a {
			t.Fatal("different events share an id")
		}
	}
}

func FuzzDocBuild(f *testing.F) {
	f.Add([]byte(`{"a":1,"tag":"x"}`))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":"}"}]}}`))
	f.Add([]byte(`{"big":10e700}`))
	d := docBuilder{timeKey: "@timestamp", tagKey: "tag", idKey: "id"}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			return
		}
		out, _, err := d.build(nil, in, "t", time.Unix(0, 0))
		if err != nil {
			return
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("built invalid JSON %s from %s: %v", out, in, err)
		}
		if _, ok := m["@timestamp"]; !ok {
			t.Fatalf("no @timestamp in %s", out)
		}
	})
}

// FuzzUDPRecord: any datagram becomes a document (valid JSON, the time
// field gone, an event time within range) or a dead letter with a reason;
// never a panic.
func FuzzUDPRecord(f *testing.F) {
	f.Add([]byte(`{"time":1700000000.123456789,"m":1}`))
	f.Add([]byte(`{"time":"2024-02-29T12:00:00.5+02:00"}`))
	f.Add([]byte(`{"time":-1e308}`))
	f.Add([]byte(`{"time":"x","time":2}`))
	p, err := New(Config{UDPAddr: "127.0.0.1:0", MemoryBuffer: true, ES: esout.Config{URLs: []string{"http://127.0.0.2:1"}}})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, in []byte) {
		rec, reason, err := p.udpRecord(in, now)
		if err != nil {
			if reason == "" {
				t.Fatalf("dead letter without a reason for %q: %v", in, err)
			}
			return
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(rec.Doc))
		dec.UseNumber() // 10e700 is valid JSON, just not a float64
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("built invalid JSON %s from %q: %v", rec.Doc, in, err)
		}
		if _, ok := m["time"]; ok {
			t.Fatalf("time field kept in %s", rec.Doc)
		}
		if rec.Sec < 0 || rec.Sec > maxEventSec {
			t.Fatalf("event time %d out of range from %q", rec.Sec, in)
		}
	})
}

// TestEventIDStable pins eventID's value: ids must not change between
// versions, or a chunk resent across an upgrade is indexed twice.
func TestEventIDStable(t *testing.T) {
	for _, c := range []struct {
		tag  string
		sec  int64
		nsec uint32
		raw  []byte
		want string
	}{
		{"app", 1763719200, 123456789, []byte{0x81, 0xa3, 'm', 's', 'g', 0xa2, 'h', 'i'}, "KrN7CPWxoIVxPkFr2YlTvQ"},
		{"", 0, 0, nil, "5-zrvFkLyIs3Yfps0D10nw"},
	} {
		if got := eventID(c.tag, c.sec, c.nsec, c.raw); got != c.want {
			t.Errorf("eventID(%q, %d, %d, %x) = %s, want %s", c.tag, c.sec, c.nsec, c.raw, got, c.want)
		}
	}
}

// TestAppendTimestamp: the hand-written formatter writes what
// time.AppendFormat writes, for times in every zone, around leap days and
// year ends, at the edges of four-digit years and beyond them.
func TestAppendTimestamp(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	east := time.FixedZone("east", 14*3600)
	times := []time.Time{
		time.Unix(0, 0), time.Unix(1763719200, 5), time.Unix(-1, 999999999),
		time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 1, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, east), // the previous day in UTC
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
	}
	for i := 0; i < 10000; i++ {
		times = append(times, time.Unix(rng.Int63n(1<<37)-1<<36, rng.Int63n(1e9)).In(east))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat([]byte("x"), timestampLayout)
		if got := appendTimestamp([]byte("x"), tm); string(got) != string(want) {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
}

func BenchmarkAppendTimestamp(b *testing.B) {
	tm := time.Unix(1763719200, 123456789)
	var dst []byte
	for i := 0; i < b.N; i++ {
		dst = appendTimestamp(dst[:0], tm)
	}
}

func BenchmarkAppendFormatTimestamp(b *testing.B) {
	tm := time.Unix(1763719200, 123456789)
	var dst []byte
	for i := 0; i < b.N; i++ {
		dst = tm.UTC().AppendFormat(dst[:0], timestampLayout)
	}
}

// TestBuildKeysMatchesBuild: the document made from the key spans
// RecordToJSONKeys reports is the one build makes by scanning the JSON,
// with and without the time and tag keys in the record, nested
// look-alikes, escaped keys, non-string keys and an empty record.
func TestBuildKeysMatchesBuild(t *testing.T) {
	records := []any{
		map[string]any{"msg": "m", "n": 1},
		map[string]any{"@timestamp": "mine", "x": map[string]any{"tag": 1}},
		map[string]any{"tag": "theirs", "arr": []any{map[string]any{"@timestamp": 2}}},
		map[string]any{"@timestamp": 1, "tag": 2},
		map[string]any{"ta\"g": 1, "@time\nstamp": 2, "é": "ü"},
		map[int]any{1: "one", 2: map[string]any{"tag": 3}},
		map[string]any{},
	}
	tm := time.Unix(1763719200, 42)
	for _, d := range []docBuilder{{timeKey: "@timestamp", tagKey: "tag"}, {timeKey: "", tagKey: "ta\"g"}, {timeKey: "@time\nstamp"}} {
		for _, r := range records {
			raw, err := msgpack.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			js, err := forward.RecordToJSON(nil, raw)
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := d.build([]byte("prev"), js, "app.x", tm)
			if err != nil {
				t.Fatal(err)
			}
			js2, keys, err := forward.RecordToJSONKeys(nil, raw, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.buildKeys([]byte("prev"), js2, keys, "app.x", tm); !bytes.Equal(got, want) {
				t.Fatalf("builder %+v, record %v:\nbuildKeys %s\nbuild     %s", d, r, got, want)
			}
		}
	}
}

// TestKeyIs: a quoted JSON key against a field name, with escapes that
// make the quoted key longer than the name or the same length.
func TestKeyIs(t *testing.T) {
	for _, c := range []struct {
		key, want string
		is        bool
	}{
		{`"@timestamp"`, "@timestamp", true},
		{`"@timestamp"`, "@timestamps", false},
		{`"tag"`, "ta", false},
		{`"@time\u0073tamp"`, "@timestamp", true},
		{`"@time\u0073tamp"`, "@timesXtamp", false},
		{`"a\\b"`, `a\b`, true},
		{`"x\""`, `x\"`, false}, // the same bytes, but the key is x"
		{`"x\""`, `x"`, true},
		{`""`, "", true},
	} {
		if got := keyIs([]byte(c.key), c.want); got != c.is {
			t.Errorf("keyIs(%s, %q) = %v", c.key, c.want, got)
		}
	}
}
