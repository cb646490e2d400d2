package cli

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// SocketsOptions are the flags of `logdoctor sockets`.
type SocketsOptions struct {
	ProcRoot    string        // proc tree; /proc by default
	PID         int           // read this process's network namespace (ProcRoot/PID/net)
	Source      string        // --source auto, netlink or proc
	Peers       []string      // --peer
	Aliases     []string      // --alias name=port,port
	States      []string      // --state
	By          string        // peer, process or state
	NoProcesses bool          // skip the /proc/*/fd scan
	Watch       time.Duration // re-sample every Watch; 0 takes one look
	Count       int           // samples with --watch; 0 until interrupted
	Thresholds  sockstat.Thresholds
	// Resolver looks --peer names up; nil uses the system resolver.
	Resolver sockstat.Resolver
	// OpenDiag opens a sock_diag netlink socket; nil uses pkg/sockdiag.
	OpenDiag OpenDiag
	Now      func() time.Time
}

// newSocketsCmd builds `sockets`; runF, when set, gets the parsed options
// instead of the table being read.
func newSocketsCmd(g *Globals, runF func(SocketsOptions) error) *cobra.Command {
	o := SocketsOptions{ProcRoot: "/proc", By: string(sockstat.ByPeer), Thresholds: sockstat.DefaultThresholds()}
	var sendQ int64
	cmd := &cobra.Command{
		Use:   "sockets",
		Short: "TCP state histogram per peer from sock_diag netlink or /proc/net/tcp{,6}, with owning processes and findings",
		Long: `sockets reads the kernel's TCP socket table (through sock_diag netlink with each
connection's tcp_info, or from /proc/net/tcp and tcp6: see --source), sorts each
socket into outbound (the remote port is the service) or inbound (a local
listening port), and shows per peer the count in every TCP state, the bytes in
Send-Q and Recv-Q, and the processes holding the sockets. Findings name piles of
CLOSE_WAIT, TIME_WAIT churn, stuck Send-Q, SYN_SENT hangs and a --peer with no
ESTABLISHED connection.

--peer accepts ` + sockstat.PeerForms + `.`,
		Example: `  logdoctor sockets --peer es
  logdoctor sockets --peer es --watch 5s --count 12 -o json
  logdoctor sockets --pid $(pidof fluentd) --by process
  logdoctor sockets --alias opensearch=9200 --peer opensearch --state CLOSE_WAIT`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string) error {
			if sendQ < 0 {
				return usageErrorf("--send-q must be >= 0")
			}
			o.Thresholds.SendQ = uint64(sendQ)
			o.Now = g.Now
			if runF != nil {
				return runF(o)
			}
			return runSockets(cmd.Context(), o, g.Emit)
		}),
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Peers, "peer", nil, "only sockets to this peer (repeatable): "+sockstat.PeerForms)
	f.StringArrayVar(&o.Aliases, "alias", nil, "define a peer alias as name=port[,port] (repeatable; overrides a built-in of the same name)")
	f.StringSliceVar(&o.States, "state", nil, "only sockets in these states (repeatable or comma-separated, e.g. CLOSE_WAIT,TIME_WAIT)")
	enumVar(f, &o.By, "by", o.By, []string{string(sockstat.ByPeer), string(sockstat.ByProcess), string(sockstat.ByState)}, "group rows by peer, process or state")
	f.BoolVar(&o.NoProcesses, "no-processes", false, "do not scan /proc/*/fd for the processes holding the sockets")
	intVar(f, &o.PID, "pid", 0, 0, math.MaxInt32, "a process id (0: this process's namespace)", "read the socket table of this process's network namespace, e.g. a container's shipper (netlink after entering it, which needs CAP_SYS_ADMIN; else /proc/PID/net)")
	enumVar(f, &o.Source, "source", sourceAuto, []string{sourceAuto, sourceNetlink, sourceProc}, "where to read the socket table: netlink (sock_diag, with tcp_info), proc (/proc/net/tcp{,6}), or auto (netlink where it works)")
	f.StringVar(&o.ProcRoot, "proc-root", o.ProcRoot, "proc tree to read (host /proc mounted in a container, or fixtures)")
	durVar(f, &o.Watch, "watch", 0, 0, wantDurOrZero("one look"), "re-sample every DURATION and show the change per peer and state (JSON: one report per line)")
	intVar(f, &o.Count, "count", 0, 0, math.MaxInt32, "0 (until interrupted) or a number of samples", "with --watch, stop after N samples (0: until interrupted)")
	intVar(f, &o.Thresholds.CloseWait, "close-wait", o.Thresholds.CloseWait, 0, math.MaxInt32, "0 (off) or a number of sockets", "CLOSE_WAIT sockets to one peer for a warning (0 disables)")
	intVar(f, &o.Thresholds.CloseWaitCritical, "close-wait-critical", o.Thresholds.CloseWaitCritical, 0, math.MaxInt32, "0 (off) or a number of sockets", "CLOSE_WAIT sockets to one peer for critical (growth under --watch is critical too)")
	intVar(f, &o.Thresholds.TimeWait, "time-wait", o.Thresholds.TimeWait, 0, math.MaxInt32, "0 (off) or a number of sockets", "TIME_WAIT sockets to one peer before churn is reported (0 disables)")
	floatVar(f, &o.Thresholds.TimeWaitRatio, "time-wait-ratio", o.Thresholds.TimeWaitRatio, 0, 1e9, "a ratio of 0 or more, like 10", "churn when TIME_WAIT >= ratio x ESTABLISHED to the peer")
	int64Var(f, &sendQ, "send-q", int64(o.Thresholds.SendQ), 0, math.MaxInt64, "0 (off) or a number of bytes", "Send-Q bytes on one ESTABLISHED/FIN_WAIT1 socket counted as stuck (0 disables)")
	intVar(f, &o.Thresholds.SynSent, "syn-sent", o.Thresholds.SynSent, 0, math.MaxInt32, "0 (off) or a number of sockets", "SYN_SENT sockets to one peer for a warning (0 disables)")
	intVar(f, &o.Thresholds.Retransmits, "retransmits", o.Thresholds.Retransmits, 0, math.MaxInt32, "0 (off) or a number of timeouts", "retransmission timeouts in a row on one connection for tcp.retransmitting (netlink; 0 disables)")
	durVar(f, &o.Thresholds.RetransCritical, "retrans-critical", o.Thresholds.RetransCritical, 0, wantDurOrZero("never"), "a retransmitting connection without an ACK for this long is critical (0: never)")
	intVar(f, &o.Thresholds.ZeroWindowProbes, "zero-window-probes", o.Thresholds.ZeroWindowProbes, 0, math.MaxInt32, "0 (off) or a number of probe timeouts", "zero-window probe timeouts on one connection for tcp.peer_zero_window (netlink; 0 disables)")
	return cmd
}

// socketsPlan is what the flags resolve to, once, before sampling.
type socketsPlan struct {
	opts     SocketsOptions
	netRoot  string // where net/tcp lives
	source   *tableSource
	agg      sockstat.AggregateOptions
	by       sockstat.GroupBy
	filters  *sockstat.Filters
	attrib   bool
	previous *sockstat.Result
}

func planSockets(ctx context.Context, o SocketsOptions) (*socketsPlan, error) {
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &socketsPlan{opts: o, netRoot: o.ProcRoot, attrib: !o.NoProcesses}
	switch {
	case o.PID < 0:
		return nil, usageErrorf("--pid %d: want a process id", o.PID)
	case o.Watch < 0:
		return nil, usageErrorf("--watch %s: want a positive duration", o.Watch)
	case o.Count < 0:
		return nil, usageErrorf("--count %d: want >= 0", o.Count)
	case o.Count > 0 && o.Watch == 0:
		return nil, usageErrorf("--count needs --watch")
	}
	if _, err := os.Stat(o.ProcRoot); err != nil {
		return nil, fmt.Errorf("--proc-root: %w", err)
	}
	if err := checkTCPThresholds(o.Thresholds); err != nil {
		return nil, err
	}
	if o.PID > 0 {
		p.netRoot = filepath.Join(o.ProcRoot, strconv.Itoa(o.PID))
		if _, err := os.Stat(p.netRoot); err != nil {
			return nil, fmt.Errorf("--pid %d: %w", o.PID, err)
		}
	}
	switch sockstat.GroupBy(o.By) {
	case sockstat.ByPeer, "":
		p.by = sockstat.ByPeer
	case sockstat.ByProcess, sockstat.ByState:
		p.by = sockstat.GroupBy(o.By)
	default:
		return nil, usageErrorf("--by %q: want peer, process or state", o.By)
	}
	aliases, specs, err := peerFlags(ctx, o.Peers, o.Aliases, o.Resolver)
	if err != nil {
		return nil, err
	}
	p.agg = sockstat.AggregateOptions{
		Ephemeral: sockstat.ReadEphemeral(o.ProcRoot),
		Aliases:   aliases,
		By:        p.by,
		SendQMin:  o.Thresholds.SendQ,

		Retransmits:      o.Thresholds.Retransmits,
		ZeroWindowProbes: o.Thresholds.ZeroWindowProbes,
	}
	filters := &sockstat.Filters{}
	p.agg.Peers = specs
	filters.Peers = specs
	for _, s := range o.States {
		st, err := sockstat.ParseState(s)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("--state: %w", err)}
		}
		if p.agg.States == nil {
			p.agg.States = map[sockstat.State]bool{}
		}
		p.agg.States[st] = true
		filters.States = append(filters.States, st.String())
	}
	if len(filters.Peers)+len(filters.States) > 0 {
		p.filters = filters
	}
	// Last: the source may hold a socket, which runSockets closes.
	src, err := openTableSource(o, p.netRoot)
	if err != nil {
		return nil, err
	}
	p.source = src
	return p, nil
}

// runSockets takes one look, or with --watch one per interval, and hands
// each report to emit.
func runSockets(ctx context.Context, o SocketsOptions, emit func(*report.Report) error) error {
	p, err := planSockets(ctx, o)
	if err != nil {
		return err
	}
	defer p.source.close()
	if p.opts.Watch == 0 {
		// One look reads the table once and exits: a collection on the
		// way (the heap passes the runtime's first 4 MB goal at ~25,000
		// sockets) frees nothing the run would reuse and cost ~10% of
		// its CPU (bench/sockets.sh). --watch keeps the default.
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	for i := 1; p.opts.Watch == 0 || p.opts.Count == 0 || i <= p.opts.Count; i++ {
		if i > 1 {
			t := time.NewTimer(p.opts.Watch)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil // interrupted: what was sampled has been shown
			case <-t.C:
			}
		}
		r, err := p.sample(i)
		if err != nil {
			return err
		}
		if err := emit(r); err != nil {
			return err
		}
		if p.opts.Watch == 0 {
			return nil
		}
	}
	return nil
}

// sample reads the table once and builds its report; n is the sample
// number under --watch.
func (p *socketsPlan) sample(n int) (*report.Report, error) {
	started := p.opts.Now()
	socks, src, err := p.source.read(func(socks []sockstat.Socket) []int { return sockstat.TCPInfoWanted(socks, p.agg) })
	if err != nil {
		return nil, err
	}
	agg := p.agg
	if p.attrib {
		owners, scan, err := sockstat.ScanProcessesFor(p.opts.ProcRoot, sockstat.Inodes(socks, agg), p.source.scanOptions(p.by))
		if err != nil {
			return nil, err
		}
		agg.Owners = owners
		src.Processes = &scan
	}
	res := sockstat.Aggregate(socks, agg)
	r := report.New("sockets", started)
	r.Add(sockstat.Findings(res, p.previous, p.opts.Thresholds)...)
	data := &sockstat.Report{Totals: res.Totals, Sources: src, Filters: p.filters}
	data.Peers = res.Peers
	if p.opts.Watch > 0 {
		data.Sample = n
		// The first sample is the baseline: there is nothing to change
		// from, and "+2" against nothing would read as growth.
		if p.previous != nil {
			data.Peers = sockstat.Diff(res.Peers, p.previous.Peers)
		}
	}
	if p.by != sockstat.ByPeer {
		data.By, data.Groups = string(p.by), res.Groups
	}
	// Only the current sample's own peers are remembered: vanished rows
	// appended by Diff are shown once.
	p.previous = &res
	r.Data = data
	r.Finish(p.opts.Now())
	return r, nil
}

// peerFlags turns --alias and --peer values into peer specs. DNS names are
// resolved here, once, each within 10 s, not at every --watch sample or
// exporter interval.
func peerFlags(ctx context.Context, peers, aliasFlags []string, resolve sockstat.Resolver) (sockstat.Aliases, []sockstat.PeerSpec, error) {
	aliases, err := sockstat.AliasesWith(aliasFlags)
	if err != nil {
		return nil, nil, usageErrorf("--alias: %w", err)
	}
	resolve = orSystemResolver(resolve)
	var specs []sockstat.PeerSpec
	for _, s := range peers {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		spec, err := sockstat.ParsePeerSpec(rctx, s, aliases, resolve)
		cancel()
		if err != nil {
			return nil, nil, usageErrorf("--peer: %w", err)
		}
		specs = append(specs, spec)
	}
	return aliases, specs, nil
}

// orSystemResolver is r, or the system's resolver when r is nil (tests
// inject one).
func orSystemResolver(r sockstat.Resolver) sockstat.Resolver {
	if r == nil {
		return net.DefaultResolver.LookupNetIP
	}
	return r
}
