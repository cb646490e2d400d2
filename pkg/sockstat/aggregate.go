package sockstat

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Direction says who opened a connection: this host (outbound, the remote
// port is the service) or a client of a service listening here (inbound).
type Direction string

const (
	Outbound Direction = "outbound"
	Inbound  Direction = "inbound"
)

// PortRange is the ephemeral port range (net.ipv4.ip_local_port_range).
type PortRange struct{ Lo, Hi uint16 }

// DefaultEphemeral is Linux's default ip_local_port_range.
var DefaultEphemeral = PortRange{32768, 60999}

// ReadEphemeral reads procRoot/sys/net/ipv4/ip_local_port_range, falling
// back to the Linux default when it cannot.
func ReadEphemeral(procRoot string) PortRange {
	b, err := os.ReadFile(filepath.Join(procRoot, "sys/net/ipv4/ip_local_port_range"))
	if err != nil {
		return DefaultEphemeral
	}
	f := bytes.Fields(b)
	if len(f) != 2 {
		return DefaultEphemeral
	}
	lo, err1 := strconv.ParseUint(string(f[0]), 10, 16)
	hi, err2 := strconv.ParseUint(string(f[1]), 10, 16)
	if err1 != nil || err2 != nil || lo > hi {
		return DefaultEphemeral
	}
	return PortRange{uint16(lo), uint16(hi)}
}

func (r PortRange) contains(p uint16) bool { return p >= r.Lo && p <= r.Hi }

// Classifier decides the direction of each socket from the LISTEN sockets
// of the same table.
type Classifier struct {
	listen    map[uint16][]netip.Addr
	ephemeral PortRange
}

// NewClassifier learns the listening ports from socks.
func NewClassifier(socks []Socket, ephemeral PortRange) *Classifier {
	c := &Classifier{listen: map[uint16][]netip.Addr{}, ephemeral: ephemeral}
	for _, s := range socks {
		if s.State == Listen {
			c.listen[s.Local.Port()] = append(c.listen[s.Local.Port()], s.Local.Addr())
		}
	}
	return c
}

// Classify returns the direction, the peer's address and the service port.
// A socket is inbound when its local port is one this host listens on (on
// that address or a wildcard). When nothing listens there any more (the
// server side of a connection whose listener closed), the side whose port
// is in the ephemeral range is taken for the client.
func (c *Classifier) Classify(s Socket) (Direction, netip.Addr, uint16) {
	lp, rp := s.Local.Port(), s.Remote.Port()
	if s.State == Listen {
		// No peer yet: the listening address stands in for it, so --peer
		// 127.0.0.1 or :9200 selects the listener too.
		return Inbound, s.Local.Addr(), lp
	}
	for _, a := range c.listen[lp] {
		if a.IsUnspecified() || a == s.Local.Addr() {
			return Inbound, s.Remote.Addr(), lp
		}
	}
	if !c.ephemeral.contains(lp) && c.ephemeral.contains(rp) {
		return Inbound, s.Remote.Addr(), lp
	}
	return Outbound, s.Remote.Addr(), rp
}

// PeerKey is how a peer is named: "ip:port" outbound, "ip -> :port" inbound.
func PeerKey(d Direction, addr netip.Addr, port uint16) string {
	if d == Outbound {
		return netip.AddrPortFrom(addr, port).String()
	}
	return fmt.Sprintf("%s -> :%d", addr, port)
}

// ListenKey names the row of a listening socket: "* -> 127.0.0.1:9200", or
// "* -> :9200" on a wildcard address.
func ListenKey(addr netip.Addr, port uint16) string {
	if addr.IsUnspecified() {
		return fmt.Sprintf("* -> :%d", port)
	}
	return "* -> " + netip.AddrPortFrom(addr, port).String()
}

// Peer is every socket to one peer.
type Peer struct {
	Peer      string      `json:"peer"`
	Direction Direction   `json:"direction"`
	Alias     string      `json:"alias,omitempty"`
	States    StateCounts `json:"states"`
	SendQ     uint64      `json:"send_q_bytes"`
	RecvQ     uint64      `json:"recv_q_bytes"`
	Processes []Process   `json:"processes"`
	// Changes is the change of each state count since the previous
	// --watch sample; nil outside --watch.
	Changes *StateCounts `json:"changes,omitempty"`
	// TCP sums up the tcp_info of the peer's sockets; nil without it
	// (the /proc source).
	TCP *PeerTCP `json:"tcp,omitempty"`

	Addr netip.Addr `json:"-"`
	Port uint16     `json:"-"` // the service port
	// Stuck are ESTABLISHED/FIN_WAIT1 sockets whose Send-Q reached the
	// threshold given to Aggregate and, where tcp_info says, is not
	// draining.
	Stuck []StuckSocket `json:"-"`
	// Retransmitting are sockets whose retransmission timer fired at
	// least AggregateOptions.Retransmits times in a row; ZeroWindow those
	// held back by the peer's zero window (tcp_info only).
	Retransmitting []TCPSocket `json:"-"`
	ZeroWindow     []TCPSocket `json:"-"`
}

// StuckSocket is a connection with bytes sitting in its Send-Q.
type StuckSocket struct {
	Local  netip.AddrPort `json:"local"`
	Remote netip.AddrPort `json:"remote"`
	State  string         `json:"state"`
	SendQ  uint64         `json:"send_q_bytes"`
	// StuckTCP is what tcp_info adds (netlink source only).
	*StuckTCP
}

// StuckTCP is why tcp_info says a Send-Q is not draining.
type StuckTCP struct {
	// NoAckForMS is the time since an ACK last arrived.
	NoAckForMS int64 `json:"no_ack_for_ms"`
	// Unacked counts segments sent and not acknowledged.
	Unacked uint32 `json:"unacked_segments"`
	// Retransmits counts retransmission timeouts in a row.
	Retransmits uint8 `json:"retransmits"`
	// PeerWindow is the window the peer last advertised (bytes); absent
	// on kernels before 5.4.
	PeerWindow *uint32 `json:"peer_window_bytes,omitempty"`
	BytesAcked uint64  `json:"-"`
}

func stuckSocket(s *Socket) StuckSocket {
	st := StuckSocket{Local: s.Local, Remote: s.Remote, State: s.State.String(), SendQ: s.SendQ}
	if i := s.TCP; i != nil {
		st.StuckTCP = &StuckTCP{NoAckForMS: i.LastAckRecv.Milliseconds(), Unacked: i.Unacked, Retransmits: i.Retransmits, BytesAcked: i.BytesAcked}
		if i.HasSndWnd {
			w := i.SndWnd
			st.PeerWindow = &w
		}
	}
	return st
}

// Group is a row of --by process or --by state.
type Group struct {
	Key       string      `json:"key"`
	Sockets   int         `json:"sockets"`
	States    StateCounts `json:"states"`
	SendQ     uint64      `json:"send_q_bytes"`
	RecvQ     uint64      `json:"recv_q_bytes"`
	Peers     int         `json:"peers"`
	Processes []Process   `json:"processes,omitempty"`
}

// GroupBy selects the grouping of --by.
type GroupBy string

const (
	ByPeer    GroupBy = "peer"
	ByProcess GroupBy = "process"
	ByState   GroupBy = "state"
)

// AggregateOptions selects and groups sockets.
type AggregateOptions struct {
	Ephemeral PortRange
	Aliases   Aliases
	Peers     []PeerSpec     // --peer: keep sockets matching any; nil keeps all
	States    map[State]bool // --state: keep these; nil keeps all
	Owners    Owners         // from ScanProcesses; nil when attribution is off
	By        GroupBy        // "" or ByPeer: no groups
	SendQMin  uint64         // Send-Q bytes from which a socket counts as stuck

	// SpecsOutbound counts only outbound connections in Result.Specs:
	// the client's end of each connection to the peer, not the peer's own
	// end and listener when it runs in the same network namespace (which
	// would count every connection twice, plus the LISTEN socket).
	SpecsOutbound bool

	// Retransmits is how many retransmission timeouts in a row put a
	// socket in Peer.Retransmitting; ZeroWindowProbes how many zero-window
	// probe timeouts put it in Peer.ZeroWindow (0: never).
	Retransmits      int
	ZeroWindowProbes int
}

// maxProcs caps the process list of one row; a peer shared by hundreds
// of worker processes would otherwise swamp the report.
const maxProcs = 32

// Result is the aggregated view of one read of the socket table.
type Result struct {
	Peers  []Peer      `json:"peers"`
	Totals StateCounts `json:"totals"`
	// Specs counts, for each --peer, the sockets matching it regardless of
	// --state (so "no ESTABLISHED to es" is known even with --state
	// TIME_WAIT).
	Specs  []SpecCount `json:"-"`
	Groups []Group     `json:"groups,omitempty"`
}

// SpecCount is the state histogram of one --peer.
type SpecCount struct {
	Spec   PeerSpec
	States StateCounts
}

// Aggregate classifies socks and groups them per peer (and per process or
// state when o.By asks). Totals count every socket read, before filters.
func Aggregate(socks []Socket, o AggregateOptions) Result {
	cl := NewClassifier(socks, cmp.Or(o.Ephemeral, DefaultEphemeral))
	names := o.Aliases.portNames()
	res := Result{Peers: []Peer{}}
	for _, p := range o.Peers {
		res.Specs = append(res.Specs, SpecCount{Spec: p})
	}
	type pkey struct {
		dir    Direction
		addr   netip.Addr
		port   uint16
		listen bool
	}
	idx := map[pkey]int{}
	var tcp []tcpAcc // parallel to res.Peers, grown when tcp_info shows up
	groups := map[string]*Group{}
	groupPeers := map[string]map[int]bool{}
	for _, s := range socks {
		res.Totals[s.State]++
		dir, addr, port := cl.Classify(s)
		for i := range res.Specs {
			if o.SpecsOutbound && dir != Outbound {
				break
			}
			if res.Specs[i].Spec.Match(addr, port) {
				res.Specs[i].States[s.State]++
			}
		}
		if !o.keep(s.State, addr, port) {
			continue
		}
		k := pkey{dir, addr, port, s.State == Listen}
		i, ok := idx[k]
		if !ok {
			i = len(res.Peers)
			idx[k] = i
			key := PeerKey(dir, addr, port)
			if k.listen {
				key = ListenKey(addr, port)
			}
			res.Peers = append(res.Peers, Peer{
				Peer: key, Direction: dir, Alias: names[port],
				Processes: []Process{}, Addr: addr, Port: port,
			})
		}
		p := &res.Peers[i]
		p.States[s.State]++
		p.SendQ += s.SendQ
		p.RecvQ += s.RecvQ
		stuck := o.SendQMin > 0 && s.SendQ >= o.SendQMin && (s.State == Established || s.State == FinWait1)
		if stuck && !draining(&s, &o) {
			p.Stuck = append(p.Stuck, stuckSocket(&s))
		}
		if s.TCP != nil {
			for len(tcp) <= i {
				tcp = append(tcp, tcpAcc{})
			}
			tcp[i].add(p, &s, &o)
			if stuck && draining(&s, &o) {
				tcp[i].t.SendQDraining++
			}
		}
		owners := o.Owners[s.Inode]
		for _, pr := range owners {
			p.Processes = addProcess(p.Processes, pr, maxProcs)
		}
		switch o.By {
		case ByState:
			addToGroup(groups, groupPeers, s.State.String(), s, i, owners, maxProcs)
		case ByProcess:
			if len(owners) == 0 {
				addToGroup(groups, groupPeers, "-", s, i, nil, maxProcs)
			}
			for _, pr := range owners {
				addToGroup(groups, groupPeers, fmt.Sprintf("%d/%s", pr.PID, pr.Comm), s, i, []Process{pr}, maxProcs)
			}
		}
	}
	for i := range tcp {
		if tcp[i].t.Sockets > 0 {
			res.Peers[i].TCP = tcp[i].summary()
		}
	}
	slices.SortStableFunc(res.Peers, comparePeers)
	if o.By == ByState || o.By == ByProcess {
		res.Groups = []Group{}
		for k, g := range groups {
			g.Peers = len(groupPeers[k])
			res.Groups = append(res.Groups, *g)
		}
		slices.SortFunc(res.Groups, func(a, b Group) int {
			return cmp.Or(cmp.Compare(b.Sockets, a.Sockets), cmp.Compare(a.Key, b.Key))
		})
	}
	return res
}

// keep applies --peer and --state.
func (o *AggregateOptions) keep(st State, addr netip.Addr, port uint16) bool {
	if o.States != nil && !o.States[st] {
		return false
	}
	if len(o.Peers) == 0 {
		return true
	}
	for _, p := range o.Peers {
		if p.Match(addr, port) {
			return true
		}
	}
	return false
}

// Inodes returns the socket inodes Aggregate would keep with o, so process
// attribution only looks for sockets that will be shown.
func Inodes(socks []Socket, o AggregateOptions) map[uint64]struct{} {
	cl := NewClassifier(socks, cmp.Or(o.Ephemeral, DefaultEphemeral))
	want := make(map[uint64]struct{}, len(socks))
	for _, s := range socks {
		if s.Inode == 0 {
			continue
		}
		_, addr, port := cl.Classify(s)
		if o.keep(s.State, addr, port) {
			want[s.Inode] = struct{}{}
		}
	}
	return want
}

func addToGroup(groups map[string]*Group, groupPeers map[string]map[int]bool, key string, s Socket, peer int, owners []Process, maxProcs int) {
	g := groups[key]
	if g == nil {
		g = &Group{Key: key}
		groups[key] = g
		groupPeers[key] = map[int]bool{}
	}
	g.Sockets++
	g.States[s.State]++
	g.SendQ += s.SendQ
	g.RecvQ += s.RecvQ
	groupPeers[key][peer] = true
	for _, pr := range owners {
		g.Processes = addProcess(g.Processes, pr, maxProcs)
	}
}

// addProcess keeps ps sorted by PID without duplicates, at most max long.
func addProcess(ps []Process, p Process, max int) []Process {
	i, found := slices.BinarySearchFunc(ps, p.PID, func(x Process, pid int) int { return cmp.Compare(x.PID, pid) })
	if found || len(ps) >= max {
		return ps
	}
	return slices.Insert(ps, i, p)
}

// comparePeers orders outbound before inbound, then by service port and
// address, so rows keep their place between --watch samples.
func comparePeers(a, b Peer) int {
	return cmp.Or(
		cmp.Compare(dirRank(a.Direction), dirRank(b.Direction)),
		cmp.Compare(a.Port, b.Port),
		a.Addr.Compare(b.Addr),
	)
}

func dirRank(d Direction) int {
	if d == Outbound {
		return 0
	}
	return 1
}

// Diff sets each peer's Changes against the previous sample and appends
// peers that were in prev but are gone now (all counts zero, changes
// negative), so a draining CLOSE_WAIT pile shows as such.
func Diff(cur, prev []Peer) []Peer {
	type key struct {
		d Direction
		p string
	}
	old := make(map[key]*Peer, len(prev))
	for i := range prev {
		old[key{prev[i].Direction, prev[i].Peer}] = &prev[i]
	}
	seen := map[key]bool{}
	for i := range cur {
		k := key{cur[i].Direction, cur[i].Peer}
		seen[k] = true
		var ch StateCounts
		for s := range ch {
			ch[s] = cur[i].States[s]
			if o := old[k]; o != nil {
				ch[s] -= o.States[s]
			}
		}
		cur[i].Changes = &ch
	}
	for i := range prev {
		k := key{prev[i].Direction, prev[i].Peer}
		if seen[k] {
			continue
		}
		gone := prev[i]
		var ch StateCounts
		for s := range ch {
			ch[s] = -gone.States[s]
		}
		gone.States = StateCounts{}
		gone.SendQ, gone.RecvQ, gone.Stuck = 0, 0, nil
		gone.TCP, gone.Retransmitting, gone.ZeroWindow = nil, nil, nil
		gone.Changes = &ch
		cur = append(cur, gone)
	}
	return cur
}
