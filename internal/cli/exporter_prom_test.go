package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/sockettest"
	"github.com/logdoctor/logdoctor/internal/testenv"
)

// TestExporterPrometheusEndToEnd runs a real Prometheus (the Debian
// package's) on loopback, scraping the exporter every second with the
// alerting rules of docs/deploy (for: shortened), while CLOSE_WAIT sockets
// to an "es" peer pile up and a forward receiver (`forward serve --ack
// never`) takes chunks without acking. Prometheus's HTTP API must show the
// series and both alerts firing.
func TestExporterPrometheusEndToEnd(t *testing.T) {
	testenv.RequireLinux(t)
	testenv.RequireCommands(t, "prometheus")
	dir := t.TempDir()

	cw := sockettest.CloseWait(t, "127.73.0.1", "127.73.0.2", 5)
	esPort := strconv.Itoa(int(cw.Server.Port()))

	fwd := freeBindAddr(t)
	stopFwd := startCLIStoppable("forward", "serve", "--listen", fwd, "--ack", "never")
	defer stopFwd()
	waitTCP(t, fwd)

	exp := freeBindAddr(t)
	stopExp := startCLIStoppable("exporter", "--listen", exp, "--discover=false", "--interval", "1s", "--probe-interval", "1s",
		"--forward-probe", fwd, "--forward-ack-timeout", "300ms", "--alias", "es="+esPort, "--peer", "es")
	defer stopExp()
	waitHTTP(t, "http://"+exp+"/healthz", 10*time.Second)

	// The rules as shipped, with every for: cut to 2s so they fire in a
	// bounded test; the expressions are unchanged.
	rules, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "docs", "deploy", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rules = regexp.MustCompile(`(?m)^(\s+for:) \S+$`).ReplaceAll(rules, []byte("$1 2s"))
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	promAddr := freeBindAddr(t)
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
  - job_name: logdoctor
    static_configs:
      - targets: [%q]
`, filepath.Join(dir, "rules.yaml"), exp)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var promLog testenv.SyncBuffer // read on failure while Prometheus still writes
	prom := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr, "--log.level=warn")
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = prom.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = prom.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = prom.Process.Kill()
			<-done
		}
	}()
	api := "http://" + promAddr
	waitHTTP(t, api+"/-/ready", 20*time.Second)

	// Keep the CLOSE_WAIT pile growing, one a second, while waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]bool{}
	want := []string{"close_wait_series", "target_client_end_only", "forward_success_0", "no_ack_finding", "LogdoctorForwardProbeFailing", "LogdoctorCloseWaitToESGrowing"}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for grown := 0; ; {
		select {
		case <-ctx.Done():
			t.Fatalf("after 30 s Prometheus has %v of %v\nexporter:\n%s\nprometheus log:\n%s", seen, want, scrape(t, "http://"+exp+"/metrics"), promLog.String())
		case <-tick.C:
		}
		if grown < 8 {
			sockettest.AddCloseWait(t, &cw, "127.73.0.2")
			grown++
		}
		if v := promQuery(t, api, `sum(logdoctor_tcp_sockets{alias="es",state="CLOSE_WAIT",peer="`+cw.Server.String()+`"})`); v >= 5 {
			seen["close_wait_series"] = true
		}
		// The listener and the server's ends (FIN_WAIT2) are in the same
		// namespace: the target series, which the alert keys on, counts
		// the client's CLOSE_WAIT ends only.
		target := `logdoctor_tcp_target_sockets{alias="es",target="es",state="`
		if promQuery(t, api, target+`CLOSE_WAIT"}`) >= 5 && promCount(t, api, target+`LISTEN"} == 0`) == 1 && promCount(t, api, target+`FIN_WAIT2"} == 0`) == 1 {
			seen["target_client_end_only"] = true
		}
		if v := promQuery(t, api, `logdoctor_forward_probe_success{target="`+fwd+`"} == 0`); v == 0 && promCount(t, api, `logdoctor_forward_probe_success{target="`+fwd+`"} == 0`) == 1 {
			seen["forward_success_0"] = true
		}
		if promCount(t, api, `logdoctor_finding{id="forward.no_ack",target="`+fwd+`"}`) == 1 {
			seen["no_ack_finding"] = true
		}
		for _, a := range firingAlerts(t, api) {
			seen[a] = true
		}
		all := true
		for _, w := range want {
			all = all && seen[w]
		}
		if all {
			break
		}
	}
}

// waitTCP waits until addr accepts a connection.
func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never accepted: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type promVector struct {
	Status string `json:"status"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

func promGet(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("prometheus API %s: %v", u, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("prometheus API %s: %v", u, err)
	}
}

// promQuery returns the value of an instant query's first sample (0 when
// the result is empty).
func promQuery(t *testing.T, api, q string) float64 {
	t.Helper()
	var r promVector
	promGet(t, api+"/api/v1/query?query="+url.QueryEscape(q), &r)
	if r.Status != "success" {
		t.Fatalf("query %s: %s", q, r.Status)
	}
	if len(r.Data.Result) == 0 {
		return 0
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

// promCount returns how many series an instant query gives.
func promCount(t *testing.T, api, q string) int {
	t.Helper()
	var r promVector
	promGet(t, api+"/api/v1/query?query="+url.QueryEscape(q), &r)
	return len(r.Data.Result)
}

// firingAlerts names the alerts Prometheus has firing.
func firingAlerts(t *testing.T, api string) []string {
	t.Helper()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	promGet(t, api+"/api/v1/alerts", &r)
	var out []string
	for _, a := range r.Data.Alerts {
		if a.State == "firing" {
			out = append(out, a.Labels["alertname"])
		}
	}
	return out
}
