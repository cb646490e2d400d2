package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type sample struct {
	N int `json:"n"`
}

func (s sample) Sections() []Section {
	return []Section{{Title: "Peers", Header: []string{"PEER", "N"}, Rows: [][]string{{"127.0.0.1:9200", "3"}}}}
}

func TestJSONShape(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := New("sockets", start)
	r.Data = sample{N: 3}
	r.Add(Finding{ID: "tcp.time_wait_churn", Severity: Warning, Summary: "s", Remedy: "r", Evidence: map[string]any{"k": 1}},
		Finding{ID: "tcp.close_wait", Severity: Critical, Summary: "s2", Remedy: "r2"})
	r.Finish(start.Add(12 * time.Millisecond))

	var buf bytes.Buffer
	if err := (Renderer{Format: FormatJSON}).Render(&buf, r); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("JSON report must be one line, got %q", buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"command", "started_at", "duration_ms", "findings", "data"} {
		if _, ok := got[k]; !ok {
			t.Errorf("missing key %q in %s", k, buf.String())
		}
	}
	if got["started_at"] != "2026-01-02T03:04:05Z" || got["duration_ms"] != float64(12) {
		t.Errorf("started_at/duration wrong: %v %v", got["started_at"], got["duration_ms"])
	}
	fs := got["findings"].([]any)
	first := fs[0].(map[string]any)
	if first["id"] != "tcp.close_wait" || first["severity"] != "critical" {
		t.Errorf("findings not ordered most severe first: %v", fs)
	}
	if r.Worst() != Critical {
		t.Errorf("worst = %v", r.Worst())
	}
}

func TestEmptyFindingsIsArray(t *testing.T) {
	r := New("x", time.Now())
	r.Finish(time.Now())
	var buf bytes.Buffer
	if err := (Renderer{Format: FormatJSON}).Render(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"findings":[]`) {
		t.Fatalf("findings must be [] not null: %s", buf.String())
	}
}

func TestTableRendering(t *testing.T) {
	r := New("sockets", time.Now())
	r.Data = sample{N: 3}
	r.Add(Finding{ID: "tcp.close_wait", Severity: Critical, Summary: "3 CLOSE_WAIT", Remedy: "close it"})
	r.Finish(time.Now())
	for _, tty := range []bool{false, true} {
		var buf bytes.Buffer
		if err := (Renderer{Format: FormatTable, TTY: tty}).Render(&buf, r); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, want := range []string{"127.0.0.1:9200", "[CRITICAL] tcp.close_wait: 3 CLOSE_WAIT", "remedy: close it"} {
			if !strings.Contains(out, want) {
				t.Errorf("tty=%v: output lacks %q:\n%s", tty, want, out)
			}
		}
		boxed := strings.ContainsAny(out, "│┌+|")
		if boxed != tty {
			t.Errorf("tty=%v but boxed=%v:\n%s", tty, boxed, out)
		}
	}
}

func TestFailOn(t *testing.T) {
	cases := []struct {
		f    string
		w    Severity
		fail bool
	}{
		{"never", Critical, false}, {"critical", Warning, false}, {"critical", Critical, true},
		{"warning", Warning, true}, {"warning", Info, false}, {"warning", 0, false},
	}
	for _, c := range cases {
		f, err := ParseFailOn(c.f)
		if err != nil {
			t.Fatal(err)
		}
		if f.Fails(c.w) != c.fail {
			t.Errorf("%s fails(%v) = %v", c.f, c.w, !c.fail)
		}
	}
	if _, err := ParseFailOn("sometimes"); err == nil {
		t.Error("bad --fail-on accepted")
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"GET https://elastic:s3cr3t@es:9200/_bulk":     "GET https://elastic:xxxxx@es:9200/_bulk",
		"Authorization: Basic ZWxhc3RpYzpzZWNyZXQ=":    "Authorization: Basic xxxxx",
		"api_key=abcdef123":                            "api_key=xxxxx",
		`{"password":"hunter2"}`:                       `{"password":"xxxxx"}`,
		"shared_key: foo bar":                          "shared_key: xxxxx bar",
		"no secrets here":                              "no secrets here",
		`{:user=>\"elastic\", :password=>\"hunter2\"}`: `{:user=>\"elastic\", :password=>\"xxxxx\"}`,
	}
	for in, want := range cases {
		got := Redact(in)
		if strings.Contains(got, "s3cr3t") || strings.Contains(got, "hunter2") || strings.Contains(got, "abcdef123") || strings.Contains(got, "ZWxhc3Rp") {
			t.Errorf("Redact(%q) leaked: %q", in, got)
		}
		if got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// headerSample has the headers the table library used to rewrite on a
// terminal (SEND - Q, TIME WAIT, P 50).
type headerSample struct{}

func (headerSample) Sections() []Section {
	return []Section{{Title: "Peers", Header: []string{"PEER", "Send-Q", "TIME_WAIT", "p50"}, Rows: [][]string{{"127.0.0.1:9200", "0", "3", "1.5ms"}}}}
}

func TestHeadersPrintAsWritten(t *testing.T) {
	for _, tty := range []bool{true, false} {
		r := New("sockets", time.Now())
		r.Data = headerSample{}
		r.Finish(time.Now())
		var buf bytes.Buffer
		if err := (Renderer{Format: FormatTable, TTY: tty}).Render(&buf, r); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if tty && !strings.Contains(out, "│") && !strings.Contains(out, "|") {
			t.Fatalf("tty: expected a boxed table:\n%s", out)
		}
		for _, h := range []string{"PEER", "Send-Q", "TIME_WAIT", "p50"} {
			if !strings.Contains(out, h) {
				t.Errorf("tty=%v: header %q not printed as written:\n%s", tty, h, out)
			}
		}
		for _, bad := range []string{"SEND - Q", "TIME WAIT", "P 50"} {
			if strings.Contains(out, bad) {
				t.Errorf("tty=%v: header rewritten to %q:\n%s", tty, bad, out)
			}
		}
	}
}

func TestVerdictAndFindingsComeFirst(t *testing.T) {
	start := time.Now()
	r := New("sockets", start)
	r.Data = sample{N: 1}
	r.Add(Finding{ID: "tcp.time_wait_churn", Severity: Warning, Summary: "churn", Remedy: "keep-alive"},
		Finding{ID: "tcp.close_wait", Severity: Critical, Summary: "close wait", Remedy: "close"})
	r.Finish(start.Add(7 * time.Millisecond))
	for _, tty := range []bool{true, false} {
		var buf bytes.Buffer
		if err := (Renderer{Format: FormatTable, TTY: tty}).Render(&buf, r); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		first, _, _ := strings.Cut(out, "\n")
		if first != "sockets: CRITICAL, 2 finding(s): 1 critical, 1 warning (took 7ms)" {
			t.Errorf("tty=%v: first line %q", tty, first)
		}
		cw, churn, peers := strings.Index(out, "tcp.close_wait"), strings.Index(out, "tcp.time_wait_churn"), strings.Index(out, "Peers")
		if cw < 0 || churn < cw || peers < churn {
			t.Errorf("tty=%v: want verdict, findings (most severe first), then the detail tables:\n%s", tty, out)
		}
	}

	ok := New("sockets", start)
	ok.Data = sample{N: 1}
	ok.Finish(start.Add(3 * time.Millisecond))
	var buf bytes.Buffer
	if err := (Renderer{Format: FormatTable}).Render(&buf, ok); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(buf.String(), "\n"); first != "sockets: OK, no findings (took 3ms)" {
		t.Errorf("healthy first line %q", first)
	}
}
