package lab

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// indexOne writes one document to the Elasticsearch at url.
func indexOne(t *testing.T, url string) {
	t.Helper()
	res, err := http.Post(url+"/_bulk", "application/x-ndjson",
		strings.NewReader("{\"create\":{\"_index\":\"logs\",\"_id\":\"1\"}}\n{\"msg\":\"hello\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"errors":false`) {
		t.Fatalf("bulk: %d %s", res.StatusCode, b)
	}
}

// The embedded Elasticsearch is disk-backed: by default in
// <buffer-dir>/embedded-es, emptied at start and removed at stop; with
// --es-data in that directory, kept.
func TestStartESDirs(t *testing.T) {
	ctx := context.Background()
	buf := filepath.Join(t.TempDir(), "buffer")
	esDir := filepath.Join(buf, ESDirName)
	// A crash left documents behind: they are not served again.
	if err := os.MkdirAll(esDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(esDir, "essim.log"), []byte("C\tstale\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	es, err := StartES(ctx, "", buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	url, stop := es.URL, es.Stop
	if es.Dir != esDir {
		t.Fatalf("dir %s, want %s", es.Dir, esDir)
	}
	if fi, err := os.Stat(buf); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("buffer dir mode: %v %v", fi, err)
	}
	if res, err := http.Get(url + "/stale"); err != nil || res.StatusCode != 404 {
		t.Fatalf("index from the previous run still there: %v %v", res, err)
	}
	indexOne(t, url)
	if fi, err := os.Stat(filepath.Join(esDir, "essim.log")); err != nil || fi.Size() == 0 {
		t.Fatalf("documents not on disk: %v %v", fi, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(esDir); !os.IsNotExist(err) {
		t.Fatalf("%s not removed at stop: %v", esDir, err)
	}

	// --memory-buffer: a temp dir, removed at stop.
	es, err = StartES(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	dir, stop := es.Dir, es.Stop
	if _, err := os.Stat(filepath.Join(dir, "essim.log")); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s not removed at stop: %v", dir, err)
	}

	// --es-data: kept across restarts.
	keep := t.TempDir()
	es, err = StartES(ctx, keep, buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	url, stop = es.URL, es.Stop
	indexOne(t, url)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	es, err = StartES(ctx, keep, buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	url, stop = es.URL, es.Stop
	defer stop()
	res, err := http.Get(url + "/logs/_doc/1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"_source":{"msg":"hello"}`) {
		t.Fatalf("after restart: %d %s", res.StatusCode, b)
	}
}
