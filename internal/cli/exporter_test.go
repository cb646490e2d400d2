package cli

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
)

// waitHTTP polls url until it answers 200, bounded.
func waitHTTP(t *testing.T, u string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v", u, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape fetches an exposition with a scrape's timeout.
func scrape(t *testing.T, u string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s\n%s", u, resp.Status, b)
	}
	return string(b)
}

// seriesValue finds `name{...labels...} value` in an exposition; every
// label given must match.
func seriesValue(text, name string, labels map[string]string) (float64, bool) {
next:
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for k, v := range labels {
			if !strings.Contains(line, k+`="`+v+`"`) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// TestExporterHungSourceScrapes: a configuration on a FIFO nobody writes
// to blocks the config source in open(2), as a hung NFS mount would. A
// scrape still answers at once, with that source timed out and the other
// sources sampled.
func TestExporterHungSourceScrapes(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fluent.conf")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Unblock the stuck open at the end, so the test leaves no goroutine.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	addr := freeBindAddr(t)
	stop := startCLIStoppable("exporter", "--listen", addr, "--discover=false", "--interval", "200ms", "--timeout", "150ms", "--config", fifo)
	metrics := "http://" + addr + "/metrics"
	waitHTTP(t, "http://"+addr+"/healthz", 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		start := time.Now()
		text := scrape(t, metrics)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("a scrape took %s while a source hangs", took)
		}
		n, _ := seriesValue(text, "logdoctor_source_errors_total", map[string]string{"source": "config", "kind": "timeout"})
		if n >= 1 {
			if up, ok := seriesValue(text, "logdoctor_source_up", map[string]string{"source": "config"}); !ok || up != 0 {
				t.Fatalf("config source up = %v (%v)", up, ok)
			}
			if up, ok := seriesValue(text, "logdoctor_source_up", map[string]string{"source": "sockets"}); !ok || up != 1 {
				t.Fatalf("sockets source up = %v (%v) beside the hung one", up, ok)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hung config source never timed out:\n%s", text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out, errOut := stop()
	if code != ExitOK || out != "" {
		t.Fatalf("exporter exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "source failed") || !strings.Contains(errOut, "kind=timeout") {
		t.Errorf("stderr does not say the source timed out:\n%s", errOut)
	}
}

// TestExporterWebConfigTLSAndAuth serves through an exporter-toolkit web
// configuration file: HTTPS only, and basic auth with a bcrypt hash.
func TestExporterWebConfigTLSAndAuth(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(dir, "web.yaml")
	conf := "tls_server_config:\n  cert_file: " + certs.CertFile + "\n  key_file: " + certs.KeyFile +
		"\nbasic_auth_users:\n  prometheus: " + string(hash) + "\n"
	if err := os.WriteFile(web, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeTCPAddr(t, "127.0.0.1") // the test certificate names 127.0.0.1
	stop := startCLIStoppable("exporter", "--listen", addr, "--discover=false", "--web.config.file", web)
	defer stop()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.CAPool}}}
	get := func(u, user, pass string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, err := get("https://"+addr+"/metrics", "prometheus", "s3cret")
		if err == nil && code == http.StatusOK && strings.Contains(body, "logdoctor_source_up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no authenticated HTTPS scrape: %d %v %.200s", code, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _, err := get("https://"+addr+"/metrics", "prometheus", "wrong"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d %v, want 401", code, err)
	}
	if code, _, err := get("https://"+addr+"/healthz", "", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d %v, want 401", code, err)
	}
	if code, _, err := get("http://"+addr+"/metrics", "prometheus", "s3cret"); err == nil && code == http.StatusOK {
		t.Error("plain HTTP served metrics although the web config asks for TLS")
	}
}

// TestExporterHTML: --html is global, and the exporter honours it with a
// page of what it holds (the findings logdoctor_finding carries and each
// source's state), rewritten every --interval and at the end.
func TestExporterHTML(t *testing.T) {
	page := filepath.Join(t.TempDir(), "exporter.html")
	conf := fixture(t, "fluentd/forward_no_ack.conf")
	code, _, errOut := runCLI(t, "exporter", "--listen", "127.0.0.1:0", "--discover=false", "--interval", "200ms",
		"--duration", "1s", "--config", conf, "--html", page)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", "exporter: CRITICAL", "config.forward_no_ack", conf + ":13", "Sources (served on 127.0.0.1:", "sockets"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// TestExporterRefusesReportFlags: the exporter prints no report and
// findings never set its exit code, so -o and --fail-on are refused
// (exit 2, naming where the findings go) rather than ignored.
func TestExporterRefusesReportFlags(t *testing.T) {
	for _, args := range [][]string{{"-o", "json"}, {"--output", "sarif"}, {"--fail-on", "never"}} {
		code, out, errOut := runCLI(t, append([]string{"exporter", "--listen", "127.0.0.1:0", "--duration", "1ms"}, args...)...)
		if code != ExitUsage || out != "" || !strings.Contains(errOut, "does not apply to exporter") || !strings.Contains(errOut, "logdoctor_finding") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
