package interop

// Helpers of the forward-side interop tests: the receivers logdoctor runs
// (es serve, pipeline run, forward serve), counting what reached
// Elasticsearch, and knowing when a receiver has read all a sender wrote.
// Names start with fwd so that they stay apart from other tests' helpers.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// fwdAddr is a free 127.0.0.1 port as HOST:PORT, and the port.
func fwdAddr(t *testing.T) (string, int) {
	t.Helper()
	p := shippertest.FreePort(t)
	return fmt.Sprintf("127.0.0.1:%d", p), p
}

// fwdESServe starts `es serve` on its own port and returns its URL.
func fwdESServe(t *testing.T) string {
	t.Helper()
	addr, _ := fwdAddr(t)
	start(t, addr, "es", "serve", "--listen", addr)
	return "http://" + addr
}

// fwdPipeline starts `pipeline run` receiving forward on addr and indexing
// into es under index, with its own buffer directory.
func fwdPipeline(t *testing.T, addr, es, index string, extra ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"pipeline", "run", "--forward", addr, "--es", es, "--index", index,
		"--buffer-dir", filepath.Join(dir, "buffer"), "--log-file", filepath.Join(dir, "pipeline.log"),
		"--flush-interval", "50ms", "-o", "json"}, extra...)
	return start(t, addr, args...)
}

// fwdServe starts `forward serve` on addr.
func fwdServe(t *testing.T, addr string, extra ...string) *daemon {
	t.Helper()
	return start(t, addr, append([]string{"forward", "serve", "--listen", addr, "-o", "json"}, extra...)...)
}

// fwdLines writes n numbered lines for a shipper to tail and returns the
// file's path; every line is unique, so every event is.
func fwdLines(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "interop line %06d\n", i)
	}
	path := filepath.Join(t.TempDir(), "in.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fwdCount is the number of documents in index (0 while it does not exist).
func fwdCount(t *testing.T, es, index string) int {
	t.Helper()
	resp, err := http.Get(es + "/" + index + "/_count")
	if err != nil {
		t.Fatalf("count %s: %v", index, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return 0
	}
	var c struct {
		Count *int `json:"count"`
	}
	if err := json.Unmarshal(body, &c); err != nil || c.Count == nil {
		t.Fatalf("count %s: %d %s", index, resp.StatusCode, body)
	}
	return *c.Count
}

// fwdWaitCount waits until index holds want documents, failing after
// timeout or when it holds more.
func fwdWaitCount(t *testing.T, es, index string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := fwdCount(t, es, index)
		if n > want {
			t.Fatalf("%s holds %d documents, want %d", index, n, want)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d documents after %s, want %d", index, n, timeout, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fwdLinesIndexed fetches every document of index and checks that each
// of the n lines is there exactly once (field is the record's key of the
// line: "message" from Fluentd's in_tail, "log" from Fluent Bit's tail).
func fwdLinesIndexed(t *testing.T, es, index, field string, n int) {
	t.Helper()
	body := fmt.Sprintf(`{"size": %d, "query": {"match_all": {}}}`, n+1)
	resp, err := http.Post(es+"/"+index+"/_search", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Hits struct {
			Hits []struct {
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("search %s: %v", index, err)
	}
	seen := map[string]int{}
	for _, h := range r.Hits.Hits {
		line, _ := h.Source[field].(string)
		seen[line]++
	}
	for i := 1; i <= n; i++ {
		line := fmt.Sprintf("interop line %06d", i)
		if seen[line] != 1 {
			t.Fatalf("%s: %q indexed %d times (%d documents)", index, line, seen[line], len(r.Hits.Hits))
		}
	}
	if len(r.Hits.Hits) != n {
		t.Fatalf("%s: %d documents, want %d", index, len(r.Hits.Hits), n)
	}
}

// fwdDrained waits until no connection to port on this host is open on
// the receiver's side: once the sender exited, its data was read and the
// receiver closed its end. Reading /proc is what makes this exact rather
// than a sleep.
func fwdDrained(t *testing.T, port int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		socks, _, err := sockstat.ReadTCP("/proc")
		if err != nil {
			t.Fatalf("reading sockets: %v", err)
		}
		open := 0
		for _, s := range socks {
			if s.Local.Port() == uint16(port) && s.Local.Addr() == netip.MustParseAddr("127.0.0.1") &&
				(s.State == sockstat.Established || s.State == sockstat.CloseWait) {
				open++
			}
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d: %d connection(s) still open after %s", port, open, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fwdServeData is the part of forward serve's report the tests read.
type fwdServeData struct {
	Stats struct {
		Requests           int64 `json:"requests"`
		Events             int64 `json:"events"`
		AuthFailed         int64 `json:"auth_failed"`
		UnknownCompression int64 `json:"unknown_compression"`
	} `json:"stats"`
	Modes        map[string]int64 `json:"modes"`
	AcksWithheld int64            `json:"acks_withheld"`
}

func fwdServeReport(t *testing.T, r result) (report, fwdServeData) {
	t.Helper()
	rep := parseReport(t, r)
	var d fwdServeData
	if err := json.Unmarshal(rep.Data, &d); err != nil {
		t.Fatalf("forward serve data: %v\n%s", err, r)
	}
	return rep, d
}

// fwdWaitLog waits until the shipper's log has a line holding all of
// parts.
func fwdWaitLog(t *testing.T, p *shippertest.Process, timeout time.Duration, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range p.LogLines(parts[0]) {
			ok := true
			for _, s := range parts[1:] {
				ok = ok && strings.Contains(line, s)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no line with %q within %s:\n%s", p.Kind, parts, timeout, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
