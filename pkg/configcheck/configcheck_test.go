package configcheck

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// wantFindings lists, per fixture, every finding config check must give
// (severity, id, line) at MTU 1500 and no cluster flags: each rule is
// positive in some fixture and negative in the same or another one.
var wantFindings = map[string][]string{
	"fluentd/aggregator.conf": {
		"critical config.es_429_dropped 14",
		"warning config.es_no_id 14",
		"warning config.es_reload_connections 14",
		"warning config.es_request_timeout 14",
		"critical config.memory_buffer 19",
		"info config.overflow_drops 19",
		"warning config.retry_drops 21",
	},
	"fluentd/elasticsearch.conf": {
		"critical config.es_429_dropped 18",
		"warning config.es_no_id 18",
		"warning config.es_reload_connections 18",
		"warning config.es_request_timeout 18",
		"warning config.chunk_too_large 58",
	},
	"fluentd/forward_no_ack.conf": {
		"critical config.forward_no_ack 13",
	},
	"fluentd/forwarder.conf": {},
	"fluentd/genid_route.conf": {
		"warning config.es_no_id 15",
		"warning config.chunk_too_large 22",
		"info config.overflow_drops 22",
		"warning config.es_no_id 28",
		"warning config.chunk_too_large 35",
		"info config.overflow_drops 35",
	},
	"fluentd/k8s_daemonset.conf": {
		"info config.no_monitoring 1",
		"critical config.es_429_dropped 32",
		"warning config.es_no_id 32",
		"warning config.es_reload_connections 43",
		"warning config.memory_buffer 46",
		"warning config.retry_unbounded 52",
	},
	"fluentd/memory_buffer.conf": {
		"warning config.memory_buffer 23",
		"critical config.memory_buffer 51",
	},
	"fluentd/no_monitoring.conf": {
		"info config.no_monitoring 1",
	},
	"fluentd/retries.conf": {
		"warning config.memory_buffer 15",
		"warning config.retry_unbounded 16",
		"warning config.memory_buffer 24",
		"warning config.retry_unbounded 25",
		"warning config.retry_drops 38",
		"warning config.retry_drops 48",
		"warning config.overflow_drops 49",
	},
	"fluentd/secrets.conf": {
		"warning config.secret_plaintext 11",
		"warning config.secret_plaintext 19",
		"warning config.chunk_too_large 24",
		"info config.overflow_drops 24",
		"warning config.chunk_too_large 39",
		"info config.overflow_drops 39",
	},
	"fluentd/udp.conf": {
		"warning config.udp_message_size 8",
		"warning config.udp_message_size 27",
	},
	"fluentd/v012_retry.conf": {
		"warning config.memory_buffer 10",
		"warning config.retry_unbounded 13",
	},
	"fluentbit/dead_letter.conf": {},
	"fluentbit/elasticsearch.conf": {
		"warning config.es_no_id 14",
		"warning config.es_type_name 14",
		"critical config.es_429_dropped 15",
		"critical config.es_429_dropped 22",
	},
	"fluentbit/forward.conf": {
		"critical config.forward_no_ack 11",
	},
	"fluentbit/k8s_daemonset.conf": {
		"warning config.memory_buffer 11",
		"warning config.mem_buf_limit_ignored 17",
		"warning config.es_no_id 28",
		"warning config.es_type_name 28",
		"critical config.es_429_dropped 29",
		"warning config.retry_unbounded 37",
	},
	"fluentbit/no_monitoring.conf": {
		"info config.no_monitoring 1",
	},
	"fluentbit/pipeline.yaml": {
		"info config.no_monitoring 3",
		"critical config.memory_buffer 6",
		"critical config.es_429_dropped 9",
		"warning config.es_no_id 9",
		"warning config.es_type_name 9",
		"warning config.retry_drops 12",
		"critical config.forward_no_ack 13",
		"warning config.retry_unbounded 16",
	},
	"fluentbit/retries.conf": {
		"warning config.memory_buffer 6",
		"warning config.memory_buffer 11",
		"warning config.retry_unbounded 20",
		"warning config.retry_drops 22",
		"warning config.retry_drops 33",
		"warning config.retry_drops 40",
	},
	"fluentbit/secrets.conf": {
		"critical config.es_429_dropped 14",
		"warning config.secret_plaintext 18",
		"warning config.secret_plaintext 27",
		"critical config.es_429_dropped 32",
	},
	"fluentbit/storage.conf": {
		"critical config.memory_buffer 8",
		"warning config.mem_buf_limit_ignored 17",
		"warning config.memory_buffer 19",
		"warning config.mem_buf_limit_ignored 23",
		"critical config.es_429_dropped 26",
		"warning config.retry_unbounded 31",
	},
	"fluentbit/udp.conf": {
		"warning config.udp_message_size 7",
		"warning config.udp_message_size 18",
	},
}

func load(t *testing.T, path string, env map[string]string) *shipconf.Config {
	t.Helper()
	c, err := shipconf.Load(path, shipconf.Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keys(fs []report.Finding) []string {
	var out []string
	for _, f := range fs {
		line, _ := f.Evidence["line"].(int)
		out = append(out, fmt.Sprintf("%s %s %d", f.Severity, f.ID, line))
	}
	sort.Strings(out)
	return out
}

func TestRulesOnFixtures(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*/*")
	if len(paths) != len(wantFindings) {
		t.Errorf("%d fixtures, %d expectations: every fixture needs one", len(paths), len(wantFindings))
	}
	for _, p := range paths {
		rel := strings.TrimPrefix(p, "testdata/")
		t.Run(rel, func(t *testing.T) {
			want, ok := wantFindings[rel]
			if !ok {
				t.Fatal("no expectation")
			}
			fs := Check(load(t, p, nil), Options{MTU: 1500, MTUSource: "flag"})
			got := keys(fs)
			w := append([]string{}, want...)
			sort.Strings(w)
			if strings.Join(got, "\n") != strings.Join(w, "\n") {
				t.Errorf("findings:\n  got  %q\n  want %q", got, w)
			}
			for _, f := range fs {
				checkFinding(t, f)
			}
		})
	}
}

// checkFinding holds what every finding promises: a summary naming the
// file, a remedy, and evidence with the place, plugin, setting and value.
func checkFinding(t *testing.T, f report.Finding) {
	t.Helper()
	if f.Summary == "" || f.Remedy == "" {
		t.Errorf("%s: empty summary or remedy", f.ID)
	}
	ev := f.Evidence
	file, _ := ev["file"].(string)
	if file == "" || ev["line"] == nil || !strings.Contains(f.Summary, filepath.Base(file)) {
		t.Errorf("%s: evidence without file/line, or summary without the file: %v %q", f.ID, ev, f.Summary)
	}
	switch f.ID {
	case FindingParseError, FindingIncludeMissing, FindingIncludeNotFollowed, FindingNoMonitoring:
	default:
		for _, k := range []string{"plugin", "setting", "value"} {
			if _, ok := ev[k]; !ok {
				t.Errorf("%s: evidence has no %q: %v", f.ID, k, ev)
			}
		}
	}
}

func find(fs []report.Finding, id string) []report.Finding {
	var out []report.Finding
	for _, f := range fs {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

func TestEvidenceSaysDefault(t *testing.T) {
	fs := Check(load(t, "testdata/fluentd/forward_no_ack.conf", nil), Options{})
	f := find(fs, FindingForwardNoAck)[0]
	if f.Evidence["default"] != true || f.Evidence["setting"] != "require_ack_response" || f.Evidence["value"] != "false" ||
		f.Evidence["plugin"] != "forward (to_aggregator)" || !strings.Contains(f.Summary, "the default") {
		t.Errorf("a finding resting on a default must say so: %+v", f)
	}
	fs = Check(load(t, "testdata/fluentd/retries.conf", nil), Options{})
	for _, f := range find(fs, FindingRetryUnbounded) {
		switch f.Evidence["line"] {
		case 16:
			if f.Evidence["effective_limit_bytes"] != int64(512<<20) || f.Evidence["default"] != nil {
				t.Errorf("retry_forever true on the default memory buffer: %v", f.Evidence)
			}
		case 25:
			if f.Evidence["effective_limit_bytes"] != int64(80<<20) || f.Evidence["limit_from"] != "chunk_limit_size x queue_limit_length" {
				t.Errorf("chunk_limit_size x queue_limit_length: %v", f.Evidence)
			}
		}
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	for _, p := range []string{"testdata/fluentd/secrets.conf", "testdata/fluentbit/secrets.conf"} {
		fs := Check(load(t, p, nil), Options{})
		if len(find(fs, FindingSecretPlaintext)) != 2 {
			t.Errorf("%s: %v", p, keys(fs))
		}
		b, _ := json.Marshal(fs)
		for _, secret := range []string{"changeme-in-file", "literal-shared-key"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s: findings print the secret %q", p, secret)
			}
		}
	}
	// A value from the environment is not in the file, even when given.
	fs := Check(load(t, "testdata/fluentd/secrets.conf", map[string]string{"ES_PASSWORD": "from-the-env"}), Options{})
	if n := len(find(fs, FindingSecretPlaintext)); n != 2 {
		t.Errorf("ENV password flagged: %d", n)
	}
}

func TestClusterOptions(t *testing.T) {
	v8 := Version{Major: 8, Minor: 15}
	fs := Check(load(t, "testdata/fluentbit/elasticsearch.conf", nil), Options{ESVersion: &v8})
	tn := find(fs, FindingESTypeName)
	if len(tn) != 1 || tn[0].Severity != report.Critical || tn[0].Evidence["es_version"] != "Elasticsearch 8.15" {
		t.Errorf("--es-version 8: %+v", tn)
	}
	v7 := Version{Major: 7, Minor: 17}
	if tn := find(Check(load(t, "testdata/fluentbit/elasticsearch.conf", nil), Options{ESVersion: &v7}), FindingESTypeName); tn[0].Severity != report.Warning {
		t.Errorf("--es-version 7: %v", tn[0].Severity)
	}
	fs = Check(load(t, "testdata/fluentd/elasticsearch.conf", nil), Options{ESMaxContentLength: 4 << 20})
	var lines []any
	for _, f := range find(fs, FindingChunkTooLarge) {
		if f.Severity != report.Critical {
			t.Errorf("above a given max content length is critical: %+v", f)
		}
		lines = append(lines, f.Evidence["line"])
	}
	if len(lines) != 3 {
		t.Errorf("8m chunks exceed a 4 MiB limit on every output: %v", lines)
	}
	fs = Check(load(t, "testdata/fluentbit/elasticsearch.conf", nil), Options{ESMaxContentLength: 1 << 20})
	if n := len(find(fs, FindingChunkTooLarge)); n != 2 {
		t.Errorf("Fluent Bit's 2 MB chunks above a 1 MiB limit: %d", n)
	}
}

func TestUDPAgainstMTU(t *testing.T) {
	fs := Check(load(t, "testdata/fluentd/udp.conf", nil), Options{MTU: 9000, MTUSource: "flag"})
	if n := len(find(fs, FindingUDPMessageSize)); n != 0 {
		t.Errorf("4096 bytes fit a 9000 MTU: %v", keys(fs))
	}
	fs = Check(load(t, "testdata/fluentd/udp.conf", nil), Options{MTU: 1400, MTUSource: "interface"})
	got := find(fs, FindingUDPMessageSize)
	if len(got) != 3 {
		t.Fatalf("1400 > 1372 at MTU 1400: %v", keys(fs))
	}
	ev := got[0].Evidence
	if ev["max_unfragmented_payload"] != 1372 || ev["mtu"] != 1400 || ev["mtu_source"] != "interface" || ev["ip"] != "IPv4" {
		t.Errorf("evidence %v", ev)
	}
}

func TestParseErrorThenRestChecked(t *testing.T) {
	c := load(t, "../shipconf/testdata/fluentd/invalid/unterminated_single.conf", nil)
	fs := Check(c, Options{})
	pe := find(fs, FindingParseError)
	if len(pe) != 1 || pe[0].Severity != report.Critical || pe[0].Evidence["line"] != 4 || pe[0].Evidence["column"] != 7 {
		t.Fatalf("parse error: %+v", pe)
	}
	if len(find(fs, FindingForwardNoAck)) != 1 {
		t.Errorf("the <match> after the error must still be checked: %v", keys(fs))
	}
}

func TestIncludeFindings(t *testing.T) {
	files := shipconf.MapFiles{
		"/c/fluent.conf": "@include missing.conf\n@include https://example.invalid/x.conf\n<source>\n  @type monitor_agent\n</source>\n",
		"/c/fb.conf":     "@INCLUDE missing.conf\n[SERVICE]\n    HTTP_Server On\n",
	}
	c, err := shipconf.Load("/c/fluent.conf", shipconf.Options{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(Check(c, Options{})); strings.Join(got, ",") != "info config.include_not_followed 2,warning config.include_missing 1" {
		t.Errorf("Fluentd includes: %v", got)
	}
	c, err = shipconf.Load("/c/fb.conf", shipconf.Options{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(Check(c, Options{})); strings.Join(got, ",") != "critical config.parse_error 1" {
		t.Errorf("Fluent Bit refuses a missing include: %v", got)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"8": {Major: 8}, "7.17": {Major: 7, Minor: 17}, "opensearch-2": {OpenSearch: true, Major: 2},
		"OpenSearch:2.11": {OpenSearch: true, Major: 2, Minor: 11}, "os1": {OpenSearch: true, Major: 1}, "v8.1.2": {Major: 8, Minor: 1}} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %+v, %v", in, got, err)
		}
	}
	if _, err := ParseVersion("latest"); err == nil {
		t.Error("accepted nonsense")
	}
}

func TestEveryRuleHasAPositiveFixture(t *testing.T) {
	seen := map[string]bool{}
	for _, fs := range wantFindings {
		for _, f := range fs {
			seen[strings.Fields(f)[1]] = true
		}
	}
	for _, r := range Rules {
		switch r.ID {
		case FindingParseError, FindingIncludeMissing, FindingIncludeNotFollowed:
			continue // TestIncludeFindings, TestParseErrorThenRestChecked
		}
		if !seen[r.ID] {
			t.Errorf("no fixture shows %s", r.ID)
		}
	}
}

// TestES429RetriesWholeChunk: fluent-plugin-elasticsearch retries the
// whole chunk on a listed rejection (internal/interop
// fluentdRejectionsStall shows it with the real Fluentd); the finding says
// so, copies only without a stable id, and when Fluentd gives up.
func TestES429RetriesWholeChunk(t *testing.T) {
	files := shipconf.MapFiles{
		"/c/noid.conf": "<match a.**>\n  @type elasticsearch\n  @id a\n</match>\n",
		"/c/id.conf":   "<match a.**>\n  @type elasticsearch\n  @id a\n  id_key _hash\n  write_operation create\n  <buffer>\n    retry_max_times 5\n  </buffer>\n  <secondary>\n    @type secondary_file\n    directory /tmp/x\n  </secondary>\n</match>\n",
		"/c/os.conf":   "<match a.**>\n  @type opensearch\n  @id a\n  unrecoverable_error_types [\"rejected_execution_exception\",\"x\"]\n</match>\n",
	}
	check := func(name string) report.Finding {
		t.Helper()
		c, err := shipconf.Load("/c/"+name, shipconf.Options{Files: files})
		if err != nil {
			t.Fatal(err)
		}
		got := find(Check(c, Options{}), FindingES429Dropped)
		if len(got) != 1 {
			t.Fatalf("%s: %d findings", name, len(got))
		}
		return got[0]
	}
	f := check("noid.conf")
	for _, want := range []string{"retry the whole chunk", "indexed as copies", "never passes", "retry_timeout 72h, the default", "it is dropped"} {
		if !strings.Contains(f.Summary, want) {
			t.Errorf("no id: summary %q lacks %q", f.Summary, want)
		}
	}
	if f.Severity != report.Critical || f.Evidence["stable_id"] != false || f.Evidence["rejected_type"] != "es_rejected_execution_exception" ||
		f.Evidence["default"] != true || !strings.Contains(f.Remedy, `unrecoverable_error_types ["out_of_memory_error"]`) || !strings.Contains(f.Remedy, "elasticsearch_genid") {
		t.Errorf("no id: %+v", f)
	}
	f = check("id.conf")
	if f.Severity != report.Warning || f.Evidence["stable_id"] != true || strings.Contains(f.Summary, "copies") ||
		!strings.Contains(f.Summary, "id_key _hash with write_operation create makes those resends 409s") || !strings.Contains(f.Summary, "retry_max_times 5 gives up on the chunk and it goes to <secondary>") ||
		strings.Contains(f.Remedy, "genid") {
		t.Errorf("stable id: %+v", f)
	}
	f = check("os.conf")
	if f.Evidence["rejected_type"] != "rejected_execution_exception" || !strings.Contains(f.Remedy, `unrecoverable_error_types ["x"]`) ||
		!strings.Contains(f.Remedy, "opensearch_genid") || f.Evidence["line"] != 4 {
		t.Errorf("opensearch: %+v", f)
	}
}

// TestRequestTimeoutFollowsID: the resend after a timeout copies
// documents only without a stable id (internal/interop "late with a
// stable id" shows the 409s with the real Fluentd).
func TestRequestTimeoutFollowsID(t *testing.T) {
	files := shipconf.MapFiles{
		"/c/noid.conf":   "<match a.**>\n  @type elasticsearch\n  @id a\n</match>\n",
		"/c/create.conf": "<match a.**>\n  @type elasticsearch\n  @id a\n  id_key _hash\n  write_operation create\n</match>\n",
		"/c/index.conf":  "<match a.**>\n  @type elasticsearch\n  @id a\n  id_key request_id\n</match>\n",
	}
	for name, want := range map[string][]string{
		"noid.conf":   {"indexes every document again as a copy"},
		"create.conf": {"id_key _hash with write_operation create makes those resends 409s", "holds the chunk back"},
		"index.conf":  {"id_key request_id makes those resends overwrite the same documents"},
	} {
		c, err := shipconf.Load("/c/"+name, shipconf.Options{Files: files})
		if err != nil {
			t.Fatal(err)
		}
		got := find(Check(c, Options{}), FindingESRequestTimeout)
		if len(got) != 1 {
			t.Fatalf("%s: %d findings", name, len(got))
		}
		f := got[0]
		for _, w := range want {
			if !strings.Contains(f.Summary, w) {
				t.Errorf("%s: summary %q lacks %q", name, f.Summary, w)
			}
		}
		if stable := name != "noid.conf"; f.Evidence["stable_id"] != stable || (stable && strings.Contains(f.Summary, "cop")) {
			t.Errorf("%s: stable id %v: %q", name, stable, f.Summary)
		}
	}
}
