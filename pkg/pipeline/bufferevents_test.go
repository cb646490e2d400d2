package pipeline

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
)

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

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
	var logs syncBuffer
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
