package pipeline

import (
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/essim"
)

// TestFluentLoggerGolangExactlyOnce: a real forward client with
// RequestAck sends from several goroutines; every event reaches the store
// once with tag, time and record intact.
func TestFluentLoggerGolangExactlyOnce(t *testing.T) {
	es := startES(t, "", essim.Config{})
	p := startPipeline(t, Config{ES: esConfig(es)})
	host, port := hostPort(t, p.ForwardAddr())
	const senders, per = 8, 100
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	want := map[string]bool{}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		for i := 0; i < per; i++ {
			want[fmt.Sprintf("s%d-%d", s, i)] = true
		}
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			lg, err := fluent.New(fluent.Config{FluentHost: host, FluentPort: port, RequestAck: true,
				SubSecondPrecision: true, Timeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
			if err != nil {
				t.Error(err)
				return
			}
			defer lg.Close()
			for i := 0; i < per; i++ {
				tm := base.Add(time.Duration(s*per+i)*time.Millisecond + 123456*time.Nanosecond)
				if err := lg.PostWithTime(fmt.Sprintf("app.s%d", s), tm, map[string]any{"msg": fmt.Sprintf("s%d-%d", s, i)}); err != nil {
					t.Errorf("post: %v", err)
					return
				}
			}
		}(s)
	}
	wg.Wait()
	flush(t, p, 20*time.Second)
	docs := esDocs(t, es.URL(), "logs-*", 10000)
	byKey := checkExactlyOnce(t, docs, "msg", want)
	for s := 0; s < senders; s++ {
		for i := 0; i < per; i += 37 {
			d := byKey[fmt.Sprintf("s%d-%d", s, i)]
			tm := base.Add(time.Duration(s*per+i)*time.Millisecond + 123456*time.Nanosecond)
			if d["tag"] != fmt.Sprintf("app.s%d", s) || d["@timestamp"] != tm.Format("2006-01-02T15:04:05.000000000Z") ||
				d["_index"] != fmt.Sprintf("logs-app.s%d-2026.11.21", s) {
				t.Fatalf("document %v: want tag app.s%d time %s", d, s, tm.Format(time.RFC3339Nano))
			}
		}
	}
	st := p.Stats()
	if st.ForwardAcks != senders*per || st.ForwardEvents != senders*per || st.Output.Indexed != senders*per {
		t.Fatalf("stats %+v", st)
	}
	if got := metric(t, p, "logdoctor_pipeline_events_in_total", map[string]string{"input": "forward"}); got != senders*per {
		t.Fatalf("events_in metric %v", got)
	}
	if got := metric(t, p, "logdoctor_pipeline_end_to_end_seconds", nil); got != senders*per {
		t.Fatalf("latency histogram count %v", got)
	}
	// Every commit the acks waited for is in the commit histogram.
	if got, want := metric(t, p, "logdoctor_pipeline_buffer_commit_duration_seconds", nil), metric(t, p, "logdoctor_pipeline_buffer_commits_total", nil); got != want || got == 0 {
		t.Fatalf("commit histogram count %v, commits %v", got, want)
	}
	// Where the filesystem takes O_DIRECT every commit goes around the
	// page cache (all but a segment's last; these fill less than one).
	got, commits := metric(t, p, "logdoctor_pipeline_buffer_direct_commits_total", nil), float64(st.Buffer.Commits)
	if direct := takesDirect(t, p.cfg.BufferDir); direct && got != commits || !direct && got != 0 {
		t.Fatalf("%v of %v commits direct (buffer in %s, O_DIRECT %v)", got, commits, p.cfg.BufferDir, direct)
	}
	t.Logf("%d acks in %d fsyncs", st.ForwardAcks, st.Buffer.Commits)
}

// TestPythonFluentLogger: Debian's python3-fluent-logger (no ack support;
// nanosecond EventTime) sends; every event arrives once, intact.
func TestPythonFluentLogger(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/python3", "/usr/lib/python3/dist-packages/fluent/sender.py")
	es := startES(t, "", essim.Config{})
	p := startPipeline(t, Config{ES: esConfig(es)})
	host, port := hostPort(t, p.ForwardAddr())
	const n = 300
	script := fmt.Sprintf(`
import sys
from fluent import sender
s = sender.FluentSender('py', host=%q, port=%d, nanosecond_precision=True)
for i in range(%d):
    ok = s.emit_with_time('unit', 1763719200 + i + 0.25, {'msg': 'py-%%d' %% i, 'n': i, 'nested': {'k': [1, 'two', None]}})
    if not ok:
        print(s.last_error, file=sys.stderr); sys.exit(1)
s.close()
`, host, port, n)
	out, err := exec.Command("/usr/bin/python3", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("python sender: %v\n%s", err, out)
	}
	// No acks in this client: wait for the events to arrive, then drain.
	deadline := time.Now().Add(20 * time.Second)
	for p.Stats().ForwardEvents < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	flush(t, p, 20*time.Second)
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		want[fmt.Sprintf("py-%d", i)] = true
	}
	byKey := checkExactlyOnce(t, esDocs(t, es.URL(), "logs-*", 10000), "msg", want)
	d := byKey["py-7"]
	tm := time.Unix(1763719200+7, 250000000).UTC()
	if d["tag"] != "py.unit" || d["@timestamp"] != tm.Format("2006-01-02T15:04:05.000000000Z") ||
		fmt.Sprint(d["n"]) != "7" || fmt.Sprint(d["nested"]) != "map[k:[1 two <nil>]]" {
		t.Fatalf("document %v", d)
	}
	if st := p.Stats(); st.ForwardAcks != 0 || st.ForwardEvents != n {
		t.Fatalf("stats %+v", st)
	}
}
