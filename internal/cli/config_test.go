package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/report/sariftest"
)

func fixture(t *testing.T, rel string) string {
	t.Helper()
	return filepath.Join(testenv.ModuleRoot(t), "pkg", "configcheck", "testdata", rel)
}

func TestConfigCheckTableAndExitCodes(t *testing.T) {
	f := fixture(t, "fluentd/forward_no_ack.conf")
	code, out, errOut := runCLI(t, "config", "check", f, "--mtu", "1500")
	if code != ExitFindings {
		t.Fatalf("a critical finding must exit 3: %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"Pipeline", "forward (to_aggregator)", "[CRITICAL] config.forward_no_ack", "forward_no_ack.conf:13", "require_ack_response true"} {
		if !strings.Contains(out, want) {
			t.Errorf("table output lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runCLI(t, "config", "check", f, "--fail-on", "never"); code != ExitOK {
		t.Errorf("--fail-on never: %d", code)
	}
	clean := fixture(t, "fluentd/forwarder.conf")
	if code, out, _ := runCLI(t, "config", "check", clean, "--fail-on", "warning", "--mtu", "1500"); code != ExitOK || !strings.Contains(out, "config check: OK, no findings") {
		t.Errorf("a clean configuration: %d\n%s", code, out)
	}
	info := fixture(t, "fluentd/no_monitoring.conf")
	if code, _, _ := runCLI(t, "config", "check", info, "--fail-on", "warning"); code != ExitOK {
		t.Errorf("an info finding under --fail-on warning: %d", code)
	}
}

func TestConfigCheckJSON(t *testing.T) {
	fd, fb := fixture(t, "fluentd/elasticsearch.conf"), fixture(t, "fluentbit/elasticsearch.conf")
	code, out, errOut := runCLI(t, "config", "check", fd, fb, "-o", "json", "--es-version", "8", "--es-max-content-length", "4mb", "--mtu", "1500")
	if code != ExitFindings {
		t.Fatalf("code %d: %s", code, errOut)
	}
	var r struct {
		Command  string `json:"command"`
		Findings []struct {
			ID       string         `json:"id"`
			Severity string         `json:"severity"`
			Evidence map[string]any `json:"evidence"`
		} `json:"findings"`
		Data struct {
			Configs []struct {
				Main    string `json:"main"`
				Shipper string `json:"shipper"`
				Plugins []any  `json:"plugins"`
				Routes  []any  `json:"routes"`
			} `json:"configs"`
			MTU       int    `json:"mtu"`
			MTUSource string `json:"mtu_source"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Command != "config check" || len(r.Data.Configs) != 2 || r.Data.Configs[1].Shipper != "fluentbit" || r.Data.MTU != 1500 || r.Data.MTUSource != "flag" {
		t.Errorf("data: %+v", r.Data)
	}
	sev := map[string]string{}
	for _, f := range r.Findings {
		if f.ID == "config.es_type_name" || f.ID == "config.chunk_too_large" {
			sev[f.ID] = f.Severity
		}
	}
	if sev["config.es_type_name"] != "critical" || sev["config.chunk_too_large"] != "critical" {
		t.Errorf("--es-version 8 and --es-max-content-length 4mb make both critical: %v", sev)
	}
}

func TestConfigCheckSARIF(t *testing.T) {
	// Relative paths stay relative in SARIF, as code scanning wants.
	rel := "../../pkg/configcheck/testdata/fluentbit/storage.conf"
	code, out, errOut := runCLI(t, "config", "check", rel, "-o", "sarif")
	if code != ExitFindings {
		t.Fatalf("code %d: %s", code, errOut)
	}
	sariftest.Validate(t, []byte(out))
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID      string `json:"id"`
						HelpURI string `json:"helpUri"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				Level     string `json:"level"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	if len(run.Tool.Driver.Rules) < 18 || !strings.HasSuffix(run.Tool.Driver.Rules[0].HelpURI, "config.md#configparse_error") {
		t.Errorf("rules: %+v", run.Tool.Driver.Rules)
	}
	if len(run.Results) != 6 {
		t.Fatalf("one result per finding: %+v", run.Results)
	}
	found := false
	for _, r := range run.Results {
		loc := r.Locations[0].PhysicalLocation
		if loc.ArtifactLocation.URI != rel {
			t.Errorf("uri %q", loc.ArtifactLocation.URI)
		}
		if r.RuleID == "config.memory_buffer" && r.Level == "error" && loc.Region.StartLine == 8 {
			found = true
		}
	}
	if !found {
		t.Errorf("the forward input's memory buffer at line 8: %+v", run.Results)
	}
}

func TestConfigCheckEnvFlags(t *testing.T) {
	f := fixture(t, "fluentd/secrets.conf")
	t.Setenv("LOGDOCTOR_TEST_UNUSED", "x")
	code, out, _ := runCLI(t, "config", "check", f, "-o", "json", "--env", "ES_PASSWORD=from-flag", "--fail-on", "never")
	if code != ExitOK || strings.Contains(out, "from-flag") {
		t.Errorf("code %d; the value must not be printed", code)
	}
	k8s := fixture(t, "fluentd/k8s_daemonset.conf")
	_, out, _ = runCLI(t, "config", "check", k8s, "-o", "json", "--fail-on", "never")
	if strings.Contains(out, "config.es_reload_connections") == false {
		t.Errorf("reload_connections defaults to 'true' through ENV: %s", out)
	}
	t.Setenv("FLUENT_ELASTICSEARCH_RELOAD_CONNECTIONS", "false")
	_, out, _ = runCLI(t, "config", "check", k8s, "-o", "json", "--fail-on", "never")
	if !strings.Contains(out, "config.es_reload_connections") {
		t.Errorf("without --use-env the process environment is not read")
	}
	_, out, _ = runCLI(t, "config", "check", k8s, "-o", "json", "--fail-on", "never", "--use-env")
	if strings.Contains(out, "config.es_reload_connections") {
		t.Errorf("--use-env: reload_connections false from the environment")
	}
	_, out, _ = runCLI(t, "config", "check", k8s, "-o", "json", "--fail-on", "never", "--use-env", "--env", "FLUENT_ELASTICSEARCH_RELOAD_CONNECTIONS=true")
	if !strings.Contains(out, "config.es_reload_connections") {
		t.Errorf("--env wins over --use-env")
	}
}

func TestConfigCheckUsageAndRunErrors(t *testing.T) {
	f := fixture(t, "fluentd/forwarder.conf")
	for _, args := range [][]string{
		{"config", "check"},
		{"config", "check", f, "--format", "vector"},
		{"config", "check", f, "--env", "NOEQUALS"},
		{"config", "check", f, "--mtu", "20"},
		{"config", "check", f, "--es-version", "latest"},
		{"config", "check", f, "--es-max-content-length", "lots"},
		{"config", "check", f, "-o", "xml"},
	} {
		if code, _, errOut := runCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: code %d (%s)", args, code, errOut)
		}
	}
	code, _, errOut := runCLI(t, "config", "check", filepath.Join(t.TempDir(), "missing.conf"))
	if code != ExitError || !strings.Contains(errOut, "missing.conf") {
		t.Errorf("missing file: %d %s", code, errOut)
	}
	odd := filepath.Join(t.TempDir(), "settings.txt")
	os.WriteFile(odd, []byte("hello\n"), 0o600)
	code, _, errOut = runCLI(t, "config", "check", odd)
	if code != ExitError || !strings.Contains(errOut, "--format") {
		t.Errorf("undetectable format: %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "config", "check", odd, "--format", "fluentbit", "--fail-on", "never"); code != ExitOK {
		t.Errorf("--format forces the parser: %d", code)
	}
}

func TestHostMTU(t *testing.T) {
	ifs := func() ([]net.Interface, error) {
		return []net.Interface{
			{Name: "lo", MTU: 65536, Flags: net.FlagUp | net.FlagLoopback},
			{Name: "eth0", MTU: 1500, Flags: net.FlagUp},
			{Name: "wg0", MTU: 1420, Flags: net.FlagUp},
			{Name: "down0", MTU: 1280},
		}, nil
	}
	if m, src := hostMTU(ifs); m != 1420 || src != "interface" {
		t.Errorf("hostMTU = %d %s", m, src)
	}
	none := func() ([]net.Interface, error) {
		return []net.Interface{{Name: "lo", MTU: 65536, Flags: net.FlagUp | net.FlagLoopback}}, nil
	}
	if m, src := hostMTU(none); m != 1500 || src != "default" {
		t.Errorf("no interface: %d %s", m, src)
	}
	for in, want := range map[string]int64{"100mb": 100 << 20, "104857600": 104857600, "2GiB": 2 << 30, "512k": 512 << 10} {
		if got, err := parseESBytes(in); err != nil || got != want {
			t.Errorf("parseESBytes(%q) = %d, %v", in, got, err)
		}
	}
}

func TestConfigCheckSyntaxError(t *testing.T) {
	f := filepath.Join(testenv.ModuleRoot(t), "pkg", "shipconf", "testdata", "fluentd", "invalid", "unterminated_single.conf")
	code, out, _ := runCLI(t, "config", "check", f)
	if code != ExitFindings {
		t.Fatalf("a syntax error is a critical finding: %d\n%s", code, out)
	}
	for _, want := range []string{"[CRITICAL] config.parse_error", "unterminated_single.conf:4:7", "[CRITICAL] config.forward_no_ack"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
