package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
)

func esSim(t *testing.T, cfg essim.Config) *essim.Server {
	t.Helper()
	return essimtest.Start(t, cfg)
}

type esReport struct {
	Command  string `json:"command"`
	Findings []struct {
		ID       string         `json:"id"`
		Severity string         `json:"severity"`
		Evidence map[string]any `json:"evidence"`
	} `json:"findings"`
	Data map[string]any `json:"data"`
}

func esRun(t *testing.T, args ...string) (ExitCode, esReport, string) {
	t.Helper()
	code, out, errOut := runCLI(t, append(args, "-o", "json")...)
	var r esReport
	if code != ExitUsage && code != ExitError {
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("exit %d, output %q (stderr %q): %v", code, out, errOut, err)
		}
	}
	return code, r, out + errOut
}

func esIDs(r esReport) []string {
	var ids []string
	for _, f := range r.Findings {
		ids = append(ids, f.ID)
	}
	return ids
}

func TestESProbeCLI(t *testing.T) {
	s := esSim(t, essim.Config{Nodes: 3})
	args := append([]string{"es", "probe"}, s.URLs()...)
	code, r, _ := esRun(t, append(args, "--index", "cli-canary", "--idle-wait", "0")...)
	if code != ExitOK || len(r.Findings) != 0 || r.Command != "es probe" {
		t.Fatalf("healthy: exit %d findings %v", code, esIDs(r))
	}
	pool := r.Data["pool"].(map[string]any)
	if pool["requests"] != 18.0 || pool["sequential_new_connections"] != 1.0 {
		t.Fatalf("pool %v", pool)
	}
	if b := r.Data["bulk"].(map[string]any); b["idempotent"] != true || b["count"] != 1.0 {
		t.Fatalf("bulk %v", b)
	}

	s.SetFaults(essim.Faults{PublishAddress: "127.0.0.2:1"})
	code, r, _ = esRun(t, "es", "probe", s.URL(), "--idle-wait", "0")
	if code != ExitFindings || fmt.Sprint(esIDs(r)) != "[es.sniff_unreachable]" {
		t.Fatalf("sniff: exit %d findings %v", code, esIDs(r))
	}
	// --fail-on never keeps the exit code 0 with the same finding.
	if code, _, _ := esRun(t, "es", "probe", s.URL(), "--idle-wait", "0", "--fail-on", "never"); code != ExitOK {
		t.Fatalf("--fail-on never: %d", code)
	}
	// The table view renders too.
	code, out, _ := runCLI(t, "es", "probe", s.URL(), "--idle-wait", "0")
	if code != ExitFindings || !strings.Contains(out, "127.0.0.2:1") || !strings.Contains(out, "es.sniff_unreachable") {
		t.Fatalf("table: %d %s", code, out)
	}
}

func TestESProbeCLIUnreachableAndUsage(t *testing.T) {
	addr := freeTCPAddr(t, "127.0.0.2")
	code, r, _ := esRun(t, "es", "probe", "http://"+addr, "--idle-wait", "0")
	if code != ExitFindings || fmt.Sprint(esIDs(r)) != "[es.unreachable]" {
		t.Fatalf("closed port: %d %v", code, esIDs(r))
	}
	for _, args := range [][]string{
		{"es", "probe"},
		{"es", "probe", "http://127.0.0.1:1", "--bulk-size", "lots"},
		{"es", "probe", "ftp://127.0.0.1:1"},
		{"es", "dups", "http://127.0.0.1:1"},
		{"es", "serve", "--reject-rate", "2", "--listen", "127.0.0.1:0"},
	} {
		if code, _, out := esRun(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, code, out)
		}
	}
}

func TestESProbeCLINeverPrintsSecrets(t *testing.T) {
	t.Setenv("LOGDOCTOR_ES_PASSWORD", "")
	t.Setenv("LOGDOCTOR_ES_API_KEY", "")
	s := esSim(t, essim.Config{Username: "elastic", Password: "right-password-42"})
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("wrong-password-77\n"), 0o600)
	code, r, all := esRun(t, "es", "probe", s.URL(), "--user", "elastic", "--password-file", pw, "--idle-wait", "0")
	if code != ExitFindings || fmt.Sprint(esIDs(r)) != "[es.auth_failed]" || strings.Contains(all, "wrong-password-77") {
		t.Fatalf("auth failed: %d %v %s", code, esIDs(r), all)
	}
	// userinfo in the URL is used and redacted.
	u := strings.Replace(s.URL(), "http://", "http://elastic:url-secret-99@", 1)
	code, r, all = esRun(t, "es", "probe", u, "--idle-wait", "0")
	if code != ExitFindings || strings.Contains(all, "url-secret-99") {
		t.Fatalf("url userinfo: %d %v %s", code, esIDs(r), all)
	}
	t.Setenv("LOGDOCTOR_ES_PASSWORD", "right-password-42")
	code, r, all = esRun(t, "es", "probe", s.URL(), "--user", "elastic", "--idle-wait", "0", "--index", "sec")
	if code != ExitOK || strings.Contains(all, "right-password-42") {
		t.Fatalf("env password: %d %v %s", code, esIDs(r), all)
	}
}

func TestESDupsCLI(t *testing.T) {
	s := esSim(t, essim.Config{})
	var b bytes.Buffer
	for i := 0; i < 4; i++ {
		for c := 0; c <= i%2; c++ { // odd events twice
			fmt.Fprintf(&b, "{\"index\":{\"_index\":\"app\"}}\n{\"rid\":\"r%d\",\"msg\":\"m%d\"}\n", i, i)
		}
	}
	res, err := http.Post(s.URL()+"/_bulk", "application/x-ndjson", &b)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	code, r, _ := esRun(t, "es", "dups", s.URL(), "--index", "app", "--field", "rid")
	if code != ExitFindings || fmt.Sprint(esIDs(r)) != "[es.duplicates]" || r.Data["duplicated_events"] != 2.0 || r.Data["extra_copies"] != 2.0 {
		t.Fatalf("dups: %d %v %v", code, esIDs(r), r.Data)
	}
	code, r, _ = esRun(t, "es", "dups", s.URL(), "--index", "app", "--fields", "msg")
	if code != ExitFindings || r.Data["method"] != "fingerprint" || r.Data["scanned"] != 6.0 {
		t.Fatalf("fingerprint: %d %v", code, r.Data)
	}
	// Past index.max_result_window: accepted, and a bound below the
	// index size is es.dups_incomplete.
	code, r, _ = esRun(t, "es", "dups", s.URL(), "--index", "app", "--max-docs", "20000")
	if code != ExitFindings || r.Data["truncated"] != false || r.Data["max_docs"] != 20000.0 {
		t.Fatalf("--max-docs 20000: %d %v", code, r.Data)
	}
	code, r, _ = esRun(t, "es", "dups", s.URL(), "--index", "app", "--max-docs", "2")
	if code != ExitFindings || fmt.Sprint(esIDs(r)) != "[es.dups_incomplete]" || r.Data["scanned"] != 2.0 {
		t.Fatalf("--max-docs 2: %d %v %v", code, esIDs(r), r.Data)
	}
	if code, _, _ := esRun(t, "es", "dups", s.URL(), "--index", "app", "--max-docs", "0"); code != ExitUsage {
		t.Fatalf("--max-docs 0: exit %d", code)
	}
	if code, _, _ := esRun(t, "es", "dups", s.URL(), "--index", "nope"); code != ExitError {
		t.Fatalf("missing index: exit %d", code)
	}
}

func TestESServeCLI(t *testing.T) {
	addr := freeBindAddr(t)
	done := make(chan esReport, 1)
	go func() {
		var out, errb bytes.Buffer
		code := Main(context.Background(), []string{"es", "serve", "--listen", addr, "--duration", "1500ms", "--reject-rate", "1", "-o", "json"},
			IO{In: strings.NewReader(""), Out: &out, Err: &errb})
		var r esReport
		if code != ExitOK || json.Unmarshal(out.Bytes(), &r) != nil {
			t.Errorf("serve: exit %d out %q err %q", code, out.String(), errb.String())
		}
		done <- r
	}()
	var res *http.Response
	var err error
	for i := 0; i < 100; i++ {
		res, err = http.Post("http://"+addr+"/_bulk", "application/x-ndjson", strings.NewReader("{\"index\":{\"_index\":\"s\"}}\n{}\n"))
		if err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	var br map[string]any
	json.NewDecoder(res.Body).Decode(&br)
	res.Body.Close()
	if br["errors"] != true {
		t.Fatalf("bulk with --reject-rate 1: %v", br)
	}
	r := <-done
	st := r.Data["stats"].(map[string]any)
	if st["rejected"] != 1.0 || st["bulk_items"] != 1.0 {
		t.Fatalf("serve stats %v", st)
	}
}

// TestESServeTLSProbedWithCA runs `es serve` with a certificate and basic
// auth, and `es probe --ca` against it, both through the CLI.
func TestESServeTLSProbedWithCA(t *testing.T) {
	t.Setenv("LOGDOCTOR_ES_PASSWORD", "")
	certs := forwardtest.NewCerts(t)
	addr := freeTCPAddr(t, "127.0.0.1") // the test certificate names 127.0.0.1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan ExitCode, 1)
	go func() {
		var out, errb bytes.Buffer
		served <- Main(ctx, []string{"es", "serve", "--listen", addr, "--tls-cert", certs.CertFile, "--tls-key", certs.KeyFile,
			"--user", "elastic", "--password", "tls-pass-31"}, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	}()
	url := "https://" + addr
	var code ExitCode
	var r esReport
	var all string
	for i := 0; i < 100; i++ {
		code, r, all = esRun(t, "es", "probe", url, "--ca", certs.CAFile, "--user", "elastic", "--password", "tls-pass-31", "--idle-wait", "0")
		if code == ExitOK {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != ExitOK || r.Data["targets"].([]any)[0].(map[string]any)["reachable"] != true || strings.Contains(all, "tls-pass-31") {
		t.Fatalf("probe over TLS: exit %d %v %s", code, esIDs(r), all)
	}
	// Without the CA the certificate is refused.
	code, r, _ = esRun(t, "es", "probe", url, "--user", "elastic", "--password", "tls-pass-31", "--idle-wait", "0")
	if code != ExitFindings || fmt.Sprint(esIDs(r)) != "[es.unreachable]" {
		t.Fatalf("without --ca: %d %v", code, esIDs(r))
	}
	cancel()
	if c := <-served; c != ExitOK {
		t.Fatalf("serve exit %d", c)
	}
}
