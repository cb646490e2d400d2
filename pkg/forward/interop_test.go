package forward_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
)

func hostPort(t *testing.T, addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// recordJSON decodes a received record for comparison through JSON, so a
// sender's integer widths do not matter.
func recordJSON(t *testing.T, rec []byte) map[string]any {
	t.Helper()
	js, err := forward.RecordToJSON(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return m
}

func viaJSON(t *testing.T, v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// TestFluentLoggerGolang sends with github.com/fluent/fluent-logger-golang
// in each of its encodings, with RequestAck: every event must arrive once
// (a mismatched ack would make the logger resend, a duplicate), with tag,
// time and record intact.
func TestFluentLoggerGolang(t *testing.T) {
	for _, tc := range []struct {
		name         string
		json, subSec bool
		keepsNanos   bool
	}{
		{"msgpack", false, false, false},
		{"msgpack-subsecond", false, true, true},
		{"json", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := forwardtest.NewRecorder()
			srv := &forward.Server{Handler: rec}
			host, port := hostPort(t, forwardtest.Start(t, srv))
			logger, err := fluent.New(fluent.Config{FluentHost: host, FluentPort: port, RequestAck: true,
				MarshalAsJSON: tc.json, SubSecondPrecision: tc.subSec, Timeout: 5 * time.Second,
				ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxRetry: 1})
			if err != nil {
				t.Fatal(err)
			}
			const n = 20
			base := time.Unix(1700000000, 123456789)
			var sent []map[string]any
			for i := 0; i < n; i++ {
				msg := map[string]any{"seq": i, "msg": fmt.Sprintf("event %d with \"quotes\" and ünïcode", i), "nested": map[string]any{"ok": true, "list": []any{1, "two"}}}
				sent = append(sent, msg)
				if err := logger.PostWithTime("go.logger."+tc.name, base.Add(time.Duration(i)*time.Millisecond), msg); err != nil {
					t.Fatalf("post %d: %v", i, err)
				}
			}
			logger.Close()
			ev := rec.WaitFor(n, 5*time.Second)
			if len(ev) != n {
				t.Fatalf("got %d events, want exactly %d", len(ev), n)
			}
			chunks := map[string]bool{}
			for i, e := range ev {
				want := base.Add(time.Duration(i) * time.Millisecond)
				wantT := forward.EventTime{Sec: uint32(want.Unix())}
				if tc.keepsNanos {
					wantT.Nsec = uint32(want.Nanosecond())
				}
				if e.Tag != "go.logger."+tc.name || e.Time != wantT {
					t.Fatalf("event %d: tag %q time %+v, want %+v", i, e.Tag, e.Time, wantT)
				}
				if got := recordJSON(t, e.Record); !reflect.DeepEqual(got, viaJSON(t, sent[i])) {
					t.Fatalf("event %d record %v, want %v", i, got, sent[i])
				}
				if e.Chunk == "" || chunks[e.Chunk] {
					t.Fatalf("event %d: chunk %q missing or repeated", i, e.Chunk)
				}
				chunks[e.Chunk] = true
			}
			waitStats(t, srv, func(st forward.Stats) bool { return st.Acks == n })
		})
	}
}

// TestPythonFluentLogger sends with Debian's python3-fluent-logger, with
// and without nanosecond_precision.
func TestPythonFluentLogger(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/python3", "/usr/lib/python3/dist-packages/fluent/sender.py")
	rec := forwardtest.NewRecorder()
	srv := &forward.Server{Handler: rec}
	host, port := hostPort(t, forwardtest.Start(t, srv))
	script := `
import sys
from fluent import sender
host, port = sys.argv[1], int(sys.argv[2])
for nano in (False, True):
    s = sender.FluentSender("py", host=host, port=port, nanosecond_precision=nano, timeout=5)
    for i in range(10):
        ts = 1700000000 + i + (0.25 if nano else 0)
        if not nano:
            ts = int(ts)
        ok = s.emit_with_time("nano" if nano else "sec", ts, {"seq": i, "text": "hé \"x\"", "f": 1.5, "n": None, "l": [1, 2]})
        if not ok:
            print(s.last_error, file=sys.stderr)
            sys.exit(1)
    s.close()
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, host, strconv.Itoa(port)).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	ev := rec.WaitFor(20, 5*time.Second)
	if len(ev) != 20 {
		t.Fatalf("got %d events, want 20", len(ev))
	}
	// Two senders, two connections: order across them is not guaranteed,
	// so match events by tag and sequence number.
	seen := map[string]bool{}
	for i, e := range ev {
		nano := e.Tag == "py.nano"
		got := recordJSON(t, e.Record)
		seq, _ := got["seq"].(float64)
		j := int(seq)
		key := fmt.Sprintf("%s/%d", e.Tag, j)
		if seen[key] {
			t.Fatalf("duplicate event %s", key)
		}
		seen[key] = true
		wantTag, wantT := "py.sec", forward.EventTime{Sec: 1700000000 + uint32(j)}
		if nano {
			wantTag, wantT.Nsec = "py.nano", 250000000
		}
		if e.Tag != wantTag || e.Time != wantT || e.Mode != forward.ModeMessage {
			t.Fatalf("event %d: %q %+v %v", i, e.Tag, e.Time, e.Mode)
		}
		want := map[string]any{"seq": float64(j), "text": "hé \"x\"", "f": 1.5, "n": nil, "l": []any{1.0, 2.0}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("event %d: %v", i, got)
		}
	}

}
