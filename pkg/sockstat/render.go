package sockstat

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Filters echoes the --peer and --state filters (with the addresses
// names resolved to) so a report says what it was narrowed to.
type Filters struct {
	Peers  []PeerSpec `json:"peers,omitempty"`
	States []string   `json:"states,omitempty"`
}

// Report is the `data` of a sockets report: one sample, aggregated.
type Report struct {
	Peers   []Peer      `json:"peers"`
	Totals  StateCounts `json:"totals"`
	Sources Sources     `json:"sources"`
	Filters *Filters    `json:"filters,omitempty"`
	By      string      `json:"by,omitempty"`
	Groups  []Group     `json:"groups,omitempty"`
	Sample  int         `json:"sample,omitempty"` // 1-based under --watch
}

// Sections shows one row per peer (or group) with a column for each state
// that occurs, so the table stays narrow.
func (d *Report) Sections() []report.Section {
	var out []report.Section
	title := "Peers"
	if d.Sample > 0 {
		title = fmt.Sprintf("Peers (sample %d)", d.Sample)
	}
	if d.By != "" {
		out = append(out, d.groupSection())
	} else {
		out = append(out, d.peerSection(title))
	}
	var tot []string
	for _, s := range AllStates() {
		if n := d.Totals[s]; n > 0 {
			tot = append(tot, fmt.Sprintf("%s %d", s, n))
		}
	}
	if len(tot) == 0 {
		tot = []string{"no sockets"}
	}
	lines := []string{"all sockets read: " + strings.Join(tot, ", ")}
	lines = append(lines, sourceLines(d.Sources)...)
	for _, r := range d.Sources.Read {
		l := fmt.Sprintf("read %s: %d sockets", r.Path, r.Sockets)
		if r.MalformedLines > 0 {
			l += fmt.Sprintf(", %d malformed line(s)", r.MalformedLines)
			for _, m := range r.Malformed {
				l += fmt.Sprintf("; line %d: %s", m.Line, m.Error)
			}
		}
		lines = append(lines, l)
	}
	for _, s := range d.Sources.Skipped {
		lines = append(lines, fmt.Sprintf("skipped %s: %s", s.Path, s.Reason))
	}
	if ps := d.Sources.Processes; ps != nil && ps.Processes == 0 {
		lines = append(lines, "processes: not scanned, no socket to attribute")
	} else if ps != nil {
		l := fmt.Sprintf("processes: %d scanned, %d socket(s) attributed", ps.Scanned, ps.Attributed)
		if ps.StoppedEarly {
			l += fmt.Sprintf(" (stopped after %d of %d processes: every socket had an owner)", ps.Scanned, ps.Processes)
		}
		if ps.Unreadable > 0 {
			l += fmt.Sprintf(", %d not readable (run as root to see every owner)", ps.Unreadable)
		}
		lines = append(lines, l)
	}
	out = append(out, report.Section{Title: "Sources", Lines: lines})
	return out
}

func (d *Report) shownStates(rows []StateCounts, changes []*StateCounts) []State {
	var cols []State
	for _, s := range AllStates() {
		for i, r := range rows {
			if r[s] != 0 || (changes[i] != nil && changes[i][s] != 0) {
				cols = append(cols, s)
				break
			}
		}
	}
	return cols
}

func (d *Report) peerSection(title string) report.Section {
	rows := make([]StateCounts, len(d.Peers))
	changes := make([]*StateCounts, len(d.Peers))
	for i, p := range d.Peers {
		rows[i], changes[i] = p.States, p.Changes
	}
	cols := d.shownStates(rows, changes)
	sec := report.Section{Title: title, Header: []string{"PEER", "DIR", "ALIAS"}}
	for _, s := range cols {
		sec.Header = append(sec.Header, s.String())
	}
	sec.Header = append(sec.Header, "Send-Q", "Recv-Q")
	tcpHeader, tcpCells := tcpColumns(d.Peers)
	sec.Header = append(sec.Header, tcpHeader...)
	sec.Header = append(sec.Header, "PROCESSES")
	for _, p := range d.Peers {
		row := []string{p.Peer, string(p.Direction), dash(p.Alias)}
		for _, s := range cols {
			cell := strconv.Itoa(p.States[s])
			if p.Changes != nil {
				cell += fmt.Sprintf(" (%+d)", p.Changes[s])
			}
			row = append(row, cell)
		}
		row = append(row, strconv.FormatUint(p.SendQ, 10), strconv.FormatUint(p.RecvQ, 10))
		row = append(row, tcpCells(p)...)
		row = append(row, procList(p.Processes))
		sec.Rows = append(sec.Rows, row)
	}
	if len(d.Peers) == 0 {
		sec.Header = nil
		sec.Lines = []string{"no sockets match"}
	}
	return sec
}

func (d *Report) groupSection() report.Section {
	rows := make([]StateCounts, len(d.Groups))
	changes := make([]*StateCounts, len(d.Groups))
	for i, g := range d.Groups {
		rows[i] = g.States
	}
	sec := report.Section{Title: "By " + d.By, Header: []string{strings.ToUpper(d.By), "SOCKETS", "PEERS"}}
	cols := d.shownStates(rows, changes)
	if d.By == string(ByState) {
		cols = nil // one state per row: the state columns would repeat SOCKETS
	}
	for _, s := range cols {
		sec.Header = append(sec.Header, s.String())
	}
	sec.Header = append(sec.Header, "Send-Q", "Recv-Q")
	for _, g := range d.Groups {
		row := []string{g.Key, strconv.Itoa(g.Sockets), strconv.Itoa(g.Peers)}
		for _, s := range cols {
			row = append(row, strconv.Itoa(g.States[s]))
		}
		row = append(row, strconv.FormatUint(g.SendQ, 10), strconv.FormatUint(g.RecvQ, 10))
		sec.Rows = append(sec.Rows, row)
	}
	if len(d.Groups) == 0 {
		sec.Header = nil
		sec.Lines = []string{"no sockets match"}
	}
	return sec
}

func procList(ps []Process) string {
	if len(ps) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(ps))
	for i, p := range ps {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("+%d", len(ps)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%s[%d]", p.Comm, p.PID))
	}
	return strings.Join(parts, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// tcpColumns picks the tcp_info columns of the peer table, only where they
// matter: RTT when any peer has one (netlink source), RETRANS when any
// peer had retransmissions, NO-ACK when a connection is waiting for an
// acknowledgement past its retransmission timeout.
func tcpColumns(peers []Peer) ([]string, func(Peer) []string) {
	var rtt, retrans, noAck bool
	for _, p := range peers {
		if t := p.TCP; t != nil {
			rtt = rtt || t.RTTms.Max > 0
			retrans = retrans || t.Retransmissions > 0 || t.Retransmitting > 0
			noAck = noAck || t.OldestUnackedMS > 0
		}
	}
	var header []string
	if rtt {
		header = append(header, "RTT MS (MIN/MED/MAX)")
	}
	if retrans {
		header = append(header, "RETRANS")
	}
	if noAck {
		header = append(header, "NO-ACK")
	}
	return header, func(p Peer) []string {
		t := p.TCP
		var cells []string
		if rtt {
			if t == nil || t.RTTms.Max == 0 {
				cells = append(cells, "-")
			} else {
				cells = append(cells, fmt.Sprintf("%s/%s/%s", rttMS(t.RTTms.Min), rttMS(t.RTTms.Median), rttMS(t.RTTms.Max)))
			}
		}
		if retrans {
			switch {
			case t == nil:
				cells = append(cells, "-")
			case t.Retransmitting > 0:
				cells = append(cells, fmt.Sprintf("%d (%d now)", t.Retransmissions, t.Retransmitting))
			default:
				cells = append(cells, strconv.FormatUint(t.Retransmissions, 10))
			}
		}
		if noAck {
			if t == nil || t.OldestUnackedMS == 0 {
				cells = append(cells, "-")
			} else {
				cells = append(cells, (time.Duration(t.OldestUnackedMS) * time.Millisecond).Round(100*time.Millisecond).String())
			}
		}
		return cells
	}
}

// rttMS prints an RTT in ms with the precision it has: 0.03, 1.2, 250.
func rttMS(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

// sourceLines describe the source of a sample in the table's Sources
// section.
func sourceLines(src Sources) []string {
	lines := []string{fmt.Sprintf("source: %s (%s)", src.Source, src.Why)}
	if n := src.Netlink; n != nil {
		l := fmt.Sprintf("netlink: %d sockets (IPv4 %d, IPv6 %d), %d with tcp_info of %d asked for (bytes in Send-Q, or --peer)",
			n.Sockets, n.IPv4, n.IPv6, n.TCPInfo, n.TCPInfoAsked)
		if n.TCPInfoVanished > 0 {
			l += fmt.Sprintf(", %d closed since the census", n.TCPInfoVanished)
		}
		if n.Malformed > 0 {
			l += fmt.Sprintf(", %d malformed message(s)", n.Malformed)
			for _, m := range n.MalformedMessages {
				l += "; " + m
			}
		}
		if n.Interrupted {
			l += "; the table changed during the dump (NLM_F_DUMP_INTR)"
		}
		lines = append(lines, l)
	}
	return lines
}
