package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/essim"
)

// TestCrashSafety runs `logdoctor pipeline run` as a separate process,
// streams acked events into it, SIGKILLs it at random points and restarts
// it on the same buffer directory. Every event that was acked is in
// Elasticsearch exactly once at the end.
func TestCrashSafety(t *testing.T) {
	testenv.RequireLinux(t)
	bin := testenv.BuildLogdoctor(t)
	es := startES(t, "", essim.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()

	type proc struct {
		cmd            *exec.Cmd
		stdout, stderr *bytes.Buffer
	}
	start := func() *proc {
		t.Helper()
		p := &proc{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
		p.cmd = exec.Command(bin, "pipeline", "run", "--forward", addr, "--es", es.URL(), "--buffer-dir", dir,
			"--flush-interval", "20ms", "--es-timeout", "5s", "--shutdown-timeout", "20s", "--log-level", "warn", "-o", "json")
		p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				return p
			}
			if time.Now().After(deadline) {
				p.cmd.Process.Kill()
				p.cmd.Wait()
				t.Fatalf("pipeline did not listen: %v\n%s", err, p.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cur := start()
	all := []*proc{cur}
	t.Cleanup(func() {
		if cur.cmd.ProcessState == nil {
			cur.cmd.Process.Kill()
			cur.cmd.Wait()
		}
	})

	host, port := hostPort(t, mustAddr(t, addr))
	s := &ackedSender{host: host, port: port, tag: "crash", pad: "x", stop: make(chan struct{}), tagPerSender: true}
	const senders = 4
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	base := time.Date(2026, 11, 21, 13, 0, 0, 0, time.UTC)
	for id := 0; id < senders; id++ {
		wg.Add(1)
		go func(id int) { defer wg.Done(); s.run(t, ctx, id, 9000, base) }(id)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	const kills = 4
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		before := s.acked.Load()
		cur.cmd.Process.Signal(syscall.SIGKILL)
		cur.cmd.Wait()
		t.Logf("kill %d: %d events acked so far", k+1, before)
		cur = start()
		all = append(all, cur)
	}
	time.Sleep(500 * time.Millisecond)
	close(s.stop)
	wg.Wait()

	// A clean stop flushes everything to Elasticsearch.
	cur.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cur.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		cur.cmd.Process.Kill()
		t.Fatalf("pipeline did not stop on SIGTERM\n%s", cur.stderr)
	}
	var rep struct {
		Data struct {
			LeftInBuffer int64 `json:"left_in_buffer"`
			Stats        Stats `json:"stats"`
		} `json:"data"`
	}
	if err := json.Unmarshal(cur.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s\n%s", err, cur.stdout, cur.stderr)
	}
	if rep.Data.LeftInBuffer != 0 {
		t.Fatalf("%d events left in the buffer after a clean stop", rep.Data.LeftInBuffer)
	}
	want := s.wantAcked(senders)
	if len(want) < 100 {
		t.Fatalf("only %d events acked: the test did not exercise much", len(want))
	}
	var docs []map[string]any
	for id := 0; id < senders; id++ {
		docs = append(docs, esDocs(t, es.URL(), fmt.Sprintf("logs-crash.s%d-*", id), 10000)...)
	}
	checkExactlyOnce(t, docs, "msg", want)
	// A kill interrupts writes: torn tails, never corruption.
	for i, p := range all {
		if strings.Contains(p.stderr.String(), "buffer corrupt") {
			t.Fatalf("start %d reported corruption after a kill -9:\n%s", i, p.stderr)
		}
	}
	t.Logf("%d acked events, each indexed once, across %d kills; last run: %+v", len(want), kills, rep.Data.Stats.Recovery)
}

func mustAddr(t *testing.T, s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
