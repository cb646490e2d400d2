package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logdoctor/logdoctor/internal/sockettest"
	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

type socketsReport struct {
	Command  string           `json:"command"`
	Findings []report.Finding `json:"findings"`
	Data     sockstat.Report  `json:"data"`
}

func decodeSockets(t *testing.T, line string) socketsReport {
	t.Helper()
	var r socketsReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	return r
}

func peersByKey(r socketsReport) map[string]sockstat.Peer {
	m := map[string]sockstat.Peer{}
	for _, p := range r.Data.Peers {
		m[p.Peer] = p
	}
	return m
}

// states renders the non-zero counts, "CLOSE_WAIT=2 LISTEN=1".
func states(c sockstat.StateCounts) string {
	var out []string
	for _, s := range sockstat.AllStates() {
		if c[s] != 0 {
			out = append(out, fmt.Sprintf("%s=%d", s, c[s]))
		}
	}
	return strings.Join(out, " ")
}

func findingIDs(fs []report.Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID+":"+f.Severity.String())
	}
	return strings.Join(out, " ")
}

func TestSocketsCommandLive(t *testing.T) {
	cw := sockettest.CloseWait(t, "127.42.0.1", "127.42.1.1", 2)
	est := sockettest.Established(t, "127.42.0.2", "127.42.1.2", 1)
	peerArgs := []string{"sockets", "--peer", "127.42.0.1", "--peer", "127.42.0.2"}

	code, out, errOut := runCLI(t, append(peerArgs, "-o", "json")...)
	if code != ExitOK {
		t.Fatalf("exit %d (warning only, --fail-on critical): %s %s", code, out, errOut)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("one JSON line expected: %q", out)
	}
	r := decodeSockets(t, out)
	got := map[string]string{}
	for k, p := range peersByKey(r) {
		got[k] = fmt.Sprintf("%s %s %d", p.Direction, states(p.States), len(p.Processes))
	}
	want := map[string]string{
		cw.Server.String():            "outbound CLOSE_WAIT=2 1",
		est.Server.String():           "outbound ESTABLISHED=1 1",
		"* -> " + cw.Server.String():  "inbound LISTEN=1 1",
		"* -> " + est.Server.String(): "inbound LISTEN=1 1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("peers:\n got %v\nwant %v", got, want)
	}
	p := peersByKey(r)[cw.Server.String()]
	if p.Processes[0].PID != os.Getpid() {
		t.Errorf("owner %+v, want this process %d", p.Processes, os.Getpid())
	}
	if findingIDs(r.Findings) != "tcp.close_wait:warning" {
		t.Errorf("findings %s", findingIDs(r.Findings))
	}
	f := r.Findings[0]
	if f.Evidence["peer"] != cw.Server.String() || f.Evidence["close_wait"] != float64(2) || !strings.Contains(f.Summary, selfComm(t)+"[") || f.Remedy == "" {
		t.Errorf("finding %+v", f)
	}
	// auto reads this namespace through netlink.
	if src := r.Data.Sources; src.Processes == nil || src.Processes.Attributed < 5 || src.Source != "netlink" ||
		src.Netlink == nil || src.Netlink.Namespace != "self" || src.Netlink.Sockets != r.Data.Totals.Total() || len(src.Read) != 0 {
		t.Errorf("sources %+v", src)
	}
	if r.Data.Filters == nil || len(r.Data.Filters.Peers) != 2 {
		t.Errorf("filters %+v", r.Data.Filters)
	}

	// Thresholds are flags; the exit code follows --fail-on.
	if code, _, _ := runCLI(t, append(peerArgs, "--close-wait-critical", "2")...); code != ExitFindings {
		t.Errorf("critical CLOSE_WAIT: exit %d, want 3", code)
	}
	if code, _, _ := runCLI(t, append(peerArgs, "--close-wait-critical", "2", "--fail-on", "never")...); code != ExitOK {
		t.Errorf("--fail-on never: exit %d", code)
	}
	if code, _, _ := runCLI(t, append(peerArgs, "--fail-on", "warning")...); code != ExitFindings {
		t.Errorf("--fail-on warning: exit %d", code)
	}
	if code, _, _ := runCLI(t, append(peerArgs, "--close-wait", "0", "--fail-on", "warning")...); code != ExitOK {
		t.Errorf("--close-wait 0 disables the finding: exit %d", code)
	}

	// The table: one row per peer, a column per state that occurs.
	code, out, _ = runCLI(t, peerArgs...)
	if code != ExitOK {
		t.Fatalf("table exit %d", code)
	}
	for _, wantLine := range []string{
		"PEER", "ESTABLISHED", "CLOSE_WAIT", "LISTEN", "Send-Q", "PROCESSES",
		"[WARNING] tcp.close_wait", "source: netlink (auto: sock_diag netlink in this network namespace)", "netlink: ",
	} {
		if !strings.Contains(out, wantLine) {
			t.Errorf("table lacks %q:\n%s", wantLine, out)
		}
	}
	row := rowOf(out, cw.Server.String())
	if f := strings.Fields(row); len(f) < 8 || f[1] != "outbound" || f[2] != "-" || !strings.HasPrefix(f[len(f)-1], selfComm(t)+"[") {
		t.Errorf("row %q", row)
	}
	if strings.Contains(rowOf(out, "PEER"), "FIN_WAIT2") {
		t.Errorf("the server ends are not selected by --peer host:\n%s", out)
	}

	// --source proc reads the text tables and gives the same peers.
	_, out, _ = runCLI(t, append(peerArgs, "--source", "proc", "-o", "json")...)
	pr := decodeSockets(t, out)
	if src := pr.Data.Sources; src.Source != "proc" || src.Netlink != nil || len(src.Read) != 2 || src.Read[0].Path != "/proc/net/tcp" ||
		src.Why != "--source proc: reading /proc/net" {
		t.Errorf("--source proc: sources %+v", src)
	}
	if peerView(pr) != peerView(decodeSockets(t, mustRun(t, append(peerArgs, "-o", "json")...))) {
		t.Errorf("proc and netlink peers differ:\n%v\n%v", pr.Data.Peers, r.Data.Peers)
	}
	_, out, _ = runCLI(t, append(peerArgs, "--source", "proc")...)
	if !strings.Contains(out, "read /proc/net/tcp:") || !strings.Contains(out, "source: proc (--source proc") {
		t.Errorf("--source proc table:\n%s", out)
	}

	// --state narrows the rows; totals still count everything.
	code, out, _ = runCLI(t, append(peerArgs, "--state", "close-wait", "-o", "json")...)
	r = decodeSockets(t, out)
	if code != ExitOK || len(r.Data.Peers) != 1 || r.Data.Peers[0].Peer != cw.Server.String() || r.Data.Totals[sockstat.Listen] < 2 {
		t.Errorf("--state: %d %+v", code, r.Data.Peers)
	}

	// --by process and --by state.
	_, out, _ = runCLI(t, append(peerArgs, "--by", "process", "-o", "json")...)
	r = decodeSockets(t, out)
	me := fmt.Sprintf("%d/%s", os.Getpid(), selfComm(t))
	if r.Data.By != "process" || len(r.Data.Groups) != 1 || r.Data.Groups[0].Key != me || r.Data.Groups[0].Sockets != 5 || r.Data.Groups[0].Peers != 4 {
		t.Errorf("--by process: %+v", r.Data.Groups)
	}
	_, out, _ = runCLI(t, append(peerArgs, "--by", "state", "-o", "json")...)
	r = decodeSockets(t, out)
	byState := map[string]int{}
	for _, g := range r.Data.Groups {
		byState[g.Key] = g.Sockets
	}
	if fmt.Sprint(byState) != "map[CLOSE_WAIT:2 ESTABLISHED:1 LISTEN:2]" {
		t.Errorf("--by state: %v", byState)
	}
	code, out, _ = runCLI(t, append(peerArgs, "--by", "state")...)
	if code != ExitOK || !strings.Contains(out, "By state") || !strings.Contains(rowOf(out, "CLOSE_WAIT"), "2") {
		t.Errorf("--by state table:\n%s", out)
	}

	// An alias of our own names the listener's port; a DNS name is
	// resolved once (localhost comes from /etc/hosts).
	lh := sockettest.Established(t, "127.0.0.1", "127.42.1.3", 1)
	port := strconv.Itoa(int(lh.Server.Port()))
	_, out, errOut = runCLI(t, "sockets", "--alias", "mine="+port, "--peer", "localhost:"+port, "--state", "ESTABLISHED", "-o", "json")
	r = decodeSockets(t, out)
	// The inbound end's peer is the client (127.42.1.3), not localhost, and
	// --state hides the listener: one row.
	if len(r.Data.Peers) != 1 || r.Data.Peers[0].Peer != lh.Server.String() {
		t.Fatalf("localhost:%s: %+v %s", port, r.Data.Peers, errOut)
	}
	for _, p := range r.Data.Peers {
		if p.Alias != "mine" || p.States[sockstat.Established] != 1 {
			t.Errorf("peer %+v", p)
		}
	}
	if fp := r.Data.Filters.Peers[0]; len(fp.Addrs) == 0 || fp.Addrs[0] != netip.MustParseAddr("127.0.0.1") && fp.Addrs[len(fp.Addrs)-1] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("resolved %+v", fp)
	}
}

// peerView is what both sources show of the peers: all but the tcp_info
// summary only netlink has.
func peerView(r socketsReport) string {
	m := peersByKey(r)
	for k, p := range m {
		p.TCP = nil
		m[k] = p
	}
	return fmt.Sprint(m)
}

// mustRun runs the CLI and returns stdout, failing on an exit code other
// than 0 or 3.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, args...)
	if code != ExitOK && code != ExitFindings {
		t.Fatalf("%v: exit %d: %s", args, code, errOut)
	}
	return out
}

// rowOf returns the last table row starting with s (the last sample's
// under --watch).
func rowOf(out, s string) string {
	row := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, s+" ") {
			row = l
		}
	}
	return row
}

func selfComm(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestSocketsUsageAndRunErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code ExitCode
		msg  string
	}{
		{[]string{"--peer", "bad peer!"}, ExitUsage, "accepted forms: an alias (es, forward, kafka, syslog"},
		{[]string{"--peer", ":0"}, ExitUsage, "accepted forms"},
		{[]string{"--peer", "127.0.0.1/40"}, ExitUsage, "not a CIDR"},
		{[]string{"--state", "WAITING"}, ExitUsage, "unknown TCP state"},
		{[]string{"--by", "color"}, ExitUsage, "want peer, process or state"},
		{[]string{"--alias", "x"}, ExitUsage, "name=port"},
		{[]string{"--count", "3"}, ExitUsage, "--count needs --watch"},
		{[]string{"--watch", "-1s"}, ExitUsage, "positive"},
		{[]string{"--send-q", "-1"}, ExitUsage, "--send-q"},
		{[]string{"extra"}, ExitUsage, "unknown command"},
		{[]string{"--proc-root", "/nonexistent-logdoctor"}, ExitError, "--proc-root"},
		{[]string{"--pid", "2147483647"}, ExitError, "--pid 2147483647"},
	} {
		code, _, errOut := runCLI(t, append([]string{"sockets"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%v: exit %d stderr %q, want %d with %q", c.args, code, errOut, c.code, c.msg)
		}
	}
}

func TestSocketsFixtures(t *testing.T) {
	root := filepath.Join(testenv.ModuleRoot(t), "pkg/sockstat/testdata")
	code, out, _ := runCLI(t, "sockets", "--proc-root", filepath.Join(root, "malformed"), "--no-processes", "-o", "json")
	r := decodeSockets(t, out)
	if code != ExitOK || len(r.Data.Sources.Read) != 2 || r.Data.Sources.Read[0].MalformedLines != 2 ||
		r.Data.Sources.Read[0].Malformed[0].Line != 3 || r.Data.Sources.Processes != nil {
		t.Fatalf("exit %d sources %+v", code, r.Data.Sources)
	}
	if len(r.Data.Peers) != 1 || states(r.Data.Peers[0].States) != "ESTABLISHED=1 TIME_WAIT=1 CLOSE_WAIT=1" || r.Data.Peers[0].Alias != "forward" {
		t.Errorf("peers %+v", r.Data.Peers)
	}
	if findingIDs(r.Findings) != "tcp.close_wait:warning tcp.send_queue_stuck:warning" {
		t.Errorf("findings %s", findingIDs(r.Findings))
	}
	_, out, _ = runCLI(t, "sockets", "--proc-root", filepath.Join(root, "malformed"), "--no-processes")
	if !strings.Contains(out, "2 malformed line(s); line 3:") || !strings.Contains(out, "line 5:") {
		t.Errorf("table should name the malformed lines:\n%s", out)
	}
	code, out, _ = runCLI(t, "sockets", "--proc-root", filepath.Join(root, "no-tcp6"), "--no-processes", "--peer", "syslog")
	if code != ExitFindings || !strings.Contains(out, "skipped "+filepath.Join(root, "no-tcp6/net/tcp6")+": not present") ||
		!strings.Contains(out, "[CRITICAL] tcp.no_established") || !strings.Contains(out, "[WARNING] tcp.syn_sent") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// --watch re-samples: JSON Lines, one report per sample, with the change per
// peer and state; CLOSE_WAIT that grows between samples is critical.
func TestSocketsWatch(t *testing.T) {
	cw := sockettest.CloseWait(t, "127.42.0.5", "127.42.1.5", 2)
	var reps []*report.Report
	o := SocketsOptions{
		ProcRoot: "/proc", Peers: []string{cw.Server.String()}, Watch: 20 * time.Millisecond, Count: 3,
		Thresholds: sockstat.DefaultThresholds(),
	}
	err := runSockets(context.Background(), o, func(r *report.Report) error {
		reps = append(reps, r)
		if len(reps) == 1 {
			sockettest.AddCloseWait(t, &cw, "127.42.1.5")
		}
		return nil
	})
	if err != nil || len(reps) != 3 {
		t.Fatalf("%d reports, err %v", len(reps), err)
	}
	for i, wantCW := range []int{2, 3, 3} {
		d := reps[i].Data.(*sockstat.Report)
		p := d.Peers[0]
		if d.Sample != i+1 || p.Peer != cw.Server.String() || p.States[sockstat.CloseWait] != wantCW {
			t.Fatalf("sample %d: %+v", i+1, d.Peers)
		}
		// The first sample is the baseline: no changes at all.
		if (p.Changes == nil) != (i == 0) {
			t.Fatalf("sample %d: changes %v", i+1, p.Changes)
		}
		if i == 0 {
			continue
		}
		wantChange := []int{2, 1, 0}[i]
		if p.Changes[sockstat.CloseWait] != wantChange {
			t.Errorf("sample %d change %d, want %d", i+1, p.Changes[sockstat.CloseWait], wantChange)
		}
		wantSev := []report.Severity{report.Warning, report.Critical, report.Warning}[i]
		if len(reps[i].Findings) != 1 || reps[i].Findings[0].Severity != wantSev {
			t.Errorf("sample %d findings %+v", i+1, reps[i].Findings)
		}
	}

	// Through Main: three JSON lines, exit 3 because sample 2... is not
	// reached here (no growth), so exit 0 with warnings only.
	code, out, _ := runCLI(t, "sockets", "--peer", cw.Server.String(), "--watch", "10ms", "--count", "3", "-o", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitOK || len(lines) != 3 {
		t.Fatalf("exit %d, %d lines", code, len(lines))
	}
	for i, l := range lines {
		r := decodeSockets(t, l)
		if r.Data.Sample != i+1 || (r.Data.Peers[0].Changes == nil) != (i == 0) || strings.Contains(l, `"changes"`) != (i > 0) {
			t.Errorf("line %d: %+v", i, r.Data)
		}
	}
	_, out, _ = runCLI(t, "sockets", "--peer", cw.Server.String(), "--watch", "10ms", "--count", "2")
	first, second, _ := strings.Cut(out, "Peers (sample 2)")
	if second == "" || !strings.Contains(rowOf(second, cw.Server.String()), "3 (+0)") {
		t.Errorf("watch table:\n%s", out)
	}
	if !strings.Contains(first, "Peers (sample 1)") || strings.Contains(rowOf(first, cw.Server.String()), "(+") {
		t.Errorf("the baseline sample shows deltas:\n%s", first)
	}
}

// --pid reads another network namespace's table through /proc/PID/net: a
// child process sits in its own namespace where es (an alias set to the
// listener's port) has only TIME_WAIT and a SYN_SENT that nftables drops,
// the seed-000 "no ES connection" picture.
func TestSocketsPIDInOtherNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nft", "sleep")
	ns := testenv.NewNetns(t)
	child := ns.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	waitInNetns(t, child.Process.Pid)

	var tw sockettest.Set
	var synFD int
	mk := sockettest.For(t)
	if err := ns.Do(func() (err error) {
		tw, err = mk.TimeWait("127.0.0.1", "127.0.0.1", 3)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(int(tw.Server.Port()))
	ns.Run(t, "nft", "add table inet ld; add chain inet ld out { type filter hook output priority 0; }; add rule inet ld out tcp dport "+port+" drop")
	if err := ns.Do(func() (err error) {
		synFD, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.Connect(synFD, &unix.SockaddrInet4{Port: int(tw.Server.Port()), Addr: [4]byte{127, 0, 0, 1}})
		if err == unix.EINPROGRESS {
			return nil
		}
		return fmt.Errorf("connect: %v, want EINPROGRESS", err)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(synFD) })

	args := []string{"sockets", "--pid", strconv.Itoa(child.Process.Pid), "--alias", "es=" + port, "--peer", "es", "-o", "json"}
	var r socketsReport
	var code ExitCode
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out string
		code, out, _ = runCLI(t, args...)
		r = decodeSockets(t, out)
		if states(r.Data.Totals) == "SYN_SENT=1 TIME_WAIT=3 LISTEN=1" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Only the namespace's sockets: none of the host's.
	if states(r.Data.Totals) != "SYN_SENT=1 TIME_WAIT=3 LISTEN=1" {
		t.Fatalf("totals %s", states(r.Data.Totals))
	}
	p := peersByKey(r)[tw.Server.String()]
	if p.Alias != "es" || p.Direction != sockstat.Outbound || states(p.States) != "SYN_SENT=1 TIME_WAIT=3" {
		t.Errorf("es peer %+v", p)
	}
	// Inodes are global: the host's /proc/*/fd scan finds this test holding
	// the SYN_SENT socket.
	if len(p.Processes) != 1 || p.Processes[0].PID != os.Getpid() {
		t.Errorf("processes %+v", p.Processes)
	}
	if code != ExitFindings || findingIDs(r.Findings) != "tcp.no_established:critical tcp.syn_sent:warning" {
		t.Errorf("exit %d findings %s", code, findingIDs(r.Findings))
	}
	// As root, auto enters the child's namespace and reads it through
	// netlink.
	pid := strconv.Itoa(child.Process.Pid)
	nsFile := filepath.Join("/proc", pid, "ns/net")
	if src := r.Data.Sources; src.Source != "netlink" || src.Netlink == nil || src.Netlink.Namespace != nsFile ||
		src.Why != "auto: sock_diag netlink in the network namespace of pid "+pid+" (entered "+nsFile+")" {
		t.Errorf("sources %+v", src)
	}
	// --source proc reads /proc/PID/net: the same peers.
	_, out, _ := runCLI(t, append(args, "--source", "proc")...)
	pr := decodeSockets(t, out)
	want := filepath.Join("/proc", pid, "net/tcp")
	if pr.Data.Sources.Source != "proc" || pr.Data.Sources.Read[0].Path != want {
		t.Errorf("read %+v, want %s", pr.Data.Sources.Read, want)
	}
	if peerView(pr) != peerView(r) {
		t.Errorf("proc and netlink disagree:\n%+v\n%+v", pr.Data.Peers, r.Data.Peers)
	}

	// Without CAP_SYS_ADMIN (dropped from the bounding set, so root's exec
	// does not get it back) setns is refused: auto falls back to
	// /proc/PID/net and says so; --source netlink cannot run.
	testenv.RequireCommands(t, "capsh")
	bin := testenv.BuildLogdoctor(t)
	dropped := func(extra ...string) (int, string, string) {
		cmd := exec.Command("capsh", append([]string{"--drop=cap_sys_admin", "--", "-c", `exec "$@"`, "sh", bin}, append(args, extra...)...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}
	code2, out, errOut := dropped()
	fr := decodeSockets(t, out)
	if src := fr.Data.Sources; code2 != int(ExitFindings) || src.Source != "proc" || src.Netlink != nil || src.Read[0].Path != want ||
		!strings.Contains(src.Why, "auto: entering the network namespace of pid "+pid+" needs CAP_SYS_ADMIN") ||
		!strings.Contains(src.Why, "reading /proc/"+pid+"/net instead, without tcp_info") {
		t.Errorf("without CAP_SYS_ADMIN: exit %d sources %+v %s", code2, src, errOut)
	}
	if peerView(fr) != peerView(pr) {
		t.Errorf("fallback peers differ:\n%+v\n%+v", fr.Data.Peers, pr.Data.Peers)
	}
	_, out, _ = dropped("-o", "table")
	if !strings.Contains(out, "source: proc (auto: entering the network namespace of pid "+pid+" needs CAP_SYS_ADMIN") {
		t.Errorf("table does not say why:\n%s", out)
	}
	code2, _, errOut = dropped("--source", "netlink")
	if code2 != int(ExitError) || !strings.Contains(errOut, "--source netlink") || !strings.Contains(errOut, "operation not permitted") {
		t.Errorf("--source netlink without CAP_SYS_ADMIN: exit %d %s", code2, errOut)
	}
}

// waitInNetns waits (bounded) until pid runs `sleep` in a namespace other
// than ours: `ip netns exec` switches namespace, then execs.
func waitInNetns(t *testing.T, pid int) {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if ns != "" && ns != self && strings.TrimSpace(string(comm)) == "sleep" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	out, _ := exec.Command("ps", "-o", "pid,comm", "-p", strconv.Itoa(pid)).CombinedOutput()
	t.Fatalf("child %d never entered its namespace: %s", pid, out)
}

// Without root, other users' /proc/PID/fd cannot be read: the report counts
// them as unreadable instead of guessing owners, as ss does.
func TestSocketsUnprivilegedCountsUnreadable(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.BuildLogdoctor(t)
	// The temp dirs are 0700: let nobody reach the binary.
	for d := filepath.Dir(bin); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cw := sockettest.CloseWait(t, "127.42.0.7", "127.42.1.7", 1)
	cmd := exec.Command(bin, "sockets", "--peer", cw.Server.String(), "-o", "json")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	r := decodeSockets(t, string(out))
	ps := r.Data.Sources.Processes
	if ps == nil || ps.Unreadable == 0 || ps.Unreadable > ps.Processes {
		t.Fatalf("processes %+v", ps)
	}
	p := peersByKey(r)[cw.Server.String()]
	if p.States[sockstat.CloseWait] != 1 || len(p.Processes) != 0 {
		t.Errorf("peer %+v: a root-owned socket cannot be attributed by nobody", p)
	}
	if len(r.Findings) != 1 || !strings.Contains(r.Findings[0].Summary, "unknown process") {
		t.Errorf("findings %+v", r.Findings)
	}
}

// TestSocketsTableOnTerminal reads the report a person gets on a terminal:
// the verdict and the findings first, then the peer table, whose headers
// print as written (the table library used to show "SEND - Q" and
// "CLOSE WAIT").
func TestSocketsTableOnTerminal(t *testing.T) {
	cw := sockettest.CloseWait(t, "127.42.4.1", "127.42.5.1", 2)
	for _, tty := range []bool{true, false} {
		run := runCLI
		if tty {
			run = runCLITTY
		}
		code, out, errOut := run(t, "sockets", "--peer", "127.42.4.1", "--no-processes")
		if code != ExitOK {
			t.Fatalf("tty=%v: exit %d: %s", tty, code, errOut)
		}
		first, _, _ := strings.Cut(out, "\n")
		if !strings.HasPrefix(first, "sockets: WARNING, 1 finding(s): 1 warning") {
			t.Errorf("tty=%v: first line %q", tty, first)
		}
		finding, table := strings.Index(out, "[WARNING] tcp.close_wait"), strings.Index(out, cw.Server.String())
		if finding < 0 || table < finding {
			t.Errorf("tty=%v: the finding must come before the peer table:\n%s", tty, out)
		}
		for _, h := range []string{"CLOSE_WAIT", "Send-Q", "Recv-Q"} {
			if !strings.Contains(out, h) {
				t.Errorf("tty=%v: header %q not as written:\n%s", tty, h, out)
			}
		}
		if tty && !strings.Contains(out, "│") {
			t.Errorf("terminal output is not boxed:\n%s", out)
		}
	}
}

// TestSocketsNamedPeerWithoutSockets: a stalled output's "no ES connection"
// (docs/troubleshooting.md, logs stop reaching Elasticsearch) looks
// like nothing at all to a --peer; that is a finding, not "nothing to
// report". And a forward peer that keeps reconnecting gets out_forward
// advice, not Elasticsearch's.
func TestSocketsNamedPeerWithoutSockets(t *testing.T) {
	code, out, errOut := runCLI(t, "sockets", "--peer", "127.42.9.9:9200", "--no-processes", "-o", "json")
	r := decodeSockets(t, out)
	if code != ExitOK || findingIDs(r.Findings) != "tcp.no_connection:warning" {
		t.Fatalf("exit %d findings %s %s", code, findingIDs(r.Findings), errOut)
	}
	if f := r.Findings[0]; !strings.Contains(f.Summary, "127.42.9.9:9200") || !strings.Contains(f.Remedy, "Elasticsearch") {
		t.Errorf("finding %+v", f)
	}
	_, table, _ := runCLI(t, "sockets", "--peer", "127.42.9.9:9200", "--no-processes")
	if strings.Contains(table, "nothing to report") || !strings.HasPrefix(table, "sockets: WARNING") {
		t.Errorf("table:\n%s", table)
	}

	tw := sockettest.TimeWait(t, "127.42.6.1", "127.42.7.1", 2)
	port := strconv.Itoa(int(tw.Server.Port()))
	code, out, _ = runCLI(t, "sockets", "--alias", "forward="+port, "--peer", "forward", "--no-processes", "-o", "json")
	r = decodeSockets(t, out)
	if code != ExitFindings || findingIDs(r.Findings) != "tcp.no_established:critical" {
		t.Fatalf("forward peer: exit %d findings %s", code, findingIDs(r.Findings))
	}
	if rem := r.Findings[0].Remedy; !strings.Contains(rem, "out_forward") || strings.Contains(rem, "fluent-plugin-elasticsearch") {
		t.Errorf("forward peer remedy: %s", rem)
	}
}
