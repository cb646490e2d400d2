package pcap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/gopacket/pcapgo"
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
	Duration   time.Duration // 0: until ctx ends or Count
	Count      uint64        // stop after this many datagrams were classified; 0: no limit
	// Write, when set, receives every captured packet (logdoctor's own
	// pcap writer, Ethernet link type; raw-IP interfaces are not written).
	Write *Writer
	// RcvBuf is the packet socket's receive buffer; 0 = 32 MiB.
	RcvBuf int
	// Ready, when set, is closed once every socket is open and filtered.
	Ready chan<- struct{}
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

// handleFD digs the socket out of pcapgo's EthernetHandle, which keeps it
// unexported: the capture needs it to poll (so Ctrl-C and --duration end a
// quiet capture) and to enlarge the receive buffer (so bursts are not
// dropped). Reading an unexported int field through reflect is allowed.
func handleFD(h *pcapgo.EthernetHandle) (int, error) {
	v := reflect.ValueOf(h).Elem().FieldByName("fd")
	if !v.IsValid() || v.Kind() != reflect.Int {
		return -1, errors.New("pcapgo.EthernetHandle has no fd field")
	}
	return int(v.Int()), nil
}

type liveHandle struct {
	iface net.Interface
	h     *pcapgo.EthernetHandle
	fd    int
	link  uint32
}

func openLive(i net.Interface, lc LiveConfig) (*liveHandle, error) {
	link, hdr := linkOf(i)
	h, err := pcapgo.NewEthernetHandle(i.Name)
	if err != nil {
		if err2 := CheckCapNetRaw(); err2 != nil {
			return nil, err2
		}
		return nil, fmt.Errorf("capture on %s: %w", i.Name, err)
	}
	fd, err := handleFD(h)
	if err != nil {
		h.Close()
		return nil, err
	}
	lh := &liveHandle{iface: i, h: h, fd: fd, link: link}
	if err := h.SetCaptureLength(lc.Snaplen); err != nil {
		h.Close()
		return nil, fmt.Errorf("capture on %s: %w", i.Name, err)
	}
	rb := lc.RcvBuf
	if rb <= 0 {
		rb = 32 << 20
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rb) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rb)
	}
	// Frames queued before the filter was attached passed no filter: attach
	// a drop-all filter, drain, then attach the real one.
	dropAll, _ := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err := h.SetBPF(dropAll); err != nil {
		h.Close()
		return nil, fmt.Errorf("attach filter on %s: %w", i.Name, err)
	}
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		if err != nil || n == 0 {
			break
		}
		if _, _, err := h.ZeroCopyReadPacketData(); err != nil {
			break
		}
	}
	_, _ = h.Stats() // reset counters: they count since the last call
	if err := unix.SetNonblock(fd, true); err != nil {
		h.Close()
		return nil, fmt.Errorf("capture on %s: %w", i.Name, err)
	}
	inbound := i.Flags&net.FlagLoopback != 0
	prog, err := Filter(lc.Ports, hdr, inbound, uint32(lc.Snaplen))
	if err != nil {
		h.Close()
		return nil, err
	}
	if err := h.SetBPF(prog); err != nil {
		h.Close()
		return nil, fmt.Errorf("attach filter on %s: %w", i.Name, err)
	}
	return lh, nil
}

// Capture reads live packets into a until ctx ends, Duration passes or
// Count datagrams were classified. The kernel's own drop count for the
// capture sockets is returned with the interfaces used.
func Capture(ctx context.Context, lc LiveConfig, a *Analyzer) (*CaptureStats, error) {
	if lc.Snaplen <= 0 {
		lc.Snaplen = 262144
	}
	if err := CheckCapNetRaw(); err != nil {
		return nil, err
	}
	var handles []*liveHandle
	defer func() {
		for _, h := range handles {
			h.h.Close()
		}
	}()
	st := &CaptureStats{}
	for _, i := range lc.Interfaces {
		h, err := openLive(i, lc)
		if err != nil {
			return nil, err
		}
		handles = append(handles, h)
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
		errs  = make([]error, len(handles))
		wrErr error
	)
	// The reassembly clock runs on packet timestamps; a ticker moves it on
	// when the wire is quiet, so timeouts fire without new packets.
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
				a.Expire(now.UnixNano())
				done := lc.Count > 0 && a.classes.Total() >= lc.Count
				mu.Unlock()
				if done {
					stop()
					return
				}
			}
		}
	}()
	for n, h := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// a reader that keeps its thread is scheduled with less delay
			// between reads; at 100k pps every stall fills the buffer
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			pfd := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
			for ctx.Err() == nil {
				data, ci, err := h.h.ZeroCopyReadPacketData()
				if err != nil {
					// The socket is non-blocking: under load it is read
					// back to back, and poll only runs once it is empty,
					// so an idle capture still notices ctx. pcapgo
					// formats the errno into a string, hence the match.
					if !strings.Contains(err.Error(), unix.EAGAIN.Error()) {
						errs[n] = fmt.Errorf("read %s: %w", h.iface.Name, err)
						stop()
						return
					}
					pfd[0].Revents = 0
					if _, err := unix.Poll(pfd, 100); err != nil && !errors.Is(err, unix.EINTR) {
						errs[n] = fmt.Errorf("poll %s: %w", h.iface.Name, err)
						stop()
						return
					}
					continue
				}
				mu.Lock()
				a.Packet(data, Meta{TimeNS: ci.Timestamp.UnixNano(), CapLen: ci.CaptureLength, OrigLen: ci.Length, Link: h.link})
				if lc.Write != nil && h.link == LinkEthernet && wrErr == nil {
					wrErr = lc.Write.WritePacket(ci.Timestamp, data, ci.Length)
				}
				done := lc.Count > 0 && a.classes.Total() >= lc.Count
				mu.Unlock()
				if done {
					stop()
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, h := range handles {
		if s, err := h.h.Stats(); err == nil {
			st.Received += uint64(s.Packets)
			st.Dropped += uint64(s.Drops)
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
