package pipeline

import (
	"strings"
	"testing"
)

func TestPipelineFindingsForwardRefusals(t *testing.T) {
	var d Report
	d.Stats.ForwardServer.Refused = 977
	fs := d.Findings()
	if len(fs) != 1 || fs[0].ID != FindingRefused || !strings.Contains(fs[0].Summary, "977 forward connections were refused") ||
		!strings.Contains(fs[0].Remedy, "--max-conns") || strings.Contains(fs[0].Remedy, "--buffer-max") {
		t.Fatalf("refused connections: %+v", fs)
	}
	d.Stats.ForwardRefused = 3
	fs = d.Findings()
	if len(fs) != 1 || !strings.Contains(fs[0].Summary, "3 forward requests were refused") || !strings.Contains(fs[0].Remedy, "--buffer-max") {
		t.Fatalf("refused requests and connections: %+v", fs)
	}
}
