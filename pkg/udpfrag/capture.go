package udpfrag

import (
	"time"

	"github.com/logdoctor/logdoctor/pkg/pcap"
)

// Sink feeds a live capture (pcap.Capture) into a and ends it once count
// datagrams were classified; 0 means no limit.
func (a *Analyzer) Sink(count uint64) pcap.Handler { return sink{a, count} }

type sink struct {
	a     *Analyzer
	count uint64
}

func (s sink) Packet(data []byte, m pcap.Meta) bool {
	s.a.Packet(data, m)
	return s.done()
}

// Tick moves the reassembly clock, which runs on packet timestamps, on
// when the wire is quiet, so timeouts fire without new packets.
func (s sink) Tick(now time.Time) bool {
	s.a.Expire(now.UnixNano())
	return s.done()
}

func (s sink) done() bool { return s.count > 0 && s.a.classes.Total() >= s.count }
