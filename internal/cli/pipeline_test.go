package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
	"github.com/logdoctor/logdoctor/pkg/report"
)

func TestPipelineRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"pipeline", "run", "--index", "logs-{nope}"},
		{"pipeline", "run", "--es", "embedded,http://127.0.0.1:9200"},
		{"pipeline", "run", "--forward", "", "--udp", ""},
		{"pipeline", "run", "--buffer-max", "lots"},
		{"pipeline", "run", "--log-format", "xml"},
		{"pipeline", "run", "--forward-tls-cert", "x.pem"},
		{"pipeline", "run", "--es-max-docs", "-1"},
	} {
		code, _, errOut := runCLI(t, args...)
		if code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errOut)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "512": 512, "1KiB": 1024, "8MiB": 8 << 20, "1.5GiB": 3 << 29, "2MB": 2e6} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	if _, err := parseSize("-1"); err == nil {
		t.Error("negative size accepted")
	}
}

// TestPipelineRunEmbedded runs the command with the embedded
// Elasticsearch, sends acked events with fluent-logger-golang, and reads
// the report it prints when --duration ends.
func TestPipelineRunEmbedded(t *testing.T) {
	addr := freeBindAddr(t)
	dir, esData := t.TempDir(), t.TempDir()
	hups := make(chan os.Signal, 1)
	wait := startCLIHangups(hups, "pipeline", "run", "--forward", addr, "--buffer-dir", dir,
		"--duration", "3s", "--flush-interval", "10ms", "--log-file", filepath.Join(dir, "log"), "--es-data", esData, "-o", "json")
	lg := dialFluent(t, addr)
	const n = 50
	for i := 0; i < n; i++ {
		if err := lg.Post("cli.test", map[string]any{"msg": fmt.Sprint("cli-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	lg.Close()
	logPath := filepath.Join(dir, "log")
	checkEmbeddedInProcess(t, logPath, n)
	// SIGHUP (delivered by main) reopens the log file: after a rename
	// (logrotate), new lines go to a new file at the configured path.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	hups <- syscall.SIGHUP
	deadline := time.Now().Add(2 * time.Second)
	for {
		if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "SIGHUP") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("log file not reopened on SIGHUP")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out, errb := wait()
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errb)
	}
	if !strings.Contains(errb, "buffer="+dir) {
		t.Errorf("start line does not name the buffer dir: %s", errb)
	}
	var rep struct {
		Command string          `json:"command"`
		Data    pipeline.Report `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	st := rep.Data.Stats
	if rep.Command != "pipeline run" || st.ForwardAcks != n || st.Output.Indexed != n || rep.Data.LeftOver != 0 {
		t.Fatalf("report %+v", rep)
	}
	// --es-data: the embedded Elasticsearch kept the documents on disk.
	if ents, _ := os.ReadDir(esData); len(ents) == 0 {
		t.Error("--es-data directory is empty")
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "log.1"))
	logs2, _ := os.ReadFile(filepath.Join(dir, "log"))
	if !strings.Contains(string(logs), "pipeline started") || !strings.Contains(string(logs2), "pipeline stopped") {
		t.Fatalf("log file: %s", logs)
	}
}

// checkEmbeddedInProcess waits until the embedded Elasticsearch named
// in the log holds n documents, read over its loopback port by one
// connection, and checks that this was the only connection it accepted:
// the pipeline's bulk requests went in process (lab.EmbeddedES.Transport).
func checkEmbeddedInProcess(t *testing.T, logPath string, n int) {
	t.Helper()
	var url string
	for deadline := time.Now().Add(5 * time.Second); url == ""; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(logPath)
		if m := regexp.MustCompile(`embedded elasticsearch started.* url=(http://\S+)`).FindSubmatch(b); m != nil {
			url = string(m[1])
		} else if time.Now().After(deadline) {
			t.Fatalf("no embedded elasticsearch URL in the log:\n%s", b)
		}
	}
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	query := func(path string, v any) {
		t.Helper()
		res, err := c.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var count struct{ Count int }
		query("/_count", &count)
		if count.Count == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the embedded elasticsearch holds %d documents, want %d", count.Count, n)
		}
	}
	var stats struct {
		Nodes map[string]struct {
			HTTP struct {
				TotalOpened int `json:"total_opened"`
			} `json:"http"`
		} `json:"nodes"`
	}
	query("/_nodes/stats", &stats)
	for id, nd := range stats.Nodes {
		if nd.HTTP.TotalOpened != 1 {
			t.Errorf("node %s accepted %d connections, want 1 (this test's): the pipeline's requests did not go in process", id, nd.HTTP.TotalOpened)
		}
	}
	if len(stats.Nodes) != 1 {
		t.Errorf("nodes stats: %+v", stats)
	}
}

// `pipeline run --udp` with --udp-time-key/--udp-keep-time-key, end to
// end: the documents kept by --es-data carry the datagram's own time.
func TestPipelineRunUDPTimeKey(t *testing.T) {
	addr := freeUDPAddr(t)
	dir, esData := t.TempDir(), t.TempDir()
	wait := startCLI("pipeline", "run", "--forward", "", "--udp", addr, "--udp-time-key", "ts",
		"--udp-keep-time-key", "--buffer-dir", dir, "--duration", "2s", "--flush-interval", "10ms", "--es-data", esData, "-o", "json")
	// Bound once we can no longer bind the port ourselves.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		probe, err := net.ListenPacket("udp", addr)
		if err != nil {
			break
		}
		probe.Close()
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(`{"msg":"old","ts":"2020-01-02T03:04:05Z"}`))
	c.Close()
	code, out, errb := wait()
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errb)
	}
	es := essimtest.Start(t, essim.Config{DataDir: esData})
	res, err := http.Get(es.URL() + "/logs-udp-2020.01.02/_search")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `"ts":"2020-01-02T03:04:05Z"`) || !strings.Contains(string(body), `"@timestamp":"2020-01-02T03:04:05.000000000Z"`) {
		t.Fatalf("logs-udp-2020.01.02: %s\nstderr:\n%s", body, errb)
	}
}

// --es-max-docs bounds the embedded Elasticsearch: past it writes get
// 429 (flood stage), the pipeline retries, and what does not fit stays in
// the durable buffer instead of in memory, acked events included.
func TestPipelineRunEmbeddedMaxDocs(t *testing.T) {
	addr := freeBindAddr(t)
	wait := startCLI("pipeline", "run", "--forward", addr, "--buffer-dir", t.TempDir(),
		"--es-max-docs", "20", "--duration", "3s", "--shutdown-timeout", "500ms", "--flush-interval", "10ms", "-o", "json")
	lg := dialFluent(t, addr)
	const n = 30
	for i := 0; i < n; i++ {
		if err := lg.Post("cap", map[string]any{"msg": fmt.Sprint("cap-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	lg.Close()
	code, out, errb := wait()
	var rep struct {
		Data pipeline.Report `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("exit %d: %v: %s\n%s", code, err, out, errb)
	}
	st := rep.Data.Stats
	if st.ForwardAcks != n || st.Output.Indexed != 20 || st.Output.Retried == 0 || rep.Data.LeftOver != n-20 {
		t.Fatalf("acked %d, indexed %d (want 20), retried %d, left in buffer %d (want %d)\n%s",
			st.ForwardAcks, st.Output.Indexed, st.Output.Retried, rep.Data.LeftOver, n-20, errb)
	}
}

// dialFluent connects fluent-logger-golang (acks on) to a forward input
// that is starting up. The bound is generous: under -race on a loaded
// 2-core CI machine the pipeline with its embedded essim took over 5 s.
func dialFluent(t *testing.T, addr string) *fluent.Fluent {
	t.Helper()
	host, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		lg, err := fluent.New(fluent.Config{FluentHost: host, FluentPort: port, RequestAck: true, MaxRetry: 1, RetryWait: 20})
		if err == nil {
			return lg
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

// scrapeMetric reads one sample from the pipeline's /metrics (-1 until it
// answers or while the sample is absent).
func scrapeMetric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func waitMetric(t *testing.T, addr, name string, cond func(float64) bool) float64 {
	t.Helper()
	var v float64
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if v = scrapeMetric(addr, name); cond(v) {
			return v
		}
	}
	t.Fatalf("%s stayed at %v", name, v)
	return v
}

type pipelineReport struct {
	Findings []report.Finding `json:"findings"`
	Data     pipeline.Report  `json:"data"`
}

func (r pipelineReport) finding(id string) *report.Finding {
	for i := range r.Findings {
		if r.Findings[i].ID == id {
			return &r.Findings[i]
		}
	}
	return nil
}

// TestPipelineRunReportsUDPKernelDrops: the exit report's kernel drops are
// what the metric said before shutdown (the kernel forgets the counter
// with the socket), and pipeline.udp_kernel_drops fires.
func TestPipelineRunReportsUDPKernelDrops(t *testing.T) {
	// Elasticsearch refuses everything: the small buffer fills, the UDP
	// reader stops, and the small socket buffer overflows.
	sim := essimtest.Start(t, essim.Config{Faults: essim.Faults{FailRate: 1, FailStatus: 503}})
	udpAddr := freeUDPAddr(t)
	metrics := freeBindAddr(t)
	stop := startCLIStoppable("pipeline", "run", "--forward", "", "--udp", udpAddr, "--udp-rcvbuf", "4KiB", "--buffer-max", "64KiB",
		"--es", sim.URL(), "--buffer-dir", t.TempDir(), "--metrics", metrics, "--shutdown-timeout", "100ms", "-o", "json")
	waitMetric(t, metrics, "logdoctor_pipeline_udp_kernel_drops_total", func(v float64) bool { return v >= 0 })
	c, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pad := strings.Repeat("p", 400)
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(c, `{"msg":"drop-%d","pad":%q}`, i, pad)
	}
	drops := waitMetric(t, metrics, "logdoctor_pipeline_udp_kernel_drops_total", func(v float64) bool { return v > 0 })
	// Nothing more is sent: the counter settles.
	for prev := -1.0; prev != drops; time.Sleep(100 * time.Millisecond) {
		prev, drops = drops, scrapeMetric(metrics, "logdoctor_pipeline_udp_kernel_drops_total")
	}
	code, out, errOut := stop()
	var r pipelineReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, errOut)
	}
	if float64(r.Data.UDPDrops) != drops {
		t.Fatalf("report says %d kernel drops, the metric said %v", r.Data.UDPDrops, drops)
	}
	f := r.finding(pipeline.FindingUDPDrops)
	if f == nil || f.Evidence["drops"] != drops {
		t.Fatalf("pipeline.udp_kernel_drops: %+v", r.Findings)
	}
}

// TestPipelineRunReportsBrokenRequests: bytes that are msgpack but no
// request (0x01 is the integer 1) are in_forward's "incoming chunk is
// broken"; the exit report must say so, and --log-format json logs the
// peer as "ip:port", not {"IP":...,"Port":...}, and the span of the
// aggregated repeats as "1.5s", not nanoseconds.
func TestPipelineRunReportsBrokenRequests(t *testing.T) {
	addr, metrics := freeBindAddr(t), freeBindAddr(t)
	stop := startCLIStoppable("pipeline", "run", "--forward", addr, "--buffer-dir", t.TempDir(), "--metrics", metrics,
		"--log-format", "json", "--shutdown-timeout", "1s", "-o", "json")
	waitMetric(t, metrics, "logdoctor_pipeline_forward_broken_requests_total", func(v float64) bool { return v >= 0 })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	const broken = 5
	if _, err := c.Write(bytes.Repeat([]byte{0x01}, broken)); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, metrics, "logdoctor_pipeline_forward_broken_requests_total", func(v float64) bool { return v >= broken })
	client := c.LocalAddr().String()
	c.Close()
	code, out, errOut := stop()
	var r pipelineReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, errOut)
	}
	f := r.finding(pipeline.FindingBroken)
	if f == nil || f.Evidence["broken_requests"] != float64(broken) || r.Data.Stats.ForwardServer.Dropped != broken {
		t.Fatalf("findings %+v, stats %+v", r.Findings, r.Data.Stats.ForwardServer)
	}
	peers, overs := 0, 0
	for _, l := range strings.Split(errOut, "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, l)
		}
		if p, ok := line["peer"]; ok {
			peers++
			if p != client {
				t.Errorf(`peer logged as %#v, want "%s"`, p, client)
			}
		}
		// Durations as the text log writes them ("1.5s"), not nanoseconds.
		if o, ok := line["over"]; ok {
			overs++
			if s, isStr := o.(string); !isStr {
				t.Errorf("over logged as %#v, want a duration like \"1.5s\"", o)
			} else if _, err := time.ParseDuration(s); err != nil {
				t.Errorf("over: %v", err)
			}
		}
	}
	if peers == 0 || overs == 0 {
		t.Fatalf("no log line names the peer, or none aggregates repeats (over):\n%s", errOut)
	}
}

// TestProbeSharedKeyAgainstPipelineOnTheSameHost: forward probe (which
// sends this host's name in PING, as out_forward does) against pipeline
// run --forward-shared-key on the same host. With both sides using the
// host name the handshake fails as Fluentd's does ("same hostname between
// input and output"); the pipeline's own server hostname
// (--self-hostname, default logdoctor-pipeline.<host>) makes it work.
func TestProbeSharedKeyAgainstPipelineOnTheSameHost(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		self       []string
		wantServer string
		ok         bool
	}{
		{nil, "logdoctor-pipeline." + host, true},
		{[]string{"--self-hostname", "aggregator-1"}, "aggregator-1", true},
		{[]string{"--self-hostname", host}, "", false},
	} {
		addr := freeBindAddr(t)
		args := append([]string{"pipeline", "run", "--forward", addr, "--forward-shared-key", "s3cret-key", "--buffer-dir", t.TempDir(),
			"--log-file", filepath.Join(t.TempDir(), "log")}, c.self...)
		stop := startCLIStoppable(args...)
		lg := dialFluentRaw(t, addr)
		lg.Close()
		code, out, errOut := runCLI(t, "forward", "probe", addr, "--shared-key", "s3cret-key", "-o", "json")
		stop()
		var r struct {
			Findings []report.Finding `json:"findings"`
			Data     struct {
				Handshake      bool   `json:"handshake"`
				ServerHostname string `json:"server_hostname"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %v %s %s", c.self, err, out, errOut)
		}
		if c.ok {
			if code != ExitOK || !r.Data.Handshake || r.Data.ServerHostname != c.wantServer || len(r.Findings) != 0 {
				t.Errorf("%v: exit %d data %+v findings %+v", c.self, code, r.Data, r.Findings)
			}
			continue
		}
		if code != ExitFindings || len(r.Findings) == 0 || r.Findings[0].ID != "forward.auth_failed" ||
			!strings.Contains(r.Findings[0].Summary+fmt.Sprint(r.Findings[0].Evidence), "same hostname") {
			t.Errorf("%v: want forward.auth_failed for the same hostname: exit %d %+v", c.self, code, r.Findings)
		}
	}
}

// dialFluentRaw waits until addr accepts TCP connections.
func dialFluentRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

// TestPipelineRunJSONLogIsJSON: with --log-format json every line on
// stderr is one JSON object, the start line a person needs included
// (it printed as plain text into the JSON stream), carrying what the
// text line carries.
func TestPipelineRunJSONLogIsJSON(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runCLI(t, "pipeline", "run", "--forward", freeBindAddr(t), "--buffer-dir", filepath.Join(dir, "buf"),
		"--duration", "300ms", "--log-format", "json", "--log-level", "warn", "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var start map[string]any
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stderr line is not JSON (%v): %q", err, line)
		}
		if rec["msg"] == "logdoctor pipeline" {
			start = rec
		}
	}
	if start == nil {
		t.Fatalf("no start line at --log-level warn:\n%s", errOut)
	}
	for _, k := range []string{"forward", "udp", "es", "buffer", "dead_letter", "metrics"} {
		if v, ok := start[k].(string); !ok || v == "" {
			t.Errorf("start line lacks %s: %v", k, start)
		}
	}
}
