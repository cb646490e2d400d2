package report

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestStreamedJSONIsMarshal holds writeJSON to json.Marshal's bytes.
func TestStreamedJSONIsMarshal(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	withFindings := New("config check", start)
	withFindings.Add(Finding{ID: "a.b", Severity: Critical, Summary: "x <y> & \"z\"", Remedy: "r", Evidence: map[string]any{"file": "f", "line": 3, "nested": map[string]any{"k": []int{1}}}},
		Finding{ID: "c", Severity: Info, Summary: "s"})
	withFindings.Data = map[string]any{"n": 1, "s": "<html>"}
	withFindings.Finish(start.Add(time.Second))
	empty := New("x", start)
	nilFindings := &Report{Command: "y", StartedAt: start}
	for _, r := range []*Report{withFindings, empty, nilFindings} {
		var got bytes.Buffer
		if err := writeJSON(&got, r); err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != string(want)+"\n" {
			t.Errorf("streamed JSON differs:\n got %s\nwant %s", got.String(), want)
		}
	}
}
