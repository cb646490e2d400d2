package udpfrag

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"time"

	"github.com/logdoctor/logdoctor/pkg/pcap"
)

// Class is what became of one UDP datagram on the wire.
type Class int

const (
	Unfragmented         Class = iota // one packet, lengths agree
	FragmentedComplete                // every fragment arrived within the timeout
	FragmentedIncomplete              // first fragment seen, the rest never came: the black hole
	OrphanFragments                   // non-first fragments whose first never came
	BadLength                         // UDP length larger than what arrived, unfragmented
	SnapTruncated                     // the capture's snaplen cut it, not the network
	numClasses
)

var classNames = [numClasses]string{
	"unfragmented", "fragmented_complete", "fragmented_incomplete",
	"orphan_fragments", "bad_length", "snap_truncated",
}

func (c Class) String() string {
	if c < 0 || c >= numClasses {
		return "class(" + strconv.Itoa(int(c)) + ")"
	}
	return classNames[c]
}

// ClassNames lists the class names in report order.
func ClassNames() []string { return append([]string(nil), classNames[:]...) }

// Classes counts datagrams per class. In JSON it is an object with exactly
// the class names as keys, in a fixed order.
type Classes [numClasses]uint64

// Total is the number of datagrams counted.
func (c Classes) Total() uint64 {
	var t uint64
	for _, v := range c {
		t += v
	}
	return t
}

// Lost counts the datagrams that did not arrive whole.
func (c Classes) Lost() uint64 {
	return c[FragmentedIncomplete] + c[OrphanFragments] + c[BadLength]
}

func (c Classes) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, n := range classNames {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, n)
		b = append(b, ':')
		b = strconv.AppendUint(b, c[i], 10)
	}
	return append(b, '}'), nil
}

func (c *Classes) UnmarshalJSON(b []byte) error {
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for i, n := range classNames {
		c[i] = m[n]
	}
	return nil
}

// Config tunes the accounting. The zero value works: all ports, the
// kernel's 30 s reassembly timeout and bounded flow state.
type Config struct {
	Ports    []uint16      // destination ports to count; empty = every port
	Timeout  time.Duration // reassembly timeout; 0 = 30 s (net.ipv4.ipfrag_time)
	MaxFlows int           // open reassemblies kept; 0 = 65536
	MaxBytes int           // fragment bytes held in open reassemblies; 0 = 4 MiB (ipfrag_high_thresh)
	MTU      int           // path MTU given by the user; overrides what the fragments show
	IfaceMTU int           // MTU of the capture interface, used when no fragment shows it
}

// Defaults of a zero Config field (and of udp-frag's flags).
const (
	DefaultTimeout  = 30 * time.Second // the kernel's net.ipv4.ipfrag_time
	DefaultMaxFlows = 65536
	DefaultMaxBytes = 4 << 20 // ipfrag_high_thresh
)

const (
	maxSources   = 4096 // per-source rows kept; the rest add up under "other"
	maxSpans     = 16   // disjoint byte ranges tracked per reassembly
	maxLostSizes = 32
	// MaxUDPPayload is the largest UDP payload IPv4 can carry at all
	// (65535 - 20 - 8); bigger messages cannot be sent.
	MaxUDPPayload = 65507
	// MaxUDPPayload6 is the same for IPv6 without jumbograms (65535 - 8:
	// the payload length field does not count the IPv6 header).
	MaxUDPPayload6 = 65527
)

// MaxUnfragmented is the largest UDP payload that leaves in one packet on a
// path of this MTU, over IPv4 and IPv6: the MTU less the IP and UDP
// headers, and never more than UDP can carry at all (a loopback MTU of
// 65536 would otherwise give 65508).
func MaxUnfragmented(mtu int) (v4, v6 int) {
	return min(max(mtu-28, 0), MaxUDPPayload), min(max(mtu-48, 0), MaxUDPPayload6)
}

type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

type span struct{ a, b int }

// flow is one datagram being reassembled. Only the byte ranges received are
// kept, never the bytes: a verdict needs coverage, not content.
type flow struct {
	key        fragKey
	created    int64
	prev, next *flow
	spans      [maxSpans]span
	n          int
	total      int // -1 until the last fragment arrives
	overflow   bool
	haveFirst  bool
	haveUDP    bool
	snap       bool
	tooLarge   bool
	dport      uint16
	udpLen     int
	held       int
}

func (f *flow) add(a, b int) {
	if b <= a {
		return
	}
	// insert keeping spans sorted and merged; in-order fragments keep n == 1
	i := 0
	for i < f.n && f.spans[i].b < a {
		i++
	}
	j := i
	for j < f.n && f.spans[j].a <= b {
		a = min(a, f.spans[j].a)
		b = max(b, f.spans[j].b)
		j++
	}
	merged := j - i
	if merged == 0 {
		if f.n == maxSpans {
			f.overflow = true
			return
		}
		copy(f.spans[i+1:f.n+1], f.spans[i:f.n])
		f.n++
	} else if merged > 1 {
		copy(f.spans[i+1:], f.spans[j:f.n])
		f.n -= merged - 1
	}
	f.spans[i] = span{a, b}
}

func (f *flow) complete() bool {
	return !f.overflow && f.total >= 0 && f.n == 1 && f.spans[0].a == 0 && f.spans[0].b >= f.total
}

// Counters are packet-level tallies.
type Counters struct {
	Packets    uint64 `json:"packets"`
	UDPPackets uint64 `json:"udp_packets"`
	Fragments  uint64 `json:"fragments"`
	NotIP      uint64 `json:"not_ip"`
	NotUDP     uint64 `json:"not_udp"`
	Malformed  uint64 `json:"malformed"`
	SnapHeader uint64 `json:"snap_cut_headers"` // IP header itself cut by snaplen
	OtherPorts uint64 `json:"other_ports"`      // datagrams to ports not asked for
}

// ReasmStats describes the reassembly state machine.
type ReasmStats struct {
	TimeoutMS int64  `json:"timeout_ms"`
	MaxFlows  int    `json:"max_flows"`
	MaxBytes  int    `json:"max_bytes"`
	Completed uint64 `json:"completed"`
	Expired   uint64 `json:"expired"`
	Evicted   uint64 `json:"evicted"`     // dropped to stay within max_flows/max_bytes
	OpenAtEnd uint64 `json:"open_at_end"` // still waiting when the input ended
	PeakFlows int    `json:"peak_flows"`
	Oversize  uint64 `json:"oversize"` // fragments reaching beyond 65,535 bytes
}

// Analyzer classifies UDP datagrams from captured packets, reassembling
// IPv4 and IPv6 fragments the way the kernel keys them (source,
// destination, protocol, id). It is not safe for concurrent use.
type Analyzer struct {
	cfg      Config
	timeout  int64
	allPorts bool
	ports    [1024]uint64 // bitmap of wanted destination ports

	pkt   pcap.IPPacket
	flows map[fragKey]*flow
	head  *flow // oldest open reassembly
	tail  *flow
	free  []*flow
	held  int
	clock int64

	c         Counters
	reasm     ReasmStats
	classes   Classes
	sources   map[netip.Addr]*Classes
	otherSrc  Classes
	dstPorts  map[uint16]*Classes
	sizes     [2][]uint32 // datagram count by payload size, [0] IPv4, [1] IPv6
	mtu       [2]int      // largest non-last fragment seen
	fragMin   int
	fragMax   int
	lostSizes map[int]uint64
}

// NewAnalyzer returns an Analyzer with cfg's limits.
func NewAnalyzer(cfg Config) *Analyzer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	a := &Analyzer{
		cfg:       cfg,
		timeout:   int64(cfg.Timeout),
		allPorts:  len(cfg.Ports) == 0,
		flows:     make(map[fragKey]*flow),
		sources:   make(map[netip.Addr]*Classes),
		dstPorts:  make(map[uint16]*Classes),
		lostSizes: make(map[int]uint64),
		sizes:     [2][]uint32{make([]uint32, 65536), make([]uint32, 65536)},
		fragMin:   -1,
	}
	for _, p := range cfg.Ports {
		a.ports[p/64] |= 1 << (p % 64)
	}
	a.reasm = ReasmStats{TimeoutMS: cfg.Timeout.Milliseconds(), MaxFlows: cfg.MaxFlows, MaxBytes: cfg.MaxBytes}
	return a
}

func (a *Analyzer) portOK(p uint16) bool {
	return a.allPorts || a.ports[p/64]&(1<<(p%64)) != 0
}

// Packet accounts one captured frame of the given link type. The data is
// not retained.
func (a *Analyzer) Packet(data []byte, m pcap.Meta) {
	a.c.Packets++
	if m.TimeNS > a.clock {
		a.clock = m.TimeNS
		a.Expire(m.TimeNS)
	}
	orig := m.OrigLen
	if orig < len(data) {
		orig = len(data)
	}
	p := &a.pkt
	switch pcap.Decode(p, m.Link, data, orig) {
	case pcap.NotIP:
		a.c.NotIP++
		return
	case pcap.NotUDP:
		a.c.NotUDP++
		return
	case pcap.Malformed:
		a.c.Malformed++
		return
	case pcap.SnapShort:
		a.c.SnapHeader++
		return
	}
	if p.Frag {
		a.fragment(p)
		return
	}
	if p.Proto != 17 {
		a.c.NotUDP++
		return
	}
	a.c.UDPPackets++
	if !p.HaveUDP {
		if p.SnapCut {
			a.count(SnapTruncated, p.V6, p.Src, 0, -1)
		} else {
			a.count(BadLength, p.V6, p.Src, 0, -1)
		}
		return
	}
	if !a.portOK(p.DstPort) {
		a.c.OtherPorts++
		return
	}
	size := max(p.UDPLen-8, 0)
	switch {
	case p.SnapCut:
		a.count(SnapTruncated, p.V6, p.Src, p.DstPort, size)
	case p.UDPLen < 8 || p.UDPLen > p.PLen || p.WireCut:
		a.count(BadLength, p.V6, p.Src, p.DstPort, size)
	default:
		a.count(Unfragmented, p.V6, p.Src, p.DstPort, size)
	}
}

func (a *Analyzer) fragment(p *pcap.IPPacket) {
	if p.Proto != 17 && p.Off == 0 {
		// a first fragment says what it carries; later ones may say UDP
		// (IPv4 repeats the protocol) so only the first can rule it out
		a.c.NotUDP++
		return
	}
	if p.Proto != 17 {
		a.c.NotUDP++
		return
	}
	a.c.Fragments++
	a.c.UDPPackets++
	fam := 0
	if p.V6 {
		fam = 1
	}
	if p.More && p.Size > a.mtu[fam] {
		a.mtu[fam] = p.Size
	}
	k := fragKey{src: p.Src, dst: p.Dst, id: p.ID, proto: p.Proto, v6: p.V6}
	f := a.flows[k]
	if f == nil {
		for len(a.flows) >= a.cfg.MaxFlows && a.head != nil {
			a.reasm.Evicted++
			a.finish(a.head, false)
		}
		f = a.newFlow(k)
	}
	if p.Off == 0 {
		f.haveFirst = true
		if p.HaveUDP {
			f.haveUDP, f.dport, f.udpLen = true, p.DstPort, p.UDPLen
		} else if p.SnapCut {
			f.snap = true
		}
	}
	if p.TooLarge {
		f.tooLarge = true
	}
	f.add(p.Off, p.Off+p.PLen)
	if !p.More {
		f.total = p.Off + p.PLen
	}
	f.held += p.PLen
	a.held += p.PLen
	if f.complete() {
		a.reasm.Completed++
		a.finish(f, true)
		return
	}
	for a.held > a.cfg.MaxBytes && a.head != nil && a.head != f {
		a.reasm.Evicted++
		a.finish(a.head, false)
	}
}

func (a *Analyzer) newFlow(k fragKey) *flow {
	var f *flow
	if n := len(a.free); n > 0 {
		f = a.free[n-1]
		a.free = a.free[:n-1]
		*f = flow{}
	} else {
		f = &flow{}
	}
	f.key, f.created, f.total = k, a.clock, -1
	f.prev = a.tail
	if a.tail != nil {
		a.tail.next = f
	} else {
		a.head = f
	}
	a.tail = f
	a.flows[k] = f
	if len(a.flows) > a.reasm.PeakFlows {
		a.reasm.PeakFlows = len(a.flows)
	}
	return f
}

// finish closes a reassembly and classifies its datagram.
func (a *Analyzer) finish(f *flow, complete bool) {
	delete(a.flows, f.key)
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		a.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else {
		a.tail = f.prev
	}
	a.held -= f.held
	if f.tooLarge {
		a.reasm.Oversize++
	}
	v6, src := f.key.v6, f.key.src
	switch {
	case !f.haveFirst:
		a.count(OrphanFragments, v6, src, 0, -1)
	case !f.haveUDP:
		if f.snap {
			a.count(SnapTruncated, v6, src, 0, -1)
		} else if complete {
			a.count(BadLength, v6, src, 0, -1)
		} else {
			a.count(FragmentedIncomplete, v6, src, 0, -1)
		}
	case !a.portOK(f.dport):
		a.c.OtherPorts++
	case complete && (f.udpLen < 8 || f.udpLen > f.total):
		a.count(BadLength, v6, src, f.dport, max(f.udpLen-8, 0))
	case complete:
		a.count(FragmentedComplete, v6, src, f.dport, f.total-8)
	default:
		size := max(f.udpLen-8, 0)
		a.count(FragmentedIncomplete, v6, src, f.dport, size)
		if _, ok := a.lostSizes[size]; ok || len(a.lostSizes) < maxLostSizes {
			a.lostSizes[size]++
		}
	}
	a.free = append(a.free, f)
}

// count records one datagram. size < 0 means unknown; dport 0 unknown.
func (a *Analyzer) count(c Class, v6 bool, src [16]byte, dport uint16, size int) {
	a.classes[c]++
	var addr netip.Addr
	if v6 {
		addr = netip.AddrFrom16(src)
	} else {
		addr = netip.AddrFrom4([4]byte(src[:4]))
	}
	sc := a.sources[addr]
	if sc == nil {
		if len(a.sources) < maxSources {
			sc = &Classes{}
			a.sources[addr] = sc
		} else {
			sc = &a.otherSrc
		}
	}
	sc[c]++
	if dport != 0 {
		pc := a.dstPorts[dport]
		if pc == nil && len(a.dstPorts) < maxSources {
			pc = &Classes{}
			a.dstPorts[dport] = pc
		}
		if pc != nil {
			pc[c]++
		}
	}
	if size >= 0 && size < 65536 {
		fam := 0
		if v6 {
			fam = 1
		}
		a.sizes[fam][size]++
		if c == FragmentedComplete || c == FragmentedIncomplete {
			if a.fragMin < 0 || size < a.fragMin {
				a.fragMin = size
			}
			a.fragMax = max(a.fragMax, size)
		}
	}
}

// Expire closes reassemblies older than the timeout at time now (Unix ns):
// the kernel gives up on them then, and so does the accounting.
func (a *Analyzer) Expire(now int64) {
	for a.head != nil && now-a.head.created > a.timeout {
		a.reasm.Expired++
		a.finish(a.head, false)
	}
}

// Flush closes every open reassembly, at the end of the input: fragments
// that did not come by then never came.
func (a *Analyzer) Flush() {
	for a.head != nil {
		a.reasm.OpenAtEnd++
		a.finish(a.head, false)
	}
}

// Classes returns the per-class datagram counts so far.
func (a *Analyzer) Classes() Classes { return a.classes }
