package udpfrag

import (
	"time"

	"github.com/google/gopacket"

	"github.com/logdoctor/logdoctor/pkg/report"
)

type reportFinding = report.Finding

func gopacketCI(ts time.Time, n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: ts, CaptureLength: n, Length: n}
}
