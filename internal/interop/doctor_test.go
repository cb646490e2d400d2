package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/doctor"
)

// doctorData is the part of doctor's data the tests read.
type doctorData struct {
	Diagnosis []struct {
		Severity string `json:"severity"`
		Text     string `json:"text"`
		Live     bool   `json:"live"`
		Settings []struct {
			File string `json:"file"`
			Line int    `json:"line"`
		} `json:"settings"`
	} `json:"diagnosis"`
	Targets []struct {
		Process struct {
			Kind    string `json:"kind"`
			PID     int    `json:"pid"`
			Workers []int  `json:"workers"`
		} `json:"process"`
		Config struct {
			Path string `json:"path"`
			From string `json:"from"`
		} `json:"config"`
		EnvUsed []string `json:"env_used"`
		Steps   []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
			Detail string `json:"detail"`
		} `json:"steps"`
		Outputs []struct {
			Output     string   `json:"output"`
			ETASeconds *float64 `json:"eta_seconds"`
		} `json:"outputs"`
	} `json:"targets"`
}

func parseDoctor(t *testing.T, r result) (report, doctorData) {
	t.Helper()
	rep := parseReport(t, r)
	var d doctorData
	if err := json.Unmarshal(rep.Data, &d); err != nil {
		t.Fatalf("doctor data: %v\n%s", err, r)
	}
	if len(d.Targets) != 1 {
		t.Fatalf("want one target:\n%s", r)
	}
	return rep, d
}

// finding returns the first finding with id whose evidence field key
// holds want (or any, when key is "").
func (r report) finding(id, key, want string) (map[string]any, bool) {
	for _, f := range r.Findings {
		if f.ID != id {
			continue
		}
		if key == "" || fmt.Sprint(f.Evidence[key]) == want {
			return f.Evidence, true
		}
	}
	return nil, false
}

func (d doctorData) cause(parts ...string) (string, bool) {
	for _, c := range d.Diagnosis {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(c.Text, p)
		}
		if ok {
			return c.Text, true
		}
	}
	return "", false
}

func (d doctorData) step(name string) (status, detail string) {
	for _, s := range d.Targets[0].Steps {
		if s.Name == name {
			return s.Status, s.Detail
		}
	}
	return "", ""
}

// lineOf is the 1-based number of the first line holding s at or after
// line from.
func lineOf(t *testing.T, file, s string, from int) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if i+1 >= from && strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line with %q after %d", file, s, from)
	return 0
}

// nsDial reports whether addr accepts a connection inside ns.
func nsDial(ns *testenv.Netns) func(string) bool {
	return func(addr string) bool {
		return ns.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		}) == nil
	}
}

// nsHTTP is an HTTP client whose connections are made inside ns.
func nsHTTP(ns *testenv.Netns) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
}

// fluentdWorker waits for the worker the supervisor spawns.
func fluentdWorker(t *testing.T, supervisor int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err1 := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			cmd, err2 := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err1 != nil || err2 != nil {
				continue
			}
			f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
			if len(f) > 1 && f[1] == strconv.Itoa(supervisor) && strings.Contains(string(cmd), "--under-supervisor") {
				return pid
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no worker under Fluentd supervisor %d", supervisor)
	return 0
}

const doctorSeedsFluentd = `<source>
  @type monitor_agent
  bind 127.0.0.1
  port 24220
</source>
<source>
  @type dummy
  tag seed000
  rate 100
  dummy {"message":"seed 000: the output's Elasticsearch stops accepting while events keep coming; this line pads the event to a few hundred bytes ........................................................................................................"}
</source>
<source>
  @type dummy
  tag seed003
  rate 50
  dummy {"message":"seed 003: about one item in five of each bulk is rejected with 429"}
</source>
<match seed000>
  @type elasticsearch
  @id es_seed000
  host 127.0.0.1
  port 19200
  <buffer>
    @type memory
    flush_interval 1s
    retry_wait 1s
    retry_max_interval 1s
    total_limit_size 64m
  </buffer>
</match>
<match seed003>
  @type elasticsearch
  @id es_seed003
  host 127.0.0.1
  port "#{ENV['ES_B_PORT']}"
  <buffer>
    @type memory
    flush_interval 1s
  </buffer>
</match>
`

const doctorSeedsFluentBit = `[SERVICE]
    Flush        1
    Log_Level    info
    HTTP_Server  On
    HTTP_Listen  127.0.0.1
    HTTP_Port    2020
[INPUT]
    Name   dummy
    Tag    seed001
    Rate   20
[OUTPUT]
    Name         forward
    Match        seed001
    Host         ${FWD_HOST}
    Port         ${FWD_PORT}
    Retry_Limit  no_limits
[INPUT]
    Name    udp
    Listen  0.0.0.0
    Port    5170
    Tag     seed002
[OUTPUT]
    Name   null
    Match  seed002
`

// TestDoctorSeeds starts a real Fluentd (supervisor and worker) and a
// real Fluent Bit in a network namespace of their own, joined to a client
// namespace by a veth with MTU 1460, with a real es serve and forward
// serve beside them, and runs doctor from outside on each:
//
//   - logs stop reaching Elasticsearch: Fluentd's memory-buffered Elasticsearch output, whose
//     Elasticsearch stops accepting: no ESTABLISHED connection, retries
//     growing, the buffer filling, diagnosed with the file and line;
//   - duplicates: an Elasticsearch output without ids against es serve
//     rejecting 20% of the items (its port from the process's environment);
//   - logs lost without errors: Fluent Bit's forward output without acks to forward serve
//     --ack never (its host and port from its environment);
//   - big UDP messages missing: Fluent Bit's UDP input accepting 32 KiB messages while
//     2000-byte datagrams arrive fragmented over the veth. (Fluentd's
//     in_udp cannot listen with --disable-shared-socket on the
//     serverengine of ../shared/peers, so the UDP input is Fluent Bit's.)
//
// It also runs doctor on the Fluentd supervisor's PID, and loads the HTML
// page in Chromium.
func TestDoctorSeeds(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip")
	peers := shippers.Require(t)
	nsT, nsC := testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, nsT, "eth0", "10.232.0.1/24", nsC, "eth0", "10.232.0.2/24", 1460)

	runIn := func(args ...string) *daemon {
		return startCommand(t, nsT.Command(logdoctorBin, args...), args[len(args)-1], nsDial(nsT), args)
	}
	esA := runIn("es", "serve", "--reject-rate", "0", "--listen", "127.0.0.1:19200")
	runIn("es", "serve", "--reject-rate", "0.2", "--listen", "127.0.0.1:19201")
	runIn("forward", "serve", "--ack", "never", "--listen", "127.0.0.1:24230")

	began := time.Now()
	fb := shippertest.Start(t, peers, shippertest.Spec{Kind: shippertest.FluentBit, Config: doctorSeedsFluentBit, Netns: nsT.Name,
		WaitLog: "[fluent bit] version=", Env: []string{"FWD_HOST=127.0.0.1", "FWD_PORT=24230"}})
	fd := shippertest.Start(t, peers, shippertest.Spec{Kind: shippertest.Fluentd, Config: doctorSeedsFluentd, Netns: nsT.Name,
		WaitLog: "fluentd worker is now running", Env: []string{"ES_B_PORT=19201"}, StartTimeout: 90 * time.Second})
	worker := fluentdWorker(t, fd.PID())
	t.Logf("shippers started in %s", time.Since(began).Round(time.Millisecond))

	// Discovery in the real /proc: the Fluentd supervisor with its worker
	// grouped under it, and Fluent Bit.
	found, err := doctor.Discover("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var sawFD, sawFB bool
	for _, p := range found {
		switch p.PID {
		case fd.PID():
			sawFD = p.Kind == doctor.Fluentd && len(p.Workers) == 1 && p.Workers[0] == worker
		case fb.PID():
			sawFB = p.Kind == doctor.FluentBit
		case worker:
			t.Errorf("the worker was listed on its own: %+v", p)
		}
	}
	if !sawFD || !sawFB {
		t.Errorf("discovery: fluentd %v, fluent-bit %v in %+v", sawFD, sawFB, found)
	}

	// The Elasticsearch of "logs stop reaching Elasticsearch"
	// (docs/troubleshooting.md) takes bulks, then stops accepting.
	hc := nsHTTP(nsT)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get("http://127.0.0.1:19200/_count")
		if err == nil {
			var c struct {
				Count int `json:"count"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&c)
			resp.Body.Close()
			if c.Count > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Fluentd never indexed into es serve:\n%s", fd.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	esA.stop(t)

	// The sender of "big UDP messages missing" (docs/troubleshooting.md): datagrams over the veth's MTU, from the client
	// namespace, for as long as doctor watches.
	stop := make(chan struct{})
	sent := make(chan int, 1)
	var conn net.Conn
	if err := nsC.Do(func() error {
		var err error
		conn, err = net.Dial("udp", "10.232.0.1:5170")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer conn.Close()
		payload := []byte(`{"message":"` + strings.Repeat("x", 1985) + `"}`)
		n := 0
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for limit := time.After(60 * time.Second); ; {
			select {
			case <-stop:
				sent <- n
				return
			case <-limit:
				sent <- n
				return
			case <-tick.C:
				if _, err := conn.Write(payload); err == nil {
					n++
				}
			}
		}
	}()
	time.Sleep(2 * time.Second) // retries have begun, the buffer grows

	page := filepath.Join(t.TempDir(), "doctor.html")
	var fdRun, fbRun result
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		fdRun = run(t, 60*time.Second, "doctor", "--pid", strconv.Itoa(worker), "--interval", "3s", "-o", "json", "--html", page)
	}()
	go func() {
		defer wg.Done()
		fbRun = run(t, 60*time.Second, "doctor", "--pid", strconv.Itoa(fb.PID()), "--interval", "3s", "-o", "json")
	}()
	wg.Wait()
	close(stop)
	t.Logf("sent %d datagrams of 2000 bytes", <-sent)

	// Fluentd: seeds 000 and 003.
	rep, d := parseDoctor(t, fdRun)
	if fdRun.code != 3 {
		t.Errorf("exit %d, want 3", fdRun.code)
	}
	tg := d.Targets[0]
	if tg.Process.PID != fd.PID() || len(tg.Process.Workers) != 1 || tg.Process.Workers[0] != worker || tg.Config.Path != fd.Config {
		t.Errorf("--pid of the worker: process %+v config %+v", tg.Process, tg.Config)
	}
	if strings.Join(tg.EnvUsed, ",") != "ES_B_PORT" {
		t.Errorf("env used %v", tg.EnvUsed)
	}
	if st, det := d.step("network namespace"); st != "ok" || !strings.Contains(det, "entered the shipper's network namespace") || !strings.Contains(det, "MTU 1460 (eth0)") {
		t.Errorf("namespace step %s %s", st, det)
	}
	if st, det := d.step("metrics (first sample)"); st != "ok" || !strings.Contains(det, "monitor_agent at 127.0.0.1:24220") {
		t.Errorf("metrics step %s %s", st, det)
	}
	es0 := "elasticsearch (es_seed000)"
	for _, id := range []string{"shipper.output_retrying", "shipper.buffer_filling", "shipper.output_stalled", "es.unreachable"} {
		if _, ok := rep.finding(id, "output", es0); !ok {
			t.Errorf("ES stall: no %s for %s in %v", id, es0, rep.ids())
		}
	}
	if ev, ok := rep.finding("shipper.buffer_filling", "output", es0); ok && (ev["eta_seconds"] == nil || ev["limit_bytes"] != float64(64<<20)) {
		t.Errorf("ES stall: buffer_filling evidence %v", ev)
	}
	_, noEst := rep.finding("tcp.no_established", "endpoint", "127.0.0.1:19200")
	_, noConn := rep.finding("tcp.no_connection", "endpoint", "127.0.0.1:19200")
	if !noEst && !noConn {
		t.Errorf("ES stall: no ESTABLISHED finding for 127.0.0.1:19200 in %v", rep.ids())
	}
	memLine := lineOf(t, fd.Config, "@type memory", lineOf(t, fd.Config, "@id es_seed000", 1))
	want000 := fmt.Sprintf("memory buffer (%s:%d)", fd.Config, memLine)
	if c, ok := d.cause(want000, "no ESTABLISHED connection to 127.0.0.1:19200", "retries growing", "set `<buffer> @type file`", "reload_connections false"); !ok {
		t.Errorf("ES stall: no cause naming %q with the evidence:\n%s", want000, diagnosisText(d))
	} else {
		t.Logf("ES stall: %s", c)
	}

	if _, ok := rep.finding("es.write_rejections", "output", "elasticsearch (es_seed003)"); !ok {
		t.Errorf("rejections: no es.write_rejections in %v", rep.ids())
	}
	matchLine := lineOf(t, fd.Config, "<match seed003>", 1)
	want003 := fmt.Sprintf("sends no document id (%s:%d)", fd.Config, matchLine)
	if c, ok := d.cause("Elasticsearch rejects writes", want003); !ok {
		t.Errorf("rejections: no cause %q:\n%s", want003, diagnosisText(d))
	} else {
		t.Logf("rejections: %s", c)
	}

	// Fluent Bit: seeds 001 and 002.
	rep, d = parseDoctor(t, fbRun)
	if fbRun.code != 3 || strings.Join(d.Targets[0].EnvUsed, ",") != "FWD_HOST,FWD_PORT" {
		t.Errorf("fluent bit: exit %d env %v", fbRun.code, d.Targets[0].EnvUsed)
	}
	if !rep.has("forward.no_ack") || !rep.has("config.forward_no_ack") {
		t.Errorf("no acks: no forward.no_ack in %v", rep.ids())
	}
	if st, _ := d.step("metrics (first sample)"); st != "ok" {
		t.Errorf("fluent bit metrics step %s", st)
	}
	outLine := lineOf(t, fb.Config, "[OUTPUT]", 1)
	want001 := fmt.Sprintf("sends without acks (%s:%d)", fb.Config, outLine)
	if c, ok := d.cause(want001, "the receiver at 127.0.0.1:24230 does not acknowledge chunks", "Require_ack_response On"); !ok {
		t.Errorf("no acks: no cause %q:\n%s", want001, diagnosisText(d))
	} else {
		t.Logf("no acks: %s", c)
	}

	if ev, ok := rep.finding("config.udp_message_size", "", ""); !ok || ev["mtu"] != float64(1460) {
		t.Errorf("big UDP: config.udp_message_size %v in %v", ev, rep.ids())
	}
	if ev, ok := rep.finding("udp.fragmented", "input", "udp"); !ok || ev["interface"] != "eth0" {
		t.Errorf("big UDP: udp.fragmented %v in %v", ev, rep.ids())
	}
	if c, ok := d.cause("UDP input udp accepts messages up to 32767 bytes", "MTU 1460 of eth0", "fragmented datagrams are arriving"); !ok {
		t.Errorf("big UDP: no cause:\n%s", diagnosisText(d))
	} else {
		t.Logf("big UDP: %s", c)
	}

	// The supervisor's PID gives the same shipper, its sockets read from
	// the worker.
	sup := run(t, 30*time.Second, "doctor", "--pid", strconv.Itoa(fd.PID()), "--interval", "200ms", "--no-probes", "-o", "json")
	_, d = parseDoctor(t, sup)
	if tg := d.Targets[0]; tg.Process.PID != fd.PID() || len(tg.Process.Workers) != 1 || tg.Process.Workers[0] != worker || tg.Config.Path != fd.Config {
		t.Errorf("--pid of the supervisor: %+v %+v", tg.Process, tg.Config)
	}
	if st, det := d.step("sockets (first sample)"); st != "ok" || !strings.Contains(det, strconv.Itoa(worker)) {
		t.Errorf("supervisor: sockets step %s %s", st, det)
	}

	// Without privileges (another user, no CAP_SYS_PTRACE or
	// CAP_SYS_ADMIN) the steps that need them say so, the rest runs.
	if _, err := exec.LookPath("setpriv"); err == nil {
		dir, err := os.MkdirTemp("", "ld-doctor-unpriv-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		bin, err := os.ReadFile(logdoctorBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "logdoctor"), bin, 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
			filepath.Join(dir, "logdoctor"), "doctor", "--pid", strconv.Itoa(fb.PID()), "--interval", "200ms", "-o", "json").Output()
		cancel()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() == 1 || ee.ExitCode() == 2) {
			t.Fatalf("unprivileged doctor: %v\n%s", err, out)
		}
		_, d := parseDoctor(t, result{stdout: string(out)})
		if st, det := d.step("configuration"); st != "skipped" || !strings.Contains(det, "permission denied") || !strings.Contains(det, "--config") {
			t.Errorf("unprivileged: configuration step %s %s", st, det)
		}
		if st, det := d.step("network namespace"); st != "ok" || !strings.Contains(det, "published ports only") {
			t.Errorf("unprivileged: namespace step %s %s", st, det)
		}
		if st, det := d.step("sockets (first sample)"); st != "ok" || !strings.Contains(det, "/proc/") {
			t.Errorf("unprivileged: sockets step %s %s", st, det)
		}
	} else if testenv.InCI() {
		t.Error("CI=true: setpriv (util-linux) is missing")
	}

	// The page, in a real browser with JavaScript off.
	p := testenv.LoadInChromium(t, page)
	for _, want := range []string{"shipper.buffer_filling", "Diagnosis", "memory buffer (", "<polyline", "ESTABLISHED", `class="mark"`, "@type memory"} {
		if !strings.Contains(p.DOM, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	for _, u := range p.Requests {
		if u != "file://"+page {
			t.Errorf("the page requested %s", u)
		}
	}
	if ink, err := testenv.InkRatio(p.PNG); err != nil || ink < 0.01 {
		t.Errorf("screenshot blank (%.4f) %v", ink, err)
	}
	t.Logf("whole test took %s", time.Since(began).Round(time.Millisecond))
}

func diagnosisText(d doctorData) string {
	var b strings.Builder
	for _, c := range d.Diagnosis {
		fmt.Fprintf(&b, "  [%s] %s\n", c.Severity, c.Text)
	}
	return b.String()
}

const doctorHealthyFluentBit = `[SERVICE]
    Flush         1
    HTTP_Server   On
    HTTP_Listen   127.0.0.1
    HTTP_Port     {{.HTTP}}
    storage.path  {{.Dir}}/storage
[INPUT]
    Name          dummy
    Tag           app
    Rate          20
    storage.type  filesystem
[OUTPUT]
    Name                  forward
    Match                 app
    Host                  127.0.0.1
    Port                  {{.Port}}
    Require_ack_response  On
    net.io_timeout        30s
    Retry_Limit           no_limits
`

// TestDoctorHealthyFluentBit: a real Fluent Bit whose configuration is
// sound, delivering with acks to forward serve: nothing above info, exit
// 0, and a verdict that says what was checked.
func TestDoctorHealthyFluentBit(t *testing.T) {
	peers := shippers.Require(t)
	fwd := fmt.Sprintf("127.0.0.1:%d", shippertest.FreePort(t))
	start(t, fwd, "forward", "serve", "--listen", fwd)
	_, port, _ := net.SplitHostPort(fwd)
	httpPort := shippertest.FreePort(t)
	fb := shippertest.Start(t, peers, shippertest.Spec{Kind: shippertest.FluentBit, Config: doctorHealthyFluentBit,
		Data: map[string]any{"Port": port, "HTTP": httpPort}, WaitTCP: []string{fmt.Sprintf("127.0.0.1:%d", httpPort)}})
	// Let it deliver a few chunks first.
	time.Sleep(2 * time.Second)
	r := run(t, 30*time.Second, "doctor", "--pid", strconv.Itoa(fb.PID()), "--interval", "2s", "-o", "json")
	rep, d := parseDoctor(t, r)
	for _, f := range rep.Findings {
		if f.Severity != "info" {
			t.Errorf("healthy: [%s] %s: %s", f.Severity, f.ID, f.Summary)
		}
	}
	if r.code != 0 || len(d.Diagnosis) != 0 {
		t.Errorf("exit %d, diagnosis:\n%s", r.code, diagnosisText(d))
	}
	for _, s := range d.Targets[0].Steps {
		if s.Status != "ok" {
			t.Errorf("step %s %s: %s", s.Name, s.Status, s.Detail)
		}
	}
	table := run(t, 30*time.Second, "doctor", "--pid", strconv.Itoa(fb.PID()), "--interval", "500ms")
	if first, second, _ := strings.Cut(table.stdout, "\n"); !strings.HasPrefix(first, "doctor: OK") || !strings.HasPrefix(second, fmt.Sprintf("1. fluent-bit[%d]: no cause found: checked configuration", fb.PID())) {
		t.Errorf("table verdict:\n%s", table.stdout)
	}
}
