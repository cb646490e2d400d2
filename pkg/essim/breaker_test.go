package essim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

// sizedBulk is bulkBody's actions, about size bytes of them.
func sizedBulk(index string, size int) string {
	one := len(bulkBody(1, index, 0))
	return string(bulkBody(size/one+1, index, 0))
}

// wantBreaking checks Elasticsearch's circuit_breaking_exception answer.
func wantBreaking(t *testing.T, r resp, name string, wanted, limit int64) {
	t.Helper()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	reason := fmt.Sprintf("[%s] Data too large, data for [<http_request>] would be [%d/%s], which is larger than the limit of [%d/%s]",
		name, wanted, byteSize(wanted), limit, byteSize(limit))
	cause := map[string]any{"type": "circuit_breaking_exception", "reason": reason,
		"bytes_wanted": float64(wanted), "bytes_limit": float64(limit), "durability": "TRANSIENT"}
	top := map[string]any{"root_cause": []any{cause}}
	for k, v := range cause {
		top[k] = v
	}
	want := map[string]any{"error": top, "status": float64(429)}
	if got := r.json(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("body\n%s\nwant\n%v", r.body, want)
	}
}

// The in-flight requests breaker: bodies count twice against the limit,
// alone or together with the requests being handled; over it the answer
// is Elasticsearch's 429 circuit_breaking_exception, and the bytes are
// given back when a request ends.
func TestInFlightRequestsBreaker(t *testing.T) {
	const limit = 1 << 20
	for _, c := range []struct{ version, name string }{{"", "inflight_requests"}, {"7.17.9", "in_flight_requests"}} {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, Config{Version: c.version, InFlightRequestsLimit: limit})
			big := sizedBulk("a", 600<<10)
			wantBreaking(t, do(t, nil, "POST", s.URL()+"/_bulk", big), c.name, 2*int64(len(big)), limit)
			small := sizedBulk("a", 300<<10)
			if r := do(t, nil, "POST", s.URL()+"/_bulk", small); r.status != 200 {
				t.Fatalf("small bulk: %d %s", r.status, r.body)
			}
			// One bulk held in the write pool keeps its bytes: a second
			// one that fits alone does not fit next to it. (A request's
			// bytes go back just after its answer is written.)
			waitBreakerIdle(t, s)
			s.SetFaults(Faults{Latency: 500 * time.Millisecond})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := do(t, nil, "POST", s.URL()+"/_bulk", sizedBulk("b", 300<<10)); r.status != 200 {
					t.Errorf("held bulk: %d %s", r.status, r.body)
				}
			}()
			for deadline := time.Now().Add(5 * time.Second); s.nodes[0].breaker.used.Load() == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("held bulk never reached the breaker")
				}
			}
			held := s.nodes[0].breaker.used.Load()
			second := sizedBulk("c", 250<<10)
			wantBreaking(t, do(t, nil, "POST", s.URL()+"/_bulk", second), c.name, 2*(held+int64(len(second))), limit)
			wg.Wait()
			s.SetFaults(Faults{})
			waitBreakerIdle(t, s)
			if r := do(t, nil, "POST", s.URL()+"/_bulk", second); r.status != 200 {
				t.Fatalf("after the held bulk ended: %d %s", r.status, r.body)
			}
			if st := s.Stats(); st.BreakerTripped != 2 {
				t.Fatalf("stats %+v", st)
			}
			waitBreakerIdle(t, s)
			st := do(t, nil, "GET", s.URL()+"/_nodes/stats/breaker", "").json(t)
			nodes := st["nodes"].(map[string]any)
			for _, nd := range nodes {
				b := get(nd.(map[string]any), "breakers."+c.name)
				if get(b.(map[string]any), "tripped") != 2.0 || get(b.(map[string]any), "limit_size_in_bytes") != float64(limit) ||
					get(b.(map[string]any), "overhead") != 2.0 || get(b.(map[string]any), "limit_size") != "1mb" {
					t.Fatalf("breaker stats %v", b)
				}
			}
		})
	}
}

// waitBreakerIdle waits until no request holds bytes on node 0's breaker.
func waitBreakerIdle(t *testing.T, s *Server) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); s.nodes[0].breaker.used.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("breaker holds %d bytes with no request", s.nodes[0].breaker.used.Load())
		}
	}
}

// A chunked body has no length to check up front: it is counted as it is
// read and stopped when it trips the breaker.
func TestInFlightRequestsBreakerChunked(t *testing.T) {
	s := start(t, Config{InFlightRequestsLimit: 1 << 20})
	body := sizedBulk("x", 800<<10)
	pr, pw := io.Pipe()
	go func() {
		for p := body; len(p) > 0; {
			n := min(len(p), 32<<10)
			if _, err := pw.Write([]byte(p[:n])); err != nil {
				return
			}
			p = p[n:]
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", s.URL()+"/_bulk", pr)
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	pr.Close()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || res.StatusCode != 429 || get(m, "error.type") != "circuit_breaking_exception" ||
		get(m, "error.bytes_wanted").(float64) <= 1<<20 || get(m, "error.durability") != "TRANSIENT" {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	if s.Count("x") != 0 {
		t.Fatalf("%d documents indexed from a refused bulk", s.Count("x"))
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[int64]string{0: "0b", 666: "666b", 1024: "1kb", 1260: "1.2kb", 1 << 20: "1mb",
		88215592: "84.1mb", 32207069102: "29.9gb", 256 << 20: "256mb", 1<<30 + 1<<29: "1.5gb"} {
		if got := byteSize(in); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", in, got, want)
		}
	}
}

// Debian's python3-elasticsearch reads the 429 as Elasticsearch's: a
// TransportError with the status and the error type.
func TestInFlightRequestsBreakerPythonClient(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/python3", "/usr/lib/python3/dist-packages/elasticsearch/__init__.py")
	s := start(t, Config{InFlightRequestsLimit: 1 << 20})
	script := `
import json, sys
from elasticsearch import Elasticsearch, TransportError
es = Elasticsearch([sys.argv[1]])
body = "".join('{"create":{"_index":"py","_id":"%d"}}\n{"msg":"%s"}\n' % (i, "m" * 900) for i in range(700))
try:
    es.bulk(body=body)
    print(json.dumps({"raised": False}))
except TransportError as e:
    print(json.dumps({"raised": True, "status": e.status_code, "error": e.error,
                      "durability": e.info["error"]["root_cause"][0]["durability"]}))
`
	out, err := exec.Command("/usr/bin/python3", "-W", "ignore", "-c", script, s.URL()).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var r struct {
		Raised            bool
		Status            int
		Error, Durability string
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !r.Raised || r.Status != 429 || r.Error != "circuit_breaking_exception" || r.Durability != "TRANSIENT" {
		t.Fatalf("%+v", r)
	}
}

// http.max_content_length is checked first, as in Elasticsearch: a body
// over it gets 413, not the breaker's 429.
func TestContentLengthBeforeBreaker(t *testing.T) {
	s := start(t, Config{MaxContentLength: 1 << 20, InFlightRequestsLimit: 512 << 10})
	if r := do(t, nil, "POST", s.URL()+"/_bulk", sizedBulk("x", 2<<20)); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over max_content_length: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "POST", s.URL()+"/_bulk", sizedBulk("x", 300<<10)); r.status != http.StatusTooManyRequests {
		t.Fatalf("over the breaker: %d %s", r.status, r.body)
	}
}
