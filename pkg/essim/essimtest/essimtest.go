// Package essimtest starts essim for other packages' tests and benchmarks.
package essimtest

import (
	"context"
	"testing"

	"github.com/logdoctor/logdoctor/pkg/essim"
)

// Start runs essim with cfg on a free loopback port and closes it when
// the test or benchmark ends.
func Start(tb testing.TB, cfg essim.Config) *essim.Server {
	tb.Helper()
	s, err := essim.Start(context.Background(), "127.0.0.1:0", cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
