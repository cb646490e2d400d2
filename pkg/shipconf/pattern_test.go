package shipconf

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/internal/shippertest"
)

var peers shippertest.Setup

// patternCases are tags tried against each pattern; the answers must be
// Fluentd's own.
var patternCases = []struct {
	pattern string
	tags    []string
}{
	{"**", []string{"", "a", "a.b.c"}},
	{"a.*", []string{"a", "a.b", "a.b.c", "ab", "a."}},
	{"a.**", []string{"a", "a.b", "a.b.c", "ab", "b.a"}},
	{"**.b", []string{"b", "a.b", "x.a.b", "ab", "a.bc"}},
	{"a.**.b", []string{"a.b", "a.x.b", "a.x.y.b", "ab", "a.xb"}},
	{"{a,b}.*", []string{"a.x", "b.x", "c.x", "a", "a.x.y"}},
	{"a.{b,c.**}", []string{"a.b", "a.c", "a.c.d", "a.d", "a.b.c"}},
	{"a b.*", []string{"a", "b.x", "c"}},
	{"/^kube\\..+$/", []string{"kube.x", "kube.", "x.kube.y"}},
	{"a.", []string{"a", "a.", "a.b"}},
	{"*", []string{"a", "a.b", ""}},
	{"\\*.x", []string{"*.x", "a.x"}},
	{"kubernetes.var.log.containers.**", []string{"kubernetes.var.log.containers.app-1_ns_c-abc.log", "kubernetes.var.log"}},
}

// TestFluentdPatternsMatchRuby asks Fluentd's lib/fluent/match.rb for the
// answer to every case and compares it with this package's matcher.
func TestFluentdPatternsMatchRuby(t *testing.T) {
	p := peers.Require(t)
	var rubylib string
	for _, a := range p.Fluentd {
		if v, ok := strings.CutPrefix(a, "RUBYLIB="); ok {
			rubylib = v
		}
	}
	if rubylib == "" {
		t.Fatalf("no RUBYLIB in %v", p.Fluentd)
	}
	type q struct {
		P string `json:"p"`
		T string `json:"t"`
	}
	var qs []q
	for _, c := range patternCases {
		for _, tag := range c.tags {
			qs = append(qs, q{c.pattern, tag})
		}
	}
	in, _ := json.Marshal(qs)
	script := `require "json"; require "fluent/match"
out = JSON.parse(STDIN.read).map { |q|
  pats = q["p"].split(/\s+/).map { |s| Fluent::MatchPattern.create(s) }
  pat = pats.length == 1 ? pats[0] : Fluent::OrMatchPattern.new(pats)
  pat.match(q["t"]) }
puts JSON.dump(out)`
	cmd := exec.Command("ruby", "-e", script)
	cmd.Env = append(cmd.Environ(), "RUBYLIB="+rubylib)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ruby: %v\n%s", err, stderr.String())
	}
	var want []bool
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(qs) {
		t.Fatalf("ruby answered %q: %v", out, err)
	}
	for i, c := range qs {
		if got := CompileFluentd(c.P).Match(c.T); got != want[i] {
			t.Errorf("pattern %q tag %q: logdoctor %v, Fluentd %v", c.P, c.T, got, want[i])
		}
	}
}
