// Package pcap finds the UDP fragmentation black hole: it reads packets
// from pcap/pcapng files or a live AF_PACKET capture (pure Go, no libpcap),
// reassembles IPv4 and IPv6 fragments as the kernel would, classifies every
// UDP datagram (unfragmented, fragmented_complete, fragmented_incomplete,
// orphan_fragments, bad_length, snap_truncated), and turns the counts, the
// sizes against the path MTU and the kernel's own counters into findings.
package pcap

import (
	"context"
	"fmt"
	"io"
)

// AnalyzeReader streams a pcap or pcapng file through an Analyzer. It never
// holds more than one record of the file.
func AnalyzeReader(ctx context.Context, r io.Reader, cfg Config) (*Result, error) {
	fr, err := NewFileReader(r)
	if err != nil {
		return nil, err
	}
	a := NewAnalyzer(cfg)
	for i := 0; ; i++ {
		if i&0xffff == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("reading capture: %w", ctx.Err())
		}
		data, m, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		a.Packet(data, m)
	}
	a.Flush()
	res := a.Result()
	res.Mode = "file"
	st := fr.Stats
	res.File = &st
	return res, nil
}
