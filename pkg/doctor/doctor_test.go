package doctor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
	"github.com/logdoctor/logdoctor/pkg/report"
)

var (
	standinOnce sync.Once
	standinPath string
	standinErr  error
)

// standin builds testdata/standin once, statically, so it also runs in
// a chroot.
func standin(t *testing.T) string {
	t.Helper()
	standinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "logdoctor-standin-")
		if err != nil {
			standinErr = err
			return
		}
		standinPath = filepath.Join(dir, "standin")
		cmd := exec.Command("go", "build", "-o", standinPath, "./testdata/standin")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			standinErr = fmt.Errorf("go build standin: %v\n%s", err, out)
		}
	})
	if standinErr != nil {
		t.Fatal(standinErr)
	}
	return standinPath
}

// startStandin runs the stand-in as argv (argv[0] is only the name it
// shows), with env, inside chroot when not "" (path is then the binary's
// path inside it), and waits until it holds its connections.
func startStandin(t *testing.T, path string, argv, env []string, chroot string) *exec.Cmd {
	t.Helper()
	cmd := &exec.Cmd{Path: path, Args: argv, Env: env, Dir: "/"}
	if chroot != "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: chroot}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stand-in: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("stand-in did not start: %q %v %s", line, err, stderr.String())
	}
	return cmd
}

// fakeMonitorAgent answers /api/plugins.json with counters that move as
// a healthy Fluentd's do: emits and writes grow, no retries.
func fakeMonitorAgent(t *testing.T, ids ...string) string {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/plugins.json" {
			http.NotFound(w, r)
			return
		}
		k := n.Add(1)
		var ps []map[string]any
		for _, id := range ids {
			ps = append(ps, map[string]any{"plugin_id": id, "plugin_category": "output", "type": strings.SplitN(id, "_", 2)[0],
				"buffer_queue_length": 0, "buffer_total_queued_size": 100 * (k % 3), "retry_count": 0,
				"emit_records": 10 * k, "write_count": k, "rollback_count": 0, "retry": map[string]any{}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"plugins": ps})
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func healthyFluentdConf(monitor, es, fwd string) string {
	mh, mp, _ := net.SplitHostPort(monitor)
	eh, ep, _ := net.SplitHostPort(es)
	fh, fp, _ := net.SplitHostPort(fwd)
	return fmt.Sprintf(`<source>
  @type monitor_agent
  bind %s
  port %s
</source>
<source>
  @type tail
  path /var/log/app.log
  pos_file /var/log/app.pos
  tag app
  <parse>
    @type json
  </parse>
</source>
<filter app.**>
  @type elasticsearch_genid
  hash_id_key _hash
</filter>
<match app.**>
  @type copy
  <store>
    @type elasticsearch
    @id elasticsearch_out
    host %s
    port %s
    id_key _hash
    write_operation create
    reload_connections false
    request_timeout 60s
    unrecoverable_error_types ["out_of_memory_error"]
    <buffer>
      @type file
      path /var/log/fluentd/buffer/es
      chunk_limit_size 8m
    </buffer>
  </store>
  <store>
    @type forward
    @id forward_out
    require_ack_response true
    <server>
      host %s
      port %s
    </server>
    <buffer>
      @type file
      path /var/log/fluentd/buffer/fwd
    </buffer>
  </store>
</match>
`, mh, mp, eh, ep, fh, fp)
}

func findingIDList(fs []report.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID+"("+f.Severity.String()+")")
	}
	return out
}

// TestRunHealthyStandIn: a Fluentd-looking process whose configuration
// is sound, whose endpoints answer, whose connections are up and whose
// metrics move: nothing above info, every step ran, and the diagnosis
// says what it checked.
func TestRunHealthyStandIn(t *testing.T) {
	sim := essimtest.Start(t, essim.Config{})
	rec := forwardtest.NewRecorder()
	fwd := forwardtest.Start(t, &forward.Server{Handler: rec})
	mon := fakeMonitorAgent(t, "elasticsearch_out", "forward_out")
	dir := t.TempDir()
	conf := filepath.Join(dir, "fluent.conf")
	if err := os.WriteFile(conf, []byte(healthyFluentdConf(mon, sim.Addrs()[0], fwd)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startStandin(t, standin(t), []string{"ruby", "/usr/local/bin/fluentd", "-c", conf}, []string{"STANDIN_CONNECT=" + sim.Addrs()[0] + "," + fwd}, "")
	start := time.Now()
	res, fs, err := Run(context.Background(), Options{PID: p.Process.Pid, Interval: 400 * time.Millisecond, StepTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	for _, f := range fs {
		if f.Severity > report.Info {
			t.Errorf("healthy shipper: %s %s: %s", f.Severity, f.ID, f.Summary)
		}
	}
	if len(res.Diagnosis) != 0 {
		t.Errorf("diagnosis of a healthy shipper: %+v", res.Diagnosis[0])
	}
	if lines := res.DiagnosisLines(); len(lines) != 1 || !strings.Contains(lines[0], "no cause found: checked configuration") {
		t.Errorf("verdict %q", lines)
	}
	tg := res.Targets[0]
	for _, s := range tg.Steps {
		if s.Status != StepOK && s.Name != "shipper log" {
			t.Errorf("step %s: %s %s", s.Name, s.Status, s.Detail)
		}
	}
	if len(tg.Sockets.Peers) != 2 {
		t.Fatalf("peers %+v", tg.Sockets.Peers)
	}
	for _, pe := range tg.Sockets.Peers {
		if pe.Sockets == nil || pe.Sockets.States[1] != 1 {
			t.Errorf("peer %s: %+v (want the stand-in's one ESTABLISHED, not doctor's own probe connections)", pe.Endpoint, pe.Sockets)
		}
	}
	// README.md and docs/commands/doctor.md say five samples over --interval.
	if tg.Monitor == nil || len(tg.Monitor.Samples) != 5 {
		t.Errorf("metrics: want 5 samples over the interval, got %+v", tg.Monitor)
	}
	if len(tg.Trends) != 2 || tg.Trends[0].Writes == nil || tg.Trends[0].Writes.Change <= 0 {
		t.Errorf("trends %+v", tg.Trends)
	}
	if len(tg.ES) != 1 || !tg.ES[0].Result.Targets[0].Reachable || len(tg.Forward) != 1 || tg.Forward[0].Result.Canaries[0].Outcome != "acked" {
		t.Errorf("probes: es %+v forward %+v", tg.ES, tg.Forward)
	}
	if ev := rec.WaitFor(1, time.Second); len(ev) == 0 || ev[0].Tag != "logdoctor.doctor" {
		t.Errorf("forward canary: %d events, first tag %q", len(ev), ev[0].Tag)
	}
	if took > 3*time.Second {
		t.Errorf("took %s for a 400ms interval", took)
	}
}

// TestRunSkipsWhatCannotRun: nothing the configuration names answers and
// monitoring is off: the steps say so, the probes report the endpoints
// unreachable, and the run stays within its bounds.
func TestRunSkipsWhatCannotRun(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "fluent-bit.conf")
	body := "[INPUT]\n    Name dummy\n[OUTPUT]\n    Name es\n    Match *\n    Host 127.0.0.2\n    Port 1\n[OUTPUT]\n    Name forward\n    Match *\n    Host 127.0.0.2\n    Port 1\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startStandin(t, standin(t), []string{"/usr/bin/fluent-bit", "-c", conf}, nil, "")
	start := time.Now()
	res, fs, err := Run(context.Background(), Options{PID: p.Process.Pid, Interval: 200 * time.Millisecond, StepTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("took %s", took)
	}
	ids := findingIDs(fs)
	for _, id := range []string{"es.unreachable", "forward.connect_failed", "tcp.no_connection", "config.no_monitoring"} {
		if _, ok := ids[id]; !ok {
			t.Errorf("missing %s in %v", id, findingIDList(fs))
		}
	}
	if f := ids["es.unreachable"]; f.Evidence["file"] != conf || f.Evidence["line"] != 6 || f.Evidence["target"] != fmt.Sprintf("fluent-bit[%d]", p.Process.Pid) {
		t.Errorf("es.unreachable evidence %+v", f.Evidence)
	}
	steps := map[string]Step{}
	for _, s := range res.Targets[0].Steps {
		steps[s.Name] = s
	}
	if s := steps["metrics (first sample)"]; s.Status != StepSkipped || !strings.Contains(s.Detail, "HTTP_Server is off") {
		t.Errorf("metrics step %+v", s)
	}
	if s := steps["shipper log"]; s.Status != StepSkipped {
		t.Errorf("log step %+v", s)
	}
	if _, ok := steps["metrics (last sample)"]; ok {
		t.Error("a last metrics sample without a first")
	}

	// --no-probes leaves the endpoints alone and says so.
	res, fs, err = Run(context.Background(), Options{PID: p.Process.Pid, Interval: 100 * time.Millisecond, NoProbes: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findingIDs(fs)["es.unreachable"]; ok {
		t.Error("--no-probes probed")
	}
	found := false
	for _, s := range res.Targets[0].Steps {
		found = found || (s.Name == "endpoint probes" && s.Status == StepSkipped && s.Detail == "--no-probes")
	}
	if !found {
		t.Errorf("steps %+v", res.Targets[0].Steps)
	}
}

// TestRunContainerRoots: stand-ins chrooted like containers. The
// configuration exists only inside their root and is found through
// /proc/PID/root: Fluent Bit's from its command line, with includes and
// variables from /proc/PID/environ (an Elasticsearch password that only
// works because it came from there, never printed); td-agent's from its
// package's default path, with its log named on the command line.
func TestRunContainerRoots(t *testing.T) {
	testenv.RequireRoot(t)
	bin := standin(t)
	const password = "pw-only-in-environ-7f3a"
	sim := essimtest.Start(t, essim.Config{Username: "elastic", Password: password})
	eh, ep, _ := net.SplitHostPort(sim.Addrs()[0])

	fb := t.TempDir()
	writeFiles(t, fb, map[string]string{
		"fluent-bit/etc/fluent-bit.conf": "[SERVICE]\n    Flush 1\n@INCLUDE outputs.conf\n[INPUT]\n    Name dummy\n",
		"fluent-bit/etc/outputs.conf":    "[OUTPUT]\n    Name es\n    Match *\n    Host ${ES_HOST}\n    Port ${ES_PORT}\n    HTTP_User elastic\n    HTTP_Passwd ${ES_PASSWORD}\n    Suppress_Type_Name On\n",
	})
	copyFile(t, bin, filepath.Join(fb, "fluent-bit/bin/fluent-bit"))
	p := startStandin(t, "/fluent-bit/bin/fluent-bit", []string{"/fluent-bit/bin/fluent-bit", "-c", "/fluent-bit/etc/fluent-bit.conf"},
		[]string{"ES_HOST=" + eh, "ES_PORT=" + ep, "ES_PASSWORD=" + password}, fb)
	res, fs, err := Run(context.Background(), Options{PID: p.Process.Pid, Interval: 200 * time.Millisecond, StepTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tg := res.Targets[0]
	if tg.Config == nil || tg.Config.Path != "/fluent-bit/etc/fluent-bit.conf" || len(tg.Files) != 2 || tg.Files[1].Path != "/fluent-bit/etc/outputs.conf" {
		t.Fatalf("config %+v files %+v steps %+v", tg.Config, tg.Files, tg.Steps)
	}
	if strings.Join(tg.EnvUsed, ",") != "ES_HOST,ES_PASSWORD,ES_PORT" {
		t.Errorf("env used %v", tg.EnvUsed)
	}
	ids := findingIDs(fs)
	if _, ok := ids["es.auth_failed"]; ok || len(tg.ES) != 1 || tg.ES[0].Result == nil || !tg.ES[0].Result.Targets[0].Reachable {
		t.Errorf("the probe did not log in with the password from the environment: %v %+v", findingIDList(fs), tg.ES)
	}
	if f, ok := ids["config.es_no_id"]; !ok || f.Evidence["file"] != "/fluent-bit/etc/outputs.conf" {
		t.Errorf("config finding in the included file: %+v", f)
	}
	r := report.New("doctor", time.Now())
	r.Data = res
	r.Add(fs...)
	for _, render := range []func(io.Writer) error{
		func(w io.Writer) error { return report.Renderer{Format: report.FormatJSON}.Render(w, r) },
		func(w io.Writer) error { return report.Renderer{Format: report.FormatTable}.Render(w, r) },
		func(w io.Writer) error { return report.WriteHTML(w, r) },
	} {
		var b strings.Builder
		if err := render(&b); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), password) {
			t.Errorf("the password from the environment is in the report:\n%s", b.String())
		}
	}

	td := t.TempDir()
	writeFiles(t, td, map[string]string{
		"etc/td-agent/td-agent.conf":    "<source>\n  @type forward\n</source>\n<match **>\n  @type forward\n  <server>\n    host 127.0.0.2\n    port 1\n  </server>\n</match>\n",
		"var/log/td-agent/td-agent.log": "2026-11-29 18:16:45 +0000 [warn]: #0 failed to flush the buffer. retry_times=0 error_class=Errno::ECONNREFUSED error=\"Connection refused - connect(2) for 127.0.0.2:1\"\n",
	})
	copyFile(t, bin, filepath.Join(td, "opt/td-agent/bin/ruby"))
	p = startStandin(t, "/opt/td-agent/bin/ruby", []string{"/opt/td-agent/bin/ruby", "/opt/td-agent/bin/fluentd", "--log", "/var/log/td-agent/td-agent.log"}, nil, td)
	res, fs, err = Run(context.Background(), Options{PID: p.Process.Pid, Interval: 100 * time.Millisecond, NoProbes: true})
	if err != nil {
		t.Fatal(err)
	}
	tg = res.Targets[0]
	if tg.Config == nil || tg.Config.Path != "/etc/td-agent/td-agent.conf" || tg.Config.From != "default path" {
		t.Fatalf("td-agent config %+v steps %+v", tg.Config, tg.Steps)
	}
	if tg.Log == nil || tg.Log.Path != "/var/log/td-agent/td-agent.log" || len(tg.LogEvents) != 1 || !strings.Contains(tg.LogEvents[0].Line, "ECONNREFUSED") {
		t.Errorf("log %+v events %+v", tg.Log, tg.LogEvents)
	}
	if f, ok := findingIDs(fs)["config.forward_no_ack"]; !ok || f.Evidence["file"] != "/etc/td-agent/td-agent.conf" {
		t.Errorf("td-agent config finding %+v", findingIDList(fs))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestRunWithoutPID: discovery over a proc tree that holds only shippers
// doctor does not understand reports them, and one that holds nothing is
// an error naming what was looked for.
func TestRunWithoutPID(t *testing.T) {
	root := fakeProc(t, map[int]fakeProcess{
		1:   {0, "init", []string{"/sbin/init"}, nil},
		400: {1, "vector", []string{"/usr/bin/vector", "--config", "/etc/vector/vector.toml"}, nil},
		500: {1, "java", []string{"java", "-cp", "/usr/share/logstash/logstash-core/lib/jars/*", "org.logstash.Logstash"}, nil},
	})
	res, fs, err := Run(context.Background(), Options{ProcRoot: root, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.NotUnderstood) != 2 || len(fs) != 2 || fs[0].ID != FindingNotUnderstood || fs[0].Severity != report.Info || len(res.Targets) != 0 {
		t.Errorf("not understood: %+v %+v", res, fs)
	}
	if _, _, err := Run(context.Background(), Options{ProcRoot: root, Shipper: FluentBit}); !errors.Is(err, ErrNoShipper) || !strings.Contains(err.Error(), "no Fluent Bit process under "+root) {
		t.Errorf("nothing to diagnose: %v", err)
	}
}

// TestRunCrossChecks: what only the configuration and the live cluster
// together show. A cluster publishing an address the shipper cannot reach
// is critical for an output that sniffs and info for one that keeps its
// hosts; Elasticsearch 8 against Fluent Bit without Suppress_Type_Name is
// critical; an http.max_content_length below the output's chunk size is
// one cause naming the chunk's line.
func TestRunCrossChecks(t *testing.T) {
	bin := standin(t)
	sim := essimtest.Start(t, essim.Config{MaxContentLength: 1 << 20, Faults: essim.Faults{PublishAddress: "127.0.0.2:1"}})
	eh, ep, _ := net.SplitHostPort(sim.Addrs()[0])
	dir := t.TempDir()
	run := func(name, body string, argv ...string) (*Result, map[string]report.Finding) {
		t.Helper()
		conf := filepath.Join(dir, name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startStandin(t, bin, append(argv, "-c", conf), []string{"STANDIN_CONNECT=" + sim.Addrs()[0]}, "")
		res, fs, err := Run(context.Background(), Options{PID: p.Process.Pid, Interval: 300 * time.Millisecond, StepTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return res, findingIDs(fs)
	}
	fd := func(extra string) string {
		return fmt.Sprintf("<match **>\n  @type elasticsearch\n  host %s\n  port %s\n%s  <buffer>\n    @type file\n    path /tmp/b\n    chunk_limit_size 8m\n  </buffer>\n</match>\n", eh, ep, extra)
	}
	res, fs := run("sniffs.conf", fd(""), "ruby", "/usr/bin/fluentd")
	if f := fs["es.sniff_unreachable"]; f.Severity != report.Critical || f.Evidence["sniff_setting"] != "reload_connections" ||
		!strings.Contains(f.Summary, "the output sniffs") || !strings.Contains(f.Summary, "from the shipper's network namespace") {
		t.Errorf("sniffing output: %+v", f)
	}
	if f := fs["config.chunk_too_large"]; f.Severity != report.Critical || f.Evidence["max_content_length"] != int64(1<<20) {
		t.Errorf("chunk above the live max_content_length: %+v", f)
	}
	var big *Cause
	for _, c := range res.Diagnosis {
		if strings.Contains(c.Text, "accepts bodies up to 1.0 MiB") {
			big = c
		}
	}
	if big == nil || !strings.Contains(big.Text, "(chunk_limit_size "+filepath.Join(dir, "sniffs.conf")+":8)") || len(big.Findings) != 2 {
		t.Errorf("max_content_length cause %+v in %+v", big, res.Diagnosis)
	}

	_, fs = run("keeps.conf", fd("  reload_connections false\n"), "ruby", "/usr/bin/fluentd")
	if f := fs["es.sniff_unreachable"]; f.Severity != report.Info || !strings.Contains(f.Summary, "does not sniff") {
		t.Errorf("output that keeps its hosts: %+v", f)
	}

	fb := fmt.Sprintf("[OUTPUT]\n    Name es\n    Match *\n    Host %s\n    Port %s\n", eh, ep)
	_, fs = run("fluent-bit.conf", fb, "/usr/bin/fluent-bit")
	if f := fs["config.es_type_name"]; f.Severity != report.Critical || f.Evidence["es_version"] != "Elasticsearch 8.15" {
		t.Errorf("Fluent Bit against Elasticsearch 8: %+v", f)
	}
}
