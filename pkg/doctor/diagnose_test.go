package doctor

import (
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// TestDiagnoseJoins feeds the diagnosis the findings of each seed and
// checks the causes it builds: the settings named with their lines, live
// causes ranked above configuration alone at one severity.
func TestDiagnoseJoins(t *testing.T) {
	conf := `<match a.**>
  @type elasticsearch
  host 127.0.0.1
  port 9200
  <buffer>
    @type memory
    total_limit_size 64m
  </buffer>
</match>
<match b.**>
  @type forward
  <server>
    host 127.0.0.1
    port 24224
  </server>
</match>
`
	c, err := shipconf.Parse("fluent.conf", []byte(conf), shipconf.Options{Format: shipconf.FormatFluentd})
	if err != nil {
		t.Fatal(err)
	}
	tg := &Target{Process: Process{Kind: Fluentd, PID: 7}, cfg: c, Endpoints: FindEndpoints(c)}
	t0 := time.Now()
	tg.Trends = trends(c, []Sample{fdSample(t0, 1<<20, 3, 1000, 8, 3), fdSample(t0.Add(5*time.Second), 2<<20, 6, 2000, 11, 6)}, nil)
	es, fwd := tg.Endpoints.ES[0].Name, tg.Endpoints.Forward[0].Name
	fs := []report.Finding{
		{ID: "config.es_no_id", Severity: report.Warning, Summary: "no id", Evidence: map[string]any{"plugin": es, "file": "fluent.conf", "line": 1}},
		{ID: "tcp.no_established", Severity: report.Critical, Summary: "no est", Evidence: map[string]any{"output": es, "endpoint": "127.0.0.1:9200", "time_wait": 8}},
		{ID: "es.unreachable", Severity: report.Critical, Summary: "refused", Evidence: map[string]any{"output": es, "kind": "refused"}},
		{ID: "forward.no_ack", Severity: report.Critical, Summary: "no ack", Evidence: map[string]any{"output": fwd}},
		{ID: "config.forward_no_ack", Severity: report.Critical, Summary: "no ack in config", Evidence: map[string]any{"plugin": fwd, "file": "fluent.conf", "line": 10}},
		{ID: "config.secret_plaintext", Severity: report.Warning, Summary: "secret", Remedy: "Take it from the environment. More.", Evidence: map[string]any{"file": "fluent.conf", "line": 3, "setting": "password"}},
	}
	fs = append(fs, shipperFindings(Fluentd, tg.Trends)...)
	causes := diagnose(tg, fs)
	if len(causes) < 3 {
		t.Fatalf("causes %+v", causes)
	}
	stall := causes[0]
	for _, want := range []string{"memory buffer (fluent.conf:6)", "no ESTABLISHED connection to 127.0.0.1:9200 (8 TIME_WAIT)", "unreachable from the shipper (refused)",
		"retries growing (+3 in 5 s)", "in about", "a restart loses it", "`<buffer> @type file`", "`reload_connections false` (fluent.conf:1)", "make 127.0.0.1:9200 reachable"} {
		if !strings.Contains(stall.Text, want) {
			t.Errorf("ES stall cause lacks %q:\n%s", want, stall.Text)
		}
	}
	if !stall.Live || stall.Severity != report.Critical || len(stall.Settings) != 2 || stall.Settings[0].Line != 6 {
		t.Errorf("ES stall cause %+v", stall)
	}
	var ack, secret *Cause
	for _, c := range causes {
		switch {
		case strings.Contains(c.Text, "sends without acks"):
			ack = c
		case strings.Contains(c.Text, "secret"):
			secret = c
		}
	}
	if ack == nil || !strings.Contains(ack.Text, "(fluent.conf:10)") || !strings.Contains(ack.Text, "`require_ack_response true`") {
		t.Errorf("no-ack cause %+v", ack)
	}
	if secret == nil || secret.Live || secret.Text != "secret; Take it from the environment" || secret != causes[len(causes)-1] {
		t.Errorf("a configuration-only warning comes last, with its remedy's first sentence: %+v", secret)
	}
	// Every finding at warning or above is in some cause.
	in := map[string]bool{}
	for _, c := range causes {
		for _, id := range c.Findings {
			in[id] = true
		}
	}
	for _, f := range fs {
		if f.Severity >= report.Warning && !in[f.ID] {
			t.Errorf("%s is in no cause", f.ID)
		}
	}
}

// TestJudgeSockets: an output that delivered without retrying has no
// ESTABLISHED connection between its requests; that is info, not a
// stall. One that retries keeps the finding.
func TestJudgeSockets(t *testing.T) {
	ok := &OutputTrend{Output: "es", Writes: &Delta{Change: 4, Last: 9}}
	idle := &OutputTrend{Output: "es3", Writes: &Delta{Last: 9}, QueueLen: &Delta{}}
	waiting := &OutputTrend{Output: "es4", Writes: &Delta{Last: 9}, QueueLen: &Delta{First: 2, Last: 1}}
	bad := &OutputTrend{Output: "es2", Writes: &Delta{Change: 0}, Retrying: true}
	fs := judgeSockets([]report.Finding{
		{ID: "tcp.no_established", Severity: report.Critical, Evidence: map[string]any{"output": "es"}},
		{ID: "tcp.no_established", Severity: report.Critical, Evidence: map[string]any{"output": "es2"}},
		{ID: "tcp.close_wait", Severity: report.Critical, Evidence: map[string]any{"output": "es"}},
		{ID: "tcp.no_established", Severity: report.Critical, Evidence: map[string]any{"output": "es3"}},
		{ID: "tcp.no_established", Severity: report.Critical, Evidence: map[string]any{"output": "es4"}},
	}, []*OutputTrend{ok, bad, idle, waiting})
	if fs[0].Severity != report.Info || fs[0].Evidence["delivering"] != true || fs[1].Severity != report.Critical || fs[2].Severity != report.Critical ||
		fs[3].Severity != report.Info || fs[4].Severity != report.Critical {
		t.Errorf("%+v", fs)
	}
}

// TestRejectionRemedyPerPlugin: the cause built on config.es_429_dropped
// names the rejection type of the output's own plugin, and its genid
// filter: fluent-plugin-opensearch says rejected_execution_exception.
func TestRejectionRemedyPerPlugin(t *testing.T) {
	for _, tc := range []struct{ typ, rejected, genid string }{
		{"elasticsearch", "es_rejected_execution_exception", "elasticsearch_genid"},
		{"opensearch", "rejected_execution_exception", "opensearch_genid"},
	} {
		conf := "<match a.**>\n  @type " + tc.typ + "\n  host 127.0.0.1\n  port 9200\n</match>\n"
		c, err := shipconf.Parse("fluent.conf", []byte(conf), shipconf.Options{Format: shipconf.FormatFluentd})
		if err != nil {
			t.Fatal(err)
		}
		tg := &Target{Process: Process{Kind: Fluentd, PID: 7}, cfg: c, Endpoints: FindEndpoints(c)}
		es := tg.Endpoints.ES[0].Name
		fs := configcheck.Check(c, configcheck.Options{MTU: 1500})
		fs = append(fs, report.Finding{ID: esprobe.FindingWriteRejections, Severity: report.Critical, Summary: "output " + es + " (fluent.conf:3): 5 rejected",
			Evidence: map[string]any{"output": es}})
		var cause *Cause
		for _, c := range diagnose(tg, fs) {
			if strings.HasPrefix(c.Text, "Elasticsearch rejects writes") {
				cause = c
			}
		}
		if cause == nil {
			t.Fatalf("%s: no rejection cause", tc.typ)
		}
		if !strings.Contains(cause.Text, "remove "+tc.rejected+" from it") || !strings.Contains(cause.Text, "retry the whole chunk") ||
			!strings.Contains(cause.Text, "@type "+tc.genid) || (tc.typ == "opensearch" && strings.Contains(cause.Text, "es_rejected")) {
			t.Errorf("%s: %s", tc.typ, cause.Text)
		}
		last := cause.Settings[len(cause.Settings)-1]
		if last.Setting != "unrecoverable_error_types" || last.Change != "a list without "+tc.rejected {
			t.Errorf("%s: settings %+v", tc.typ, cause.Settings)
		}
	}
}
