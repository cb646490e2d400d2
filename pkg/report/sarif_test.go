package report

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report/sariftest"
)

func TestSARIF(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := New("config check", start)
	r.Add(
		Finding{ID: "config.forward_no_ack", Severity: Critical, Summary: "s1", Remedy: "r1",
			Evidence: map[string]any{"file": "deploy/fluent.conf", "line": 12, "column": 3, "value": "false"}},
		Finding{ID: "config.no_monitoring", Severity: Info, Summary: "s2", Remedy: "r2",
			Evidence: map[string]any{"file": "/etc/fluent bit/fluent-bit.conf", "line": float64(1)}},
		Finding{ID: "tcp.close_wait", Severity: Warning, Summary: "no location"},
	)
	r.Finish(start.Add(time.Millisecond))
	var buf bytes.Buffer
	rd := Renderer{Format: FormatSARIF, SARIF: SARIFInfo{Version: "v1.2.3", InformationURI: "https://github.com/logdoctor/logdoctor",
		Rules: []Rule{{ID: "config.forward_no_ack", Description: "forward without acks"}, {ID: "config.no_monitoring", Description: "no monitoring"}}}}
	if err := rd.Render(&buf, r); err != nil {
		t.Fatal(err)
	}
	sariftest.Validate(t, buf.Bytes())

	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Message   struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine   int `json:"startLine"`
							StartColumn int `json:"startColumn"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	if log.Version != "2.1.0" || run.Tool.Driver.Name != "logdoctor" || len(run.Results) != 3 {
		t.Fatalf("log: %+v", log)
	}
	res := run.Results
	if res[0].RuleID != "config.forward_no_ack" || res[0].Level != "error" || res[0].Message.Text != "s1\nRemedy: r1" {
		t.Errorf("first result %+v", res[0])
	}
	loc := res[0].Locations[0].PhysicalLocation
	if loc.ArtifactLocation.URI != "deploy/fluent.conf" || loc.Region.StartLine != 12 || loc.Region.StartColumn != 3 {
		t.Errorf("location %+v", loc)
	}
	for _, r := range res {
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("ruleIndex %d does not point at %s", r.RuleIndex, r.RuleID)
		}
	}
	if res[1].Level != "warning" || len(res[1].Locations) != 0 {
		t.Errorf("finding without a file: %+v", res[1])
	}
	if u := res[2].Locations[0].PhysicalLocation.ArtifactLocation.URI; u != "file:///etc/fluent%20bit/fluent-bit.conf" || res[2].Level != "note" {
		t.Errorf("absolute path URI %q level %s", u, res[2].Level)
	}
}

func TestSARIFNoFindings(t *testing.T) {
	r := New("config check", time.Now())
	r.Finish(time.Now())
	var buf bytes.Buffer
	if err := (Renderer{Format: FormatSARIF}).Render(&buf, r); err != nil {
		t.Fatal(err)
	}
	sariftest.Validate(t, buf.Bytes())
}
