package cli

import (
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

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
