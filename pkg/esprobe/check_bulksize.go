package esprobe

import (
	"fmt"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// checkBulkSize compares the shipper's bulk size with the smallest
// http.max_content_length the nodes publish (0: unknown, no check).
func checkBulkSize(bulkSize, maxContentLength int64) outcome {
	var out outcome
	if maxContentLength <= 0 {
		return out
	}
	out.check(Check{Name: "bulk_size", OK: bulkSize <= maxContentLength,
		Detail: fmt.Sprintf("bulk size %d bytes vs http.max_content_length %d", bulkSize, maxContentLength)}, time.Now())
	if bulkSize > maxContentLength {
		out.add(report.Finding{ID: FindingBulkTooLarge, Severity: report.Critical,
			Summary:  fmt.Sprintf("the shipper's bulk size (%d bytes) exceeds http.max_content_length (%d bytes): such bulks get 413", bulkSize, maxContentLength),
			Evidence: map[string]any{"bulk_size": bulkSize, "max_content_length_in_bytes": maxContentLength},
			Remedy:   remedyBulkTooLarge})
	}
	return out
}
