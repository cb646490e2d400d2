package esprobe

import (
	"context"
	"encoding/json"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/essim"
)

// rubySniff runs the transport behind fluent-plugin-elasticsearch against
// url and returns what each request did.
func rubySniff(t *testing.T, url, reload string, n int) []string {
	t.Helper()
	cmd := exec.Command("/usr/bin/ruby", "testdata/rubysniff.rb", url, reload, itoa(n))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ruby: %v\n%s%s", err, out, stderr.String())
	}
	var res []string
	if err := json.Unmarshal(out, &res); err != nil || len(res) != n {
		t.Fatalf("ruby output %q: %v", out, err)
	}
	return res
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestRubyTransportSniffsIntoDeadPool reproduces the sniffing stall
// (logs stop reaching Elasticsearch, docs/troubleshooting.md) with the real
// elasticsearch-transport 7.17: with reload_connections it re-sniffs
// _nodes/http and replaces its pool with the published addresses. When
// those are unreachable every request fails ("Failed to open TCP
// connection"); when none are published the pool is empty ("Cannot get new
// connection from pool."). The probe flags both as es.sniff_unreachable,
// and reload_connections false keeps working.
func TestRubyTransportSniffsIntoDeadPool(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/ruby", "/usr/lib/ruby/vendor_ruby/elasticsearch/transport.rb")
	s := startSim(t, essim.Config{Nodes: 2, Faults: essim.Faults{PublishAddress: "127.0.0.2:1"}})

	res := rubySniff(t, s.URL(), "3", 5)
	// Requests 1 and 2 use the configured host; the 3rd triggers the
	// sniff and goes to the published address.
	if res[0] != "ok" || res[1] != "ok" {
		t.Fatalf("before the sniff: %q", res)
	}
	for _, r := range res[2:4] {
		if !strings.Contains(r, "Faraday::ConnectionFailed") || !strings.Contains(r, "127.0.0.2:1") {
			t.Fatalf("after the sniff: %q", res)
		}
	}
	_, fs := run(t, Options{URLs: []string{s.URL()}})
	if f := onlyFindings(t, fs, FindingSniffUnreachable)[FindingSniffUnreachable]; len(f.Evidence["unreachable"].([]string)) != 2 {
		t.Fatalf("probe: %+v", f)
	}

	s.SetFaults(essim.Faults{PublishAddress: "none"})
	res = rubySniff(t, s.URL(), "3", 4)
	if res[0] != "ok" || res[1] != "ok" || res[2] != "Elasticsearch::Transport::Transport::Error: Cannot get new connection from pool." {
		t.Fatalf("empty sniff: %q", res)
	}
	_, fs = run(t, Options{URLs: []string{s.URL()}})
	onlyFindings(t, fs, FindingSniffUnreachable)

	// The remedy: reload_connections false never leaves the configured host.
	s.SetFaults(essim.Faults{PublishAddress: "127.0.0.2:1"})
	for i, r := range rubySniff(t, s.URL(), "false", 6) {
		if r != "ok" {
			t.Fatalf("reload_connections false, request %d: %q", i, r)
		}
	}

	// With reachable publish addresses the sniff spreads requests over
	// both nodes and nothing fails.
	s.SetFaults(essim.Faults{})
	before := s.Stats().OpenedConns
	for i, r := range rubySniff(t, s.URL(), "3", 8) {
		if r != "ok" {
			t.Fatalf("healthy sniff, request %d: %q", i, r)
		}
	}
	if s.Stats().OpenedConns-before < 2 {
		t.Fatalf("sniffed pool opened %d connections", s.Stats().OpenedConns-before)
	}
}

// TestPythonRetryOnTimeoutDuplicates is how duplicates reach
// Elasticsearch (docs/troubleshooting.md) with a real client:
// python3-elasticsearch with retry_on_timeout resends a bulk the cluster is
// still indexing; without _id every resend is a new copy and es dups finds
// them, with create and a stable _id there is exactly one copy.
func TestPythonRetryOnTimeoutDuplicates(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/python3", "/usr/lib/python3/dist-packages/elasticsearch/__init__.py")
	s := startSim(t, essim.Config{Faults: essim.Faults{IndexLate: true, LateBy: 3 * time.Second}})
	py := func(index, mode string) string {
		cmd := exec.Command("/usr/bin/python3", "-W", "ignore", "testdata/pyretry.py", s.URL(), index, "25", mode)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("python: %v\n%s%s", err, out, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	if got := py("retry-noid", "noid"); got != "ConnectionTimeout" {
		t.Fatalf("client outcome %q, want ConnectionTimeout after its retries", got)
	}
	if got := py("retry-create", "create"); got != "ConnectionTimeout" {
		t.Fatalf("client outcome %q", got)
	}
	s.SetFaults(essim.Faults{})
	// One try plus max_retries=2: three copies of each event, or two when
	// a loaded machine made one attempt time out before it was sent.
	noid := s.Count("retry-noid")
	if noid%25 != 0 || noid < 50 {
		t.Fatalf("stored %d documents without _id, want 75 (%+v)", noid, s.Stats())
	}
	if n := s.Count("retry-create"); n != 25 {
		t.Fatalf("stored %d documents with create and _id, want 25 (%+v)", n, s.Stats())
	}
	res, fs, err := Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "retry-noid", Field: "request_id.keyword"})
	if err != nil || len(fs) != 1 || res.Duplicated != 25 || res.ExtraCopies != noid-25 {
		t.Fatalf("dups without id: %+v %+v %v", res, fs, err)
	}
	res, fs, err = Dups(context.Background(), Options{URLs: []string{s.URL()}}, DupsOptions{Index: "retry-create", Field: "request_id.keyword"})
	if err != nil || len(fs) != 0 || res.Duplicated != 0 {
		t.Fatalf("dups with create: %+v %+v %v", res, fs, err)
	}
}

// TestPythonSniffOnStart: elasticsearch-py 7.17 with sniff_on_start
// replaces its hosts with the published addresses too; against
// 127.0.0.2:1 its first request fails, where the probe had warned.
func TestPythonSniffOnStart(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/python3", "/usr/lib/python3/dist-packages/elasticsearch/__init__.py")
	const script = `
import sys
from elasticsearch import Elasticsearch
try:
    Elasticsearch([sys.argv[1]], sniff_on_start=True, sniff_timeout=2, max_retries=0).info()
    print("ok")
except Exception as e:
    print(type(e).__name__)
`
	s := startSim(t, essim.Config{Nodes: 2})
	py := func() string {
		out, err := exec.Command("/usr/bin/python3", "-W", "ignore", "-c", script, s.URL()).Output()
		if err != nil {
			t.Fatalf("python: %v %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := py(); got != "ok" {
		t.Fatalf("reachable publish addresses: %s", got)
	}
	s.SetFaults(essim.Faults{PublishAddress: "127.0.0.2:1"})
	if got := py(); got != "ConnectionError" {
		t.Fatalf("unreachable publish addresses: %s, want ConnectionError", got)
	}
	_, fs := run(t, Options{URLs: []string{s.URL()}})
	onlyFindings(t, fs, FindingSniffUnreachable)
}

// TestRealClientsDialThePublishedName holds the publish-address policy
// (esclient.DialAddress) to the clients it stands in for: given
// "localhost/127.0.0.2:PORT", with the node listening on 127.0.0.1:PORT
// only, elasticsearch-transport 7.17 (fluent-plugin-elasticsearch's) and
// elasticsearch-py 7.17 reach it after sniffing, so they dial the name;
// "127.0.0.2:PORT" alone fails for them, so the IP is unreachable. The
// probe agrees on both. localhost is the only name resolved.
func TestRealClientsDialThePublishedName(t *testing.T) {
	testenv.RequireFiles(t, "/usr/bin/ruby", "/usr/lib/ruby/vendor_ruby/elasticsearch/transport.rb",
		"/usr/bin/python3", "/usr/lib/python3/dist-packages/elasticsearch/__init__.py")
	s := startSim(t, essim.Config{})
	_, port, _ := net.SplitHostPort(s.Addrs()[0])
	const pyScript = `
import sys
from elasticsearch import Elasticsearch
try:
    Elasticsearch([sys.argv[1]], sniff_on_start=True, sniff_timeout=2, max_retries=0).info()
    print("ok")
except Exception as e:
    print(type(e).__name__)
`
	py := func() string {
		out, err := exec.Command("/usr/bin/python3", "-W", "ignore", "-c", pyScript, s.URL()).Output()
		if err != nil {
			t.Fatalf("python: %v %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}

	s.SetFaults(essim.Faults{PublishAddress: "localhost/127.0.0.2:" + port})
	for i, r := range rubySniff(t, s.URL(), "2", 5) {
		if r != "ok" {
			t.Fatalf("ruby, name/ip:port, request %d: %q", i, r)
		}
	}
	if got := py(); got != "ok" {
		t.Fatalf("python, name/ip:port: %s", got)
	}
	res, fs := run(t, Options{URLs: []string{s.URL()}})
	onlyFindings(t, fs)
	if len(res.Nodes) != 1 || !res.Nodes[0].Reachable {
		t.Fatalf("probe, name/ip:port: %+v", res.Nodes)
	}

	// The control: the IP behind the slash is unreachable for all three.
	s.SetFaults(essim.Faults{PublishAddress: "127.0.0.2:" + port})
	// Request 2 re-sniffs and goes to the published address.
	res2 := rubySniff(t, s.URL(), "2", 3)
	if res2[0] != "ok" || !strings.Contains(res2[1], "Connection refused - connect(2) for 127.0.0.2:"+port) {
		t.Fatalf("ruby, ip:port: %q", res2)
	}
	if got := py(); got != "ConnectionError" {
		t.Fatalf("python, ip:port: %s", got)
	}
	_, fs = run(t, Options{URLs: []string{s.URL()}})
	onlyFindings(t, fs, FindingSniffUnreachable)
}
