package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/logdoctor/logdoctor/pkg/pcap"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/udpfrag"
	"github.com/logdoctor/logdoctor/pkg/udpprobe"
)

// UDPFragOptions are udp-frag's flags.
type UDPFragOptions struct {
	Read       string // pcap/pcapng file, "-" for Stdin
	Stdin      io.Reader
	Interfaces []string
	Ports      []uint16 // empty with --read: every port
	Duration   time.Duration
	Count      uint64
	MTU        int
	Timeout    time.Duration
	MaxFlows   int
	MaxBytes   int
	Snaplen    int
	Write      string
	ProcRoot   string

	Send   string
	Sizes  []int
	Probes int
	Wait   time.Duration
	Listen string

	Now func() time.Time
	// Ready is closed when a live capture is listening (tests).
	Ready chan<- struct{}
	// ListenReady is called with the bound address in --listen mode (tests).
	ListenReady func(net.Addr)
}

// newUDPFragCmd builds `udp-frag`; runF, when set, gets the parsed options
// instead of the capture or probe running.
func newUDPFragCmd(g *Globals, runF func(UDPFragOptions) error) *cobra.Command {
	o := UDPFragOptions{}
	var ports []int
	var sizes []string
	cmd := &cobra.Command{
		Use:   "udp-frag",
		Short: "Find the UDP fragmentation black hole: fragments, lost fragments, bad lengths, sizes vs MTU, kernel drops",
		Long: `udp-frag watches UDP datagrams to a port, live (pure-Go AF_PACKET capture, needs
CAP_NET_RAW) or from a pcap/pcapng file (--read FILE, - for stdin), reassembles
IPv4 and IPv6 fragments and classifies every datagram: unfragmented,
fragmented_complete, fragmented_incomplete, orphan_fragments, bad_length,
snap_truncated. --send HOST:PORT --sizes ... sends numbered probes of each size;
a cooperating 'udp-frag --listen ADDR:PORT' answers, so the largest size that
gets through is measured.`,
		Example: `  logdoctor udp-frag --port 5160 --duration 30s
  tcpdump -i eth0 -w - 'udp port 5160 or (ip[6:2] & 0x3fff != 0) or ip6[6] == 44' | logdoctor udp-frag --read -
  logdoctor udp-frag --read capture.pcap -o json
  logdoctor udp-frag --listen 0.0.0.0:5170            # on the receiver
  logdoctor udp-frag --send fluentd:5170 --sizes 1400,1432,1433,2000,9000`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			modes := 0
			for _, s := range []string{o.Read, o.Send, o.Listen} {
				if s != "" {
					modes++
				}
			}
			if modes > 1 {
				return usageErrorf("--read, --send and --listen are separate modes: use one")
			}
			if o.Read == "" || cmd.Flags().Changed("port") {
				for _, p := range ports {
					o.Ports = append(o.Ports, uint16(p)) // 1..65535: the flag refuses others
				}
			}
			var err error
			if o.Sizes, err = udpprobe.ParseSizes(sizes); err != nil {
				return usageErrorf("--sizes: %w", err)
			}
			if cmd.Flags().Changed("proc") {
				if _, err := os.Stat(o.ProcRoot); err != nil {
					return fmt.Errorf("--proc: %w", err)
				}
			}
			if o.Read == "-" {
				o.Stdin = g.IO.In
			}
			o.Now = g.Now
			if runF != nil {
				return runF(o)
			}
			r, err := runUDPFrag(cmd.Context(), o)
			if err != nil {
				return err
			}
			return g.Emit(r)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.Read, "read", "", "analyze a pcap or pcapng file instead of capturing (- for stdin); every UDP port unless --port is given")
	f.StringSliceVarP(&o.Interfaces, "interface", "i", nil, "interface(s) to capture on (default: every interface that is up)")
	portsVarP(f, &ports, "port", "p", []int{5160}, "UDP destination port(s) to watch (repeatable)")
	durVar(f, &o.Duration, "duration", 10*time.Second, 0, wantDurOrZero("until Ctrl-C"), "live capture / --listen length (0: until Ctrl-C)")
	uint64Var(f, &o.Count, "count", 0, "0 (no limit) or a number of datagrams", "stop a live capture after this many datagrams (0: no limit)")
	mtuVar(f, &o.MTU, "mtu", "path MTU to judge sizes by (default: from the fragments seen, else the interface or route MTU)")
	durVar(f, &o.Timeout, "reassembly-timeout", udpfrag.DefaultTimeout, time.Nanosecond, wantPositiveDur, "how long to wait for missing fragments (the kernel's net.ipv4.ipfrag_time)")
	intVar(f, &o.MaxFlows, "max-reassemblies", udpfrag.DefaultMaxFlows, 1, 1<<24, "a number from 1 to 16777216", "open reassemblies kept before the oldest is evicted")
	intVar(f, &o.MaxBytes, "max-reassembly-bytes", udpfrag.DefaultMaxBytes, 65535, 1<<30, "a number of bytes from 65535 (one datagram) to 1073741824", "fragment bytes held in open reassemblies before the oldest is evicted")
	intVar(f, &o.Snaplen, "snaplen", pcap.DefaultSnaplen, minSnaplen, pcap.DefaultSnaplen, fmt.Sprintf("a number of bytes from %d to 262144", minSnaplen), "bytes captured per packet in a live capture")
	f.StringVarP(&o.Write, "write", "w", "", "also write the live capture to this pcap file")
	f.StringVar(&o.ProcRoot, "proc", "/proc", "proc filesystem to read kernel counters from")
	addrVar(f, &o.Send, "send", "", false, true, "send probe datagrams to HOST:PORT (see --sizes)")
	f.StringSliceVar(&sizes, "sizes", []string{"1400", "1432", "1433", "1440", "2000", "9000"}, "probe payload sizes in bytes for --send")
	intVar(f, &o.Probes, "probes", udpprobe.DefaultProbes, 1, 1000, "a number of probes per size from 1 to 1000", "probes per size for --send")
	durVar(f, &o.Wait, "wait", udpprobe.DefaultWait, time.Nanosecond, wantPositiveDur, "how long --send waits for the receiver's answers (it stops early once every probe is answered)")
	addrVar(f, &o.Listen, "listen", "", true, true, "receive and answer probes on ADDR:PORT (the cooperating receiver for --send)")
	return cmd
}

// minSnaplen holds the Ethernet, IPv6 and UDP headers: less and no
// datagram could be classified.
const minSnaplen = 64

// mtuVar is --mtu: 0 (find it out) or an MTU IPv4 can have, 68 (RFC 791's
// minimum) to 65536 (the loopback's).
func mtuVar(f *pflag.FlagSet, p *int, name, usage string) {
	intCheckVar(f, p, name, 0, func(n int) bool { return n == 0 || n >= 68 && n <= 65536 }, "0 (auto) or 68..65536", usage)
}

// runUDPFrag runs one of the four modes and returns the report.
func runUDPFrag(ctx context.Context, o UDPFragOptions) (*report.Report, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	started := o.Now()
	r := report.New("udp-frag", started)
	cfg := udpfrag.Config{Ports: o.Ports, Timeout: o.Timeout, MaxFlows: o.MaxFlows, MaxBytes: o.MaxBytes, MTU: o.MTU}
	switch {
	case o.Read != "":
		res, err := readCapture(ctx, o, cfg)
		if err != nil {
			return nil, err
		}
		r.Data = res
		r.Add(udpfrag.Findings(res)...)
	case o.Send != "":
		before, _ := udpfrag.ReadKernel(o.ProcRoot, nil)
		sr, err := udpprobe.Send(ctx, udpprobe.SendConfig{Target: o.Send, Sizes: o.Sizes, Probes: o.Probes, Wait: o.Wait, Run: runID(started)})
		if err != nil {
			return nil, fmt.Errorf("--send %s: %w", o.Send, err)
		}
		if err := sr.NothingSent(); err != nil {
			return nil, fmt.Errorf("--send %s: %w", o.Send, err)
		}
		data := udpprobe.NewSendReport(sr, o.MTU, kernelDelta(before, o.ProcRoot, nil))
		r.Data = data
		r.Add(data.Findings()...)
	case o.Listen != "":
		port, err := listenPort(o.Listen)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		ports := []uint16{port}
		before, _ := udpfrag.ReadKernel(o.ProcRoot, ports)
		lr, err := udpprobe.Listen(ctx, udpprobe.ListenConfig{Addr: o.Listen, Duration: o.Duration, Count: int(o.Count), Ready: o.ListenReady})
		if err != nil {
			return nil, err
		}
		data := &udpprobe.ListenReport{ListenResult: lr, Kernel: kernelDelta(before, o.ProcRoot, ports)}
		r.Data = data
		r.Add(data.Findings()...)
	default:
		res, err := liveCapture(ctx, o, cfg)
		if err != nil {
			return nil, err
		}
		r.Data = res
		r.Add(udpfrag.Findings(res)...)
	}
	r.Finish(o.Now())
	return r, nil
}

func readCapture(ctx context.Context, o UDPFragOptions, cfg udpfrag.Config) (*udpfrag.Result, error) {
	in := o.Stdin
	name := "stdin"
	if o.Read != "-" {
		f, err := os.Open(o.Read)
		if err != nil {
			return nil, fmt.Errorf("--read: %w", err)
		}
		defer f.Close()
		// A directory opens fine and then reads as nothing at all.
		if st, err := f.Stat(); err == nil && st.IsDir() {
			return nil, fmt.Errorf("--read %s: %w (want a pcap or pcapng file, or - for stdin)", o.Read, syscall.EISDIR)
		}
		in, name = f, o.Read
	}
	if in == nil {
		return nil, errors.New("--read -: no standard input")
	}
	res, err := udpfrag.AnalyzeReader(ctx, in, cfg)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	res.Input = name
	return res, nil
}

func liveCapture(ctx context.Context, o UDPFragOptions, cfg udpfrag.Config) (_ *udpfrag.Result, err error) {
	// What the flags name is checked before the capability, so a typo is
	// reported as such whoever runs it.
	ifaces, err := pcap.Interfaces(o.Interfaces)
	if err != nil {
		return nil, fmt.Errorf("--interface: %w", err)
	}
	var wf *os.File
	if o.Write != "" {
		if wf, err = os.Create(o.Write); err != nil {
			return nil, fmt.Errorf("--write: %w", err)
		}
		defer wf.Close()
		defer func() {
			if err != nil {
				os.Remove(o.Write) // nothing was captured into it
			}
		}()
	}
	if err := pcap.CheckCapNetRaw(); err != nil {
		return nil, err
	}
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback == 0 && (cfg.IfaceMTU == 0 || i.MTU < cfg.IfaceMTU) {
			cfg.IfaceMTU = i.MTU
		}
	}
	if cfg.IfaceMTU == 0 {
		cfg.IfaceMTU = ifaces[0].MTU
	}
	lc := pcap.LiveConfig{Interfaces: ifaces, Ports: o.Ports, Snaplen: o.Snaplen, Duration: o.Duration, Ready: o.Ready}
	if wf != nil {
		if lc.Write, err = pcap.NewWriter(wf, uint32(max(o.Snaplen, 0)), pcap.LinkEthernet); err != nil {
			return nil, err
		}
	}
	before, _ := udpfrag.ReadKernel(o.ProcRoot, o.Ports)
	a := udpfrag.NewAnalyzer(cfg)
	st, err := pcap.Capture(ctx, lc, a.Sink(o.Count))
	if err != nil {
		return nil, err
	}
	if lc.Write != nil {
		if err := lc.Write.Flush(); err != nil {
			return nil, err
		}
		if err := wf.Close(); err != nil {
			return nil, fmt.Errorf("--write: %w", err)
		}
		st.Written = o.Write
	}
	a.Flush()
	res := a.Result()
	res.Mode = "live"
	res.Input = strings.Join(st.Interfaces, ",")
	res.Capture = st
	res.Kernel = kernelDelta(before, o.ProcRoot, o.Ports)
	return res, nil
}

// kernelDelta reads the counters again and returns the change, or nil when
// procfs could not be read at all.
func kernelDelta(before *udpfrag.KernelSnapshot, procRoot string, ports []uint16) *udpfrag.KernelDelta {
	if before == nil {
		return nil
	}
	after, err := udpfrag.ReadKernel(procRoot, ports)
	if err != nil {
		return nil
	}
	return before.Delta(after)
}

func listenPort(addr string) (uint16, error) {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return 0, fmt.Errorf("invalid --listen %q: %w", addr, err)
	}
	return uint16(a.Port), nil
}

func runID(t time.Time) string {
	return fmt.Sprintf("%x-%d", t.UnixNano(), os.Getpid())
}
