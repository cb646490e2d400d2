package exporter

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// DefaultMaxPeers is the default cap on peer label values per socket
// table: the peers past it are summed into peer="other" (per alias), so a
// node with thousands of clients cannot blow up the series count.
const DefaultMaxPeers = 100

// OtherPeer is the peer label of the peers folded past the cap.
const OtherPeer = "other"

// TableReader reads one network namespace's TCP socket table (the command
// layer backs it with netlink or /proc, as `logdoctor sockets` does).
type TableReader func() ([]sockstat.Socket, error)

// SocketsConfig configures a sockets source.
type SocketsConfig struct {
	// Shipper labels the table: "" for the host's (or --pid's) view, the
	// shipper's name for a discovered shipper's namespace.
	Shipper string
	Read    TableReader
	// Peers are the configured peers (--peer, a shipper's outputs): when
	// given, only sockets to them are exported per peer, and each gets
	// logdoctor_tcp_target_sockets whether it has sockets or not.
	Peers      []sockstat.PeerSpec
	Aliases    sockstat.Aliases
	Ephemeral  sockstat.PortRange
	Thresholds sockstat.Thresholds
	// MaxPeers caps the peer label values (DefaultMaxPeers when 0).
	MaxPeers int
}

// Sockets is the source of logdoctor_tcp_*: socket states and queues per
// peer, retransmissions from tcp_info, and the sockets findings.
type Sockets struct {
	c    SocketsConfig
	prev *sockstat.Result
	// retrans remembers, per connection that has retransmitted, the
	// kernel's total, so that logdoctor_tcp_retransmits_total only ever
	// adds what happened since the last run: connections come and go, and
	// a sum of their totals would fall whenever one closes.
	retrans    map[connKey]uint32
	counted    map[peerLabel]float64
	baselined  bool
	sockets    *prometheus.Desc
	queue      *prometheus.Desc
	retransmit *prometheus.Desc
	target     *prometheus.Desc
	peers      *prometheus.Desc
	folded     *prometheus.Desc
}

type connKey struct {
	local, remote netip.AddrPort
	inode         uint64
}

type peerLabel struct{ peer, alias string }

// classKey is what Classify says of a socket.
type classKey struct {
	dir  sockstat.Direction
	addr netip.Addr
	port uint16
}

// NewSockets returns a sockets source.
func NewSockets(c SocketsConfig) *Sockets {
	if c.MaxPeers <= 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.Aliases == nil {
		c.Aliases = sockstat.DefaultAliases()
	}
	if c.Ephemeral == (sockstat.PortRange{}) {
		c.Ephemeral = sockstat.DefaultEphemeral
	}
	return &Sockets{
		c: c, retrans: map[connKey]uint32{}, counted: map[peerLabel]float64{},
		sockets: prometheus.NewDesc("logdoctor_tcp_sockets",
			"TCP sockets per peer and state. peer is ip:port for outbound connections (the service port), "+
				"\"ip -> :port\" for inbound ones, \"* -> :port\" for listeners, \"other\" for the peers past the cap.",
			[]string{"shipper", "peer", "alias", "state"}, nil),
		queue: prometheus.NewDesc("logdoctor_tcp_queue_bytes",
			"Bytes in the peer's sockets' send queue (unacknowledged or unsent) and receive queue (not yet read).",
			[]string{"shipper", "peer", "alias", "queue"}, nil),
		retransmit: prometheus.NewDesc("logdoctor_tcp_retransmits_total",
			"TCP segments retransmitted to the peer, from tcp_info (netlink source only), counted from the exporter's start.",
			[]string{"shipper", "peer", "alias"}, nil),
		target: prometheus.NewDesc("logdoctor_tcp_target_sockets",
			"TCP sockets to each configured peer (--peer, a shipper's outputs) per state, 0 included, so that no ESTABLISHED connection shows as 0: "+
				"the local end of outbound connections only, never a same-host peer's own end or listener. alias is es or forward for a shipper's outputs whatever their port, the --peer alias or its port's otherwise.",
			[]string{"shipper", "target", "alias", "state"}, nil),
		peers: prometheus.NewDesc("logdoctor_tcp_peers",
			"Distinct peers in the socket table (after --peer filtering), before the cap.",
			[]string{"shipper"}, nil),
		folded: prometheus.NewDesc("logdoctor_tcp_peers_folded",
			"Peers past the cap whose sockets are counted under peer=\"other\".",
			[]string{"shipper"}, nil),
	}
}

func (s *Sockets) Name() string   { return "sockets" }
func (s *Sockets) Target() string { return s.c.Shipper }

func (s *Sockets) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.sockets, s.queue, s.retransmit, s.target, s.peers, s.folded} {
		ch <- d
	}
}

// row is one peer label's sums.
type row struct {
	label  peerLabel
	states sockstat.StateCounts
	sendQ  uint64
	recvQ  uint64
}

func (s *Sockets) Collect(ctx context.Context) (*Sample, error) {
	socks, err := s.c.Read()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := sockstat.Aggregate(socks, sockstat.AggregateOptions{
		Ephemeral: s.c.Ephemeral, Aliases: s.c.Aliases, Peers: s.c.Peers, SendQMin: s.c.Thresholds.SendQ, SpecsOutbound: true,
		Retransmits: s.c.Thresholds.Retransmits, ZeroWindowProbes: s.c.Thresholds.ZeroWindowProbes,
	})
	out := &Sample{}
	rows, kept, folded := s.cap(res.Peers)
	specs := map[string]bool{}
	for _, p := range s.c.Peers {
		specs[p.Raw] = true
	}
	for _, f := range sockstat.Findings(res, s.prev, s.c.Thresholds) {
		// Findings name peers too: past the cap they are about "other",
		// or logdoctor_finding would carry the cardinality the cap keeps
		// out of logdoctor_tcp_sockets.
		target := evidenceString(f.Evidence, "peer")
		if _, ok := kept[target]; !ok && !specs[target] {
			target = OtherPeer
		}
		out.Findings = append(out.Findings, Finding{Finding: f, Target: target, Shipper: s.c.Shipper})
	}
	s.prev = &res
	sh := s.c.Shipper
	for _, r := range rows {
		for _, st := range sockstat.AllStates() {
			if n := r.states[st]; n > 0 {
				out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(s.sockets, prometheus.GaugeValue, float64(n), sh, r.label.peer, r.label.alias, st.String()))
			}
		}
		out.Metrics = append(out.Metrics,
			prometheus.MustNewConstMetric(s.queue, prometheus.GaugeValue, float64(r.sendQ), sh, r.label.peer, r.label.alias, "send"),
			prometheus.MustNewConstMetric(s.queue, prometheus.GaugeValue, float64(r.recvQ), sh, r.label.peer, r.label.alias, "recv"))
	}
	out.Metrics = append(out.Metrics,
		prometheus.MustNewConstMetric(s.peers, prometheus.GaugeValue, float64(len(res.Peers)), sh),
		prometheus.MustNewConstMetric(s.folded, prometheus.GaugeValue, float64(folded), sh))
	for _, sc := range res.Specs {
		alias := sc.Spec.Alias
		if alias == "" {
			alias = s.specAlias(sc.Spec)
		}
		for _, st := range sockstat.AllStates() {
			out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(s.target, prometheus.GaugeValue, float64(sc.States[st]), sh, sc.Spec.Raw, alias, st.String()))
		}
	}
	s.countRetransmits(socks, kept)
	labels := make([]peerLabel, 0, len(s.counted))
	for l := range s.counted {
		labels = append(labels, l)
	}
	slices.SortFunc(labels, func(a, b peerLabel) int { return cmp.Or(cmp.Compare(a.peer, b.peer), cmp.Compare(a.alias, b.alias)) })
	for _, l := range labels {
		out.Metrics = append(out.Metrics, prometheus.MustNewConstMetric(s.retransmit, prometheus.CounterValue, s.counted[l], sh, l.peer, l.alias))
	}
	return out, nil
}

// specAlias names a configured peer by its port's alias when it has one
// (10.0.0.5:9200 is "es").
func (s *Sockets) specAlias(p sockstat.PeerSpec) string {
	for name, ports := range s.c.Aliases {
		for _, want := range p.Ports {
			if slices.Contains(ports, want) {
				return name
			}
		}
	}
	return ""
}

// cap keeps the MaxPeers peers with the most sockets (ties by name, so the
// choice is stable between runs) and sums the others per alias into
// peer="other". kept maps each peer key kept to its label.
func (s *Sockets) cap(peers []sockstat.Peer) (rows []row, kept map[string]peerLabel, folded int) {
	order := make([]int, len(peers))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(peers[b].States.Total(), peers[a].States.Total()), cmp.Compare(peers[a].Peer, peers[b].Peer))
	})
	kept = make(map[string]peerLabel, min(len(peers), s.c.MaxPeers))
	other := map[string]int{} // alias -> index in rows
	for n, i := range order {
		p := &peers[i]
		l := peerLabel{peer: p.Peer, alias: p.Alias}
		if n >= s.c.MaxPeers {
			folded++
			l.peer = OtherPeer
			j, ok := other[p.Alias]
			if !ok {
				j = len(rows)
				other[p.Alias] = j
				rows = append(rows, row{label: l})
			}
			addRow(&rows[j], p)
			continue
		}
		kept[p.Peer] = l
		rows = append(rows, row{label: l})
		addRow(&rows[len(rows)-1], p)
	}
	return rows, kept, folded
}

func addRow(r *row, p *sockstat.Peer) {
	for st, n := range p.States {
		r.states[st] += n
	}
	r.sendQ += p.SendQ
	r.recvQ += p.RecvQ
}

// countRetransmits adds each connection's retransmissions since the last
// run to its peer's counter. The first run only takes the baseline: what
// connections retransmitted before the exporter started is not counted.
// A connection first seen after that counts from zero: it either is new,
// or had not retransmitted when last seen (only connections that have are
// remembered, which keeps the map small on a big table).
func (s *Sockets) countRetransmits(socks []sockstat.Socket, kept map[string]peerLabel) {
	cl := sockstat.NewClassifier(socks, s.c.Ephemeral)
	names := aliasNames(s.c.Aliases)
	seen := make(map[connKey]uint32, len(s.retrans))
	live := map[peerLabel]bool{}
	labels := map[classKey]peerLabel{}
	for i := range socks {
		sk := &socks[i]
		if sk.TCP == nil || sk.State == sockstat.Listen {
			continue
		}
		dir, addr, port := cl.Classify(*sk)
		pk := classKey{dir, addr, port}
		l, ok := labels[pk]
		if !ok {
			// Once per peer, not per socket: the key is a formatted
			// string.
			if !s.wanted(addr, port) {
				l = peerLabel{}
			} else if l, ok = kept[sockstat.PeerKey(dir, addr, port)]; !ok {
				l = peerLabel{peer: OtherPeer, alias: names[port]}
			}
			labels[pk] = l
		}
		if l.peer == "" {
			continue
		}
		live[l] = true
		if _, ok := s.counted[l]; !ok {
			s.counted[l] = 0
		}
		total := sk.TCP.TotalRetrans
		if total == 0 {
			continue
		}
		k := connKey{sk.Local, sk.Remote, sk.Inode}
		seen[k] = total
		if !s.baselined {
			continue
		}
		if before, ok := s.retrans[k]; ok && total >= before {
			s.counted[l] += float64(total - before)
		} else if !ok {
			s.counted[l] += float64(total)
		}
	}
	s.retrans, s.baselined = seen, true
	// A peer with no connection left drops its series, so the label set
	// stays bounded by the live peers; Prometheus treats a return as a
	// counter reset.
	for l := range s.counted {
		if !live[l] {
			delete(s.counted, l)
		}
	}
}

// wanted applies --peer as Aggregate does.
func (s *Sockets) wanted(addr netip.Addr, port uint16) bool {
	if len(s.c.Peers) == 0 {
		return true
	}
	for _, p := range s.c.Peers {
		if p.Match(addr, port) {
			return true
		}
	}
	return false
}

// aliasNames maps ports to alias names like sockstat does: with two
// aliases on one port, the alphabetically first.
func aliasNames(a sockstat.Aliases) map[uint16]string {
	m := map[uint16]string{}
	for name, ports := range a {
		for _, p := range ports {
			if old, ok := m[p]; !ok || name < old {
				m[p] = name
			}
		}
	}
	return m
}

// evidenceString reads a string from a finding's evidence.
func evidenceString(ev map[string]any, key string) string {
	switch v := ev[key].(type) {
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}
