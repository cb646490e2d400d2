package shipconf

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real shippers keep the parsers honest: every fixture meant to be
// valid must pass `--dry-run`, every syntax-error fixture must fail it,
// and for Fluentd every value this package reads must be the value
// Fluentd prints in its dry-run dump of the configuration.

// dryRunParallel bounds concurrent dry-runs: the machines have two cores
// shared with other work, and one Fluentd dry-run takes about a second of
// CPU.
const dryRunParallel = 2

// fixtureDirs are the fixture trees checked here: this package's syntax
// fixtures and configcheck's rule fixtures.
var fixtureDirs = []struct {
	dir     string
	kind    Shipper
	invalid bool
}{
	{"testdata/fluentd/valid", Fluentd, false},
	{"testdata/fluentd/invalid", Fluentd, true},
	{"testdata/fluentbit/valid", FluentBit, false},
	{"testdata/fluentbit/invalid", FluentBit, true},
	{"../configcheck/testdata/fluentd", Fluentd, false},
	{"../configcheck/testdata/fluentbit", FluentBit, false},
}

// absentPlugin lists valid fixtures the shippers here cannot accept,
// because a plugin they use is not installed in ../shared/peers; the test
// asserts that this is the only reason their dry-run fails.
var absentPlugin = map[string]*regexp.Regexp{
	// fluent-plugin-kubernetes_metadata_filter is not among the peers.
	"../configcheck/testdata/fluentd/k8s_daemonset.conf": regexp.MustCompile(`Unknown (filter|input) plugin '(kubernetes_metadata|prometheus)'`),
	// The peers' Fluent Bit is a minimal build without the kubernetes filter.
	"../configcheck/testdata/fluentbit/k8s_daemonset.conf": regexp.MustCompile(`section 'kubernetes' tried to instance a plugin name that doesn't exist`),
}

// extraArgs are command-line arguments a fixture needs, as a user would
// give them.
var extraArgs = map[string][]string{
	// sniffer_class_name names a class the plugin does not load itself.
	"../configcheck/testdata/fluentd/elasticsearch.conf": {"-r", "fluent/plugin/elasticsearch_simple_sniffer"},
}

type dryRunCase struct {
	path    string
	kind    Shipper
	invalid bool
}

func dryRunCases(t *testing.T) []dryRunCase {
	var cs []dryRunCase
	for _, d := range fixtureDirs {
		ents, err := os.ReadDir(d.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			cs = append(cs, dryRunCase{path: filepath.Join(d.dir, e.Name()), kind: d.kind, invalid: d.invalid})
		}
	}
	return cs
}

func TestFixturesAgainstRealShippers(t *testing.T) {
	p := peers.Require(t)
	cases := dryRunCases(t)
	for k := range absentPlugin {
		if _, err := os.Stat(k); err != nil {
			t.Errorf("absentPlugin names a missing fixture: %s", k)
		}
	}
	sem := make(chan struct{}, dryRunParallel)
	var mu sync.Mutex
	var total time.Duration
	runs := 0
	t.Cleanup(func() { t.Logf("%d dry-runs, %v of shipper time in total", runs, total) })
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			argv := p.FluentBit
			if c.kind == Fluentd {
				argv = p.Fluentd
			}
			start := time.Now()
			out, err := dryRun(argv, c.path, extraArgs[c.path])
			mu.Lock()
			total += time.Since(start)
			runs++
			mu.Unlock()
			switch {
			case c.invalid:
				if err == nil {
					t.Fatalf("%s accepts this syntax-error fixture:\n%s", c.kind, out)
				}
			case absentPlugin[c.path] != nil:
				if err == nil {
					t.Fatalf("dry-run passes now: remove the fixture from absentPlugin")
				}
				if !absentPlugin[c.path].Match(out) {
					t.Fatalf("dry-run fails for another reason than the absent plugin: %v\n%s", err, out)
				}
			default:
				if err != nil {
					t.Fatalf("%s refuses a valid fixture: %v\n%s", c.kind, err, out)
				}
				if c.kind == Fluentd {
					compareWithFluentdDump(t, c.path, string(out))
				}
			}
		})
	}
}

// dryRun runs the shipper's --dry-run from the fixture's directory (both
// shippers resolve some relative includes against the working directory).
func dryRun(argv []string, path string, extra []string) ([]byte, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(append(append([]string{}, argv[1:]...), extra...), "--dry-run", "-c", abs)
	cmd := exec.CommandContext(ctx, argv[0], args...)
	cmd.Dir = filepath.Dir(abs)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.Bytes(), err
}

// compareWithFluentdDump checks every known value of the model against
// the configuration Fluentd prints at start ("using configuration file:
// <ROOT> ... </ROOT>"): strings are printed quoted with Fluentd's escapes,
// other types as read, secrets as xxxxxx.
func compareWithFluentdDump(t *testing.T, path, out string) {
	t.Helper()
	i := strings.Index(out, "using configuration file: <ROOT>")
	j := strings.LastIndex(out, "</ROOT>")
	if i < 0 || j < i {
		t.Fatalf("no configuration dump in Fluentd's output:\n%s", out)
	}
	dump := out[i+len("using configuration file: "):j] + "\n"
	c, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var walk func(s *Section)
	checked := 0
	walk = func(s *Section) {
		for _, p := range s.Params {
			if p.State != Known || p.Name == "@include" {
				continue
			}
			cands := []string{" " + p.Key + " " + p.Value + "\n", " " + p.Key + " \"" + fluentdEscape(p.Value) + "\"\n", " " + p.Key + " xxxxxx\n"}
			ok := false
			for _, cand := range cands {
				if strings.Contains(dump, cand) {
					ok = true
					break
				}
			}
			if !ok {
				t.Errorf("%s: %s = %q is not what Fluentd read (dump:\n%s)", p.Pos, p.Key, p.Value, dump)
			}
			checked++
		}
		for _, sub := range s.Sections {
			walk(sub)
		}
	}
	for _, p := range c.Plugins {
		if p.Parent == nil {
			walk(p.Section)
		}
	}
	if c.Service != nil {
		walk(c.Service)
	}
	if checked == 0 {
		t.Errorf("no value compared")
	}
}

// fluentdEscape is LiteralParser.unescape_char, which Element#dump_value
// applies to string parameters.
func fluentdEscape(s string) string {
	return strings.NewReplacer(`"`, `\"`, `'`, `\'`, `\`, `\\`, "\r", `\r`, "\n", `\n`, "\t", `\t`, "\f", `\f`, "\b", `\b`).Replace(s)
}
