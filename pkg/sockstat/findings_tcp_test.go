package sockstat

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// conn is an outbound ESTABLISHED socket from port lport to 127.0.0.9:24224.
func conn(lport uint16, sendQ uint64, i *TCPInfo) Socket {
	return Socket{
		Local:  netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), lport),
		Remote: netip.MustParseAddrPort("127.0.0.9:24224"),
		State:  Established, SendQ: sendQ, Inode: uint64(lport), TCP: i,
	}
}

func aggregateTCP(socks []Socket, th Thresholds) Result {
	return Aggregate(socks, AggregateOptions{
		Aliases: DefaultAliases(), SendQMin: th.SendQ, Retransmits: th.Retransmits, ZeroWindowProbes: th.ZeroWindowProbes,
	})
}

func byID(fs []report.Finding) map[string]report.Finding {
	m := map[string]report.Finding{}
	for _, f := range fs {
		m[f.ID] = f
	}
	return m
}

func TestRetransmittingFinding(t *testing.T) {
	th := DefaultThresholds()
	th.RetransCritical = 10 * time.Second
	black := &TCPInfo{Retransmits: 3, Backoff: 3, Unacked: 2, TotalRetrans: 4, RTO: 1600 * time.Millisecond,
		LastAckRecv: 2500 * time.Millisecond, RTT: 30 * time.Microsecond, HasSndWnd: true, SndWnd: 65000}
	once := &TCPInfo{Retransmits: 1, Backoff: 1, Unacked: 1, LastAckRecv: 300 * time.Millisecond, RTT: 50 * time.Microsecond}
	healthy := &TCPInfo{RTT: 70 * time.Microsecond, TotalRetrans: 1}
	syn := Socket{Local: netip.MustParseAddrPort("127.0.0.1:40009"), Remote: netip.MustParseAddrPort("127.0.0.9:24224"), State: SynSent,
		TCP: &TCPInfo{Retransmits: 4, Backoff: 4, Unacked: 1, LastAckRecv: time.Minute}}
	res := aggregateTCP([]Socket{conn(40001, 1000, black), conn(40002, 500, once), conn(40003, 0, healthy), syn}, th)
	if len(res.Peers) != 1 {
		t.Fatalf("peers %+v", res.Peers)
	}
	p := res.Peers[0]
	want := PeerTCP{Sockets: 4, RTTms: RTTSummary{Min: 0.03, Median: 0.05, Max: 0.07}, Retransmissions: 5, Retransmitting: 2,
		Unacked: 4, OldestUnackedMS: 2500}
	if p.TCP == nil || *p.TCP != want {
		t.Errorf("tcp %+v, want %+v", p.TCP, want)
	}
	f, ok := byID(Findings(res, nil, th))[FindingRetransmitting]
	// Only the connection past 2 timeouts in a row counts; SYN_SENT is
	// tcp.syn_sent's business.
	if !ok || f.Severity != report.Warning || f.Evidence["retransmitting"] != 1 || f.Evidence["max_no_ack_for_ms"] != int64(2500) ||
		!strings.Contains(f.Summary, "up to 3 timeouts in a row, backoff 3, no ACK for 2.5 s") || !strings.Contains(f.Remedy, "require_ack_response") {
		t.Fatalf("finding %+v", f)
	}
	b, _ := json.Marshal(f.Evidence["sockets"])
	if !strings.Contains(string(b), `"local":"127.0.0.1:40001","remote":"127.0.0.9:24224","state":"ESTABLISHED","send_q_bytes":1000,"unacked_segments":2,"retransmits":3,"total_retransmissions":4,"backoff":3,"probes":0,"rto_ms":1600,"no_ack_for_ms":2500`) {
		t.Errorf("evidence %s", b)
	}
	// Past the critical age, with a backoff that grew: critical.
	black.LastAckRecv = 12 * time.Second
	f = byID(Findings(aggregateTCP([]Socket{conn(40001, 1000, black)}, th), nil, th))[FindingRetransmitting]
	if f.Severity != report.Critical || !strings.Contains(f.Summary, "1 without an ACK for 10s or more") {
		t.Errorf("critical: %+v", f)
	}
	th.Retransmits = 0
	if _, ok := byID(Findings(aggregateTCP([]Socket{conn(40001, 1000, black)}, th), nil, th))[FindingRetransmitting]; ok {
		t.Error("--retransmits 0 should disable the finding")
	}
}

func TestPeerZeroWindowFinding(t *testing.T) {
	th := DefaultThresholds()
	closed := &TCPInfo{Timer: TimerProbe, Backoff: 3, HasSndWnd: true, SndWnd: 0, LastDataSent: 4 * time.Second, LastAckRecv: 200 * time.Millisecond}
	justClosed := &TCPInfo{Timer: TimerProbe, HasSndWnd: true, SndWnd: 0}
	oldKernel := &TCPInfo{Timer: TimerProbe, Probes: 2, Backoff: 2}
	res := aggregateTCP([]Socket{conn(40001, 70000, closed), conn(40002, 1000, justClosed), conn(40003, 500, oldKernel)}, th)
	p := res.Peers[0]
	if p.TCP.ZeroWindow != 2 || len(p.ZeroWindow) != 2 {
		t.Fatalf("tcp %+v", p.TCP)
	}
	fs := byID(Findings(res, nil, th))
	f, ok := fs[FindingPeerZeroWindow]
	if !ok || f.Severity != report.Warning || f.Evidence["send_q_bytes"] != uint64(70500) || f.Evidence["max_no_data_sent_for_ms"] != int64(4000) ||
		!strings.Contains(f.Summary, "zero receive window on 2 connection(s)") || !strings.Contains(f.Remedy, "send_timeout") {
		t.Fatalf("finding %+v", f)
	}
	// The 70,000-byte queue behind the closed window is stuck too.
	if s := fs[FindingSendQueueStuck]; !strings.Contains(s.Summary, "not draining: no acknowledgement for 0.0 s, 0 unacked segment(s), the peer's window closed on 1") {
		t.Errorf("stuck: %+v", s)
	}
	// An empty Send-Q or an open window is not a zero-window stall.
	res = aggregateTCP([]Socket{conn(40001, 0, closed), conn(40002, 10, &TCPInfo{Backoff: 2, HasSndWnd: true, SndWnd: 1000})}, th)
	if _, ok := byID(Findings(res, nil, th))[FindingPeerZeroWindow]; ok {
		t.Error("no stall without queued bytes behind a zero window")
	}
}

// With tcp_info, a big Send-Q whose bytes are acknowledged as they go is
// draining, not stuck; one the peer stopped acknowledging is, with the
// ACK age and unacked count as evidence; under --watch it is critical only
// if nothing was acknowledged between the samples.
func TestSendQueueStuckWithTCPInfo(t *testing.T) {
	th := DefaultThresholds()
	flowing := &TCPInfo{Unacked: 40, LastAckRecv: time.Millisecond, HasSndWnd: true, SndWnd: 1 << 20, BytesAcked: 5 << 20}
	res := aggregateTCP([]Socket{conn(40001, 200_000, flowing)}, th)
	if fs := Findings(res, nil, th); len(fs) != 0 || res.Peers[0].TCP.SendQDraining != 1 {
		t.Fatalf("draining queue: %+v %+v", fs, res.Peers[0].TCP)
	}
	stalled := &TCPInfo{Retransmits: 1, Backoff: 1, Unacked: 12, LastAckRecv: 6200 * time.Millisecond, HasSndWnd: true, SndWnd: 1 << 20, BytesAcked: 100}
	prev := aggregateTCP([]Socket{conn(40001, 200_000, stalled)}, th)
	f := byID(Findings(prev, nil, th))[FindingSendQueueStuck]
	if f.Severity != report.Warning || f.Evidence["no_ack_for_ms"] != int64(6200) || f.Evidence["unacked_segments"] != uint64(12) ||
		!strings.Contains(f.Summary, "not draining: no acknowledgement for 6.2 s, 12 unacked segment(s)") {
		t.Fatalf("stalled: %+v", f)
	}
	b, _ := json.Marshal(f.Evidence["sockets"])
	if !strings.Contains(string(b), `"send_q_bytes":200000,"no_ack_for_ms":6200,"unacked_segments":12,"retransmits":1,"peer_window_bytes":1048576`) {
		t.Errorf("evidence %s", b)
	}
	same := *stalled
	same.LastAckRecv = 11 * time.Second
	cur := aggregateTCP([]Socket{conn(40001, 200_000, &same)}, th)
	if f := byID(Findings(cur, &prev, th))[FindingSendQueueStuck]; f.Severity != report.Critical || f.Evidence["persisted"] != 1 {
		t.Errorf("nothing acked between samples: %+v", f)
	}
	moved := same
	moved.BytesAcked += 1000
	cur = aggregateTCP([]Socket{conn(40001, 200_000, &moved)}, th)
	if f := byID(Findings(cur, &prev, th))[FindingSendQueueStuck]; f.Severity != report.Warning || f.Evidence["persisted"] != 0 {
		t.Errorf("acked between samples: %+v", f)
	}
	// A peer gone between --watch samples loses its tcp data with its counts.
	gone := Diff(nil, cur.Peers)
	if len(gone) != 1 || gone[0].TCP != nil || gone[0].Stuck != nil {
		t.Errorf("gone %+v", gone)
	}
}

// TCPInfoWanted picks the sockets whose tcp_info is used: with data in
// Send-Q in a state that sends, and with --peer every kept socket that
// has tcp_info; --state and --peer still filter.
func TestTCPInfoWanted(t *testing.T) {
	listen := Socket{Local: netip.MustParseAddrPort("127.0.0.9:24224"), State: Listen, Inode: 1}
	tw := conn(40004, 0, nil)
	tw.State = TimeWait
	synSent := conn(40005, 1, nil)
	synSent.State = SynSent
	closeWait := conn(40006, 7, nil)
	closeWait.State = CloseWait
	other := conn(40007, 5, nil)
	other.Remote = netip.MustParseAddrPort("127.0.0.8:9200")
	socks := []Socket{listen, conn(40001, 0, nil), conn(40002, 10, nil), tw, synSent, closeWait, other}

	for _, c := range []struct {
		name string
		o    AggregateOptions
		want []int
	}{
		{"every peer: Send-Q only", AggregateOptions{}, []int{2, 5, 6}},
		{"--state", AggregateOptions{States: map[State]bool{CloseWait: true}}, []int{5}},
		{"--peer: all its sockets with tcp_info", AggregateOptions{Peers: []PeerSpec{{Raw: "127.0.0.9:24224", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.9")}, Ports: []uint16{24224}}}}, []int{1, 2, 4, 5}},
	} {
		if got := TCPInfoWanted(socks, c.o); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
