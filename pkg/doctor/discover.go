package doctor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Kind is a log shipper logdoctor can recognise in a process list.
type Kind string

const (
	Fluentd   Kind = "fluentd"
	FluentBit Kind = "fluent-bit"
	// Vector and Logstash are recognised and reported, not diagnosed.
	Vector   Kind = "vector"
	Logstash Kind = "logstash"
)

// Understood reports whether doctor can diagnose the kind.
func (k Kind) Understood() bool { return k == Fluentd || k == FluentBit }

// Process is one shipper found under the proc root. For Fluentd, PID is
// the supervisor (whose command line holds the configuration) and Workers
// the processes it spawned with --under-supervisor (which hold the
// sockets); a Fluentd running without a supervisor is its own worker.
type Process struct {
	Kind    Kind   `json:"kind"`
	PID     int    `json:"pid"`
	Workers []int  `json:"workers,omitempty"`
	Comm    string `json:"comm"`
	// Cmdline is the command line with secrets redacted.
	Cmdline string `json:"cmdline"`
	argv    []string
}

// PIDs are the supervisor and its workers, the processes whose sockets
// are the shipper's.
func (p Process) PIDs() []int {
	out := []int{p.PID}
	for _, w := range p.Workers {
		if w != p.PID {
			out = append(out, w)
		}
	}
	return out
}

// NetPID is the process whose network namespace and sockets are read:
// the first worker when there is one.
func (p Process) NetPID() int {
	if len(p.Workers) > 0 {
		return p.Workers[0]
	}
	return p.PID
}

// Name is how a report names the process: "fluentd[1234]".
func (p Process) Name() string { return fmt.Sprintf("%s[%d]", p.Kind, p.PID) }

// ErrNotShipper is wrapped when a --pid is not a process doctor knows.
var ErrNotShipper = errors.New("not a Fluentd or Fluent Bit process")

// ErrNoProcess is wrapped when a --pid does not exist.
var ErrNoProcess = errors.New("no such process")

// procInfo is what classification needs of one process.
type procInfo struct {
	pid, ppid int
	comm      string
	argv      []string
}

// classify tells the shipper from a command line: Fluentd runs as Ruby
// with a fluentd (or td-agent) script, Fluent Bit as its binary (possibly
// renamed with a version or td-agent-bit), Vector as its binary, Logstash
// as Java with logstash in its arguments.
func classify(argv []string) (Kind, bool) {
	if len(argv) == 0 {
		return "", false
	}
	base := filepath.Base(argv[0])
	switch {
	case strings.HasPrefix(base, "fluent-bit"), strings.HasPrefix(base, "td-agent-bit"), strings.HasPrefix(base, "calyptia-fluent-bit"):
		return FluentBit, true
	case base == "fluentd" || base == "td-agent":
		return Fluentd, true
	case base == "vector":
		return Vector, true
	case base == "logstash":
		return Logstash, true
	}
	if strings.HasPrefix(base, "ruby") {
		if fluentdScript(argv) >= 0 {
			return Fluentd, true
		}
		return "", false
	}
	if strings.HasPrefix(base, "java") {
		for _, a := range argv[1:] {
			if strings.Contains(strings.ToLower(a), "logstash") {
				return Logstash, true
			}
		}
	}
	return "", false
}

// fluentdScript returns the index of the fluentd script in a Ruby command
// line (-1 when there is none): the arguments after it are Fluentd's, the
// ones before Ruby's.
func fluentdScript(argv []string) int {
	for i, a := range argv {
		if i == 0 && !strings.HasPrefix(filepath.Base(a), "ruby") {
			b := filepath.Base(a)
			if b == "fluentd" || b == "td-agent" {
				return 0
			}
		}
		if i == 0 || strings.HasPrefix(a, "-") {
			continue
		}
		if b := filepath.Base(a); b == "fluentd" || b == "td-agent" {
			return i
		}
	}
	return -1
}

// isWorker reports whether a Fluentd command line is a supervisor's
// worker.
func isWorker(argv []string) bool {
	for _, a := range argv {
		if a == "--under-supervisor" {
			return true
		}
	}
	return false
}

// readProc reads one process's command line, parent and comm. A kernel
// thread (empty command line) or a process gone meanwhile is not ok.
func readProc(procRoot string, pid int) (procInfo, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	raw, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return procInfo{}, err
	}
	pi := procInfo{pid: pid, argv: splitNUL(raw)}
	if st, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
		pi.ppid, pi.comm = parseStat(st)
	}
	if pi.comm == "" {
		if c, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
			pi.comm = strings.TrimSpace(string(c))
		}
	}
	return pi, nil
}

// splitNUL splits /proc/PID/cmdline; a process that rewrote its title
// into one space-separated string is split on spaces.
func splitNUL(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	if bytes.IndexByte(b, 0) < 0 {
		return strings.Fields(string(b))
	}
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// parseStat reads the parent PID and comm from /proc/PID/stat; comm sits
// in parentheses and may itself hold spaces and parentheses.
func parseStat(b []byte) (ppid int, comm string) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return 0, ""
	}
	comm = string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:]))
	if len(f) >= 2 {
		ppid, _ = strconv.Atoi(f[1])
	}
	return ppid, comm
}

func listPIDs(procRoot string) ([]int, error) {
	d, err := os.Open(procRoot)
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// Discover lists the shippers under procRoot, Fluentd's workers grouped
// under their supervisor. self is left out (logdoctor's own PID).
func Discover(procRoot string, self int) ([]Process, error) {
	pids, err := listPIDs(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes under %s: %w", procRoot, err)
	}
	var found []procInfo
	for _, pid := range pids {
		if pid == self {
			continue
		}
		pi, err := readProc(procRoot, pid)
		if err != nil {
			continue
		}
		if _, ok := classify(pi.argv); ok {
			found = append(found, pi)
		}
	}
	return group(found), nil
}

// group folds Fluentd workers into their supervisor's Process.
func group(found []procInfo) []Process {
	byPID := map[int]procInfo{}
	for _, pi := range found {
		byPID[pi.pid] = pi
	}
	var out []Process
	workers := map[int][]int{}
	for _, pi := range found {
		k, _ := classify(pi.argv)
		if k == Fluentd && isWorker(pi.argv) {
			if parent, ok := byPID[pi.ppid]; ok {
				if pk, _ := classify(parent.argv); pk == Fluentd && !isWorker(parent.argv) {
					workers[pi.ppid] = append(workers[pi.ppid], pi.pid)
					continue
				}
			}
		}
	}
	for _, pi := range found {
		k, _ := classify(pi.argv)
		if k == Fluentd && isWorker(pi.argv) {
			if _, grouped := byPID[pi.ppid]; grouped && contains(workers[pi.ppid], pi.pid) {
				continue
			}
		}
		p := newProcess(k, pi)
		p.Workers = workers[pi.pid]
		out = append(out, p)
	}
	return out
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func newProcess(k Kind, pi procInfo) Process {
	return Process{Kind: k, PID: pi.pid, Comm: pi.comm, Cmdline: redactArgv(pi.argv), argv: pi.argv}
}

// redactArgv joins a command line for a report, secrets hidden: values of
// flags that look like credentials and URL userinfo.
func redactArgv(argv []string) string {
	out := make([]string, len(argv))
	hideNext := false
	for i, a := range argv {
		switch {
		case hideNext:
			out[i] = "xxxxx"
			hideNext = false
		case strings.HasPrefix(a, "-") && looksSecret(strings.TrimLeft(a, "-")):
			if k, _, ok := strings.Cut(a, "="); ok {
				out[i] = k + "=xxxxx"
			} else {
				out[i] = a
				hideNext = true
			}
		default:
			out[i] = report.Redact(a)
		}
	}
	return strings.Join(out, " ")
}

func looksSecret(flag string) bool {
	f := strings.ToLower(flag)
	for _, w := range []string{"password", "passwd", "secret", "token", "shared-key", "shared_key", "api-key", "api_key", "apikey"} {
		if strings.Contains(f, w) {
			return true
		}
	}
	return false
}

// Find returns the shipper that pid belongs to: a Fluentd worker's PID
// gives its supervisor with all its workers, the supervisor's PID the
// same. force, when set, takes any process for that kind (a shipper
// renamed beyond recognition, given with --shipper).
func Find(procRoot string, pid int, force Kind) (Process, error) {
	pi, err := readProc(procRoot, pid)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Process{}, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
		}
		return Process{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	k, ok := classify(pi.argv)
	if force != "" && (!ok || k != force) {
		k, ok = force, true
	}
	if !ok {
		cmd := redactArgv(pi.argv)
		if cmd == "" {
			cmd = "[" + pi.comm + "]"
		}
		return Process{}, fmt.Errorf("pid %d (%s): %w; give --shipper to diagnose it anyway", pid, cmd, ErrNotShipper)
	}
	if k != Fluentd {
		return newProcess(k, pi), nil
	}
	sup := pi
	if isWorker(pi.argv) {
		if parent, err := readProc(procRoot, pi.ppid); err == nil {
			if pk, ok := classify(parent.argv); ok && pk == Fluentd && !isWorker(parent.argv) {
				sup = parent
			}
		}
	}
	p := newProcess(Fluentd, sup)
	if sup.pid == pi.pid && isWorker(pi.argv) {
		// A worker whose supervisor cannot be read stands alone.
		p.Workers = []int{pi.pid}
		return p, nil
	}
	pids, err := listPIDs(procRoot)
	if err != nil {
		return p, nil
	}
	for _, c := range pids {
		if c == sup.pid {
			continue
		}
		ci, err := readProc(procRoot, c)
		if err != nil || ci.ppid != sup.pid || !isWorker(ci.argv) {
			continue
		}
		p.Workers = append(p.Workers, c)
	}
	return p, nil
}
