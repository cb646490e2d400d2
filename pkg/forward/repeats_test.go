package forward

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// One line at the first occurrence, one line with the count per interval
// after it, kinds counted apart.
func TestRepeatsAggregatePerInterval(t *testing.T) {
	var out bytes.Buffer
	r := newRepeats(slog.New(slog.NewTextHandler(&out, nil)), 100*time.Millisecond)
	for i := 0; i < 5; i++ {
		r.log(slog.LevelWarn, "a", "kind a", "i", i)
	}
	r.log(slog.LevelWarn, "b", "kind b")
	if got := strings.Count(out.String(), "\n"); got != 2 {
		t.Fatalf("%d lines before the interval ended:\n%s", got, out.String())
	}
	time.Sleep(150 * time.Millisecond)
	r.log(slog.LevelWarn, "a", "kind a", "i", 5)
	r.flush()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "i=4 repeated=4") || !strings.Contains(lines[3], "i=5") || strings.Contains(lines[3], "repeated") {
		t.Fatalf("lines:\n%s", out.String())
	}
	// Below the logger's level nothing is counted or logged.
	out.Reset()
	r.log(slog.LevelDebug, "c", "kind c")
	r.flush()
	if out.Len() != 0 {
		t.Fatalf("debug logged: %s", out.String())
	}
}
