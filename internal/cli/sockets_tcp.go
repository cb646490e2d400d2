package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// tcpColumns picks the tcp_info columns of the peer table, only where they
// matter: RTT when any peer has one (netlink source), RETRANS when any
// peer had retransmissions, NO-ACK when a connection is waiting for an
// acknowledgement past its retransmission timeout.
func tcpColumns(peers []sockstat.Peer) ([]string, func(sockstat.Peer) []string) {
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
	return header, func(p sockstat.Peer) []string {
		t := p.TCP
		var cells []string
		if rtt {
			if t == nil || t.RTTms.Max == 0 {
				cells = append(cells, "-")
			} else {
				cells = append(cells, fmt.Sprintf("%s/%s/%s", ms(t.RTTms.Min), ms(t.RTTms.Median), ms(t.RTTms.Max)))
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

// ms prints an RTT in ms with the precision it has: 0.03, 1.2, 250.
func ms(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

// checkTCPThresholds rejects negative tcp_info thresholds.
func checkTCPThresholds(th sockstat.Thresholds) error {
	switch {
	case th.Retransmits < 0:
		return usageErrorf("--retransmits %d: want >= 0", th.Retransmits)
	case th.RetransCritical < 0:
		return usageErrorf("--retrans-critical %s: want >= 0", th.RetransCritical)
	case th.ZeroWindowProbes < 0:
		return usageErrorf("--zero-window-probes %d: want >= 0", th.ZeroWindowProbes)
	}
	return nil
}
