package doctor

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeProc writes a proc tree of processes: pid -> (ppid, comm, argv).
type fakeProcess struct {
	ppid int
	comm string
	argv []string
	env  []string
}

func fakeProc(t *testing.T, procs map[int]fakeProcess) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := strings.Join(p.argv, "\x00")
		if cmd != "" {
			cmd += "\x00"
		}
		stat := strconv.Itoa(pid) + " (" + p.comm + ") S " + strconv.Itoa(p.ppid) + " 1 1 0 -1\n"
		env := strings.Join(p.env, "\x00")
		for name, content := range map[string]string{"cmdline": cmd, "stat": stat, "comm": p.comm + "\n", "environ": env} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

var fixtureProcs = map[int]fakeProcess{
	1:   {0, "systemd", []string{"/sbin/init"}, nil},
	2:   {0, "kthreadd", nil, nil},
	100: {1, "ruby", []string{"ruby", "/usr/local/bin/fluentd", "-c", "/fluentd/etc/fluent.conf"}, nil},
	101: {100, "ruby3.1", []string{"/usr/bin/ruby3.1", "-Eascii-8bit:ascii-8bit", "/usr/local/bin/fluentd", "-c", "/fluentd/etc/fluent.conf", "--under-supervisor"}, nil},
	102: {100, "ruby3.1", []string{"/usr/bin/ruby3.1", "-Eascii-8bit:ascii-8bit", "/usr/local/bin/fluentd", "-c", "/fluentd/etc/fluent.conf", "--under-supervisor"}, nil},
	200: {1, "fluent-bit-v4.2", []string{"/opt/fluent-bit/bin/fluent-bit-v4.2.8", "-c", "/fluent-bit/etc/fluent-bit.conf"}, nil},
	300: {1, "td-agent-bit", []string{"/opt/td-agent-bit/bin/td-agent-bit", "-c", "/etc/td-agent-bit/td-agent-bit.conf"}, nil},
	400: {1, "vector", []string{"/usr/bin/vector", "--config", "/etc/vector/vector.toml"}, nil},
	500: {1, "java", []string{"/usr/share/logstash/jdk/bin/java", "-Xms1g", "-cp", "/usr/share/logstash/logstash-core/lib/jars/*", "org.logstash.Logstash"}, nil},
	600: {1, "ruby", []string{"ruby", "-e", "puts 1"}, nil},
	601: {1, "sh", []string{"/bin/sh", "-c", "exec fluentd -c /x"}, nil},
	700: {1, "ruby", []string{"/opt/td-agent/bin/ruby", "/opt/td-agent/bin/fluentd", "--log", "/var/log/td-agent/td-agent.log", "--daemon", "/var/run/td-agent/td-agent.pid"}, nil},
	// A worker whose supervisor is not a Fluentd (or is gone).
	800: {1, "ruby", []string{"ruby", "/usr/bin/fluentd", "--under-supervisor"}, nil},
	900: {1, "es-shipper", []string{"/usr/bin/python3", "shipper.py", "--password", "hunter2", "--url=https://u:s3cret@es:9200"}, nil},
}

func TestDiscover(t *testing.T) {
	root := fakeProc(t, fixtureProcs)
	got, err := Discover(root, 0)
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int]Process{}
	for _, p := range got {
		byPID[p.PID] = p
	}
	want := map[int]Kind{100: Fluentd, 200: FluentBit, 300: FluentBit, 400: Vector, 500: Logstash, 700: Fluentd, 800: Fluentd}
	if len(got) != len(want) {
		t.Errorf("found %d processes, want %d: %+v", len(got), len(want), got)
	}
	for pid, k := range want {
		if byPID[pid].Kind != k {
			t.Errorf("pid %d: kind %q, want %q", pid, byPID[pid].Kind, k)
		}
	}
	if w := byPID[100].Workers; len(w) != 2 || w[0] != 101 || w[1] != 102 {
		t.Errorf("supervisor 100 workers %v, want [101 102]", w)
	}
	if byPID[100].NetPID() != 101 || byPID[200].NetPID() != 200 {
		t.Errorf("NetPID: %d %d", byPID[100].NetPID(), byPID[200].NetPID())
	}
	for _, k := range []Kind{Vector, Logstash} {
		if k.Understood() {
			t.Errorf("%s understood", k)
		}
	}
	// self is left out
	got, _ = Discover(root, 200)
	for _, p := range got {
		if p.PID == 200 {
			t.Error("self was not left out")
		}
	}
}

func TestFindEitherFluentdPID(t *testing.T) {
	root := fakeProc(t, fixtureProcs)
	for _, pid := range []int{100, 101, 102} {
		p, err := Find(root, pid, "")
		if err != nil {
			t.Fatal(err)
		}
		if p.PID != 100 || len(p.Workers) != 2 || p.Kind != Fluentd {
			t.Errorf("--pid %d: %+v", pid, p)
		}
		if args := shipperArgs(p); len(args) != 2 || args[1] != "/fluentd/etc/fluent.conf" {
			t.Errorf("--pid %d: the supervisor's arguments %v", pid, args)
		}
	}
	p, err := Find(root, 800, "")
	if err != nil || p.PID != 800 || len(p.Workers) != 1 || p.NetPID() != 800 {
		t.Errorf("lone worker: %+v %v", p, err)
	}
	if _, err := Find(root, 600, ""); !errors.Is(err, ErrNotShipper) {
		t.Errorf("ruby -e: %v", err)
	}
	if _, err := Find(root, 12345, ""); !errors.Is(err, ErrNoProcess) {
		t.Errorf("missing pid: %v", err)
	}
	p, err = Find(root, 600, FluentBit)
	if err != nil || p.Kind != FluentBit {
		t.Errorf("--shipper forces the kind: %+v %v", p, err)
	}
	_, err = Find(root, 900, "")
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error must not show secrets of the command line: %v", err)
	}
}

func TestRedactArgv(t *testing.T) {
	got := redactArgv([]string{"fluent-bit", "-p", "http_passwd=x", "--password", "hunter2", "--api-key=abc", "https://u:pw@es:9200"})
	for _, bad := range []string{"hunter2", "abc", ":pw@"} {
		if strings.Contains(got, bad) {
			t.Errorf("%q leaks %q", got, bad)
		}
	}
}

func TestSplitAndStat(t *testing.T) {
	if got := splitNUL([]byte("ruby\x00/usr/bin/fluentd\x00-c\x00a b.conf\x00")); len(got) != 4 || got[3] != "a b.conf" {
		t.Errorf("split %q", got)
	}
	if got := splitNUL([]byte("worker:fluentd1 -c x")); len(got) != 3 {
		t.Errorf("rewritten title split %q", got)
	}
	ppid, comm := parseStat([]byte("101 (ruby (x) y) S 100 101 1 0"))
	if ppid != 100 || comm != "ruby (x) y" {
		t.Errorf("stat: %d %q", ppid, comm)
	}
	if ppid, comm := parseStat([]byte("garbage")); ppid != 0 || comm != "" {
		t.Errorf("bad stat: %d %q", ppid, comm)
	}
}
