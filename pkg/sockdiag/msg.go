// Package sockdiag reads the kernel's TCP socket table through sock_diag
// netlink (NETLINK_INET_DIAG), the binary interface ss uses, filtered by
// state in the kernel, with each connection's tcp_info where it is asked
// for. The message parsers are pure functions over byte slices, so
// recorded dumps (testdata/) and fuzzing exercise exactly what a live
// dump runs through.
//
// Reading a large table is two steps, because tcp_info is the expensive
// part of a dump (the kernel computes it and copies ~240 bytes per
// socket) and only a few sockets need it:
//
//  1. Conn.Dump without tcp_info: the census every count, peer and
//     process is built from, as cheap as `ss -tan`. Both address families
//     come in one walk of the kernel's hash tables (the inet_diag
//     compatibility request, which ss uses too; two per-family dumps
//     where a kernel refuses it).
//  2. Conn.AddInfo for the sockets that need evidence (in logdoctor:
//     those with data in Send-Q, and those matching --peer): exact
//     lookups by address, port and socket cookie, several to a syscall,
//     or one more dump with tcp_info when so many are wanted that a dump
//     is cheaper. A socket that closed between the two steps keeps its
//     census entry without tcp_info and is counted in
//     DiagSource.TCPInfoVanished; the cookie makes sure a new connection
//     that reused the addresses is not taken for it.
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// Wire constants from linux/inet_diag.h, linux/sock_diag.h and
// linux/netlink.h; golang.org/x/sys/unix has the netlink ones but no
// inet_diag types.
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpDiagGetSock   = 18 // TCPDIAG_GETSOCK: the compatibility request, any family

	nlmsgNoop  = 1 // NLMSG_NOOP
	nlmsgError = 2 // NLMSG_ERROR
	nlmsgDone  = 3 // NLMSG_DONE

	flagDumpIntr = 0x10 // NLM_F_DUMP_INTR

	nlmsgHdrLen = 16 // struct nlmsghdr
	reqLen      = 56 // struct inet_diag_req_v2
	compatLen   = 60 // struct inet_diag_req
	sockIDLen   = 48 // struct inet_diag_sockid
	msgLen      = 72 // struct inet_diag_msg

	attrInfo = 2 // INET_DIAG_INFO: struct tcp_info

	afUnspec = 0
	afInet   = 2
	afInet6  = 10

	ipprotoTCP = 6
)

// minInfoLen is how much of struct tcp_info every kernel since 3.x sends
// (through tcpi_total_retrans); later fields are read when present.
const minInfoLen = 104

// ErrMalformed marks a netlink message that could not be parsed.
var ErrMalformed = errors.New("malformed sock_diag message")

// AllStates is the kernel-side state filter that keeps every TCP state.
var AllStates = StateMask(sockstat.AllStates()...)

// StateMask is the idiag_states bitmask selecting states in the kernel,
// before any socket is copied to user space.
func StateMask(states ...sockstat.State) uint32 {
	var m uint32
	for _, s := range states {
		if s.Valid() {
			m |= 1 << s
		}
	}
	return m
}

// Request is one dump request for TCP.
type Request struct {
	// Family is afInet or afInet6 (an inet_diag_req_v2), or afUnspec for
	// both in one walk (the compatibility inet_diag_req, TCPDIAG_GETSOCK).
	Family uint8
	States uint32 // StateMask
	Info   bool   // ask for tcp_info (INET_DIAG_INFO)
}

// Type is the netlink message type that carries r.
func (r Request) Type() uint16 {
	if r.Family == afUnspec {
		return tcpDiagGetSock
	}
	return sockDiagByFamily
}

// MarshalBinary encodes r as the payload of a message of type r.Type().
// The socket id stays zero: a dump matches every socket.
func (r Request) MarshalBinary() []byte {
	var ext byte
	if r.Info {
		ext = 1 << (attrInfo - 1)
	}
	if r.Family == afUnspec {
		// struct inet_diag_req: family, src_len, dst_len, ext, the
		// socket id, states, dbs.
		b := make([]byte, compatLen)
		b[3] = ext
		binary.NativeEndian.PutUint32(b[4+sockIDLen:], r.States)
		return b
	}
	b := make([]byte, reqLen)
	b[0] = r.Family
	b[1] = ipprotoTCP
	b[2] = ext
	binary.NativeEndian.PutUint32(b[4:], r.States)
	return b
}

// sockID is what an exact lookup needs beyond the addresses and ports a
// Socket keeps: the family the kernel reported (a dual-stack socket's
// IPv4-mapped addresses are unmapped in the Socket), the interface a
// socket is bound to, and the cookie that tells this socket from a later
// one on the same addresses.
type sockID struct {
	cookie  uint64
	ifindex uint32
	family  uint8
}

// lookupRequest encodes the inet_diag_req_v2 of an exact lookup of s,
// asking for tcp_info.
func lookupRequest(b []byte, s *sockstat.Socket, id sockID) {
	clear(b[:reqLen])
	b[0] = id.family
	b[1] = ipprotoTCP
	b[2] = 1 << (attrInfo - 1)
	binary.NativeEndian.PutUint32(b[4:], AllStates)
	binary.BigEndian.PutUint16(b[8:], s.Local.Port())
	binary.BigEndian.PutUint16(b[10:], s.Remote.Port())
	if id.family == afInet {
		a, r := s.Local.Addr().As4(), s.Remote.Addr().As4()
		copy(b[12:], a[:])
		copy(b[28:], r[:])
	} else {
		a, r := s.Local.Addr().As16(), s.Remote.Addr().As16()
		copy(b[12:], a[:])
		copy(b[28:], r[:])
	}
	binary.NativeEndian.PutUint32(b[44:], id.ifindex)
	binary.NativeEndian.PutUint64(b[48:], id.cookie)
}

// messageID reads the family, interface and cookie of an inet_diag_msg
// of at least msgLen bytes.
func messageID(b []byte) sockID {
	return sockID{family: b[0], ifindex: binary.NativeEndian.Uint32(b[40:]), cookie: binary.NativeEndian.Uint64(b[44:])}
}

// ParseMessage parses the payload of one SOCK_DIAG_BY_FAMILY reply (an
// inet_diag_msg and its attributes) into a Socket. When the message
// carries tcp_info for a socket that has one (not LISTEN: there the
// kernel reports accept-queue figures in those fields), it is decoded into
// *info and the Socket points at it, so a caller can keep infos in a slab
// instead of allocating one per socket.
//
// Queues follow /proc/net/tcp, so both sources agree socket for socket:
// for a listener Recv-Q is the accept backlog and Send-Q is 0 (sock_diag
// puts the backlog limit there, which is what ss shows).
func ParseMessage(b []byte, info *sockstat.TCPInfo) (sockstat.Socket, error) {
	var s sockstat.Socket
	if len(b) < msgLen {
		return s, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(b), msgLen)
	}
	family, state := b[0], sockstat.State(b[1])
	if !state.Valid() {
		return s, fmt.Errorf("%w: state %d", ErrMalformed, b[1])
	}
	s.State = state
	sport := binary.BigEndian.Uint16(b[4:])
	dport := binary.BigEndian.Uint16(b[6:])
	switch family {
	case afInet:
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[8:12])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[24:28])), dport)
	case afInet6:
		// Dual-stack sockets carry IPv4-mapped addresses: shown as the
		// IPv4 addresses they are, as the /proc parser does.
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])).Unmap(), dport)
	default:
		return s, fmt.Errorf("%w: address family %d", ErrMalformed, family)
	}
	timer := b[2]
	s.RecvQ = uint64(binary.NativeEndian.Uint32(b[56:]))
	s.SendQ = uint64(binary.NativeEndian.Uint32(b[60:]))
	s.UID = binary.NativeEndian.Uint32(b[64:])
	s.Inode = uint64(binary.NativeEndian.Uint32(b[68:]))
	if state == sockstat.Listen {
		s.SendQ = 0
	}
	for a := b[msgLen:]; len(a) > 0; {
		if len(a) < 4 {
			return s, fmt.Errorf("%w: %d trailing bytes after the attributes", ErrMalformed, len(a))
		}
		l := int(binary.NativeEndian.Uint16(a))
		typ := binary.NativeEndian.Uint16(a[2:]) &^ 0xc000 // NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if l < 4 || l > len(a) {
			return s, fmt.Errorf("%w: attribute %d of length %d in %d bytes", ErrMalformed, typ, l, len(a))
		}
		if typ == attrInfo && info != nil && state != sockstat.Listen {
			if err := parseInfo(a[4:l], info); err != nil {
				return s, err
			}
			info.Timer = sockstat.Timer(timer)
			s.TCP = info
		}
		a = a[min(align4(l), len(a)):]
	}
	return s, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// parseInfo decodes struct tcp_info, as much of it as this kernel sends.
// Offsets are the kernel's (include/uapi/linux/tcp.h); times are in
// milliseconds and RTTs in microseconds there.
func parseInfo(b []byte, i *sockstat.TCPInfo) error {
	if len(b) < minInfoLen {
		return fmt.Errorf("%w: tcp_info of %d bytes, want at least %d", ErrMalformed, len(b), minInfoLen)
	}
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
	ms := func(off int) time.Duration { return time.Duration(u32(off)) * time.Millisecond }
	us := func(off int) time.Duration { return time.Duration(u32(off)) * time.Microsecond }
	*i = sockstat.TCPInfo{
		Retransmits:  b[2],
		Probes:       b[3],
		Backoff:      b[4],
		RTO:          us(8),
		Unacked:      u32(24),
		Lost:         u32(32),
		LastDataSent: ms(44),
		LastDataRecv: ms(52),
		LastAckRecv:  ms(56),
		RTT:          us(68),
		RTTVar:       us(72),
		TotalRetrans: u32(100),
	}
	if len(b) >= 136 {
		i.BytesAcked = binary.NativeEndian.Uint64(b[120:])
		i.BytesReceived = binary.NativeEndian.Uint64(b[128:])
	}
	if len(b) >= 152 {
		i.NotSent = u32(144)
		i.MinRTT = us(148)
	}
	if len(b) >= 216 {
		i.BytesRetrans = binary.NativeEndian.Uint64(b[208:])
	}
	if len(b) >= 232 {
		i.SndWnd, i.HasSndWnd = u32(228), true
	}
	return nil
}

// maxMalformedKept caps the malformed messages kept with their reason; the
// rest are only counted.
const maxMalformedKept = 20

// Dump collects the sockets of one or more dumps.
type Dump struct {
	Sockets []sockstat.Socket
	Source  sockstat.DiagSource
	// infos holds the decoded tcp_info in fixed-size blocks, so the
	// pointers in Sockets stay valid as it grows and a 30,000-socket dump
	// costs a few dozen allocations, not 30,000.
	infos []sockstat.TCPInfo
	// ids is parallel to Sockets: what Conn.AddInfo looks them up by.
	ids []sockID
}

const infoBlock = 1024

// NewDump prepares a Dump for about n sockets.
func NewDump(n int) *Dump {
	return &Dump{Sockets: make([]sockstat.Socket, 0, n), ids: make([]sockID, 0, n)}
}

// Add handles one netlink message of a dump reply: its type, flags and
// payload. It returns done when the dump is complete (NLMSG_DONE) and an
// error when the kernel reported one; a message it cannot parse is
// counted in Source and the dump goes on.
func (d *Dump) Add(typ, flags uint16, payload []byte) (done bool, err error) {
	if flags&flagDumpIntr != 0 {
		d.Source.Interrupted = true
	}
	if typ != sockDiagByFamily && typ != tcpDiagGetSock { // the reply's type is the request's
		return d.control(typ, payload)
	}
	d.Source.Messages++
	if len(d.infos) == cap(d.infos) {
		// Blocks grow 64, 256, 1024: small dumps stay small.
		d.infos = make([]sockstat.TCPInfo, 0, min(max(4*cap(d.infos), 64), infoBlock))
	}
	d.infos = d.infos[:len(d.infos)+1]
	info := &d.infos[len(d.infos)-1]
	s, err := ParseMessage(payload, info)
	if err != nil {
		d.infos = d.infos[:len(d.infos)-1]
		d.malformed(err)
		return false, nil
	}
	if s.TCP == nil {
		d.infos = d.infos[:len(d.infos)-1]
	} else {
		d.Source.TCPInfo++
	}
	if payload[0] == afInet {
		d.Source.IPv4++
	} else {
		d.Source.IPv6++
	}
	d.Source.Sockets++
	d.Sockets = append(d.Sockets, s)
	d.ids = append(d.ids, messageID(payload))
	return false, nil
}

// control handles a message of a dump reply that is not a socket.
func (d *Dump) control(typ uint16, payload []byte) (done bool, err error) {
	switch typ {
	case nlmsgDone:
		if len(payload) >= 4 {
			if e := int32(binary.NativeEndian.Uint32(payload)); e < 0 {
				return true, fmt.Errorf("sock_diag dump: %w", unix.Errno(-e))
			}
		}
		return true, nil
	case nlmsgError:
		if len(payload) < 4 {
			return true, fmt.Errorf("%w: short NLMSG_ERROR", ErrMalformed)
		}
		if e := int32(binary.NativeEndian.Uint32(payload)); e < 0 {
			return true, fmt.Errorf("sock_diag dump: %w", unix.Errno(-e))
		}
		return false, nil // an ACK
	case nlmsgNoop:
		return false, nil
	}
	d.malformed(fmt.Errorf("%w: message type %d", ErrMalformed, typ))
	return false, nil
}

func (d *Dump) malformed(err error) {
	d.Source.Malformed++
	if len(d.Source.MalformedMessages) < maxMalformedKept {
		d.Source.MalformedMessages = append(d.Source.MalformedMessages, err.Error())
	}
}

// ParseDump parses a recorded dump reply: netlink messages back to back,
// as recvmsg returns them. It stops at NLMSG_DONE; bytes that do not form
// a netlink header end the walk with an error.
func (d *Dump) ParseDump(b []byte) (done bool, err error) {
	return walkMessages(b, d.Add)
}

// walkMessages hands each netlink message of a datagram to fn until fn
// reports done or fails.
func walkMessages(b []byte, fn func(typ, flags uint16, payload []byte) (done bool, err error)) (bool, error) {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, fmt.Errorf("%w: %d bytes left, want a %d-byte header", ErrMalformed, len(b), nlmsgHdrLen)
		}
		l := int(binary.NativeEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return false, fmt.Errorf("%w: message length %d with %d bytes left", ErrMalformed, l, len(b))
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		flags := binary.NativeEndian.Uint16(b[6:])
		done, err := fn(typ, flags, b[nlmsgHdrLen:l])
		if done || err != nil {
			return done, err
		}
		b = b[min(align4(l), len(b)):]
	}
	return false, nil
}
