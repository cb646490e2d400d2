package cli

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/sockettest"
	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// nsChild makes a network namespace with a process in it, for --pid.
func nsChild(t *testing.T) (*testenv.Netns, string) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nft", "sleep")
	ns := testenv.NewNetns(t)
	child := ns.Command("sleep", "120")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	waitInNetns(t, child.Process.Pid)
	return ns, strconv.Itoa(child.Process.Pid)
}

// pollSockets runs the command until done accepts its report, bounded to
// limit; it returns the last report.
func pollSockets(t *testing.T, limit time.Duration, done func(socketsReport) bool, args ...string) socketsReport {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		code, out, errOut := runCLI(t, args...)
		if code != ExitOK && code != ExitFindings {
			t.Fatalf("%v: exit %d %s", args, code, errOut)
		}
		r := decodeSockets(t, out)
		if done(r) || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func finding(r socketsReport, id string) (report.Finding, bool) {
	for _, f := range r.Findings {
		if f.ID == id {
			return f, true
		}
	}
	return report.Finding{}, false
}

func firstSocket(t *testing.T, f report.Finding) map[string]any {
	t.Helper()
	var socks []map[string]any
	b, _ := json.Marshal(f.Evidence["sockets"])
	if err := json.Unmarshal(b, &socks); err != nil || len(socks) == 0 {
		t.Fatalf("evidence sockets %s: %v", b, err)
	}
	return socks[0]
}

// The black hole of "logs lost without errors" (docs/troubleshooting.md)
// seen from the sender: nftables in the namespace
// lets the handshake and bare ACKs through and drops every data segment
// to the peer. The kernel retransmits with a doubling timeout;
// tcp.retransmitting fires with the retransmit count, backoff and time
// since the last ACK, turns critical past --retrans-critical, and the
// queued bytes are reported stuck, not draining.
func TestSocketsRetransmittingBlackHole(t *testing.T) {
	ns, pid := nsChild(t)
	var set sockettest.Set
	mk := sockettest.For(t)
	if err := ns.Do(func() (err error) {
		set, err = mk.Established("127.0.0.1", "127.0.0.2", 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(int(set.Server.Port()))
	// The input hook: the segment leaves the sender (so it counts as
	// sent, as on a real path) and vanishes before the receiver.
	ns.Run(t, "nft", "add table inet ld; add chain inet ld in { type filter hook input priority 0; }; "+
		"add rule inet ld in tcp dport "+port+" ip length > 100 drop")
	if _, err := set.Clients[0].Write(make([]byte, 2000)); err != nil {
		t.Fatal(err)
	}
	args := []string{"sockets", "--pid", pid, "--peer", set.Server.String(), "--state", "ESTABLISHED",
		"--retrans-critical", "3s", "--send-q", "1000", "-o", "json"}

	r := pollSockets(t, 5*time.Second, func(r socketsReport) bool {
		_, ok := finding(r, sockstat.FindingRetransmitting)
		return ok
	}, args...)
	f, ok := finding(r, sockstat.FindingRetransmitting)
	if !ok || f.Severity != report.Warning || f.Evidence["retransmitting"] != float64(1) || f.Evidence["peer"] != set.Server.String() {
		t.Fatalf("findings %+v", r.Findings)
	}
	s := firstSocket(t, f)
	if s["retransmits"].(float64) < 2 || s["backoff"].(float64) < 1 || s["unacked_segments"].(float64) < 1 ||
		s["send_q_bytes"] != float64(2000) || s["no_ack_for_ms"].(float64) < 400 || s["total_retransmissions"].(float64) < 2 {
		t.Errorf("evidence %+v", s)
	}
	p := peersByKey(r)[set.Server.String()]
	if p.TCP == nil || p.TCP.Retransmitting != 1 || p.TCP.Retransmissions < 2 || p.TCP.OldestUnackedMS < 400 {
		t.Errorf("peer tcp %+v", p.TCP)
	}
	if st, ok := finding(r, sockstat.FindingSendQueueStuck); !ok || !strings.Contains(st.Summary, "not draining: no acknowledgement for") {
		t.Errorf("send_queue_stuck %+v", st)
	}

	// Past --retrans-critical without an ACK: critical.
	r = pollSockets(t, 8*time.Second, func(r socketsReport) bool {
		f, _ := finding(r, sockstat.FindingRetransmitting)
		return f.Severity == report.Critical
	}, args...)
	f, _ = finding(r, sockstat.FindingRetransmitting)
	if f.Severity != report.Critical || f.Evidence["max_no_ack_for_ms"].(float64) < 3000 || !strings.Contains(f.Summary, "without an ACK for 3s or more") {
		t.Errorf("critical %+v", f)
	}

	// The table shows the retransmissions and the ACK wait, which a
	// healthy table leaves out.
	code, out, _ := runCLI(t, args[:len(args)-2]...)
	if code != ExitFindings || !strings.Contains(out, "RETRANS") || !strings.Contains(out, "NO-ACK") ||
		!strings.Contains(rowOf(out, set.Server.String()), " now)") {
		t.Errorf("exit %d table:\n%s", code, out)
	}
}

// A receiver that never reads, with a small receive buffer: its window
// closes, the sender probes it, and tcp.peer_zero_window names it; the
// Send-Q behind the closed window is stuck, not draining.
func TestSocketsPeerZeroWindow(t *testing.T) {
	ns, pid := nsChild(t)
	var set sockettest.Set
	mk := sockettest.For(t)
	if err := ns.Do(func() (err error) {
		set, _, err = mk.SendQ("127.0.0.1", "127.0.0.2")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	args := []string{"sockets", "--pid", pid, "--peer", set.Server.String(), "--state", "ESTABLISHED", "--send-q", "1024", "-o", "json"}
	r := pollSockets(t, 5*time.Second, func(r socketsReport) bool {
		_, ok := finding(r, sockstat.FindingPeerZeroWindow)
		return ok
	}, args...)
	f, ok := finding(r, sockstat.FindingPeerZeroWindow)
	if !ok || f.Severity != report.Warning || f.Evidence["zero_window"] != float64(1) || f.Evidence["send_q_bytes"].(float64) < 1024 {
		t.Fatalf("findings %+v", r.Findings)
	}
	s := firstSocket(t, f)
	if s["peer_window_bytes"] != float64(0) || s["backoff"].(float64)+s["probes"].(float64) < 1 || s["unacked_segments"] != float64(0) {
		t.Errorf("evidence %+v", s)
	}
	if st, ok := finding(r, sockstat.FindingSendQueueStuck); !ok || !strings.Contains(st.Summary, "the peer's window closed on 1") {
		t.Errorf("send_queue_stuck %+v", st)
	}
	if _, ok := finding(r, sockstat.FindingRetransmitting); ok {
		t.Errorf("a closed window is not retransmission: %+v", r.Findings)
	}
	if p := peersByKey(r)[set.Server.String()]; p.TCP == nil || p.TCP.ZeroWindow != 1 || p.TCP.RTTms.Max <= 0 {
		t.Errorf("peer tcp %+v", p.TCP)
	}
	// Without --peer, tcp_info is read for the sockets with data in
	// Send-Q only (the sender; the receiver's bytes are in its Recv-Q),
	// and the findings are the same.
	_, out, _ := runCLI(t, "sockets", "--pid", pid, "--send-q", "1024", "-o", "json")
	all := decodeSockets(t, out)
	if _, ok := finding(all, sockstat.FindingPeerZeroWindow); !ok {
		t.Errorf("without --peer: findings %+v", all.Findings)
	}
	if n := all.Data.Sources.Netlink; n == nil || n.TCPInfoAsked != 1 || n.TCPInfo != 1 || n.TCPInfoVanished != 0 || n.Sockets < 3 {
		t.Errorf("without --peer: netlink source %+v", n)
	}
	// --zero-window-probes 0 turns it off.
	_, out, _ = runCLI(t, append(args, "--zero-window-probes", "0")...)
	if _, ok := finding(decodeSockets(t, out), sockstat.FindingPeerZeroWindow); ok {
		t.Error("--zero-window-probes 0 should disable the finding")
	}
	for _, bad := range [][]string{{"--retransmits", "-1"}, {"--retrans-critical", "-1s"}, {"--zero-window-probes", "-2"}} {
		code, _, errOut := runCLI(t, append([]string{"sockets"}, bad...)...)
		if code != ExitUsage || !strings.Contains(errOut, bad[0]) {
			t.Errorf("%v: exit %d %s", bad, code, errOut)
		}
	}
}
