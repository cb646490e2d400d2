package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// writeJSON writes the same single line json.Marshal(r) gives, one finding
// at a time: a report with thousands of findings (config check over a
// large configuration) is never held twice in memory as text.
func writeJSON(w io.Writer, r *Report) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	head, err := json.Marshal(struct {
		Command    string    `json:"command"`
		StartedAt  time.Time `json:"started_at"`
		DurationMS int64     `json:"duration_ms"`
	}{r.Command, r.StartedAt, r.DurationMS})
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	bw.Write(head[:len(head)-1])
	if r.Findings == nil {
		bw.WriteString(`,"findings":null`)
	} else {
		bw.WriteString(`,"findings":[`)
		// One buffer for every finding; Encode ends each with a newline,
		// which is dropped to keep the report on one line.
		var one bytes.Buffer
		enc := json.NewEncoder(&one)
		for i, f := range r.Findings {
			one.Reset()
			if err := enc.Encode(f); err != nil {
				return fmt.Errorf("encode report: %w", err)
			}
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.Write(bytes.TrimSuffix(one.Bytes(), []byte("\n")))
		}
		bw.WriteByte(']')
	}
	data, err := json.Marshal(r.Data)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	bw.WriteString(`,"data":`)
	bw.Write(data)
	bw.WriteString("}\n")
	return bw.Flush()
}
