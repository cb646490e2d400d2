package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/memload"
	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardserve"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
)

// child is the logdoctor binary running a server in its own process, so
// its peak RSS is its own.
type child struct {
	cmd         *exec.Cmd
	out, stderr bytes.Buffer
	exited      chan struct{} // closed when it has exited, err set
	err         error
}

func startChild(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.stderr
	// The memory limit under test is the one the command derives.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "GOGC=") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.exited
	})
	return c
}

// waitListening waits until addr accepts TCP connections.
func (c *child) waitListening(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			return
		}
		select {
		case <-c.exited:
			t.Fatalf("exited before listening: %v\n%s", c.err, c.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s\n%s", addr, c.stderr.String())
		}
	}
}

func (c *child) peakRSS(t *testing.T) int64 {
	t.Helper()
	rss, err := memload.PeakRSS(c.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

// stop sends SIGTERM and returns the JSON report's data.
func (c *child) stop(t *testing.T, data any) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("still running a minute after SIGTERM\n%s", c.stderr.String())
	}
	var rep struct{ Data json.RawMessage }
	if err := json.Unmarshal(c.out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s\n%s", err, c.out.String(), c.stderr.String())
	}
	if err := json.Unmarshal(rep.Data, data); err != nil {
		t.Fatal(err)
	}
}

const (
	testBudget   = 64 << 20 // --max-in-flight in these tests
	rssAllowance = 64 << 20 // what a process may hold beyond its budget
)

// fluentSenders runs n fluent-logger-golang senders with acks at once,
// each posting events records with a unique "id".
func fluentSenders(t *testing.T, addr, tag string, n, events int) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for s := 0; s < n; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lg := dialFluent(t, addr)
			defer lg.Close()
			lg.MaxRetry = 5 // resend on a new connection, as out_forward does
			for e := 0; e < events; e++ {
				if err := lg.Post(tag, map[string]any{"id": fmt.Sprintf("%s-%d-%d", tag, s, e), "message": strings.Repeat("f", 150)}); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("fluent sender %d event %d: %w", s, e, err))
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// esCount counts the documents a stopped essim kept in dir.
func esCount(t *testing.T, dir string) int {
	t.Helper()
	return essimtest.Start(t, essim.Config{DataDir: dir}).Count("_all")
}

// Issue 11: twelve 1 GiB gzip bombs (about 1 MB each on the wire) at once
// with a hundred valid senders waiting for acks, against `pipeline run`
// in its own process: every bomb is refused, every valid chunk acked and
// indexed exactly once, and the process stays under its in-flight budget
// plus 64 MiB.
func TestPipelineRunMemoryBoundedUnderBombs(t *testing.T) {
	testenv.RequireLinux(t)
	bin := testenv.BuildLogdoctor(t)
	addr := freeBindAddr(t)
	dir, esData := t.TempDir(), t.TempDir()
	c := startChild(t, bin, "pipeline", "run", "--forward", addr, "--buffer-dir", dir, "--es-data", esData,
		"--max-in-flight", "64MiB", "--es-max-docs", "200000", "--log-file", filepath.Join(dir, "log"), "-o", "json")
	c.waitListening(t, addr)

	ctx := context.Background()
	var (
		wg         sync.WaitGroup
		bombs      memload.BombResult
		packed     memload.SenderResult
		fluentErrs []error
	)
	const packedSenders, packedChunks, packedEvents, fluentN, fluentEvents = 50, 4, 250, 50, 20
	wg.Add(3)
	go func() { defer wg.Done(); bombs = memload.Bombs(ctx, addr, 12, 1<<30, time.Minute) }()
	go func() {
		defer wg.Done()
		packed = memload.Senders(ctx, addr, "mem.packed", packedSenders, packedChunks, packedEvents, 3, time.Minute)
	}()
	go func() { defer wg.Done(); fluentErrs = fluentSenders(t, addr, "mem.fluent", fluentN, fluentEvents) }()
	wg.Wait()
	peak := c.peakRSS(t)
	var d pipeline.Report
	c.stop(t, &d)
	logs, _ := os.ReadFile(filepath.Join(dir, "log"))

	if bombs.Refused != 12 || bombs.Acked != 0 || len(bombs.Errors) > 0 {
		t.Errorf("bombs: %+v", bombs)
	}
	if packed.Acked != packed.Chunks || len(packed.Errors) > 0 || len(fluentErrs) > 0 {
		t.Errorf("valid senders: packed %d of %d chunks acked %v; fluent %v", packed.Acked, packed.Chunks, packed.Errors, fluentErrs)
	}
	if peak >= testBudget+rssAllowance {
		t.Errorf("peak RSS %d MiB, want under %d MiB (in-flight budget plus 64 MiB)", peak>>20, (testBudget+rssAllowance)>>20)
	}
	t.Logf("peak RSS %d MiB; in-flight %+v", peak>>20, d.Stats.InFlight)
	st := d.Stats
	// The six bombs of valid entries are stopped by the budget, the six
	// of zeros at their first byte.
	if st.InFlight.Limit != testBudget || st.InFlight.Refused+st.InFlight.Preempted < 6 || st.ForwardServer.Errors < 12 || d.LeftOver != 0 {
		t.Errorf("report: in-flight %+v, forward %+v, left %d", st.InFlight, st.ForwardServer, d.LeftOver)
	}
	want := packedSenders*packedChunks*packedEvents + fluentN*fluentEvents
	if got := esCount(t, esData); got != want {
		t.Errorf("%d documents indexed, want each of the %d acked events once", got, want)
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

// The same against `forward serve`.
func TestForwardServeMemoryBoundedUnderBombs(t *testing.T) {
	testenv.RequireLinux(t)
	bin := testenv.BuildLogdoctor(t)
	addr := freeBindAddr(t)
	c := startChild(t, bin, "forward", "serve", "--listen", addr, "--heartbeat=false", "--max-in-flight", "64MiB", "-o", "json")
	c.waitListening(t, addr)
	ctx := context.Background()
	var (
		wg     sync.WaitGroup
		bombs  memload.BombResult
		valid  memload.SenderResult
		chunks = 5
	)
	wg.Add(2)
	go func() { defer wg.Done(); bombs = memload.Bombs(ctx, addr, 12, 1<<30, time.Minute) }()
	go func() {
		defer wg.Done()
		valid = memload.Senders(ctx, addr, "mem.serve", 100, chunks, 200, 3, time.Minute)
	}()
	wg.Wait()
	peak := c.peakRSS(t)
	var d forwardserve.Result
	c.stop(t, &d)
	if bombs.Refused != 12 || bombs.Acked != 0 || len(bombs.Errors) > 0 {
		t.Errorf("bombs: %+v", bombs)
	}
	if valid.Acked != valid.Chunks || len(valid.Errors) > 0 {
		t.Errorf("valid senders: %d of %d chunks acked %v", valid.Acked, valid.Chunks, valid.Errors)
	}
	if peak >= testBudget+rssAllowance {
		t.Errorf("peak RSS %d MiB, want under %d MiB", peak>>20, (testBudget+rssAllowance)>>20)
	}
	t.Logf("peak RSS %d MiB; in-flight %+v", peak>>20, d.InFlight)
	var events int64
	for _, tc := range d.Tags {
		if tc.Tag == "mem.serve" {
			events = tc.Events
		}
	}
	if events < int64(valid.Events) || d.InFlight == nil || d.InFlight.Refused+d.InFlight.Preempted < 6 {
		t.Errorf("report: %d events (want %d), in-flight %+v", events, valid.Events, d.InFlight)
	}
}

// Six concurrent 90 MB bulks against `es serve`: past the in-flight
// requests breaker they get Elasticsearch's 429 circuit_breaking_exception
// (and are resent, as shippers do), every one ends up indexed, and the
// process stays under the breaker's limit plus 64 MiB.
func TestESServeBreakerUnderLargeBulks(t *testing.T) {
	testenv.RequireLinux(t)
	bin := testenv.BuildLogdoctor(t)
	addr := freeBindAddr(t)
	data := t.TempDir()
	const limit = 256 << 20
	c := startChild(t, bin, "es", "serve", "--listen", addr, "--data", data, "--inflight-requests-limit", "256MiB", "-o", "json")
	c.waitListening(t, addr)
	url := "http://" + addr
	body := memload.BulkBody("big", 90_000_000)
	docs := bytes.Count(body, []byte("\n")) / 2

	// Five bulks through memload, which resends on 429, and a sixth by
	// hand to read a refusal as a client does.
	var r memload.BulkResult
	five := make(chan struct{})
	go func() {
		defer close(five)
		r = memload.Bulks(context.Background(), url, body, 5, 30)
	}()
	time.Sleep(200 * time.Millisecond)
	var e struct {
		Error struct {
			Type, Durability string
			BytesWanted      int64 `json:"bytes_wanted"`
			BytesLimit       int64 `json:"bytes_limit"`
		}
		Status int
	}
	refused := false
	for try := 0; ; try++ {
		res, err := http.Post(url+"/_bulk", "application/x-ndjson", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == http.StatusTooManyRequests && !refused {
			refused = true
			json.NewDecoder(res.Body).Decode(&e)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if res.StatusCode != http.StatusTooManyRequests || try == 30 {
			t.Fatalf("bulk by hand: status %d after %d tries", res.StatusCode, try+1)
		}
		time.Sleep(300 * time.Millisecond)
	}
	<-five
	if !refused || e.Status != 429 || e.Error.Type != "circuit_breaking_exception" || e.Error.Durability != "TRANSIENT" ||
		e.Error.BytesLimit != limit || e.Error.BytesWanted <= limit {
		t.Errorf("bulk next to others: refused %v, %+v", refused, e)
	}

	peak := c.peakRSS(t)
	var d essim.Report
	c.stop(t, &d)
	if r.OK != 5 || len(r.Errors) > 0 {
		t.Errorf("bulks: %+v", r)
	}
	if peak >= limit+rssAllowance {
		t.Errorf("peak RSS %d MiB, want under %d MiB", peak>>20, (limit+rssAllowance)>>20)
	}
	t.Logf("peak RSS %d MiB; %d answered 429", peak>>20, d.Stats.BreakerTripped)
	if d.Stats.Docs != 6*docs || d.Stats.BreakerTripped < int64(r.Breaker)+1 {
		t.Errorf("stats %+v, want %d documents", d.Stats, 6*docs)
	}
}

// Issue 11 section 3: 2,000 connections that connect and send nothing,
// against the default --max-conns of 1,024, while fluent-logger-golang
// sends with acks: the sender is served, each event acked and indexed
// once, and idle connections are closed to make room.
func TestPipelineRunServesSenderUnderIdleFlood(t *testing.T) {
	testenv.RequireLinux(t)
	testenv.RequireOpenFiles(t, 4096)
	bin := testenv.BuildLogdoctor(t)
	addr := freeBindAddr(t)
	dir, esData := t.TempDir(), t.TempDir()
	c := startChild(t, bin, "pipeline", "run", "--forward", addr, "--buffer-dir", dir, "--es-data", esData, "-o", "json")
	c.waitListening(t, addr)

	// The flood: 2,000 silent connections, each dialled again half a
	// second after the server closes it.
	ctx, cancel := context.WithCancel(context.Background())
	var (
		flood  sync.WaitGroup
		opened sync.WaitGroup
	)
	opened.Add(2000)
	for i := 0; i < 2000; i++ {
		flood.Add(1)
		go func() {
			defer flood.Done()
			first := true
			for ctx.Err() == nil {
				conn, err := net.Dial("tcp", addr)
				if first {
					opened.Done()
					first = false
				}
				if err != nil {
					time.Sleep(500 * time.Millisecond)
					continue
				}
				stop := context.AfterFunc(ctx, func() { conn.Close() })
				conn.Read(make([]byte, 1)) // until the server closes it
				stop()
				conn.Close()
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
	}
	opened.Wait()
	time.Sleep(500 * time.Millisecond)

	const n = 200
	lg := dialFluent(t, addr)
	lg.MaxRetry = 5
	for i := 0; i < n; i++ {
		if err := lg.Post("flood", map[string]any{"id": i, "message": "served under an idle flood"}); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	lg.Close()
	cancel()
	flood.Wait()
	var d pipeline.Report
	c.stop(t, &d)
	st := d.Stats
	t.Logf("forward server %+v", st.ForwardServer)
	if st.ForwardServer.Evicted < 2000-1024 || d.LeftOver != 0 {
		t.Errorf("forward %+v, left in buffer %d", st.ForwardServer, d.LeftOver)
	}
	if got := esCount(t, esData); got != n {
		t.Errorf("%d documents indexed, want %d", got, n)
	}
}

// A connection that sends nothing is closed after --first-request-timeout;
// 200 KB of 0x01 bytes (200,000 values that are not requests) cost a few
// log lines and close their connection, counted in the report.
func TestPipelineRunClosesSilentAndBrokenConnections(t *testing.T) {
	addr := freeBindAddr(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "log")
	wait := startCLI("pipeline", "run", "--forward", addr, "--buffer-dir", dir, "--first-request-timeout", "300ms",
		"--duration", "5s", "--log-file", logPath, "-o", "json")
	var silent net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if silent, err = net.Dial("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	defer silent.Close()
	broken, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer broken.Close()
	go broken.Write(bytes.Repeat([]byte{0x01}, 200_000))
	start := time.Now()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Well before --duration ends the run (and closes everything).
	if _, err := silent.Read(make([]byte, 1)); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("silent connection: %v after %v", err, time.Since(start))
	}
	code, out, errb := wait()
	if code != ExitOK && code != ExitFindings {
		t.Fatalf("exit %d\n%s", code, errb)
	}
	var rep struct{ Data pipeline.Report }
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	fs := rep.Data.Stats.ForwardServer
	if fs.NoFirstRequest < 1 || fs.ClosedBroken != 1 || fs.Dropped != 100 {
		t.Errorf("forward stats %+v", fs)
		logs, _ := os.ReadFile(logPath)
		t.Logf("%s", logs)
	}
	logs, _ := os.ReadFile(logPath)
	if n := strings.Count(string(logs), "incoming chunk is broken"); n > 2 {
		t.Errorf("%d lines about broken chunks:\n%s", n, logs)
	}
	if !strings.Contains(string(logs), "repeated=99") {
		t.Errorf("no aggregated count in the log:\n%s", logs)
	}
}
