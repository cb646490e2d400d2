package doctor

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFlagValue(t *testing.T) {
	cases := []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"-c", "/a.conf"}, "/a.conf", true},
		{[]string{"-c/a.conf"}, "/a.conf", true},
		{[]string{"--config", "/b.conf"}, "/b.conf", true},
		{[]string{"--config=/c.conf"}, "/c.conf", true},
		{[]string{"--log", "x", "-c"}, "", false},
		{[]string{"--config-check"}, "", false},
		{[]string{"-p", "/plugins"}, "", false},
	}
	for _, c := range cases {
		got, ok := flagValue(c.args, "-c", "--config")
		if got != c.want || ok != c.ok {
			t.Errorf("%v: %q %v", c.args, got, ok)
		}
	}
}

func TestLocateConfig(t *testing.T) {
	root := t.TempDir()
	cwd := filepath.Join(root, "work")
	writeFiles(t, root, map[string]string{
		"etc/td-agent/td-agent.conf":     "<match **>\n  @type null\n</match>\n",
		"fluent-bit/etc/fluent-bit.conf": "[OUTPUT]\n    Name null\n",
		"fluentd/etc/custom.conf":        "<match **>\n  @type null\n</match>\n",
		"work/relative.conf":             "<match **>\n  @type null\n</match>\n",
	})
	files := TargetFiles{Root: root, Cwd: cwd}
	td := Process{Kind: Fluentd, argv: []string{"/opt/td-agent/bin/ruby", "/opt/td-agent/bin/fluentd", "--log", "/var/log/td-agent/td-agent.log"}}
	src, ok := locateConfig(td, nil, files)
	if !ok || src.Path != "/etc/td-agent/td-agent.conf" || src.From != "default path" {
		t.Errorf("td-agent: %+v %v", src, ok)
	}
	src, ok = locateConfig(td, map[string]string{"FLUENT_CONF": "/etc/other.conf"}, files)
	if !ok || src.Path != "/etc/other.conf" || !strings.Contains(src.From, "FLUENT_CONF") {
		t.Errorf("FLUENT_CONF: %+v", src)
	}
	img := Process{Kind: Fluentd, argv: []string{"ruby", "/usr/local/bundle/bin/fluentd"}}
	src, ok = locateConfig(img, map[string]string{"FLUENTD_CONF": "custom.conf"}, files)
	if !ok || src.Path != "/fluentd/etc/custom.conf" || !strings.Contains(src.From, "FLUENTD_CONF") {
		t.Errorf("FLUENTD_CONF: %+v", src)
	}
	rel := Process{Kind: Fluentd, argv: []string{"ruby", "bin/fluentd", "-c", "relative.conf"}}
	src, ok = locateConfig(rel, nil, files)
	if !ok || src.Path != "relative.conf" || !files.Exists(src.Path) {
		t.Errorf("relative -c: %+v", src)
	}
	fb := Process{Kind: FluentBit, argv: []string{"/fluent-bit/bin/fluent-bit"}}
	if src, ok = locateConfig(fb, nil, files); !ok || src.Path != "/fluent-bit/etc/fluent-bit.conf" {
		t.Errorf("fluent-bit default: %+v", src)
	}
	none := Process{Kind: FluentBit, argv: []string{"/usr/bin/fluent-bit", "-i", "cpu", "-o", "stdout"}}
	if !commandLinePipeline(none) {
		t.Error("-i/-o not recognised as a command line pipeline")
	}
	empty := TargetFiles{Root: t.TempDir(), Cwd: t.TempDir()}
	if src, ok = locateConfig(none, nil, empty); ok || len(src.Tried) == 0 {
		t.Errorf("nothing to find: %+v %v", src, ok)
	}
	if lf := logFile(td); lf != "/var/log/td-agent/td-agent.log" {
		t.Errorf("td-agent log %q", lf)
	}
	if lf := logFile(Process{Kind: FluentBit, argv: []string{"fluent-bit", "-c", "x", "-l", "/var/log/fb.log"}}); lf != "/var/log/fb.log" {
		t.Errorf("fluent-bit log %q", lf)
	}
}

func TestParseEnviron(t *testing.T) {
	env := parseEnviron([]byte("A=1\x00B=x=y\x00=nokey\x00NOEQ\x00C=\x00"))
	if len(env) != 3 || env["A"] != "1" || env["B"] != "x=y" || env["C"] != "" {
		t.Errorf("%v", env)
	}
}

// TestTargetFilesResolveInRoot: an absolute symlink inside a container
// (a ConfigMap's) resolves inside the container's root, and names come
// back as the container sees them.
func TestTargetFilesResolveInRoot(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"config/..data/fluent.conf": "@include conf.d/*.conf\n",
		"etc/fluent/conf.d/a.conf":  "<match a>\n  @type null\n</match>\n",
		"etc/fluent/conf.d/b.conf":  "<match b>\n  @type null\n</match>\n",
		"var/flb/dummy.0/1.flb":     "12345",
		"var/flb/dummy.0/2.flb":     "678",
	})
	if err := os.Symlink("/config/..data/fluent.conf", filepath.Join(root, "etc/fluent/fluent.conf")); err != nil {
		t.Fatal(err)
	}
	f := TargetFiles{Root: root, Cwd: filepath.Join(root, "etc")}
	b, err := f.ReadFile("/etc/fluent/fluent.conf", 1<<20)
	if err != nil || string(b) != "@include conf.d/*.conf\n" {
		t.Fatalf("absolute symlink inside the root: %q %v", b, err)
	}
	got, err := f.Glob("/etc/fluent/conf.d/*.conf")
	sort.Strings(got)
	if err != nil || len(got) != 2 || got[0] != "/etc/fluent/conf.d/a.conf" {
		t.Errorf("glob %v %v", got, err)
	}
	if b, err := f.ReadFile("fluent/conf.d/a.conf", 1<<20); err != nil || !strings.Contains(string(b), "<match a>") {
		t.Errorf("relative to the working directory: %q %v", b, err)
	}
	if _, err := f.ReadFile("/etc/fluent/conf.d/a.conf", 4); err == nil {
		t.Error("size limit not applied")
	}
	// The loader reads the includes through it, with the shipper's names.
	cfg, err := shipconf.Load("/etc/fluent/fluent.conf", shipconf.Options{Format: shipconf.FormatFluentd, Files: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Plugins) != 2 || cfg.Plugins[0].Pos.File != "/etc/fluent/conf.d/a.conf" {
		t.Errorf("plugins %+v problems %v", cfg.Plugins, cfg.Problems)
	}
	n, files, err := f.DirSize("/var/flb/dummy.0", 100)
	if err != nil || n != 8 || files != 2 {
		t.Errorf("dir size %d %d %v", n, files, err)
	}
	if f.Exists("/etc/fluent") || !f.Exists("/etc/fluent/fluent.conf") {
		t.Error("Exists: a directory is not a configuration file; the symlinked file is")
	}
}
