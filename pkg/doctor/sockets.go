package doctor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// SocketReader reads the TCP socket table of pid's network namespace.
// The command layer passes one that prefers netlink (with tcp_info);
// the default reads /proc/PID/net/tcp{,6}.
type SocketReader func(ctx context.Context, pid int) ([]sockstat.Socket, sockstat.Sources, error)

// procSockets is the default SocketReader.
func procSockets(procRoot string) SocketReader {
	return func(_ context.Context, pid int) ([]sockstat.Socket, sockstat.Sources, error) {
		return sockstat.ReadTCP(filepath.Join(procRoot, strconv.Itoa(pid)))
	}
}

// Peer is one configured endpoint and the sockets the shipper holds to it.
type Peer struct {
	// Endpoint is host:port as configured; Output the plugin that talks
	// to it and At where the address is set.
	Endpoint string         `json:"endpoint"`
	Output   string         `json:"output"`
	Kind     string         `json:"kind"` // es or forward
	At       string         `json:"at"`
	Sockets  *sockstat.Peer `json:"sockets,omitempty"`
	spec     sockstat.PeerSpec
	file     string
	line     int
}

// SocketsView is the shipper's sockets, sampled at the start and the end
// of the interval.
type SocketsView struct {
	Source  sockstat.Sources     `json:"source"`
	Peers   []*Peer              `json:"peers"`
	Totals  sockstat.StateCounts `json:"totals"`
	Owned   int                  `json:"owned_sockets"`
	Skipped []string             `json:"skipped,omitempty"`
	first   *sockstat.Result
	last    *sockstat.Result
}

// configuredPeers turns the configuration's endpoints into peer specs;
// names are resolved with resolve (in logdoctor's namespace, which is
// said in the report when it is not the shipper's).
func configuredPeers(ctx context.Context, e Endpoints, resolve sockstat.Resolver) ([]*Peer, []string) {
	var peers []*Peer
	var skipped []string
	seen := map[string]bool{}
	add := func(endpoint, output, kind string, pos filePos) {
		key := kind + " " + endpoint
		if seen[key] {
			return
		}
		seen[key] = true
		spec, err := sockstat.ParsePeerSpec(ctx, endpoint, nil, resolve)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%s): %v", endpoint, output, err))
			return
		}
		alias := "es"
		if kind == "forward" {
			alias = "forward"
		}
		spec.Alias = alias
		peers = append(peers, &Peer{Endpoint: endpoint, Output: output, Kind: kind, At: pos.String(), spec: spec, file: pos.file, line: pos.line})
	}
	for _, o := range e.ES {
		for _, a := range o.Addrs {
			add(a, o.Name, "es", filePos{o.HostAt.File, o.HostAt.Line})
		}
	}
	for _, o := range e.Forward {
		for _, s := range o.Servers {
			add(s.Addr, o.Name, "forward", filePos{s.At.File, s.At.Line})
		}
	}
	return peers, skipped
}

type filePos struct {
	file string
	line int
}

func (p filePos) String() string { return fmt.Sprintf("%s:%d", p.file, p.line) }

// shipperSockets keeps the sockets that are the shipper's: those its
// processes hold, and the unowned ones (TIME_WAIT) to a configured
// endpoint, minus every connection doctor itself opened.
func shipperSockets(socks []sockstat.Socket, owners sockstat.Owners, peers []*Peer, n *Net) []sockstat.Socket {
	out := socks[:0:0]
	for _, s := range socks {
		local := netip.AddrPortFrom(s.Local.Addr().Unmap(), s.Local.Port())
		if n != nil && n.Mine(local) {
			continue
		}
		if s.Inode != 0 {
			if _, ok := owners[s.Inode]; ok {
				out = append(out, s)
			}
			continue
		}
		for _, p := range peers {
			if p.spec.Match(s.Remote.Addr().Unmap(), s.Remote.Port()) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// sampleSockets reads the table once and aggregates the shipper's share.
func (t *targetRun) sampleSockets(ctx context.Context) (*sockstat.Result, sockstat.Sources, int, error) {
	socks, src, err := t.o.Sockets(ctx, t.proc.NetPID())
	if err != nil {
		return nil, src, 0, err
	}
	want := map[uint64]struct{}{}
	for _, s := range socks {
		if s.Inode != 0 {
			want[s.Inode] = struct{}{}
		}
	}
	owners, scan, err := sockstat.ScanProcessesFor(t.o.ProcRoot, want, sockstat.ScanOptions{PIDs: t.proc.PIDs()})
	if err != nil {
		return nil, src, 0, err
	}
	src.Processes = &scan
	mine := shipperSockets(socks, owners, t.peers, t.net)
	specs := make([]sockstat.PeerSpec, len(t.peers))
	for i, p := range t.peers {
		specs[i] = p.spec
	}
	res := sockstat.Aggregate(mine, sockstat.AggregateOptions{
		Ephemeral: sockstat.ReadEphemeral(t.o.ProcRoot), Aliases: sockstat.DefaultAliases(),
		Peers: specs, Owners: owners, SendQMin: t.o.Thresholds.SendQ,
		Retransmits: t.o.Thresholds.Retransmits, ZeroWindowProbes: t.o.Thresholds.ZeroWindowProbes,
	})
	return &res, src, len(owners), nil
}

// socketFindings are the sockets command's findings over the two
// samples, each tied to the output and the line that configures the
// peer.
func (v *SocketsView) findings(th sockstat.Thresholds) []report.Finding {
	if v.last == nil {
		return nil
	}
	fs := sockstat.Findings(*v.last, v.first, th)
	for i := range fs {
		f := &fs[i]
		p := v.peerOf(f.Evidence)
		if p == nil {
			continue
		}
		f.Evidence["output"] = p.Output
		f.Evidence["endpoint"] = p.Endpoint
		f.Evidence["file"], f.Evidence["line"] = p.file, p.line
		f.Summary = fmt.Sprintf("%s (output %s, %s): %s", p.Endpoint, p.Output, p.At, f.Summary)
	}
	return fs
}

// peerOf finds the configured peer a sockets finding is about: its
// evidence names a --peer spec (no_established, no_connection) or a peer
// address.
func (v *SocketsView) peerOf(ev map[string]any) *Peer {
	if raw, ok := ev["peer"].(string); ok {
		for _, p := range v.Peers {
			if p.spec.Raw == raw || p.Endpoint == raw {
				return p
			}
			host, port, err := net.SplitHostPort(raw)
			if err == nil {
				if a, err := netip.ParseAddr(host); err == nil {
					if pn, err := strconv.Atoi(port); err == nil && p.spec.Match(a.Unmap(), uint16(pn)) {
						return p
					}
				}
			}
		}
	}
	return nil
}

// attach puts each configured peer's row of the last sample on it.
func (v *SocketsView) attach() {
	if v.last == nil {
		return
	}
	for _, p := range v.Peers {
		var agg *sockstat.Peer
		for i := range v.last.Peers {
			row := &v.last.Peers[i]
			if row.Direction != sockstat.Outbound || !p.spec.Match(row.Addr, row.Port) {
				continue
			}
			if agg == nil {
				cp := *row
				cp.Peer = p.Endpoint
				agg = &cp
				continue
			}
			for s, n := range row.States {
				agg.States[s] += n
			}
			agg.SendQ += row.SendQ
			agg.RecvQ += row.RecvQ
		}
		if agg == nil {
			agg = &sockstat.Peer{Peer: p.Endpoint, Direction: sockstat.Outbound, Processes: []sockstat.Process{}}
		}
		p.Sockets = agg
	}
}

// stateSummary is "3 ESTABLISHED, 12 TIME_WAIT" or "no socket".
func stateSummary(c sockstat.StateCounts) string {
	var parts []string
	for _, s := range sockstat.AllStates() {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
		}
	}
	if len(parts) == 0 {
		return "no socket"
	}
	return strings.Join(parts, ", ")
}
