package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// recorded returns the dumps TestNetlinkAgreesWithProc -record wrote.
func recorded(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "dump", "*.bin"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no recorded dumps under testdata/dump: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// The recorded dumps of the state zoo parse into the sockets it held.
func TestParseRecordedDumps(t *testing.T) {
	dumps := recorded(t)
	d := NewDump(0)
	for _, name := range []string{"zoo-v4.bin", "zoo-v6.bin"} {
		done, err := d.ParseDump(dumps[name])
		if err != nil || !done {
			t.Fatalf("%s: done %v err %v", name, done, err)
		}
	}
	src := d.Source
	if src.Malformed != 0 || src.Sockets != len(d.Sockets) || src.IPv4 == 0 || src.IPv6 == 0 || src.Interrupted {
		t.Fatalf("source %+v", src)
	}
	var states sockstat.StateCounts
	for _, s := range d.Sockets {
		states[s.State]++
	}
	for _, st := range []sockstat.State{sockstat.Established, sockstat.Listen, sockstat.CloseWait, sockstat.FinWait2,
		sockstat.TimeWait, sockstat.SynSent, sockstat.SynRecv, sockstat.FinWait1, sockstat.LastAck} {
		if states[st] == 0 {
			t.Errorf("no %s socket in the recorded zoo: %v", st, states)
		}
	}
	var sawV6, sawMapped, sawSendQ, sawSyn bool
	for _, s := range d.Sockets {
		switch {
		case s.Local.Addr() == netip.MustParseAddr("::1") && s.State == sockstat.Established:
			sawV6 = true
		case s.Local.Addr() == netip.MustParseAddr("127.0.0.10") && s.Remote.Addr() == netip.MustParseAddr("127.0.0.9"):
			// The dual-stack listener's accepted end came in tcp6 as
			// ::ffff:127.0.0.10 and is shown as IPv4.
			sawMapped = true
		}
		if s.State == sockstat.Established && s.SendQ > 0 && s.TCP != nil && s.TCP.HasSndWnd && s.TCP.SndWnd == 0 {
			sawSendQ = true // the helper's never-reading server closed its window
		}
		if s.State == sockstat.SynSent {
			sawSyn = s.TCP != nil && s.TCP.Unacked == 1 && s.TCP.RTO >= 200*time.Millisecond
		}
		if s.State == sockstat.Listen && (s.TCP != nil || s.SendQ != 0) {
			t.Errorf("listener %+v: no tcp_info, Send-Q 0 as in /proc", s)
		}
	}
	if !sawV6 || !sawMapped || !sawSendQ || !sawSyn {
		t.Errorf("v6 %v mapped %v zero-window Send-Q %v SYN_SENT %v", sawV6, sawMapped, sawSendQ, sawSyn)
	}
}

// Requests: the per-family inet_diag_req_v2 and the compatibility
// inet_diag_req that asks for both families at once.
func TestRequestMarshal(t *testing.T) {
	v2 := Request{Family: afInet6, States: StateMask(sockstat.Established), Info: true}
	b := v2.MarshalBinary()
	if v2.Type() != sockDiagByFamily || len(b) != reqLen || b[0] != afInet6 || b[1] != ipprotoTCP || b[2] != 2 ||
		binary.NativeEndian.Uint32(b[4:]) != 1<<sockstat.Established {
		t.Errorf("v2 request %d %x", v2.Type(), b)
	}
	compat := Request{States: AllStates}
	b = compat.MarshalBinary()
	if compat.Type() != tcpDiagGetSock || len(b) != compatLen || b[0] != afUnspec || b[3] != 0 ||
		binary.NativeEndian.Uint32(b[52:]) != AllStates {
		t.Errorf("compat request %d %x", compat.Type(), b)
	}
}

// A reply to the compatibility request carries its type; it parses the
// same as SOCK_DIAG_BY_FAMILY.
func TestParseCompatReply(t *testing.T) {
	for _, typ := range []uint16{sockDiagByFamily, tcpDiagGetSock} {
		d := NewDump(0)
		b := append(msgHeader(typ, 0, diagMsg(afInet, uint8(sockstat.Established))), msgHeader(nlmsgDone, 0, make([]byte, 4))...)
		done, err := d.ParseDump(b)
		if err != nil || !done || len(d.Sockets) != 1 || d.Sockets[0].SendQ != 4 || d.Source.Malformed != 0 {
			t.Errorf("type %d: done %v err %v %+v %+v", typ, done, err, d.Sockets, d.Source)
		}
	}
}

func msgHeader(typ, flags uint16, payload []byte) []byte {
	return appendMsg(nil, typ, flags, payload)
}

func diagMsg(family, state uint8, attrs ...[]byte) []byte {
	b := make([]byte, msgLen)
	b[0], b[1] = family, state
	binary.BigEndian.PutUint16(b[4:], 9200)
	binary.BigEndian.PutUint16(b[6:], 40000)
	copy(b[8:], []byte{127, 0, 0, 1})
	copy(b[24:], []byte{127, 0, 0, 2})
	binary.NativeEndian.PutUint32(b[56:], 3)  // rqueue
	binary.NativeEndian.PutUint32(b[60:], 4)  // wqueue
	binary.NativeEndian.PutUint32(b[64:], 42) // uid
	binary.NativeEndian.PutUint32(b[68:], 77) // inode
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func attr(typ uint16, payload []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(payload)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseMessage(t *testing.T) {
	info := make([]byte, 232)
	info[2], info[3], info[4] = 5, 0, 4                // retransmits, probes, backoff
	binary.NativeEndian.PutUint32(info[8:], 3_200_000) // rto us
	binary.NativeEndian.PutUint32(info[24:], 7)        // unacked
	binary.NativeEndian.PutUint32(info[56:], 12_345)   // last_ack_recv ms
	binary.NativeEndian.PutUint32(info[68:], 1500)     // rtt us
	binary.NativeEndian.PutUint32(info[100:], 9)       // total_retrans
	binary.NativeEndian.PutUint32(info[228:], 0)       // snd_wnd
	var ti sockstat.TCPInfo
	s, err := ParseMessage(diagMsg(afInet, 1, attr(8, []byte{0}), attr(attrInfo, info)), &ti)
	if err != nil {
		t.Fatal(err)
	}
	want := sockstat.Socket{
		Local: netip.MustParseAddrPort("127.0.0.1:9200"), Remote: netip.MustParseAddrPort("127.0.0.2:40000"),
		State: sockstat.Established, RecvQ: 3, SendQ: 4, UID: 42, Inode: 77, TCP: &ti,
	}
	if s != want {
		t.Errorf("got %+v\nwant %+v", s, want)
	}
	if ti.Retransmits != 5 || ti.Backoff != 4 || ti.RTO != 3200*time.Millisecond || ti.Unacked != 7 ||
		ti.LastAckRecv != 12345*time.Millisecond || ti.RTT != 1500*time.Microsecond || ti.TotalRetrans != 9 || !ti.HasSndWnd {
		t.Errorf("info %+v", ti)
	}
	if !ti.RTOFired() || !ti.ZeroWindow(1) || ti.ZeroWindow(0) {
		t.Errorf("RTOFired %v ZeroWindow %v", ti.RTOFired(), ti.ZeroWindow(1))
	}
	// A kernel before 5.4 sends a shorter tcp_info: no peer window.
	s, err = ParseMessage(diagMsg(afInet, 1, attr(attrInfo, info[:minInfoLen])), &ti)
	if err != nil || s.TCP == nil || ti.HasSndWnd || ti.Unacked != 7 {
		t.Errorf("short tcp_info: %v %+v", err, ti)
	}

	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", make([]byte, 10), "10 bytes, want at least 72"},
		{"state", diagMsg(afInet, 13), "state 13"},
		{"family", diagMsg(7, 1), "address family 7"},
		{"attr length", append(diagMsg(afInet, 1), 200, 0, 2, 0), "attribute 2 of length 200"},
		{"attr tail", append(diagMsg(afInet, 1), 1, 2), "2 trailing bytes"},
		{"short info", diagMsg(afInet, 1, attr(attrInfo, make([]byte, 50))), "tcp_info of 50 bytes"},
	} {
		_, err := ParseMessage(c.b, &ti)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// A bad message is counted and named, the rest of the dump still counts;
// a kernel error ends the dump with that error.
func TestParseDumpMalformed(t *testing.T) {
	var b []byte
	b = append(b, msgHeader(sockDiagByFamily, 2, diagMsg(afInet, 1))...)
	b = append(b, msgHeader(sockDiagByFamily, 2, diagMsg(afInet, 99))...)
	b = append(b, msgHeader(77, 2, nil)...)
	b = append(b, msgHeader(sockDiagByFamily, 2|flagDumpIntr, diagMsg(afInet6, 10))...)
	b = append(b, msgHeader(nlmsgDone, 2, []byte{0, 0, 0, 0})...)
	d := NewDump(0)
	done, err := d.ParseDump(b)
	if err != nil || !done {
		t.Fatal(done, err)
	}
	src := d.Source
	if src.Sockets != 2 || src.IPv4 != 1 || src.IPv6 != 1 || src.Malformed != 2 || !src.Interrupted ||
		fmt.Sprint(src.MalformedMessages) != "[malformed sock_diag message: state 99 malformed sock_diag message: message type 77]" {
		t.Errorf("source %+v", src)
	}
	errno := make([]byte, 4)
	binary.NativeEndian.PutUint32(errno, uint32(0xffffffff-1)) // -2: ENOENT
	_, err = NewDump(0).ParseDump(msgHeader(nlmsgError, 0, errno))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("NLMSG_ERROR: %v", err)
	}
	for _, bad := range [][]byte{{1, 2, 3}, msgHeader(sockDiagByFamily, 0, nil)[:8], append(msgHeader(1, 0, nil), 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9)} {
		if _, err := NewDump(0).ParseDump(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

// FuzzParseDump: a dump never panics, and what it accepts is consistent:
// every socket counted once, in a named state, tcp_info never on a
// listener.
func FuzzParseDump(f *testing.F) {
	for _, b := range recorded(f) {
		f.Add(b)
	}
	f.Add(msgHeader(sockDiagByFamily, 2, diagMsg(afInet, 1, attr(attrInfo, make([]byte, 232)))))
	f.Add(msgHeader(tcpDiagGetSock, 2, diagMsg(afInet6, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDump(0)
		_, _ = d.ParseDump(b)
		src := d.Source
		if src.Sockets != len(d.Sockets) || src.IPv4+src.IPv6 != src.Sockets || len(src.MalformedMessages) > maxMalformedKept {
			t.Fatalf("source %+v with %d sockets", src, len(d.Sockets))
		}
		withInfo := 0
		for _, s := range d.Sockets {
			if !s.State.Valid() || !s.Local.IsValid() || !s.Remote.IsValid() {
				t.Fatalf("socket %+v", s)
			}
			if s.TCP != nil {
				withInfo++
				if s.State == sockstat.Listen {
					t.Fatalf("tcp_info on a listener: %+v", s)
				}
			}
		}
		if withInfo != src.TCPInfo {
			t.Fatalf("tcp_info %d, counted %d", withInfo, src.TCPInfo)
		}
	})
}

// FuzzParseMessage: one message never panics; an accepted one has a named
// state and tcp_info only where asked for.
func FuzzParseMessage(f *testing.F) {
	for _, b := range recorded(f) {
		for len(b) >= nlmsgHdrLen {
			l := int(binary.NativeEndian.Uint32(b))
			if l < nlmsgHdrLen || l > len(b) {
				break
			}
			f.Add(b[nlmsgHdrLen:l])
			b = b[align4(l):]
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ti sockstat.TCPInfo
		s, err := ParseMessage(b, &ti)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if !s.State.Valid() || (s.TCP != nil && s.TCP != &ti) {
			t.Fatalf("socket %+v", s)
		}
	})
}

// BenchmarkParseDump parses a 30,000-socket dump (the size bench/sockets.sh
// holds) the way a live read does, datagram by datagram of up to 32 KiB:
// the allocations are the socket table and the tcp_info blocks, not one
// per socket.
// FuzzLookupReplies feeds the parser of exact-lookup replies: whatever the
// datagram holds, it neither panics nor finds more sockets than it saw
// replies, and it only sets tcp_info on the sockets asked for, from their
// slots.
func FuzzLookupReplies(f *testing.F) {
	one := msgHeader(sockDiagByFamily, 0, diagMsg(afInet, 1, attr(attrInfo, make([]byte, 232))))
	binary.NativeEndian.PutUint32(one[8:], 2) // seq: the second of the batch
	gone := msgHeader(nlmsgError, 0, binary.NativeEndian.AppendUint32(nil, uint32(0xfffffffe)))
	binary.NativeEndian.PutUint32(gone[8:], 1)
	f.Add(append(gone, one...))
	f.Add(one[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDump(0)
		for range 3 {
			d.Sockets = append(d.Sockets, sockstat.Socket{State: sockstat.Established})
			d.ids = append(d.ids, sockID{})
		}
		idx := []int{0, 2}
		infos := make([]sockstat.TCPInfo, len(idx))
		replies, found, err := lookupReplies(d, idx, infos, b, 0, len(idx))
		if err == nil && (found > replies || replies > len(b)/nlmsgHdrLen) {
			t.Fatalf("%d replies, %d found from %d bytes", replies, found, len(b))
		}
		if d.Sockets[1].TCP != nil {
			t.Fatal("tcp_info for a socket not asked for")
		}
		for k, i := range idx {
			if s := d.Sockets[i]; s.TCP != nil && s.TCP != &infos[k] {
				t.Fatal("tcp_info outside its slot")
			}
		}
	})
}

func BenchmarkParseDump(b *testing.B) {
	info := make([]byte, 248)
	var datagrams [][]byte
	var cur []byte
	for i := range 30000 {
		m := diagMsg(afInet, uint8(1+i%10), attr(8, []byte{0}), attr(attrInfo, info))
		binary.BigEndian.PutUint16(m[6:], uint16(i))
		msg := msgHeader(sockDiagByFamily, 2, m)
		if len(cur)+len(msg) > 32<<10 {
			datagrams = append(datagrams, cur)
			cur = nil
		}
		cur = append(cur, msg...)
	}
	datagrams = append(datagrams, append(cur, msgHeader(nlmsgDone, 2, []byte{0, 0, 0, 0})...))
	b.ReportAllocs()
	for b.Loop() {
		d := NewDump(30000)
		for _, dg := range datagrams {
			if _, err := d.ParseDump(dg); err != nil {
				b.Fatal(err)
			}
		}
		if len(d.Sockets) != 30000 {
			b.Fatalf("%d sockets", len(d.Sockets))
		}
	}
	b.StopTimer()
	allocs := testing.AllocsPerRun(3, func() {
		d := NewDump(30000)
		for _, dg := range datagrams {
			_, _ = d.ParseDump(dg)
		}
	})
	b.ReportMetric(allocs/30000, "allocs/socket")
}
