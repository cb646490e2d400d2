package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCLI runs logdoctor in process with captured IO.
func runCLI(t *testing.T, args ...string) (code ExitCode, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestVersionAndUsageErrors(t *testing.T) {
	code, out, _ := runCLI(t, "--version")
	if code != ExitOK || !strings.Contains(out, "commit") {
		t.Fatalf("--version: code %d out %q", code, out)
	}
	code, _, errOut := runCLI(t, "--no-such-flag")
	if code != ExitUsage || !strings.Contains(errOut, "no-such-flag") {
		t.Fatalf("unknown flag: code %d err %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "no-such-command")
	if code != ExitUsage {
		t.Fatalf("unknown command: code %d err %q", code, errOut)
	}
}
