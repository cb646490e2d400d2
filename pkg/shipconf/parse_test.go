package shipconf

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustLoad(t *testing.T, path string, o Options) *Config {
	t.Helper()
	c, err := Load(path, o)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return c
}

func noProblems(t *testing.T, c *Config) {
	t.Helper()
	for _, p := range c.Problems {
		t.Errorf("unexpected problem: %v", p)
	}
}

// param finds a parameter by path: plugin index, then nested section
// names, then the parameter name.
func param(t *testing.T, s *Section, path ...string) *Param {
	t.Helper()
	for _, n := range path[:len(path)-1] {
		subs := s.Sub(n)
		if len(subs) == 0 {
			t.Fatalf("no <%s> in <%s>", n, s.Name)
		}
		s = subs[0]
	}
	p := s.Get(path[len(path)-1])
	if p == nil {
		t.Fatalf("no parameter %q in <%s %s>", path[len(path)-1], s.Name, s.Arg)
	}
	return p
}

func TestFluentdQuotesEscapesComments(t *testing.T) {
	c := mustLoad(t, "testdata/fluentd/valid/quotes.conf", Options{})
	noProblems(t, c)
	if c.Format != FormatFluentd {
		t.Fatalf("format %s", c.Format)
	}
	f := c.Filters()[0]
	want := map[string]string{
		"dq_escapes":         "tab\there \"q\" back\\slash 's' sym$",
		"dq_continued":       "first second",
		"dq_multiline":       "line one\nline two",
		"sq_literal":         `no \n escape, ' and \ only`,
		"unquoted":           "value with spaces",
		"hash_inside":        "a#b#c",
		"hash_start_comment": "# this whole thing is the value",
		"empty_means_true":   "",
		"dq_hash":            "x # not a comment",
	}
	for k, v := range want {
		if got := param(t, f.Section, "record", k); got.Value != v || got.State != Known {
			t.Errorf("%s = %q (%s), want %q", k, got.Value, got.State, v)
		}
	}
	if p := param(t, f.Section, "record", "dq_multiline"); p.Pos.Line != 14 || p.Pos.Col != 5 {
		t.Errorf("dq_multiline at %v, want line 14 column 5", p.Pos)
	}
	if b, ok := FluentdBool(param(t, f.Section, "record", "empty_means_true").Value); !b || !ok {
		t.Error("an empty value must read as boolean true")
	}
}

func TestFluentdJSONValues(t *testing.T) {
	c := mustLoad(t, "testdata/fluentd/valid/json_values.conf", Options{})
	noProblems(t, c)
	got := param(t, c.Inputs()[0].Section, "dummy").Value
	if got != `[{"message":"a"},{"message":"b # not a comment"}]` {
		t.Errorf("JSON value %q", got)
	}
	if o := c.Outputs()[0]; o.ID != "null_json" || o.Pos.Line != 10 {
		t.Errorf("output after the JSON value: id %q at %v", o.ID, o.Pos)
	}
}

func TestFluentdEmbeddedRuby(t *testing.T) {
	path := "testdata/fluentd/valid/embedded_ruby.conf"
	c := mustLoad(t, path, Options{})
	noProblems(t, c)
	in, out := c.Inputs()[0], c.Outputs()[0]
	if p := param(t, in.Section, "port"); p.Value != "24224" || p.State != Known || !strings.Contains(p.Note, "FWD_PORT not given") {
		t.Errorf("port from ENV default: %+v", p)
	}
	if p := param(t, in.Section, "bind"); p.State != Unknown || len(p.Env) != 1 || p.Env[0] != "FWD_BIND" {
		t.Errorf("bind from an unset ENV must be unknown: %+v", p)
	}
	if p := param(t, out.Section, "server", "host"); p.State != Unknown || !strings.Contains(p.Note, "gethostname") {
		t.Errorf("other embedded Ruby must be unknown, not evaluated: %+v", p)
	}
	if p := param(t, out.Section, "buffer", "chunk_limit_size"); p.State != Default {
		t.Errorf("use_default: %+v", p)
	}
	if s := c.Setting(out, out.Buffer(), "chunk_limit_size"); s.Value != "8m" || s.State != Default {
		t.Errorf("use_default must give the buffer default: %+v", s)
	}

	c = mustLoad(t, path, Options{Env: map[string]string{"FWD_PORT": "5000", "FWD_BIND": "127.0.0.1", "ACK": "true"}})
	in, out = c.Inputs()[0], c.Outputs()[0]
	if p := param(t, in.Section, "port"); p.Value != "5000" || p.Note != "" {
		t.Errorf("port from --env: %+v", p)
	}
	if p := param(t, in.Section, "bind"); p.Value != "127.0.0.1" || p.State != Known {
		t.Errorf("bind from --env: %+v", p)
	}
	if p := param(t, out.Section, "require_ack_response"); p.Value != "true" {
		t.Errorf("ack from --env: %+v", p)
	}
}

func TestFluentdIncludes(t *testing.T) {
	c := mustLoad(t, "testdata/fluentd/valid/includes.conf", Options{})
	noProblems(t, c)
	var tags []string
	for _, in := range c.Inputs() {
		tags = append(tags, in.Tag)
	}
	if strings.Join(tags, ",") != "first,second,deep" {
		t.Errorf("include order: %v (want the glob sorted, then the plain include)", tags)
	}
	out := c.Outputs()[0]
	if p := param(t, out.Section, "buffer", "flush_interval"); p.Value != "5s" || !strings.HasSuffix(p.Pos.File, "params.inc") || p.Pos.Line != 3 {
		t.Errorf("@include inside <match>: %+v", p)
	}
	if len(c.Files) != 5 {
		t.Errorf("files read: %d", len(c.Files))
	}
}

func TestFluentdIncludeProblems(t *testing.T) {
	files := MapFiles{
		"/etc/fluent/fluent.conf": "@include a.conf\n@include missing/*.conf\n@include https://config.example/remote.conf\n<match **>\n  @type null\n</match>\n",
		"/etc/fluent/a.conf":      "<source>\n  @type dummy\n  tag a\n</source>\n@include b.conf\n",
		"/etc/fluent/b.conf":      "@include a.conf\n",
	}
	c := mustLoad(t, "/etc/fluent/fluent.conf", Options{Files: files})
	var cycle, nomatch, remote bool
	for _, p := range c.Problems {
		switch {
		case errors.Is(p, errIncludeCycle):
			cycle = p.Pos.File == "/etc/fluent/b.conf" && p.Pos.Line == 1 && strings.Contains(p.Msg, "a.conf -> b.conf -> a.conf")
		case errors.Is(p, ErrNoMatch):
			nomatch = p.Pos.Line == 2
		case p.Kind == NotFollowed:
			remote = p.Pos.Line == 3 && strings.Contains(p.Msg, "not followed")
		default:
			t.Errorf("unexpected problem %v", p)
		}
	}
	if !cycle || !nomatch || !remote {
		t.Errorf("cycle %v, no match %v, remote %v: %v", cycle, nomatch, remote, c.Problems)
	}
	if len(c.Inputs()) != 1 || len(c.Outputs()) != 1 {
		t.Errorf("the rest must still be read: %d inputs %d outputs", len(c.Inputs()), len(c.Outputs()))
	}
}

func TestFluentdLabelsAndRoutes(t *testing.T) {
	c := mustLoad(t, "testdata/fluentd/valid/labels.conf", Options{})
	noProblems(t, c)
	routes := c.Routes()
	got := map[string]bool{}
	for _, r := range routes {
		got[r.Input.Type+"->"+r.Output.Type+"@"+r.Output.Label] = true
	}
	for _, want := range []string{"forward->relabel@@INGEST", "forward->null@@INGEST", "forward->stdout@@OUT", "dummy->null@"} {
		if !got[want] {
			t.Errorf("missing route %s in %v", want, got)
		}
	}
	if got["dummy->stdout@@OUT"] {
		t.Error("the root input must not reach the @OUT label")
	}
	for _, r := range routes {
		if r.Output.Type == "stdout" && (len(r.Filters) != 1 || r.Filters[0].Label != "@INGEST") {
			t.Errorf("the @INGEST filter covers app.** and must count for stdout via relabel: %v", r.Filters)
		}
	}
}

func TestFluentdV012Parameters(t *testing.T) {
	c := mustLoad(t, "testdata/fluentd/valid/v012_params.conf", Options{})
	noProblems(t, c)
	o := c.Outputs()[0]
	if o.Type != "forward" || o.ID != "legacy_fwd" {
		t.Errorf("deprecated type/id not read: %q %q", o.Type, o.ID)
	}
	b := o.Buffer()
	if b == nil {
		t.Fatal("no <buffer> built from v0.12 parameters")
	}
	want := map[string]string{"@type": "file", "path": "/tmp/logdoctor-fixture-buffer", "chunk_limit_size": "4m",
		"queue_limit_length": "32", "flush_interval": "10s", "retry_forever": "", "retry_max_times": "17",
		"retry_max_interval": "30s", "flush_thread_count": "2"}
	for k, v := range want {
		p := b.Get(k)
		if p == nil || p.Value != v || !strings.Contains(p.Note, "v0.12") {
			t.Errorf("<buffer> %s = %+v, want %q from a v0.12 parameter", k, p, v)
		}
	}
	if p := b.Get("chunk_limit_size"); p.Pos.Line != 11 {
		t.Errorf("mapped parameter keeps its line: %v", p.Pos)
	}
}

func TestFluentdYAML(t *testing.T) {
	files := MapFiles{
		"/c/fluent.yaml": `system:
  log_level: info
config:
  - source:
      $type: forward
      $label: '@IN'
      port: 24224
  - label:
      $name: '@IN'
      config:
        - filter:
            $tag: '**'
            $type: elasticsearch_genid
        - match:
            $tag: [app.**, web.**]
            $type: elasticsearch
            id_key: _hash
            password: !fluent/s "#{ENV['ES_PASSWORD']}"
            reload_connections: off
            buffer:
              $type: file
              path: /var/buf
            unrecoverable_error_types: !fluent/json [out_of_memory_error]
  - !include extra.yaml
`,
		"/c/extra.yaml": "- match:\n    $tag: 'other.**'\n    $type: forward\n    require_ack_response: yes\n",
	}
	c := mustLoad(t, "/c/fluent.yaml", Options{Files: files, Env: map[string]string{"ES_PASSWORD": "from-env"}})
	noProblems(t, c)
	if c.Format != FormatFluentdYAML || c.Service.Get("log_level").Value != "info" {
		t.Fatalf("format %s service %+v", c.Format, c.Service)
	}
	in := c.Inputs()[0]
	if in.Type != "forward" || in.RouteLabel != "@IN" || in.Pos.Line != 5 {
		t.Errorf("source: %+v", in)
	}
	outs := c.Outputs()
	if len(outs) != 2 {
		t.Fatalf("outputs: %d", len(outs))
	}
	es := outs[0]
	if es.Match != "app.**,web.**" || es.Label != "@IN" {
		t.Errorf("es match %q label %q", es.Match, es.Label)
	}
	for k, v := range map[string]string{"password": "from-env", "reload_connections": "false", "unrecoverable_error_types": `["out_of_memory_error"]`} {
		if p := param(t, es.Section, k); p.Value != v {
			t.Errorf("%s = %q, want %q", k, p.Value, v)
		}
	}
	if p := param(t, es.Section, "buffer", "@type"); p.Value != "file" {
		t.Errorf("buffer type %q", p.Value)
	}
	if p := param(t, outs[1].Section, "require_ack_response"); p.Value != "true" || !strings.HasSuffix(p.Pos.File, "extra.yaml") {
		t.Errorf("!include'd match: %+v", p)
	}
	if rs := c.Routes(); len(rs) != 1 || len(rs[0].Filters) != 1 {
		t.Errorf("routes: %+v", rs)
	}
}

func TestFluentBitClassic(t *testing.T) {
	c := mustLoad(t, "testdata/fluentbit/valid/classic_syntax.conf", Options{})
	noProblems(t, c)
	if c.Format != FormatFluentBit {
		t.Fatalf("format %s", c.Format)
	}
	if v := c.Service.Get("flush"); v.Value != "2" || !v.EnvFromFile {
		t.Errorf("flush from @set: %+v", v)
	}
	if v := c.Service.Get("log_level"); v.Value != "info" || !strings.Contains(v.Note, "default") {
		t.Errorf("${LOG_LEVEL:-info}: %+v", v)
	}
	in := c.Inputs()[0]
	if in.Type != "dummy" || in.Tag != "app.dummy" {
		t.Errorf("input %q tag %q", in.Type, in.Tag)
	}
	if p := param(t, in.Section, "dummy"); p.Value != `{"message": "value with  spaces  # not a comment"}` || p.Pos.Line != 15 || p.Pos.Col != 5 {
		t.Errorf("value split at the first space only: %+v", p)
	}
	out := c.Outputs()[0]
	if out.ID != "discard" || out.MatchRegex != `^app\.(dummy|other)$` {
		t.Errorf("output %+v", out)
	}
	rs := c.Routes()
	if len(rs) != 1 || len(rs[0].Filters) != 1 {
		t.Errorf("routes %+v", rs)
	}

	c = mustLoad(t, "testdata/fluentbit/valid/classic_syntax.conf", Options{Env: map[string]string{"LOG_LEVEL": "debug"}})
	if v := c.Service.Get("log_level"); v.Value != "debug" || v.EnvFromFile {
		t.Errorf("${LOG_LEVEL} from --env: %+v", v)
	}
}

func TestFluentBitIncludes(t *testing.T) {
	c := mustLoad(t, "testdata/fluentbit/valid/includes.conf", Options{})
	noProblems(t, c)
	if len(c.Inputs()) != 2 || c.Inputs()[1].Tag != "included.tab" {
		t.Errorf("inputs from the glob: %+v", c.Inputs())
	}
	if len(c.Routes()) != 2 {
		t.Errorf("routes %+v", c.Routes())
	}
}

func TestFluentBitYAML(t *testing.T) {
	c := mustLoad(t, "testdata/fluentbit/valid/pipeline.yaml", Options{})
	noProblems(t, c)
	if c.Format != FormatFluentBitYAML {
		t.Fatalf("format %s", c.Format)
	}
	in := c.Inputs()[0]
	if in.Tag != "app.yaml" || len(in.Section.Sub("processors")) != 1 {
		t.Errorf("input %+v", in)
	}
	out := c.Outputs()[0]
	if out.Match != "app.*" {
		t.Errorf("match from env: %q", out.Match)
	}
	if p := param(t, out.Section, "retry_limit"); p.Value != "3" || p.Key != "retryLimit" {
		t.Errorf("camelCase key: %+v", p)
	}
	f := c.Filters()
	if len(f) != 1 || len(f[0].Section.Params) != 4 || !strings.HasSuffix(f[0].Pos.File, "filters.yaml") {
		t.Errorf("included filter with a list value: %+v", f)
	}
}

func TestFluentBitUnindentedRecovers(t *testing.T) {
	c, err := Parse("/x/fluent-bit.conf", []byte("[INPUT]\nName dummy\nTag  x\n[OUTPUT]\n    Name null\n    Match *\n"), Options{Files: MapFiles{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Problems) == 0 || c.Problems[0].Pos.Line != 2 {
		t.Fatalf("problems %v", c.Problems)
	}
	if len(c.Outputs()) != 1 {
		t.Errorf("the file is read on: %+v", c.Plugins)
	}
}

// TestInvalidFixtures: every syntax-error fixture names its problem in a
// first-line comment "# expect: LINE: TEXT".
func TestInvalidFixtures(t *testing.T) {
	for _, dir := range []string{"testdata/fluentd/invalid", "testdata/fluentbit/invalid"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			path := filepath.Join(dir, e.Name())
			t.Run(path, func(t *testing.T) {
				line, text := fixtureExpect(t, path)
				format := FormatFluentd
				if strings.Contains(dir, "fluentbit") {
					format = FormatFluentBit
				}
				c := mustLoad(t, path, Options{Format: format})
				for _, p := range c.Problems {
					if p.Pos.Line == line && strings.Contains(p.Error(), text) && p.Pos.File == path {
						return
					}
				}
				t.Errorf("want a problem at line %d with %q, got %v", line, text, c.Problems)
			})
		}
	}
}

// fixtureExpect reads "# expect: LINE: TEXT" from a fixture's first line.
func fixtureExpect(t *testing.T, path string) (int, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	rest, ok := strings.CutPrefix(sc.Text(), "# expect: ")
	if !ok {
		t.Fatalf("%s: first line must be '# expect: LINE: TEXT'", path)
	}
	n, text, _ := strings.Cut(rest, ": ")
	line, err := strconv.Atoi(n)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return line, text
}

func TestBadFiles(t *testing.T) {
	big := strings.Repeat("# padding\n", 2<<20)
	files := MapFiles{
		"/b/binary.conf":   "<source>\x00\x01\x02",
		"/b/big.conf":      big,
		"/b/longline.conf": "<source>\n  tag " + strings.Repeat("x", 1<<20) + "\n</source>\n",
		"/b/main.conf":     "@include binary.conf\n@include big.conf\n@include longline.conf\n",
	}
	c := mustLoad(t, "/b/main.conf", Options{Files: files, MaxFileSize: 2 << 20})
	var bin, large, long bool
	for _, p := range c.Problems {
		bin = bin || errors.Is(p, ErrBinary)
		large = large || errors.Is(p, ErrTooLarge) && strings.Contains(p.Msg, "big.conf")
		long = long || errors.Is(p, ErrTooLarge) && strings.Contains(p.Msg, "line 2")
	}
	if !bin || !large || !long {
		t.Errorf("binary %v large %v long line %v: %v", bin, large, long, c.Problems)
	}
	if _, err := Load("/b/none.conf", Options{Files: files}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing main file: %v", err)
	}
	if _, err := Parse("/b/what.txt", []byte("just text\n"), Options{Files: files}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("undetectable format: %v", err)
	}
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      Format
	}{
		{"x.conf", "<source>\n</source>\n", FormatFluentd},
		{"x.conf", "[INPUT]\n    Name dummy\n", FormatFluentBit},
		{"fluent-bit.conf", "", FormatFluentBit},
		{"td-agent.conf", "", FormatFluentd},
		{"x.yaml", "pipeline:\n  inputs:\n", FormatFluentBitYAML},
		{"x.yml", "config:\n  - source:\n", FormatFluentdYAML},
		{"x.txt", "", ""},
	} {
		if got := Detect(c.name, []byte(c.src)); got != c.want {
			t.Errorf("Detect(%s, %q) = %q, want %q", c.name, c.src, got, c.want)
		}
	}
}

func TestValueReaders(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"8m", 8 << 20}, {"8MB", 8 << 20}, {"1g", 1 << 30}, {"2T", 2 << 40}, {"512", 512}, {"1.5g", 5 << 30}, {"10k", 10240}} {
		if got, ok := FluentdSize(c.in); !ok || got != c.want {
			t.Errorf("FluentdSize(%q) = %d, want %d", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		in   string
		want time.Duration
	}{{"72h", 72 * time.Hour}, {"60", time.Minute}, {"1.5", 1500 * time.Millisecond}, {"30s", 30 * time.Second}, {"1d", 24 * time.Hour}, {"5m", 5 * time.Minute}} {
		if got, ok := FluentdTime(c.in); !ok || got != c.want {
			t.Errorf("FluentdTime(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		in   string
		want int64
	}{{"5M", 5000000}, {"512k", 512000}, {"1MB", 1000000}, {"100", 100}, {"false", 0}} {
		if got, ok := FluentBitSize(c.in); !ok || got != c.want {
			t.Errorf("FluentBitSize(%q) = %d, want %d", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		in   string
		want RetryLimit
	}{{"False", RetryLimit{Unlimited: true}}, {"no_limits", RetryLimit{Unlimited: true}}, {"off", RetryLimit{Unlimited: true}},
		{"no_retries", RetryLimit{None: true}}, {"0", RetryLimit{Count: 1}}, {"-3", RetryLimit{Count: 1}}, {"7", RetryLimit{Count: 7}}} {
		if got := FluentBitRetryLimit(c.in); got != c.want {
			t.Errorf("FluentBitRetryLimit(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestFluentBitMatch(t *testing.T) {
	for _, c := range []struct {
		pat, tag string
		want     bool
	}{{"*", "a.b", true}, {"app.*", "app.x.y", true}, {"app.*", "ap", false}, {"*.log", "kube.x.log", true}, {"a", "a", true}, {"a", "ab", false}} {
		if got := FluentBitMatch(c.pat, c.tag); got != c.want {
			t.Errorf("FluentBitMatch(%q, %q) = %v", c.pat, c.tag, got)
		}
	}
	re, err := FluentBitRegex(`app\.[a-z]+`)
	if err != nil || !re.MatchString("app.x.more") || re.MatchString("x.app.y") {
		t.Errorf("Match_Regex is anchored at the start only: %v", err)
	}
}

// TestHugeFileOnDisk: a 100 MB file is refused from its size, without
// reading it (a sparse file: no disk is used).
func TestHugeFileOnDisk(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.conf")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	main := filepath.Join(dir, "fluent.conf")
	if err := os.WriteFile(main, []byte("@include huge.conf\n<source>\n  @type forward\n</source>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, main, Options{})
	if len(c.Problems) != 1 || !errors.Is(c.Problems[0], ErrTooLarge) || c.Problems[0].Pos.Line != 1 {
		t.Fatalf("problems %v", c.Problems)
	}
	if len(c.Inputs()) != 1 {
		t.Errorf("the main file is still read")
	}
	c = mustLoad(t, huge, Options{Format: FormatFluentd})
	if len(c.Problems) != 1 || !errors.Is(c.Problems[0], ErrTooLarge) {
		t.Fatalf("huge main file: %v", c.Problems)
	}
}

// TestFluentdMonitoringSourcesRouteNothing: monitoring sources put no
// events into routing (monitor_agent only with `tag`), so they are no
// route's input.
func TestFluentdMonitoringSourcesRouteNothing(t *testing.T) {
	conf := "<source>\n  @type monitor_agent\n</source>\n<source>\n  @type monitor_agent\n  port 24221\n  tag monitor.metrics\n</source>\n" +
		"<source>\n  @type prometheus_output_monitor\n</source>\n<source>\n  @type prometheus\n</source>\n<source>\n  @type prometheus_monitor\n</source>\n" +
		"<source>\n  @type debug_agent\n</source>\n<source>\n  @type forward\n</source>\n<match **>\n  @type stdout\n</match>\n"
	c, err := Parse("fluent.conf", []byte(conf), Options{Format: FormatFluentd})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range c.Routes() {
		got = append(got, fmt.Sprintf("%s:%d->%s", r.Input.Type, r.Input.Pos.Line, r.Output.Type))
	}
	if strings.Join(got, " ") != "monitor_agent:4->stdout forward:21->stdout" {
		t.Errorf("routes %v; want the tagged monitor_agent and forward only", got)
	}
}
