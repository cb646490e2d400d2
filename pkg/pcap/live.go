package pcap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ErrNoCapNetRaw means the process may not open packet sockets.
var ErrNoCapNetRaw = errors.New("live capture needs the CAP_NET_RAW capability (run as root, `setcap cap_net_raw+ep logdoctor`, or add NET_RAW to the container's securityContext.capabilities); without it, capture with tcpdump elsewhere and analyze the file with --read FILE")

// LiveConfig says what to capture.
type LiveConfig struct {
	Interfaces []net.Interface
	Ports      []uint16
	Snaplen    int
	Duration   time.Duration // 0: until ctx ends or the Handler stops it
	// Write, when set, receives every captured packet (logdoctor's own
	// pcap writer, Ethernet link type; raw-IP interfaces are not written).
	Write *Writer
	// RcvBuf is the packet socket's receive buffer; 0 = 32 MiB.
	RcvBuf int
	// Ready, when set, is closed once every socket is open and filtered.
	Ready chan<- struct{}
}

// Handler receives a live capture's frames. Capture serialises its calls,
// so a Handler need not be safe for concurrent use.
type Handler interface {
	// Packet handles one frame; data is valid only during the call.
	// Returning true ends the capture.
	Packet(data []byte, m Meta) (stop bool)
	// Tick is called every half second with the wall clock, so state that
	// ages on packet time (reassembly timeouts) moves on when the wire is
	// quiet. Returning true ends the capture.
	Tick(now time.Time) (stop bool)
}

// CaptureStats is what the kernel says about a live capture.
type CaptureStats struct {
	Interfaces []string `json:"interfaces"`
	Received   uint64   `json:"kernel_received"`
	Dropped    uint64   `json:"kernel_dropped"` // PACKET_STATISTICS tp_drops: the capture fell behind
	Written    string   `json:"written,omitempty"`
}

// CheckCapNetRaw opens and closes a packet socket to tell a missing
// capability apart from every other failure.
func CheckCapNetRaw() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return fmt.Errorf("%w (%v)", ErrNoCapNetRaw, err)
		}
		return fmt.Errorf("open packet socket: %w", err)
	}
	unix.Close(fd)
	return nil
}

// Interfaces resolves names to interfaces; no names means every interface
// that is up.
func Interfaces(names []string) ([]net.Interface, error) {
	if len(names) > 0 && !(len(names) == 1 && names[0] == "any") {
		var out []net.Interface
		for _, n := range names {
			i, err := net.InterfaceByName(n)
			if err != nil {
				return nil, fmt.Errorf("interface %q: %w", n, err)
			}
			out = append(out, *i)
		}
		return out, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []net.Interface
	for _, i := range all {
		if i.Flags&net.FlagUp != 0 {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no interface is up")
	}
	return out, nil
}

// linkOf says how frames look on an AF_PACKET SOCK_RAW socket bound to i.
func linkOf(i net.Interface) (uint32, uint32) {
	if i.Flags&net.FlagLoopback != 0 || len(i.HardwareAddr) == 6 {
		return LinkEthernet, 14
	}
	return LinkRaw, 0
}

// htons puts a protocol number in network byte order, as sockaddr_ll and
// socket(2) want it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Control message sizes: PACKET_AUXDATA carries the frame's length on the
// wire, SO_TIMESTAMPNS (or SO_TIMESTAMP) the kernel's receive time.
var (
	cmsgHdrLen = unix.CmsgLen(0)
	auxLen     = unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{})))
	timespecSz = int(unsafe.Sizeof(unix.Timespec{}))
	timevalSz  = int(unsafe.Sizeof(unix.Timeval{}))
)

// packetSocket is one AF_PACKET socket bound to one interface, opened
// with golang.org/x/sys/unix so the capture owns its descriptor: it polls
// it (so Ctrl-C and --duration end a quiet capture), sizes its receive
// buffer (so bursts are not dropped) and reads errno values, not strings.
type packetSocket struct {
	iface net.Interface
	fd    int
	link  uint32
	buf   []byte // one frame, snaplen bytes
	oob   []byte // control messages of one frame
	msg   unix.Msghdr
	iov   unix.Iovec
}

func openLive(i net.Interface, lc LiveConfig) (*packetSocket, error) {
	link, hdr := linkOf(i)
	// Protocol 0: the socket receives nothing until bind names one, so no
	// frame can be queued before the filter is in place.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%w (%v)", ErrNoCapNetRaw, err)
		}
		return nil, fmt.Errorf("capture on %s: open packet socket: %w", i.Name, err)
	}
	s := &packetSocket{iface: i, fd: fd, link: link, buf: make([]byte, lc.Snaplen)}
	if err := s.setup(lc, hdr); err != nil {
		s.close()
		return nil, err
	}
	s.iov.Base = &s.buf[0]
	s.iov.SetLen(len(s.buf))
	s.msg.Iov = &s.iov
	s.msg.Iovlen = 1
	return s, nil
}

func (s *packetSocket) setup(lc LiveConfig, hdr uint32) error {
	name := s.iface.Name
	rb := lc.RcvBuf
	if rb <= 0 {
		rb = 32 << 20
	}
	if unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rb) != nil {
		_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rb)
	}
	// Without auxdata a frame's length on the wire is unknown and taken
	// to be what was read; without a kernel timestamp, the read time is.
	oob := 0
	if unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1) == nil {
		oob += auxLen
	}
	if unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil {
		oob += unix.CmsgSpace(timespecSz)
	} else if unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMP, 1) == nil {
		oob += unix.CmsgSpace(timevalSz)
	}
	if oob > 0 {
		s.oob = make([]byte, oob)
	}
	dropAll, _ := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err := s.setBPF(dropAll); err != nil {
		return fmt.Errorf("attach filter on %s: %w", name, err)
	}
	if err := unix.Bind(s.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: s.iface.Index}); err != nil {
		return fmt.Errorf("capture on %s: bind: %w", name, err)
	}
	_, _ = unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS) // reset counters: they count since the last call
	prog, err := Filter(lc.Ports, hdr, s.iface.Flags&net.FlagLoopback != 0, uint32(lc.Snaplen))
	if err != nil {
		return err
	}
	if err := s.setBPF(prog); err != nil {
		return fmt.Errorf("attach filter on %s: %w", name, err)
	}
	return nil
}

func (s *packetSocket) setBPF(prog []bpf.RawInstruction) error {
	f := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return unix.SetsockoptSockFprog(s.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]})
}

// read returns the next frame, or unix.EAGAIN when none is queued. The
// data is valid until the next read. recvmsg is called directly because
// unix.Recvmsg allocates the sender's address for every frame.
func (s *packetSocket) read() ([]byte, Meta, error) {
	s.msg.Name, s.msg.Namelen = nil, 0
	if len(s.oob) > 0 {
		s.msg.Control = &s.oob[0]
		s.msg.SetControllen(len(s.oob))
	}
	s.msg.Flags = 0
	// MSG_TRUNC: the result is the frame's length even when the buffer
	// took less of it.
	n, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.msg)), unix.MSG_TRUNC)
	if e != 0 {
		return nil, Meta{}, e
	}
	m := Meta{CapLen: min(int(n), len(s.buf)), OrigLen: int(n), Link: s.link}
	oob := s.oob[:min(int(s.msg.Controllen), len(s.oob))]
	for len(oob) >= cmsgHdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < cmsgHdrLen || l > len(oob) {
			break
		}
		data := oob[cmsgHdrLen:l]
		switch {
		case h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && len(data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})):
			m.OrigLen = int((*unix.TpacketAuxdata)(unsafe.Pointer(&data[0])).Len)
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS && len(data) >= timespecSz:
			m.TimeNS = (*unix.Timespec)(unsafe.Pointer(&data[0])).Nano()
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMP && len(data) >= timevalSz:
			m.TimeNS = (*unix.Timeval)(unsafe.Pointer(&data[0])).Nano()
		}
		oob = oob[min(unix.CmsgSpace(l-cmsgHdrLen), len(oob)):]
	}
	if m.TimeNS == 0 {
		m.TimeNS = time.Now().UnixNano()
	}
	return s.buf[:m.CapLen], m, nil
}

// stats returns the frames the kernel handed to the socket and those it
// dropped because the socket's buffer was full, since the last call.
func (s *packetSocket) stats() (*unix.TpacketStats, error) {
	return unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
}

func (s *packetSocket) close() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// Capture hands live frames to h until ctx ends, Duration passes or h
// stops it. The kernel's own drop count for the capture sockets is
// returned with the interfaces used.
func Capture(ctx context.Context, lc LiveConfig, h Handler) (*CaptureStats, error) {
	if lc.Snaplen <= 0 {
		lc.Snaplen = DefaultSnaplen
	}
	if err := CheckCapNetRaw(); err != nil {
		return nil, err
	}
	var socks []*packetSocket
	defer func() {
		for _, s := range socks {
			s.close()
		}
	}()
	st := &CaptureStats{}
	for _, i := range lc.Interfaces {
		s, err := openLive(i, lc)
		if err != nil {
			return nil, err
		}
		socks = append(socks, s)
		st.Interfaces = append(st.Interfaces, i.Name)
	}
	if lc.Ready != nil {
		close(lc.Ready)
	}
	if lc.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lc.Duration)
		defer cancel()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		errs  = make([]error, len(socks))
		wrErr error
	)
	// A handler's clock may run on packet timestamps; the ticker moves it
	// on when the wire is quiet.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				mu.Lock()
				done := h.Tick(now)
				mu.Unlock()
				if done {
					stop()
					return
				}
			}
		}
	}()
	for n, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// a reader that keeps its thread is scheduled with less delay
			// between reads; at 100k pps every stall fills the buffer
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
			for ctx.Err() == nil {
				data, m, err := s.read()
				if err != nil {
					// The socket is non-blocking: under load it is read
					// back to back, and poll only runs once it is empty,
					// so an idle capture still notices ctx.
					if errors.Is(err, unix.EINTR) {
						continue
					}
					if !errors.Is(err, unix.EAGAIN) {
						errs[n] = fmt.Errorf("read %s: %w", s.iface.Name, err)
						stop()
						return
					}
					pfd[0].Revents = 0
					if _, err := unix.Poll(pfd, 100); err != nil && !errors.Is(err, unix.EINTR) {
						errs[n] = fmt.Errorf("poll %s: %w", s.iface.Name, err)
						stop()
						return
					}
					continue
				}
				mu.Lock()
				done := h.Packet(data, m)
				if lc.Write != nil && s.link == LinkEthernet && wrErr == nil {
					wrErr = lc.Write.WritePacket(time.Unix(0, m.TimeNS), data, m.OrigLen)
				}
				mu.Unlock()
				if done {
					stop()
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, s := range socks {
		if ks, err := s.stats(); err == nil {
			st.Received += uint64(ks.Packets)
			st.Dropped += uint64(ks.Drops)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return st, err
	}
	if wrErr != nil {
		return st, wrErr
	}
	return st, nil
}

// DefaultSnaplen is the bytes a live capture keeps of each packet when
// LiveConfig.Snaplen is zero: the largest a pcap file holds.
const DefaultSnaplen = 262144
