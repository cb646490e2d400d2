package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/logdoctor/logdoctor/pkg/essim"
)

// testLogger sends pipeline logs to the test log (shown on failure).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startES(t *testing.T, addr string, cfg essim.Config) *essim.Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s, err := essim.Start(context.Background(), addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startPipeline starts a pipeline on loopback with a temp buffer dir.
func startPipeline(t *testing.T, cfg Config) *Pipeline {
	t.Helper()
	if cfg.BufferDir == "" && !cfg.MemoryBuffer {
		cfg.BufferDir = t.TempDir()
	}
	if cfg.ForwardAddr == "" && cfg.UDPAddr == "" {
		cfg.ForwardAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.SegmentBytes == 0 {
		cfg.SegmentBytes = 1 << 20 // keep preallocation small in tests
	}
	if cfg.ES.FlushInterval == 0 {
		cfg.ES.FlushInterval = 20 * time.Millisecond
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

func flush(t *testing.T, p *Pipeline, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush: %v; stats %+v", err, p.Stats())
	}
}

func hostPort(t *testing.T, a net.Addr) (string, int) {
	t.Helper()
	h, ps, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(ps)
	return h, port
}

// esDocs fetches every document of the indices matching pattern through
// the search API, as any client would.
func esDocs(t *testing.T, url, pattern string, max int) []map[string]any {
	t.Helper()
	body := fmt.Sprintf(`{"size":%d,"query":{"match_all":{}}}`, max)
	resp, err := http.Post(url+"/"+pattern+"/_search", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("search: %d %s", resp.StatusCode, data)
	}
	var sr struct {
		Hits struct {
			Hits []struct {
				Index  string         `json:"_index"`
				ID     string         `json:"_id"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&sr); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, h := range sr.Hits.Hits {
		h.Source["_index"] = h.Index
		h.Source["_id"] = h.ID
		out = append(out, h.Source)
	}
	return out
}

// checkExactlyOnce asserts that the documents hold every want[key] once
// and nothing else, and returns them by key.
func checkExactlyOnce(t *testing.T, docs []map[string]any, key string, want map[string]bool) map[string]map[string]any {
	t.Helper()
	byKey := map[string]map[string]any{}
	dups := 0
	for _, d := range docs {
		k := fmt.Sprint(d[key])
		if _, ok := byKey[k]; ok {
			dups++
			if dups < 5 {
				t.Errorf("duplicate %s=%s", key, k)
			}
		}
		byKey[k] = d
	}
	missing := 0
	for k := range want {
		if _, ok := byKey[k]; !ok {
			missing++
			if missing < 5 {
				t.Errorf("missing %s=%s", key, k)
			}
		}
	}
	extra := 0
	for k := range byKey {
		if !want[k] {
			extra++
		}
	}
	if dups+missing > 0 {
		t.Fatalf("%d documents: %d duplicates, %d missing, %d unexpected (want %d)", len(docs), dups, missing, extra, len(want))
	}
	return byKey
}

func readDeadLetters(t *testing.T, path string) []DeadLetter {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []DeadLetter
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var d DeadLetter
		if err := json.Unmarshal(line, &d); err != nil {
			t.Fatalf("dead-letter line %q: %v", line, err)
		}
		out = append(out, d)
	}
	return out
}

// metric scrapes the pipeline's registry for one sample value.
func metric(t *testing.T, p *Pipeline, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := p.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// takesDirect reports whether the filesystem under dir accepts an O_DIRECT
// write of one aligned 4 KiB block, as the buffer's commits are.
func takesDirect(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.CreateTemp(dir, "direct-probe")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer os.Remove(f.Name())
	d, err := os.OpenFile(f.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return false
	}
	defer d.Close()
	raw := make([]byte, 2*4096)
	block := raw[4096-int(uintptr(unsafe.Pointer(&raw[0]))%4096):][:4096]
	_, err = d.WriteAt(block, 0)
	return err == nil
}
