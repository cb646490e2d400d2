package cli

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/pipeline"
	"github.com/logdoctor/logdoctor/pkg/pipeline/esout"
)

func TestSizeText(t *testing.T) {
	for n, want := range map[int64]string{1 << 30: "1GiB", 256 << 20: "256MiB", 100 << 20: "100MiB", 64 << 10: "64KiB", 1536: "1536", 0: "0", 3 << 30: "3GiB"} {
		got := sizeText(n)
		if got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
		if back, err := parseSize(got); err != nil || back != n {
			t.Errorf("parseSize(%q) = %d, %v", got, back, err)
		}
		if back, err := parseESBytes(got); n > 0 && (err != nil || back != n) {
			t.Errorf("parseESBytes(%q) = %d, %v", got, back, err)
		}
	}
}

// The size flags' defaults are the libraries' own, read back as the flag
// reads them.
func TestSizeFlagDefaultsAreTheLibraries(t *testing.T) {
	find := func(path ...string) *cobra.Command {
		c, _, err := NewRootCmd(seamGlobals()).Find(path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		cmd   []string
		flag  string
		want  int64
		parse func(string) (int64, error)
	}{
		{[]string{"pipeline", "run"}, "max-request-size", pipeline.DefaultMaxRequestBytes, parseSize},
		{[]string{"pipeline", "run"}, "max-decompressed-size", pipeline.DefaultMaxDecompressedBytes, parseSize},
		{[]string{"pipeline", "run"}, "max-in-flight", pipeline.DefaultMaxInFlightBytes, parseSize},
		{[]string{"pipeline", "run"}, "buffer-max", pipeline.DefaultBufferMaxBytes, parseSize},
		{[]string{"pipeline", "run"}, "batch-size", esout.DefaultBatchBytes, parseSize},
		{[]string{"forward", "serve"}, "max-decompressed-size", forward.DefaultLimits.MaxDecompressedBytes, parseSize},
		{[]string{"es", "probe"}, "bulk-size", esprobe.DefaultBulkSize, parseESBytes},
		{[]string{"es", "serve"}, "max-content-length", essim.DefaultMaxContentLength, parseESBytes},
		{[]string{"es", "serve"}, "inflight-requests-limit", essim.DefaultInFlightRequestsLimit, parseSize},
	} {
		fl := find(c.cmd...).Flags().Lookup(c.flag)
		if n, err := c.parse(fl.DefValue); err != nil || n != c.want {
			t.Errorf("%v --%s default %q = %d, %v; want %d", c.cmd, c.flag, fl.DefValue, n, err, c.want)
		}
	}
}
