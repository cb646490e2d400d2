package sockstat

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// PeerTCP sums up the tcp_info of a peer's connections (netlink source
// only; listeners, TIME_WAIT and request sockets have none).
type PeerTCP struct {
	// Sockets counts the peer's sockets that came with tcp_info.
	Sockets int `json:"sockets"`
	// RTTms is the smoothed round-trip time over those sockets.
	RTTms RTTSummary `json:"rtt_ms"`
	// Retransmissions sums the segments retransmitted over the
	// connections' lives (tcpi_total_retrans).
	Retransmissions uint64 `json:"retransmissions"`
	// Retransmitting counts connections whose retransmission timer has
	// fired on data still unacknowledged, now.
	Retransmitting int `json:"retransmitting"`
	// Unacked sums the segments sent and not yet acknowledged.
	Unacked uint64 `json:"unacked_segments"`
	// OldestUnackedMS is the longest a connection has waited for an
	// acknowledgement: the time since the last ACK on a connection whose
	// retransmission timer fired. 0 when every unacknowledged segment is
	// younger than its retransmission timeout.
	OldestUnackedMS int64 `json:"oldest_unacked_ms"`
	// ZeroWindow counts connections held back by the peer's zero window.
	ZeroWindow int `json:"zero_window"`
	// SendQDraining counts connections with at least --send-q bytes queued
	// that tcp_info shows draining (ACKs arrive, the window is open), so
	// tcp.send_queue_stuck leaves them out.
	SendQDraining int `json:"send_q_draining"`
}

// RTTSummary is the min, median and max of a set of RTTs, in ms.
type RTTSummary struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// TCPSocket is a connection cited as evidence, with its tcp_info.
type TCPSocket struct {
	Local  netip.AddrPort `json:"local"`
	Remote netip.AddrPort `json:"remote"`
	State  string         `json:"state"`
	SendQ  uint64         `json:"send_q_bytes"`
	Info   TCPInfo        `json:"-"`
}

// canSend reports the states in which a socket still sends data, so
// retransmissions and the peer's window matter.
func canSend(s State) bool {
	switch s {
	case Established, CloseWait, FinWait1, LastAck, Closing:
		return true
	}
	return false
}

// windowClosed reports a peer whose zero window has outlasted at least
// minProbes probe timeouts (the probe backoff or count), so a brief zero
// window of a reader that is merely slow does not count.
func windowClosed(s *Socket, minProbes int) bool {
	i := s.TCP
	return minProbes > 0 && canSend(s.State) && i.ZeroWindow(s.SendQ) && max(int(i.Backoff), int(i.Probes)) >= minProbes
}

// tcpAcc collects a peer's tcp_info while Aggregate walks the sockets.
type tcpAcc struct {
	t    PeerTCP
	rtts []time.Duration
}

func (a *tcpAcc) add(p *Peer, s *Socket, o *AggregateOptions) {
	i := s.TCP
	a.t.Sockets++
	if i.RTT > 0 {
		a.rtts = append(a.rtts, i.RTT)
	}
	a.t.Retransmissions += uint64(i.TotalRetrans)
	a.t.Unacked += uint64(i.Unacked)
	if !canSend(s.State) {
		return
	}
	ev := TCPSocket{Local: s.Local, Remote: s.Remote, State: s.State.String(), SendQ: s.SendQ, Info: *i}
	if i.RTOFired() {
		a.t.Retransmitting++
		a.t.OldestUnackedMS = max(a.t.OldestUnackedMS, i.LastAckRecv.Milliseconds())
		if o.Retransmits > 0 && int(i.Retransmits) >= o.Retransmits {
			p.Retransmitting = append(p.Retransmitting, ev)
		}
	}
	if windowClosed(s, o.ZeroWindowProbes) {
		a.t.ZeroWindow++
		p.ZeroWindow = append(p.ZeroWindow, ev)
	}
}

func (a *tcpAcc) summary() *PeerTCP {
	t := a.t
	if len(a.rtts) > 0 {
		slices.Sort(a.rtts)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		n := len(a.rtts)
		med := a.rtts[n/2]
		if n%2 == 0 {
			med = (a.rtts[n/2-1] + a.rtts[n/2]) / 2
		}
		t.RTTms = RTTSummary{Min: ms(a.rtts[0]), Median: ms(med), Max: ms(a.rtts[n-1])}
	}
	return &t
}

// draining reports whether a socket with bytes in Send-Q is moving them:
// without tcp_info nothing says so; with it, the queue is stuck when the
// retransmission timer fired on unacknowledged data (no ACK for at least
// one RTO) or the peer's window stayed closed, and draining otherwise
// (ACKs arrive and the window is open: the bytes are in flight).
func draining(s *Socket, o *AggregateOptions) bool {
	if s.TCP == nil {
		return false
	}
	return !s.TCP.RTOFired() && !windowClosed(s, max(o.ZeroWindowProbes, 1))
}

// TCPInfoWanted returns the positions in socks of the sockets whose
// tcp_info Aggregate and Findings use, for a source that reads the table
// first and tcp_info only where it matters (pkg/sockdiag's two steps):
// among the sockets o keeps, those with bytes in Send-Q in a state that
// still sends (every tcp_info finding, the stuck-queue evidence and the
// per-peer unacknowledged, retransmitting and zero-window counts concern
// them alone) and, with --peer, every one that has tcp_info at all, for
// the per-peer RTT and retransmission figures of the peers asked about.
func TCPInfoWanted(socks []Socket, o AggregateOptions) []int {
	var want []int
	if len(o.Peers) == 0 {
		// Without --peer only --state filters: no classification needed.
		for i := range socks {
			s := &socks[i]
			if s.SendQ > 0 && canSend(s.State) && (o.States == nil || o.States[s.State]) {
				want = append(want, i)
			}
		}
		return want
	}
	cl := NewClassifier(socks, cmp.Or(o.Ephemeral, DefaultEphemeral))
	for i := range socks {
		s := &socks[i]
		if s.State == Listen || s.State == TimeWait {
			continue // the kernel has no tcp_info for them
		}
		_, addr, port := cl.Classify(*s)
		if o.keep(s.State, addr, port) {
			want = append(want, i)
		}
	}
	return want
}
