package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
)

// segFrame is one record of a buffer segment, located by walking the
// format documented in docs/commands/pipeline.md.
type segFrame struct {
	start, payload, end int // frame start, payload start, frame end
	n                   int // the event's "n" field
}

// walkSegment lists the records of a segment file written by the current
// format: an 8-byte magic, then frames of sync marker, payload length,
// payload CRC, header CRC (sealed with the segment id) and payload, then
// zeros.
func walkSegment(t *testing.T, data []byte) []segFrame {
	t.Helper()
	if string(data[:7]) != "LDBUF3\n" {
		t.Fatalf("segment magic %q", data[:8])
	}
	var out []segFrame
	for off := 8; off+16 <= len(data); {
		if string(data[off:off+4]) != "\xffLD\xfe" {
			break // the zeros after the last commit
		}
		plen := int(binary.LittleEndian.Uint32(data[off+4:]))
		p := data[off+16 : off+16+plen]
		// u8 version | u8 id length | id | u16 tag length | tag | 20 bytes of times | document:
		// JSON in version 1, the forward record as sent (msgpack) in version 2
		idLen := int(p[1])
		tagLen := int(binary.LittleEndian.Uint16(p[2+idLen:]))
		doc := p[2+idLen+2+tagLen+20:]
		var ev struct {
			N int `json:"n" msgpack:"n"`
		}
		unmarshal := json.Unmarshal
		if p[0] == 2 {
			unmarshal = msgpack.Unmarshal
		}
		if err := unmarshal(doc, &ev); err != nil {
			t.Fatalf("record at %d (version %d): %v: %q", off, p[0], err, doc)
		}
		out = append(out, segFrame{start: off, payload: off + 16, end: off + 16 + plen, n: ev.N})
		off += 16 + plen
	}
	return out
}

type pipelineChild struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

// startPipelineChild runs the logdoctor binary's `pipeline run` and waits
// until its forward port accepts connections.
func startPipelineChild(t *testing.T, bin, addr string, args ...string) *pipelineChild {
	t.Helper()
	c := &pipelineChild{}
	c.cmd = exec.Command(bin, append([]string{"pipeline", "run", "--forward", addr, "-o", "json"}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline did not listen on %s: %v\n%s", addr, err, &c.stderr)
		}
	}
}

// TestPipelineCorruptRecordCostsOnlyThatRecord is issue 11's reproduction:
// 5,000 acked events into a pipeline whose Elasticsearch is unreachable,
// kill -9, one record's payload damaged on disk, restart against a working
// Elasticsearch. Every other record is indexed, the damaged bytes are kept
// in <buffer-dir>/corrupt/, the operator gets an ERROR line and a critical
// pipeline.buffer_corrupt finding, and the exit code follows --fail-on.
func TestPipelineCorruptRecordCostsOnlyThatRecord(t *testing.T) {
	testenv.RequireLinux(t)
	bin := testenv.BuildLogdoctor(t)
	dir := t.TempDir()
	addr := freeBindAddr(t)
	down := "http://" + freeTCPAddr(t, "127.0.0.2") // nothing listens there

	first := startPipelineChild(t, bin, addr, "--es", down, "--buffer-dir", dir, "--log-level", "warn")
	const total, senders = 5000, 10
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			lg := dialFluent(t, addr)
			defer lg.Close()
			for i := s; i < total; i += senders {
				msg := map[string]any{"n": i, "msg": strings.Repeat("x", 60)}
				if err := lg.Post("corrupt.test", msg); err != nil {
					errs <- fmt.Errorf("event %d: %w", i, err)
					return
				}
			}
		}(s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err) // Post returns only after the ack: every event is acked
	}
	first.cmd.Process.Signal(syscall.SIGKILL)
	first.cmd.Wait()

	segPath := filepath.Join(dir, "seg-0000000000000001.log")
	data, err := os.ReadFile(segPath)
	if err != nil {
		t.Fatal(err)
	}
	frames := walkSegment(t, data)
	if len(frames) != total {
		t.Fatalf("segment holds %d records, want %d", len(frames), total)
	}
	// XOR bytes 20-27 of the payload of record 2,500, as in the issue.
	victim := frames[2499]
	for i := victim.payload + 20; i < victim.payload+28; i++ {
		data[i] ^= 0xff
	}
	damaged := append([]byte(nil), data[victim.start:victim.end]...)
	if err := os.WriteFile(segPath, data, 0o600); err != nil {
		t.Fatal(err)
	}

	es := essimtest.Start(t, essim.Config{})
	metrics := freeBindAddr(t)
	second := startPipelineChild(t, bin, addr, "--es", es.URL(), "--buffer-dir", dir, "--flush-interval", "20ms", "--metrics", metrics)
	for deadline := time.Now().Add(60 * time.Second); es.Count("logs-*") < total-1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("indexed %d of %d\n%s", es.Count("logs-*"), total-1, &second.stderr)
		}
	}
	mres, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	if !strings.Contains(string(exposition), "\nlogdoctor_pipeline_buffer_corrupt_records_total 1\n") {
		t.Errorf("metrics lack logdoctor_pipeline_buffer_corrupt_records_total 1:\n%s", exposition)
	}
	second.cmd.Process.Signal(syscall.SIGTERM)
	err = second.cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	indexed := es.Count("logs-*")
	t.Logf("one flipped record: %d of %d acked events indexed", indexed, total)

	// Every record but the damaged one, each once.
	body := fmt.Sprintf(`{"size":%d,"query":{"match_all":{}}}`, total)
	resp, err := http.Post(es.URL()+"/logs-*/_search", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var sr struct {
		Hits struct {
			Hits []struct {
				Source struct{ N int } `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(res, &sr); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, h := range sr.Hits.Hits {
		seen[h.Source.N]++
	}
	for i := 0; i < total; i++ {
		want := 1
		if i == victim.n {
			want = 0
		}
		if seen[i] != want {
			t.Fatalf("event %d indexed %d times, want %d (damaged record held event %d)", i, seen[i], want, victim.n)
		}
	}

	if code != int(ExitFindings) {
		t.Errorf("exit code %d, want %d (a critical finding with the default --fail-on)", code, ExitFindings)
	}
	var rep struct {
		Findings []struct {
			ID       string         `json:"id"`
			Severity string         `json:"severity"`
			Evidence map[string]any `json:"evidence"`
		} `json:"findings"`
		Data pipeline.Report `json:"data"`
	}
	if err := json.Unmarshal(second.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s\n%s", err, &second.stdout, &second.stderr)
	}
	if rc := rep.Data.Stats.Recovery; rc.Replay != total-1 || rc.CorruptRegions != 1 || rc.CorruptRecords != 1 || rc.TruncatedBytes != 0 {
		t.Errorf("recovery %+v", rc)
	}
	var ev map[string]any
	for _, f := range rep.Findings {
		if f.ID == "pipeline.buffer_corrupt" {
			if f.Severity != "critical" {
				t.Errorf("severity %s", f.Severity)
			}
			ev = f.Evidence
		}
	}
	if ev == nil {
		t.Fatalf("no pipeline.buffer_corrupt finding: %s", &second.stdout)
	}
	regions, _ := ev["regions"].([]any)
	if len(regions) != 1 {
		t.Fatalf("evidence %v", ev)
	}
	r := regions[0].(map[string]any)
	if r["segment"] != "seg-0000000000000001.log" || r["from"] != float64(victim.start) || r["to"] != float64(victim.end) ||
		r["bytes"] != float64(victim.end-victim.start) || r["records_lost"] != float64(1) || ev["records_lost"] != float64(1) {
		t.Errorf("evidence %v, want the frame at [%d, %d)", ev, victim.start, victim.end)
	}
	// The damaged bytes are kept, and the segment, whose intact records are
	// all indexed now, is retired.
	q, _ := r["quarantine"].(string)
	if filepath.Dir(q) != filepath.Join(dir, "corrupt") {
		t.Errorf("quarantine %q not in %s/corrupt", q, dir)
	}
	if kept, err := os.ReadFile(q); err != nil || !bytes.Equal(kept, damaged) {
		t.Errorf("quarantine file %q: %v (%d bytes, want the %d damaged ones)", q, err, len(kept), len(damaged))
	}
	if _, err := os.Stat(segPath); !os.IsNotExist(err) {
		t.Errorf("segment not retired: %v", err)
	}
	logs := second.stderr.String()
	line := ""
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "corrupt") {
			line = l
		}
	}
	for _, want := range []string{"segment=seg-0000000000000001.log", fmt.Sprintf("from=%d", victim.start),
		fmt.Sprintf("to=%d", victim.end), "records_lost=1", "quarantine="} {
		if !strings.Contains(line, want) {
			t.Errorf("ERROR line %q lacks %s\n%s", line, want, logs)
		}
	}
}

// TestPipelineDiskFull runs `pipeline run` with its buffer on a 2 MiB
// tmpfs that fills up: the refused appends are logged at ERROR with the
// segment path and "disk full", and the report carries a critical
// pipeline.buffer_write_failed finding, so the exit code is 3.
func TestPipelineDiskFull(t *testing.T) {
	dir := testenv.Tmpfs(t, 2<<20)
	if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, 1400<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeBindAddr(t)
	down := "http://" + freeTCPAddr(t, "127.0.0.2")
	wait := startCLI("pipeline", "run", "--forward", addr, "--es", down, "--buffer-dir", filepath.Join(dir, "buffer"),
		"--buffer-full-wait", "1ms", "--duration", "3s", "--shutdown-timeout", "100ms", "-o", "json")
	lg := dialFluent(t, addr)
	msg := map[string]any{"msg": strings.Repeat("d", 8<<10)}
	acked := 0
	for ; acked < 1000; acked++ {
		if err := lg.Post("full", msg); err != nil {
			break
		}
	}
	lg.Close()
	code, out, errb := wait()
	if acked == 0 || acked == 1000 {
		t.Fatalf("%d events acked on a 2 MiB filesystem\n%s", acked, errb)
	}
	if code != ExitFindings {
		t.Errorf("exit %d, want %d", code, ExitFindings)
	}
	var rep struct {
		Findings []struct {
			ID       string         `json:"id"`
			Severity string         `json:"severity"`
			Summary  string         `json:"summary"`
			Evidence map[string]any `json:"evidence"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	found := false
	for _, f := range rep.Findings {
		if f.ID != "pipeline.buffer_write_failed" {
			continue
		}
		found = true
		ev := f.Evidence
		if f.Severity != "critical" || ev["disk_full"] == float64(0) || ev["still_failing"] != true ||
			!strings.HasPrefix(fmt.Sprint(ev["path"]), dir) || !strings.Contains(fmt.Sprint(ev["error"]), "disk full") {
			t.Errorf("finding %+v", f)
		}
	}
	if !found {
		t.Fatalf("no pipeline.buffer_write_failed finding: %s", out)
	}
	ok := false
	for _, l := range strings.Split(errb, "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "buffer write failed") &&
			strings.Contains(l, "path="+dir) && strings.Contains(l, "disk full") {
			ok = true
		}
	}
	if !ok {
		t.Errorf("no ERROR line with the path and disk full:\n%s", errb)
	}
}
