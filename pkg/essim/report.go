package essim

import (
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Report is the report of an es serve run: where it listened and
// what it counted.
type Report struct {
	URLs   []string `json:"urls"`
	Faults Faults   `json:"faults"`
	Stats  Stats    `json:"stats"`
}

// Sections renders the report as a table (report.Tabular).
func (d *Report) Sections() []report.Section {
	s := d.Stats
	return []report.Section{{Title: "essim", Header: []string{"URLS", "DOCS", "BULKS", "ITEMS", "REJECTED", "FAILED", "DROPPED", "CONFLICTS", "CONNS OPENED"},
		Rows: [][]string{{strings.Join(d.URLs, " "), strconv.Itoa(s.Docs), strconv.FormatInt(s.BulkRequests, 10), strconv.FormatInt(s.BulkItems, 10),
			strconv.FormatInt(s.Rejected, 10), strconv.FormatInt(s.RequestFailures, 10), strconv.FormatInt(s.Dropped, 10),
			strconv.FormatInt(s.Conflicts, 10), strconv.FormatInt(s.OpenedConns, 10)}}}}
}
