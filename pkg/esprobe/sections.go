package esprobe

import (
	"fmt"
	"strconv"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// Sections is the table view of a probe result.
func (r *Result) Sections() []report.Section {
	var out []report.Section
	t := report.Section{Title: "Targets", Header: []string{"URL", "REACHABLE", "PRODUCT", "VERSION", "CLUSTER", "LATENCY", "ERROR"}}
	for _, x := range r.Targets {
		t.Rows = append(t.Rows, []string{x.URL, strconv.FormatBool(x.Reachable), x.Product, x.Version, x.ClusterName,
			fmt.Sprintf("%.2f ms", x.LatencyMS), x.Error})
	}
	out = append(out, t)
	if len(r.Nodes) > 0 {
		n := report.Section{Title: "Nodes (_nodes/http)", Header: []string{"NAME", "PUBLISH ADDRESS", "REACHABLE", "CONNECT", "MAX CONTENT"}}
		for _, x := range r.Nodes {
			n.Rows = append(n.Rows, []string{x.Name, orNone(x.PublishAddress), strconv.FormatBool(x.Reachable),
				fmt.Sprintf("%.2f ms", x.ConnectMS), strconv.FormatInt(x.MaxContentLength, 10)})
		}
		out = append(out, n)
	}
	c := report.Section{Title: "Checks", Header: []string{"CHECK", "OK", "TIME", "DETAIL"}}
	for _, x := range r.Checks {
		c.Rows = append(c.Rows, []string{x.Name, strconv.FormatBool(x.OK), fmt.Sprintf("%d ms", x.DurationMS), x.Detail})
	}
	out = append(out, c)
	return out
}
