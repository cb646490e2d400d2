package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTMLIsGlobal: --html works for any command, through the report
// model, beside whatever -o prints.
func TestHTMLIsGlobal(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "fluent.conf")
	if err := os.WriteFile(conf, []byte("<source>\n  @type forward\n</source>\n<match **>\n  @type forward\n  <server>\n    host 127.0.0.2\n  </server>\n</match>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "config.html")
	code, out, errOut := runCLI(t, "config", "check", conf, "-o", "json", "--html", page)
	if code != ExitFindings || !strings.HasPrefix(out, `{"command":"config check"`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", "config check: CRITICAL", "config.forward_no_ack", "Raw data (JSON)"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if st, _ := os.Stat(page); st.Mode().Perm() != 0o644 {
		t.Errorf("page mode %v", st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".config.html.*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// A second run replaces the page.
	sock := filepath.Join(dir, "sockets.html")
	if code, _, errOut := runCLI(t, "sockets", "--no-processes", "--html", sock); code != ExitOK && code != ExitFindings {
		t.Fatalf("sockets --html: exit %d %s", code, errOut)
	}
	if b, err := os.ReadFile(sock); err != nil || !strings.Contains(string(b), "logdoctor sockets") {
		t.Fatalf("sockets page: %v %.200s", err, b)
	}
}
