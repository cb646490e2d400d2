package udpfrag

import (
	"context"
	"fmt"
	"io"

	"github.com/logdoctor/logdoctor/pkg/pcap"
)

// AnalyzeReader streams a pcap or pcapng file through an Analyzer. It never
// holds more than one record of the file.
func AnalyzeReader(ctx context.Context, r io.Reader, cfg Config) (*Result, error) {
	fr, err := pcap.NewFileReader(r)
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
