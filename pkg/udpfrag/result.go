package udpfrag

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/pcap"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// Bucket is one histogram bar: datagrams whose UDP payload is at most Le
// bytes (and above the previous bucket's bound). Le 0 is the open top.
type Bucket struct {
	Le    int    `json:"le"`
	Count uint64 `json:"count"`
}

// histogramBounds are chosen around the sizes that matter: the IPv6
// minimum (1280-48), MTU 1460 and 1500 limits, and the IPv4 maximum.
var histogramBounds = []int{256, 512, 1024, 1232, 1432, 1472, 2048, 4096, 8192, 16384, 32768, MaxUDPPayload}

// SizeStats is the size analysis.
type SizeStats struct {
	Histogram           []Bucket `json:"histogram"`
	Largest             int      `json:"largest_datagram"`
	PathMTU             int      `json:"path_mtu"`
	MTUSource           string   `json:"mtu_source"` // flag, fragments, interface or default
	MaxUnfragmented4    int      `json:"max_unfragmented_payload_ipv4"`
	MaxUnfragmented6    int      `json:"max_unfragmented_payload_ipv6"`
	OverMaxUnfragmented uint64   `json:"over_max_unfragmented"`
	FragmentedMin       int      `json:"fragmented_min,omitempty"`
	FragmentedMax       int      `json:"fragmented_max,omitempty"`
	LostSizes           []int    `json:"lost_sizes,omitempty"` // sizes of incomplete datagrams
}

// Result is the udp-frag command's data.
type Result struct {
	Mode       string              `json:"mode"` // file or live
	Input      string              `json:"input"`
	Ports      []uint16            `json:"ports"` // empty: every port
	Datagrams  Classes             `json:"datagrams"`
	Sources    map[string]*Classes `json:"sources"`
	DstPorts   map[string]*Classes `json:"dst_ports"`
	Packets    Counters            `json:"packets"`
	Sizes      SizeStats           `json:"sizes"`
	Reassembly ReasmStats          `json:"reassembly"`
	File       *pcap.FileStats     `json:"file,omitempty"`
	Capture    *pcap.CaptureStats  `json:"capture,omitempty"`
	Kernel     *KernelDelta        `json:"kernel,omitempty"`
}

// Result summarises what was accounted so far. Call Flush first at the end
// of the input.
func (a *Analyzer) Result() *Result {
	r := &Result{
		Ports:      append([]uint16{}, a.cfg.Ports...),
		Datagrams:  a.classes,
		Sources:    make(map[string]*Classes, len(a.sources)+1),
		DstPorts:   make(map[string]*Classes, len(a.dstPorts)),
		Packets:    a.c,
		Reassembly: a.reasm,
	}
	for addr, c := range a.sources {
		cc := *c
		r.Sources[addr.String()] = &cc
	}
	if a.otherSrc.Total() > 0 {
		cc := a.otherSrc
		r.Sources["other"] = &cc
	}
	for p, c := range a.dstPorts {
		cc := *c
		r.DstPorts[strconv.Itoa(int(p))] = &cc
	}
	s := &r.Sizes
	switch {
	case a.cfg.MTU > 0:
		s.PathMTU, s.MTUSource = a.cfg.MTU, "flag"
	case a.mtu[0] > 0:
		s.PathMTU, s.MTUSource = a.mtu[0], "fragments"
	case a.mtu[1] > 0:
		s.PathMTU, s.MTUSource = a.mtu[1], "fragments"
	case a.cfg.IfaceMTU > 0:
		s.PathMTU, s.MTUSource = a.cfg.IfaceMTU, "interface"
	default:
		s.PathMTU, s.MTUSource = 1500, "default"
	}
	s.MaxUnfragmented4, s.MaxUnfragmented6 = MaxUnfragmented(s.PathMTU)
	s.Histogram = make([]Bucket, len(histogramBounds)+1)
	for i, le := range histogramBounds {
		s.Histogram[i].Le = le
	}
	for fam, limit := range []int{s.MaxUnfragmented4, s.MaxUnfragmented6} {
		b := 0
		for size, n := range a.sizes[fam] {
			if n == 0 {
				continue
			}
			for b < len(histogramBounds) && size > histogramBounds[b] {
				b++
			}
			s.Histogram[b].Count += uint64(n)
			s.Largest = max(s.Largest, size)
			if size > limit {
				s.OverMaxUnfragmented += uint64(n)
			}
		}
	}
	if a.fragMin >= 0 {
		s.FragmentedMin, s.FragmentedMax = a.fragMin, a.fragMax
	}
	for size := range a.lostSizes {
		s.LostSizes = append(s.LostSizes, size)
	}
	sort.Ints(s.LostSizes)
	return r
}

// topSources returns source addresses ordered by datagrams lost, then by
// total, at most n.
func (r *Result) topSources(n int) []string {
	keys := make([]string, 0, len(r.Sources))
	for k := range r.Sources {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := r.Sources[keys[i]], r.Sources[keys[j]]
		if a.Lost() != b.Lost() {
			return a.Lost() > b.Lost()
		}
		if a.Total() != b.Total() {
			return a.Total() > b.Total()
		}
		return keys[i] < keys[j]
	})
	if len(keys) > n {
		keys = keys[:n]
	}
	return keys
}

func classRow(name string, c *Classes) []string {
	row := []string{name}
	for _, v := range c {
		row = append(row, strconv.FormatUint(v, 10))
	}
	return row
}

// Sections is the table view.
func (r *Result) Sections() []report.Section {
	header := append([]string{""}, classNames[:]...)
	var out []report.Section
	title := fmt.Sprintf("UDP datagrams (%s %s, ports %s)", r.Mode, r.Input, portsString(r.Ports))
	out = append(out, report.Section{Title: title, Header: header, Rows: [][]string{classRow("all", &r.Datagrams)}})

	srcRows := [][]string{}
	top := r.topSources(20)
	for _, k := range top {
		srcRows = append(srcRows, classRow(k, r.Sources[k]))
	}
	if len(srcRows) > 0 {
		sec := report.Section{Title: "Per source", Header: append([]string{"source"}, classNames[:]...), Rows: srcRows}
		if len(r.Sources) > len(top) {
			sec.Lines = []string{fmt.Sprintf("(%d more sources in -o json)", len(r.Sources)-len(top))}
		}
		out = append(out, sec)
	}
	var ports []string
	for p := range r.DstPorts {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { a, _ := strconv.Atoi(ports[i]); b, _ := strconv.Atoi(ports[j]); return a < b })
	if len(ports) > 20 {
		ports = ports[:20]
	}
	var portRows [][]string
	for _, p := range ports {
		portRows = append(portRows, classRow(p, r.DstPorts[p]))
	}
	if len(portRows) > 0 {
		out = append(out, report.Section{Title: "Per destination port", Header: append([]string{"port"}, classNames[:]...), Rows: portRows})
	}

	s := r.Sizes
	hist := report.Section{Title: "Datagram sizes (UDP payload bytes)"}
	var peak uint64
	for _, b := range s.Histogram {
		peak = max(peak, b.Count)
	}
	prev := 0
	for _, b := range s.Histogram {
		label := fmt.Sprintf("%6d-%-6d", prev, b.Le)
		if b.Le == 0 {
			label = fmt.Sprintf("%6d+      ", prev)
		}
		prev = b.Le + 1
		if b.Count == 0 {
			continue
		}
		bar := int(b.Count * 40 / max(peak, 1))
		hist.Lines = append(hist.Lines, fmt.Sprintf("%s %s %d", label, strings.Repeat("#", max(bar, 1)), b.Count))
	}
	hist.Lines = append(hist.Lines,
		fmt.Sprintf("largest datagram %d bytes; path MTU %d (%s); largest unfragmented payload %d (IPv4) / %d (IPv6); %d datagram(s) over it",
			s.Largest, s.PathMTU, s.MTUSource, s.MaxUnfragmented4, s.MaxUnfragmented6, s.OverMaxUnfragmented))
	out = append(out, hist)

	info := report.Section{Title: "Capture"}
	p := r.Packets
	info.Lines = append(info.Lines, fmt.Sprintf("packets %d (UDP %d, fragments %d, not IP %d, not UDP %d, malformed %d, other ports %d)",
		p.Packets, p.UDPPackets, p.Fragments, p.NotIP, p.NotUDP, p.Malformed, p.OtherPorts))
	rs := r.Reassembly
	info.Lines = append(info.Lines, fmt.Sprintf("reassembly: timeout %dms, completed %d, expired %d, evicted %d, open at end %d, peak open %d",
		rs.TimeoutMS, rs.Completed, rs.Expired, rs.Evicted, rs.OpenAtEnd, rs.PeakFlows))
	if f := r.File; f != nil {
		info.Lines = append(info.Lines, fmt.Sprintf("file: %s, link type %d, snaplen %d, %d records, %d corrupt (%d bytes skipped)",
			f.Format, f.LinkType, f.Snaplen, f.Records, f.Corrupt, f.SkipBytes))
		for _, c := range f.Corruptions {
			info.Lines = append(info.Lines, fmt.Sprintf("  corrupt record at offset %d: %s", c.Offset, c.Reason))
		}
	}
	if c := r.Capture; c != nil {
		info.Lines = append(info.Lines, fmt.Sprintf("live on %s: kernel received %d, dropped %d", strings.Join(c.Interfaces, ","), c.Received, c.Dropped))
	}
	out = append(out, info)
	if k := r.Kernel; k != nil {
		out = append(out, k.Section())
	}
	return out
}

func portsString(ps []uint16) string {
	if len(ps) == 0 {
		return "all"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

// sourceList formats up to n sources with lost datagrams.
func (r *Result) lostSources(n int) []string {
	var out []string
	for _, k := range r.topSources(n) {
		if r.Sources[k].Lost() == 0 {
			break
		}
		out = append(out, k)
	}
	return out
}
