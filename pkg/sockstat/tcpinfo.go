package sockstat

import "time"

// TCPInfo is the kernel's per-connection evidence (struct tcp_info plus the
// timer of inet_diag_msg) that only the netlink source carries: whether
// data is being acknowledged, retransmitted, or held back by the peer's
// window. /proc/net/tcp has none of it.
type TCPInfo struct {
	// Timer is the timer pending on the socket (inet_diag's idiag_timer,
	// /proc's "tr" column).
	Timer Timer
	// Retransmits counts retransmission timeouts in a row without an ACK
	// making progress (icsk_retransmits); 0 once data is acknowledged again.
	Retransmits uint8
	// Probes counts unanswered zero-window (or keepalive) probes.
	Probes uint8
	// Backoff is how many times the retransmission or probe timeout has
	// doubled (icsk_backoff).
	Backoff uint8
	// RTO is the current retransmission timeout, backoff included.
	RTO time.Duration
	// RTT is the smoothed round-trip time; MinRTT the lowest seen.
	RTT, RTTVar, MinRTT time.Duration
	// Unacked counts segments sent and not yet acknowledged; Lost those
	// the sender considers lost.
	Unacked, Lost uint32
	// TotalRetrans counts every segment retransmitted over the
	// connection's life.
	TotalRetrans uint32
	// LastDataSent, LastDataRecv and LastAckRecv are how long ago data was
	// last sent (retransmissions included), data last arrived, and an ACK
	// last arrived.
	LastDataSent, LastDataRecv, LastAckRecv time.Duration
	// SndWnd is the receive window the peer last advertised, in bytes;
	// HasSndWnd is false on kernels before 5.4, which do not report it.
	SndWnd    uint32
	HasSndWnd bool
	// NotSent is the part of Send-Q not yet sent at all.
	NotSent uint32
	// BytesAcked and BytesReceived count the connection's payload bytes
	// acknowledged by the peer and received from it; BytesRetrans the
	// bytes retransmitted.
	BytesAcked, BytesReceived, BytesRetrans uint64
}

// Timer is a socket's pending timer as inet_diag and /proc number it.
type Timer uint8

const (
	TimerNone       Timer = 0
	TimerRetransmit Timer = 1 // retransmission (or SYN-ACK) timer
	TimerKeepalive  Timer = 2 // keepalive, also FIN_WAIT2
	TimerTimeWait   Timer = 3
	TimerProbe      Timer = 4 // zero-window probe (persist) timer
)

// String names the timer the way ss does.
func (t Timer) String() string {
	switch t {
	case TimerNone:
		return "off"
	case TimerRetransmit:
		return "on"
	case TimerKeepalive:
		return "keepalive"
	case TimerTimeWait:
		return "timewait"
	case TimerProbe:
		return "persist"
	}
	return "unknown"
}

// RTOFired reports whether the retransmission timer has fired on data
// still unacknowledged: no ACK has made progress for at least one RTO.
func (i *TCPInfo) RTOFired() bool { return i.Retransmits > 0 && i.Unacked > 0 }

// ZeroWindow reports whether the peer's advertised window is zero while
// this side has data to send, so the kernel is probing instead of sending.
// On kernels without tcpi_snd_wnd the running probe timer says the same.
func (i *TCPInfo) ZeroWindow(sendQ uint64) bool {
	if sendQ == 0 {
		return false
	}
	if i.HasSndWnd {
		return i.SndWnd == 0
	}
	return i.Timer == TimerProbe
}
