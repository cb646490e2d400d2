package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
)

// TestBufferDiskFull puts the buffer on a small tmpfs that fills up (issue
// 11: acks stopped, but nothing was logged). The refused appends are
// logged at ERROR once, with the segment path and "disk full", counted by
// op, and reported in Stats; once space is freed, appends succeed again
// and the log says so. Every event acked before is still in the buffer.
func TestBufferDiskFull(t *testing.T) {
	dir := testenv.Tmpfs(t, 2<<20)
	// Leave about 600 KiB: the first segment fits, its preallocated
	// successor does not, and the records run out of room soon after.
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 1400<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs testenv.SyncBuffer
	p := startPipeline(t, Config{BufferDir: filepath.Join(dir, "buffer"), SegmentBytes: 256 << 10,
		BufferMaxBytes: 64 << 20, BufferFullWait: 1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		ES:     esout.Config{URLs: []string{"http://127.0.0.2:1"}}}) // nothing indexed: nothing freed
	host, port := hostPort(t, p.ForwardAddr())
	dial := func() *fluent.Fluent {
		lg, err := fluent.New(fluent.Config{FluentHost: host, FluentPort: port, RequestAck: true, MaxRetry: 1, RetryWait: 10})
		if err != nil {
			t.Fatal(err)
		}
		return lg
	}
	lg := dial()
	msg := map[string]any{"msg": strings.Repeat("d", 8<<10)}
	acked := 0
	for ; acked < 1000; acked++ {
		if err := lg.Post("full", msg); err != nil {
			break
		}
	}
	lg.Close()
	if acked == 1000 || acked == 0 {
		t.Fatalf("%d events acked on a 2 MiB filesystem", acked)
	}
	st := p.Stats()
	wf := st.BufferWriteFailures
	if wf == nil || wf.DiskFull == 0 || !wf.Failing || !strings.HasPrefix(wf.Path, dir) || !strings.Contains(wf.Error, "disk full") {
		t.Fatalf("write failures %+v", wf)
	}
	if st.ForwardEvents != uint64(acked) || st.ForwardRefused == 0 {
		t.Fatalf("%d acked, stats %+v", acked, st)
	}
	if got := metric(t, p, "logdoctor_pipeline_buffer_write_errors_total", nil); got != float64(wf.Count) {
		t.Fatalf("write errors metric %v, %d failures", got, wf.Count)
	}
	if got := metric(t, p, "logdoctor_pipeline_forward_refused_total", map[string]string{"reason": "buffer_error"}); got == 0 {
		t.Fatal("no forward refusal counted")
	}
	var errLines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], "buffer write failed") || !strings.Contains(errLines[0], "path="+dir) ||
		!strings.Contains(errLines[0], "disk full") {
		t.Fatalf("want one ERROR line naming the path and disk full, got:\n%s", logs.String())
	}

	// Room again: the buffer works without a restart.
	os.Remove(filler)
	lg = dial()
	for i := 0; i < 5; i++ {
		if err := lg.Post("full", msg); err != nil {
			t.Fatalf("post after freeing space: %v\n%s", err, logs.String())
		}
	}
	lg.Close()
	if wf := p.Stats().BufferWriteFailures; wf.Failing {
		t.Fatalf("still failing: %+v", wf)
	}
	if !strings.Contains(logs.String(), "buffer writes succeed again") {
		t.Fatalf("no recovery line:\n%s", logs.String())
	}
	if st := p.Stats(); st.Buffer.Records != int64(acked+5) {
		t.Fatalf("buffer holds %d events, %d were acked", st.Buffer.Records, acked+5)
	}
}

// TestBufferCorruptLogged: 25 damaged records in the buffer at start. The
// other 75 are indexed; the first 20 ranges get an ERROR line each, then
// one line says more were found; the metric and Stats count all 25.
func TestBufferCorruptLogged(t *testing.T) {
	dir := t.TempDir()
	b, err := buffer.Open(buffer.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var recs []buffer.Record
	for i := 0; i < 100; i++ {
		// Ingest times apart: a frame each (one request's events would
		// share a group frame, and its damage lose them all).
		recs = append(recs, buffer.Record{ID: fmt.Sprintf("c-%03d", i), Tag: "corrupt", Sec: 1700000000 + int64(i),
			Ingest: int64(i), Doc: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	if err := b.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	b.Close()
	path := filepath.Join(dir, "seg-0000000000000001.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Walk the frames (docs/commands/pipeline.md) and flip a payload byte
	// of every fourth record.
	for off, i := 8, 0; off+16 <= len(data) && bytes.Equal(data[off:off+4], []byte{0xff, 'L', 'D', 0xfe}); i++ {
		plen := int(binary.LittleEndian.Uint32(data[off+4:]))
		if i%4 == 0 {
			data[off+16+3] ^= 0x01
		}
		off += 16 + plen
	}
	os.WriteFile(path, data, 0o600)

	var logs testenv.SyncBuffer
	es := startES(t, "", essim.Config{})
	p := startPipeline(t, Config{BufferDir: dir, ES: esConfig(es), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	flush(t, p, 10*time.Second)
	if n := es.Count("logs-*"); n != 75 {
		t.Fatalf("%d indexed, want 75", n)
	}
	errLines := strings.Count(logs.String(), "level=ERROR")
	if errLines != 21 || strings.Count(logs.String(), "records_lost=1") != 20 || !strings.Contains(logs.String(), "no longer logged one by one") {
		t.Fatalf("%d ERROR lines:\n%s", errLines, logs.String())
	}
	if got := metric(t, p, "logdoctor_pipeline_buffer_corrupt_records_total", nil); got != 25 {
		t.Fatalf("corrupt records metric %v", got)
	}
	if st := p.Stats(); len(st.BufferCorrupt) != 25 || st.Recovery.CorruptRecords != 25 || st.Recovery.Replay != 75 {
		t.Fatalf("stats: %d corruptions, recovery %+v", len(st.BufferCorrupt), st.Recovery)
	}
}
