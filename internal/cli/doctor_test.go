package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorCommand runs the command on this test process, taken for a
// Fluent Bit with --shipper and given its configuration with --config:
// the report, its JSON data, the exit code and the --html page.
func TestDoctorCommand(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "fluent-bit.conf")
	body := "[INPUT]\n    Name dummy\n[OUTPUT]\n    Name es\n    Match *\n    Host 127.0.0.2\n    Port 1\n    HTTP_Passwd hunter2-in-file\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "doctor.html")
	code, out, errOut := runCLI(t, "doctor", "--pid", fmt.Sprint(os.Getpid()), "--shipper", "fluent-bit", "--config", conf,
		"--interval", "50ms", "--no-probes", "-o", "json", "--html", page)
	if code != ExitFindings {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var rep struct {
		Command  string `json:"command"`
		Findings []struct {
			ID       string         `json:"id"`
			Evidence map[string]any `json:"evidence"`
		} `json:"findings"`
		Data struct {
			Diagnosis []struct {
				Text string `json:"text"`
			} `json:"diagnosis"`
			Targets []struct {
				Config struct {
					Path, From string
				} `json:"config"`
				Steps []struct {
					Name, Status, Detail string
				} `json:"steps"`
			} `json:"targets"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Command != "doctor" || len(rep.Data.Targets) != 1 || rep.Data.Targets[0].Config.From != "--config" || rep.Data.Targets[0].Config.Path != conf {
		t.Fatalf("report %+v", rep)
	}
	ids := map[string]bool{}
	for _, f := range rep.Findings {
		ids[f.ID] = true
		if f.Evidence["target"] != fmt.Sprintf("fluent-bit[%d]", os.Getpid()) {
			t.Errorf("%s: target %v", f.ID, f.Evidence["target"])
		}
	}
	for _, id := range []string{"config.es_429_dropped", "config.secret_plaintext", "config.no_monitoring"} {
		if !ids[id] {
			t.Errorf("missing %s in %v", id, ids)
		}
	}
	if len(rep.Data.Diagnosis) == 0 {
		t.Error("no diagnosis")
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<ol class="diagnosis">`, "config.es_429_dropped", `<span class="mark">`} {
		if !strings.Contains(string(html), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, leak := range []string{out, errOut, string(html)} {
		if strings.Contains(leak, "hunter2-in-file") {
			t.Error("the password written in the file is in the report")
		}
	}

	// The table opens with the verdict and the ranked causes.
	code, out, _ = runCLI(t, "doctor", "--pid", fmt.Sprint(os.Getpid()), "--shipper", "fluent-bit", "--config", conf, "--interval", "1ms", "--no-probes")
	lines := strings.Split(out, "\n")
	if code != ExitFindings || !strings.HasPrefix(lines[0], "doctor: CRITICAL") || !strings.HasPrefix(lines[1], "1. [CRITICAL] ") {
		t.Errorf("exit %d, table:\n%s", code, out)
	}

	// A process that is not a shipper is exit 1, naming what it is.
	code, out, errOut = runCLI(t, "doctor", "--pid", fmt.Sprint(os.Getpid()), "--interval", "1ms")
	if code != ExitError || out != "" || !strings.Contains(errOut, "--pid: ") || !strings.Contains(errOut, "not a Fluentd or Fluent Bit process") {
		t.Errorf("not a shipper: exit %d %q %q", code, out, errOut)
	}
}
