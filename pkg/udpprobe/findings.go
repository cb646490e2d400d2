package udpprobe

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/udpfrag"
)

// SendReport is the data of a sweep: the result plus the local kernel's
// counters over it.
type SendReport struct {
	*SendResult
	MTU             int                  `json:"path_mtu"`
	MTUSource       string               `json:"mtu_source"` // flag, route or default
	MaxUnfragmented int                  `json:"max_unfragmented_payload"`
	Kernel          *udpfrag.KernelDelta `json:"kernel,omitempty"`
}

// ListenReport is the data of a receiver run.
type ListenReport struct {
	*ListenResult
	Kernel *udpfrag.KernelDelta `json:"kernel,omitempty"`
}

func isV6(target string) bool { return strings.Count(target, ":") > 1 }

// NewSendReport fixes the MTU the verdicts use: --mtu, else the route's.
func NewSendReport(r *SendResult, flagMTU int, k *udpfrag.KernelDelta) *SendReport {
	s := &SendReport{SendResult: r, Kernel: k}
	switch {
	case flagMTU > 0:
		s.MTU, s.MTUSource = flagMTU, "flag"
	case r.RouteMTU > 0:
		s.MTU, s.MTUSource = r.RouteMTU, "route"
	default:
		s.MTU, s.MTUSource = 1500, "default"
	}
	v4, v6 := udpfrag.MaxUnfragmented(s.MTU)
	s.MaxUnfragmented = v4
	if isV6(r.Target) {
		s.MaxUnfragmented = v6
	}
	return s
}

// Findings judges a sweep.
func (s *SendReport) Findings() []report.Finding {
	var out []report.Finding
	var fragmented, lost, lostSmall, oversize []int
	for _, z := range s.Sizes {
		switch {
		case z.Oversize || z.SendErrors > 0 && z.Sent == 0 && z.Size > MaxPayload:
			oversize = append(oversize, z.Size)
			continue
		case z.Size > s.MaxUnfragmented:
			fragmented = append(fragmented, z.Size)
		}
		if s.ReceiverAnswered && z.Sent > 0 && z.Acked == 0 {
			if z.Size > s.MaxUnfragmented {
				lost = append(lost, z.Size)
			} else {
				lostSmall = append(lostSmall, z.Size)
			}
		}
	}
	if len(fragmented) > 0 {
		out = append(out, report.Finding{
			ID:       udpfrag.FindingFragmented,
			Severity: report.Warning,
			Summary:  fmt.Sprintf("probe sizes %s exceed %d bytes and leave this host IP-fragmented (MTU %d, %s)", ints(fragmented), s.MaxUnfragmented, s.MTU, s.MTUSource),
			Evidence: map[string]any{"fragmented_sizes": fragmented, "path_mtu": s.MTU, "max_unfragmented_payload": s.MaxUnfragmented},
			Remedy:   udpfrag.RemedySize(s.MaxUnfragmented),
		})
	}
	if len(lost) > 0 {
		out = append(out, report.Finding{
			ID:       udpfrag.FindingFragmentsLost,
			Severity: report.Critical,
			Summary: fmt.Sprintf("the receiver answered for sizes up to %d bytes but never got the fragmented sizes %s: fragments are dropped on the path",
				s.LargestThrough, ints(lost)),
			Evidence: map[string]any{"lost_sizes": lost, "largest_through": s.LargestThrough, "lost_unfragmented_sizes": lostSmall,
				"max_unfragmented_payload": s.MaxUnfragmented},
			Remedy: udpfrag.RemedySize(min(s.MaxUnfragmented, max(s.LargestThrough, 0))),
		})
	}
	if len(oversize) > 0 {
		out = append(out, report.Finding{
			ID:       udpfrag.FindingOversize,
			Severity: report.Critical,
			Summary:  fmt.Sprintf("sizes %s cannot be sent as UDP at all (over %d bytes)", ints(oversize), MaxPayload),
			Evidence: map[string]any{"sizes": oversize, "max_udp_payload": MaxPayload},
			Remedy:   udpfrag.OversizeRemedy,
		})
	}
	if s.Kernel != nil {
		if f, ok := udpfrag.ReceiveBufferFinding(s.Kernel); ok {
			out = append(out, f)
		}
	}
	return out
}

// Findings judges a receiver run: drops in its own socket buffer.
func (l *ListenReport) Findings() []report.Finding {
	if l.Kernel != nil {
		if f, ok := udpfrag.ReceiveBufferFinding(l.Kernel); ok {
			return []report.Finding{f}
		}
	}
	return nil
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// Sections is the table view of a sweep.
func (s *SendReport) Sections() []report.Section {
	sec := report.Section{
		Title:  fmt.Sprintf("Probes to %s (run %s)", s.Target, s.Run),
		Header: []string{"size", "sent", "acked", "fragmented", "error"},
	}
	for _, z := range s.Sizes {
		acked := strconv.Itoa(z.Acked)
		if !s.ReceiverAnswered {
			acked = "-"
		}
		sec.Rows = append(sec.Rows, []string{strconv.Itoa(z.Size), strconv.Itoa(z.Sent), acked,
			strconv.FormatBool(z.Size > s.MaxUnfragmented), z.Error})
	}
	if s.ReceiverAnswered {
		sec.Lines = append(sec.Lines, fmt.Sprintf("largest size that got through: %d bytes", s.LargestThrough))
	} else {
		sec.Lines = append(sec.Lines, "no cooperating receiver answered (run `logdoctor udp-frag --listen ADDR:PORT` on the receiving side to learn which sizes arrive)")
	}
	sec.Lines = append(sec.Lines, fmt.Sprintf("path MTU %d (%s): largest unfragmented payload %d bytes", s.MTU, s.MTUSource, s.MaxUnfragmented))
	out := []report.Section{sec}
	if s.Kernel != nil {
		out = append(out, s.Kernel.Section())
	}
	return out
}

// Sections is the table view of a receiver run.
func (l *ListenReport) Sections() []report.Section {
	sec := report.Section{
		Title:  fmt.Sprintf("Probes received on %s", l.Addr),
		Header: []string{"size", "received"},
	}
	sizes := append([]SizeCount(nil), l.Sizes...)
	sort.Slice(sizes, func(i, j int) bool { return sizes[i].Size < sizes[j].Size })
	for _, z := range sizes {
		sec.Rows = append(sec.Rows, []string{strconv.Itoa(z.Size), strconv.Itoa(z.Received)})
	}
	sec.Lines = append(sec.Lines, fmt.Sprintf("%d probes, %d other datagrams, largest %d bytes", l.Probes, l.Other, l.Largest))
	out := []report.Section{sec}
	if l.Kernel != nil {
		out = append(out, l.Kernel.Section())
	}
	return out
}
