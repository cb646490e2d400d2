// Package udpprobe automates the experiment behind "big UDP messages
// missing" (docs/troubleshooting.md): send numbered probe
// datagrams of chosen sizes to a UDP port and, with a cooperating receiver
// (Listen), learn which sizes arrive, so the largest size that gets
// through the path is measured instead of guessed.
package udpprobe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MinSize is the smallest probe: the JSON envelope with its numbers.
const MinSize = 96

// MaxPayload is the largest UDP payload over IPv4.
const MaxPayload = 65507

// probe is the envelope every probe datagram starts with; it is valid JSON
// so a real log receiver (Fluentd in_udp with format json) accepts it too.
type probe struct {
	Run  string `json:"logdoctor_probe"`
	Seq  int    `json:"seq"`
	Size int    `json:"size"`
	Pad  string `json:"pad"`
}

type ack struct {
	Run  string `json:"logdoctor_ack"`
	Seq  int    `json:"seq"`
	Size int    `json:"size"`
}

// Payload builds probe seq of exactly size bytes (size >= MinSize).
func Payload(run string, seq, size int) []byte {
	head, _ := json.Marshal(probe{Run: run, Seq: seq, Size: size})
	// head ends with `"pad":""}`; grow the pad to reach size
	head = head[:len(head)-2]
	b := make([]byte, 0, max(size, len(head)+2))
	b = append(b, head...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, '"', '}')
}

// parseProbe reads a probe's envelope; ok is false for other datagrams.
func parseProbe(b []byte) (probe, bool) {
	if !bytes.HasPrefix(b, []byte(`{"logdoctor_probe":`)) {
		return probe{}, false
	}
	var p probe
	if err := json.Unmarshal(b, &p); err != nil || p.Run == "" {
		return probe{}, false
	}
	return p, true
}

// SendConfig describes a size sweep.
type SendConfig struct {
	Target   string        // HOST:PORT
	Sizes    []int         // UDP payload sizes
	Probes   int           // datagrams per size; 0 = 3
	Interval time.Duration // between datagrams; 0 = 5 ms
	Wait     time.Duration // how long to wait for acks after the last send; 0 = 2 s
	Run      string        // run id put into every probe
}

// SizeResult is one size of the sweep.
type SizeResult struct {
	Size       int    `json:"size"`
	Sent       int    `json:"sent"`
	SendErrors int    `json:"send_errors"`
	Error      string `json:"error,omitempty"`
	Acked      int    `json:"acked"`
	Oversize   bool   `json:"oversize"` // over 65,507 bytes: UDP cannot carry it
}

// SendResult is what a sweep found.
type SendResult struct {
	Target           string       `json:"target"`
	Run              string       `json:"run"`
	RouteMTU         int          `json:"route_mtu,omitempty"` // the kernel's MTU for the route (IP_MTU)
	ReceiverAnswered bool         `json:"receiver_answered"`
	LargestThrough   int          `json:"largest_through"` // largest size acked, 0 when none
	Sizes            []SizeResult `json:"sizes"`
}

// Defaults of a zero SendConfig field (and of udp-frag --send's flags).
const (
	DefaultProbes = 3
	DefaultWait   = 2 * time.Second
)

// Send sends the probes and collects acks from a cooperating receiver.
func Send(ctx context.Context, cfg SendConfig) (*SendResult, error) {
	if cfg.Probes <= 0 {
		cfg.Probes = DefaultProbes
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Millisecond
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", cfg.Target, err)
	}
	network := "udp4"
	if raddr.IP.To4() == nil {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, fmt.Errorf("open UDP socket: %w", err)
	}
	defer conn.Close()
	res := &SendResult{Target: raddr.String(), Run: cfg.Run, RouteMTU: routeMTU(network, raddr)}
	bySize := map[int]*SizeResult{}
	var mu sync.Mutex
	sentSeq := map[int]int{} // seq -> size, recorded before the datagram leaves
	acked := map[int]bool{}
	for _, s := range cfg.Sizes {
		if _, ok := bySize[s]; !ok {
			sr := &SizeResult{Size: s, Oversize: s > MaxPayload}
			bySize[s] = sr
			res.Sizes = append(res.Sizes, SizeResult{})
		}
	}
	done := make(chan struct{})
	answered := make(chan struct{}, 1) // a new ack came in
	// Collect acks.
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var a ack
			if json.Unmarshal(buf[:n], &a) != nil || a.Run != cfg.Run {
				continue
			}
			mu.Lock()
			if sz, ok := sentSeq[a.Seq]; ok && sz == a.Size && !acked[a.Seq] {
				acked[a.Seq] = true
				bySize[sz].Acked++
				select {
				case answered <- struct{}{}:
				default:
				}
			}
			mu.Unlock()
		}
	}()
	seq := 0
sending:
	for _, s := range cfg.Sizes {
		for i := 0; i < cfg.Probes; i++ {
			if ctx.Err() != nil {
				break sending
			}
			seq++
			var payload []byte
			if s <= MaxPayload {
				payload = Payload(cfg.Run, seq, s)
			} else {
				payload = make([]byte, s) // the kernel refuses it; that is the point
			}
			mu.Lock()
			sentSeq[seq] = s
			mu.Unlock()
			_, err := conn.WriteToUDP(payload, raddr)
			mu.Lock()
			sr := bySize[s]
			if err != nil {
				delete(sentSeq, seq)
				sr.SendErrors++
				sr.Error = errText(err)
			} else {
				sr.Sent++
			}
			mu.Unlock()
			time.Sleep(cfg.Interval)
		}
	}
	// Wait for the answers, but no longer than it takes: once every probe
	// that left is answered there is nothing more to learn.
	wait := time.NewTimer(cfg.Wait)
	defer wait.Stop()
waiting:
	for {
		mu.Lock()
		all := len(acked) == len(sentSeq)
		mu.Unlock()
		if all {
			break
		}
		select {
		case <-ctx.Done():
			break waiting
		case <-wait.C:
			break waiting
		case <-answered:
		}
	}
	conn.Close()
	<-done
	i := 0
	seen := map[int]bool{}
	for _, s := range cfg.Sizes {
		if seen[s] {
			continue
		}
		seen[s] = true
		sr := bySize[s]
		res.Sizes[i] = *sr
		i++
		if sr.Acked > 0 {
			res.ReceiverAnswered = true
			res.LargestThrough = max(res.LargestThrough, s)
		}
	}
	return res, nil
}

// ErrNothingSent is returned by NothingSent when not one probe that UDP
// can carry left this host: the sweep measured nothing.
var ErrNothingSent = errors.New("no probe could be sent")

// NothingSent returns ErrNothingSent (with the first send error) when every
// probe of every size UDP can carry failed to send; sizes over 65,507 bytes
// failing is the expected verdict, not a failure to run.
func (r *SendResult) NothingSent() error {
	first, sendable := "", 0
	for _, z := range r.Sizes {
		if z.Oversize {
			continue
		}
		if z.Sent > 0 {
			return nil
		}
		sendable++
		if first == "" {
			first = z.Error
		}
	}
	if sendable == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNothingSent, first)
}

func errText(err error) string {
	if errors.Is(err, syscall.EMSGSIZE) {
		return "message too long (EMSGSIZE)"
	}
	return err.Error()
}

// routeMTU asks the kernel for the MTU of the route to raddr (IP_MTU on a
// connected socket); 0 when it cannot say.
func routeMTU(network string, raddr *net.UDPAddr) int {
	c, err := net.DialUDP(network, nil, raddr)
	if err != nil {
		return 0
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	mtu := 0
	_ = rc.Control(func(fd uintptr) {
		if network == "udp6" {
			mtu, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU)
		} else {
			mtu, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU)
		}
	})
	return mtu
}

// ListenConfig describes a cooperating receiver.
type ListenConfig struct {
	Addr     string        // ADDR:PORT to bind
	Duration time.Duration // 0: until ctx ends
	Count    int           // stop after this many probes; 0: no limit
	RcvBuf   int           // socket receive buffer; 0 = 4 MiB
	// Ready, when set, is called with the bound address once listening.
	Ready func(net.Addr)
}

// SizeCount is how many probes of one size arrived.
type SizeCount struct {
	Size     int `json:"size"`
	Received int `json:"received"`
}

// ListenResult is what a receiver saw.
type ListenResult struct {
	Addr    string      `json:"addr"`
	Probes  int         `json:"probes"`
	Other   int         `json:"other_datagrams"`
	Largest int         `json:"largest_received"`
	Sizes   []SizeCount `json:"sizes"`
	Runs    []string    `json:"runs"`
}

// Listen receives probes, acknowledges each to its sender and counts them
// per size.
func Listen(ctx context.Context, cfg ListenConfig) (*ListenResult, error) {
	laddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	defer conn.Close()
	rb := cfg.RcvBuf
	if rb <= 0 {
		rb = 4 << 20
	}
	_ = conn.SetReadBuffer(rb)
	res := &ListenResult{Addr: conn.LocalAddr().String(), Sizes: []SizeCount{}, Runs: []string{}}
	if cfg.Ready != nil {
		cfg.Ready(conn.LocalAddr())
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	counts := map[int]int{}
	runs := map[string]bool{}
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			return nil, fmt.Errorf("receive on %s: %w", res.Addr, err)
		}
		p, ok := parseProbe(buf[:n])
		if !ok {
			res.Other++
			continue
		}
		res.Probes++
		counts[n]++
		res.Largest = max(res.Largest, n)
		if len(runs) < 64 {
			runs[p.Run] = true
		}
		b, _ := json.Marshal(ack{Run: p.Run, Seq: p.Seq, Size: p.Size})
		_, _ = conn.WriteToUDP(b, from)
		if cfg.Count > 0 && res.Probes >= cfg.Count {
			break
		}
	}
	for s, c := range counts {
		res.Sizes = append(res.Sizes, SizeCount{Size: s, Received: c})
	}
	sort.Slice(res.Sizes, func(i, j int) bool { return res.Sizes[i].Size < res.Sizes[j].Size })
	for r := range runs {
		res.Runs = append(res.Runs, r)
	}
	sort.Strings(res.Runs)
	return res, nil
}

// ParseSizes reads "1400,1432,2000".
func ParseSizes(s []string) ([]int, error) {
	var out []int
	for _, f := range s {
		n, err := strconv.Atoi(f)
		if err != nil || n < MinSize || n > 1<<20 {
			return nil, fmt.Errorf("invalid size %q: want a number of bytes from %d to %d", f, MinSize, 1<<20)
		}
		out = append(out, n)
	}
	return out, nil
}
