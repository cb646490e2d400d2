package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/internal/shippertest"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/forward"
)

// TestPipelineEmbeddedESFlushesOnSIGTERM: pipeline run with the embedded
// Elasticsearch takes forward chunks with acks until a SIGTERM. With a
// 2 s flush interval and batches larger than the load, what it acked
// last is still in the buffer then, and the shutdown flush sends it about
// 2 s after the signal: the embedded ES must still be there (it used to
// stop 22 ms after the signal, and the flush retried until the shutdown
// timeout). --es-data keeps the documents so the test counts them itself
// once the process is gone.
func TestPipelineEmbeddedESFlushesOnSIGTERM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	esData := filepath.Join(dir, "es")
	addr := fmt.Sprintf("127.0.0.1:%d", shippertest.FreePort(t))
	d := start(t, addr, "pipeline", "run", "--forward", addr, "--es", "embedded", "--es-data", esData,
		"--buffer-dir", filepath.Join(dir, "buffer"), "--flush-interval", "2s", "--batch-count", "100000",
		"--shutdown-timeout", "20s", "-o", "json")

	// Load: 500-event chunks, each waiting for its ack, until stopped.
	var acked atomic.Int64
	stop := make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		sent <- sendChunks(addr, 500, &acked, stop)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for acked.Load() < 20000 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d events acked in 30 s", acked.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-sent // an error is expected: the pipeline stops accepting
	res := d.stop(t)
	rep := parseReport(t, res)
	var data struct {
		Stats struct {
			ForwardEvents uint64 `json:"forward_events"`
			Buffer        struct {
				Appended uint64
			} `json:"buffer"`
			Output struct {
				Indexed uint64 `json:"indexed"`
			} `json:"output"`
		} `json:"stats"`
		LeftOver      int64  `json:"left_in_buffer"`
		ShutdownError string `json:"shutdown_error"`
	}
	if err := json.Unmarshal(rep.Data, &data); err != nil {
		t.Fatal(err)
	}
	// The request in flight at the signal may be made durable and then
	// refused its ack (pipeline.forward_refused): it is indexed all the
	// same, so what counts is every event the buffer took.
	took := data.Stats.Buffer.Appended
	if res.code != 0 || rep.has("pipeline.left_in_buffer") || data.LeftOver != 0 || data.ShutdownError != "" ||
		data.Stats.Output.Indexed != took || data.Stats.ForwardEvents < uint64(acked.Load()) {
		t.Fatalf("acked %d, report %+v, findings %v\n%s", acked.Load(), data, rep.ids(), res)
	}
	// What the embedded ES kept: every event the pipeline took, once.
	s, err := essim.Start(context.Background(), "127.0.0.1:0", essim.Config{DataDir: esData})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.Count("_all"); uint64(n) != took {
		t.Fatalf("embedded ES holds %d documents; the pipeline took %d events, %d acked", n, took, acked.Load())
	}
	t.Logf("%d events acked, %d taken, all indexed during the shutdown flush", acked.Load(), took)
}

// sendChunks writes forward chunks of n events over one connection, each
// waiting for its ack, until stop is closed or a send fails.
func sendChunks(addr string, n int, acked *atomic.Int64, stop <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := forward.Dial(ctx, addr, forward.ClientConfig{})
	if err != nil {
		return err
	}
	defer c.Close()
	for seq := 0; ; {
		select {
		case <-stop:
			return nil
		default:
		}
		entries := make([]forward.Entry, n)
		for i := range entries {
			rec, err := msgpack.Marshal(map[string]any{"seq": seq, "message": "sigterm load"})
			if err != nil {
				return err
			}
			entries[i] = forward.Entry{Time: forward.NewEventTime(time.Now()), Record: rec}
			seq++
		}
		req := &forward.Request{Tag: "load", Entries: entries, Chunk: forward.NewChunkID(), Mode: forward.ModeForward, Size: n}
		if err := c.Send(req, 10*time.Second); err != nil {
			return err
		}
		acked.Add(int64(n))
	}
}
