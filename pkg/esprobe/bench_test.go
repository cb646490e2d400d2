package esprobe

import (
	"context"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
)

// BenchmarkProbeThreeNodes is a full probe with the CLI defaults (idle
// watch 500 ms, bulk idempotency on) against a 3-node essim on loopback;
// the target is under 1 s per run.
func BenchmarkProbeThreeNodes(b *testing.B) {
	s := essimtest.Start(b, essim.Config{Nodes: 3})
	o := Options{URLs: s.URLs(), Index: "bench-canary", IdleWait: 500 * time.Millisecond}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, fs, err := Run(context.Background(), o)
		if err != nil || len(fs) != 0 {
			b.Fatal(err, fs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/probe")
}
