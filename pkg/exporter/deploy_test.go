package exporter

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
)

// The files of docs/deploy are part of the product: these tests hold them
// to the exporter they deploy.

func deployDir(t *testing.T) string { return filepath.Join(testenv.ModuleRoot(t), "docs", "deploy") }

// exportedNames are the metric names of every source and of the engine
// (histograms with their series suffixes).
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	e := New(Options{})
	sch := Schedule{Interval: 1}
	e.Add(NewSockets(SocketsConfig{}), sch)
	e.Add(NewUDP(UDPConfig{}), sch)
	e.Add(NewConfig(ConfigConfig{Main: "x"}), sch)
	e.Add(NewShipper(ShipperConfig{}), sch)
	e.Add(NewForwardProbe(forwardprobe.Options{Addr: "127.0.0.1:1"}), sch)
	e.Add(NewESProbe(esprobe.Options{URLs: []string{"http://127.0.0.1:1"}}), sch)
	e.Add(NewDiscovery(DiscoveryConfig{Engine: e}), sch)
	ch := make(chan *prometheus.Desc, 256)
	go func() { e.Describe(ch); close(ch) }()
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		names[m[1]] = true
		if m[1] == "logdoctor_forward_ack_seconds" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[m[1]+s] = true
			}
		}
	}
	return names
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir(t), "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("prometheus-rules.yaml: %v", err)
	}
	if len(rf.Groups) == 0 {
		t.Fatal("prometheus-rules.yaml has no group")
	}
	return rf
}

// TestAlertRulesUnitTests runs promtool's unit tests of the alerts.
func TestAlertRulesUnitTests(t *testing.T) {
	testenv.RequireCommands(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "prometheus-rules.yaml"}, {"test", "rules", "prometheus-rules.test.yaml"}} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = deployDir(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertIsTested: each alert has a promtool unit test that
// expects it to fire.
func TestEveryAlertIsTested(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir(t), "prometheus-rules.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !fires[r.Alert] {
				t.Errorf("alert %s has no unit test in which it fires", r.Alert)
			}
		}
	}
}

// TestAlertsMatchTheExporter: every metric an alert uses is one the
// exporter serves, and every alert links to a runbook section that
// exists in docs/troubleshooting.md.
func TestAlertsMatchTheExporter(t *testing.T) {
	names := exportedNames(t)
	doc, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			anchors[githubAnchor(h)] = true
		}
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchors[githubAnchor(h)] = true
		}
	}
	metric := regexp.MustCompile(`\blogdoctor_[a-z_]+`)
	const base = "https://github.com/logdoctor/logdoctor/blob/main/docs/troubleshooting.md#"
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			for _, m := range metric.FindAllString(r.Expr, -1) {
				if !names[m] {
					t.Errorf("%s uses %s, which the exporter does not serve", r.Alert, m)
				}
			}
			rb := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(rb, base)
			if !ok || !anchors[anchor] {
				t.Errorf("%s: runbook_url %q is not a section of docs/troubleshooting.md", r.Alert, rb)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.For == "" {
				t.Errorf("%s: needs a severity label, a summary and a for: duration", r.Alert)
			}
		}
	}
}

// githubAnchor is the id GitHub gives a heading.
func githubAnchor(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// TestMetricsDocumented: every metric is described in
// docs/commands/exporter.md.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "docs", "commands", "exporter.md"))
	if err != nil {
		t.Fatal(err)
	}
	for n := range exportedNames(t) {
		if strings.HasSuffix(n, "_bucket") || strings.HasSuffix(n, "_sum") || strings.HasSuffix(n, "_count") {
			continue
		}
		if !strings.Contains(string(doc), "`"+n) {
			t.Errorf("metric %s is not documented in docs/commands/exporter.md", n)
		}
	}
}

// TestDaemonSetManifest holds the DaemonSet to what the docs promise:
// hostPID, read-only /proc and /sys, every capability dropped but the ones
// named, no privilege escalation, limits, and the pod IP as --listen.
func TestDaemonSetManifest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir(t), "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type mount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	var ds struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					HostPID    bool `yaml:"hostPID"`
					Containers []struct {
						Args      []string `yaml:"args"`
						Resources struct {
							Limits   map[string]string `yaml:"limits"`
							Requests map[string]string `yaml:"requests"`
						} `yaml:"resources"`
						SecurityContext struct {
							AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
							ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
							Privileged               bool  `yaml:"privileged"`
							Capabilities             struct {
								Drop []string `yaml:"drop"`
								Add  []string `yaml:"add"`
							} `yaml:"capabilities"`
						} `yaml:"securityContext"`
						VolumeMounts []mount `yaml:"volumeMounts"`
					} `yaml:"containers"`
					Volumes []struct {
						Name     string `yaml:"name"`
						HostPath *struct {
							Path string `yaml:"path"`
						} `yaml:"hostPath"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	found := false
	for {
		ds.Kind = ""
		if err := dec.Decode(&ds); err != nil {
			break
		}
		if ds.Kind == "DaemonSet" {
			found = true
			break
		}
	}
	if !found {
		t.Fatal("no DaemonSet in daemonset.yaml")
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostPID {
		t.Error("hostPID is off: the shippers in other pods are invisible")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !slices.Contains(c.Args, "--listen=$(POD_IP):9731") || !slices.Contains(c.Args, "exporter") {
		t.Errorf("args %v: want exporter with --listen=$(POD_IP):9731", c.Args)
	}
	sc := c.SecurityContext
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged || !sc.ReadOnlyRootFilesystem {
		t.Errorf("securityContext too loose: %+v", sc)
	}
	if !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("capabilities.drop = %v, want [ALL]", sc.Capabilities.Drop)
	}
	for _, add := range sc.Capabilities.Add {
		if add != "SYS_PTRACE" && add != "DAC_READ_SEARCH" {
			t.Errorf("capability %s added: only SYS_PTRACE and DAC_READ_SEARCH are needed", add)
		}
	}
	if c.Resources.Limits["cpu"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("no cpu and memory limits: %v", c.Resources.Limits)
	}
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	ro := map[string]bool{}
	for _, m := range c.VolumeMounts {
		if p, ok := hostPaths[m.Name]; ok {
			if !m.ReadOnly {
				t.Errorf("host path %s is mounted writable at %s", p, m.MountPath)
			}
			ro[p] = m.ReadOnly
		}
	}
	if !ro["/proc"] || !ro["/sys"] {
		t.Errorf("want /proc and /sys mounted read-only, have %v", ro)
	}
	if !slices.Contains(c.Args, "--proc-root=/host/proc") {
		t.Errorf("args %v do not read the host's /proc", c.Args)
	}
}
