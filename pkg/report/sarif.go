package report

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
)

// SARIF 2.1.0 output (-o sarif): one run, one result per finding, so CI
// code scanning (GitHub, GitLab, golangci-lint style annotators) shows
// findings where they are. A finding has a location when its evidence
// holds "file" and "line" (and optionally "column"); findings without one
// are results without a location.

// Rule describes a finding id for SARIF's rule metadata.
type Rule struct {
	ID          string
	Description string
	// HelpURI points at the id's documentation (optional).
	HelpURI string
}

// SARIFInfo is what the SARIF renderer says about the tool.
type SARIFInfo struct {
	Version        string
	InformationURI string
	Rules          []Rule
}

const sarifSchemaURI = "https://json.schemastore.org/sarif-2.1.0.json"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Results     []sarifResult     `json:"results"`
	Invocations []sarifInvocation `json:"invocations,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	ShortDescription     *sarifText     `json:"shortDescription,omitempty"`
	HelpURI              string         `json:"helpUri,omitempty"`
	DefaultConfiguration *sarifRuleConf `json:"defaultConfiguration,omitempty"`
}

type sarifRuleConf struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations,omitempty"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool   `json:"executionSuccessful"`
	StartTimeUTC        string `json:"startTimeUtc,omitempty"`
}

// sarifLevel maps severities onto SARIF's levels.
func sarifLevel(s Severity) string {
	switch s {
	case Critical:
		return "error"
	case Warning:
		return "warning"
	}
	return "note"
}

// RenderSARIF writes r as a SARIF 2.1.0 log (indented: SARIF files are
// read by tools and uploaded whole, not streamed line by line).
func RenderSARIF(w io.Writer, r *Report, info SARIFInfo) error {
	b, err := json.MarshalIndent(toSARIF(r, info), "", "  ")
	if err != nil {
		return fmt.Errorf("encode sarif: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

func toSARIF(r *Report, info SARIFInfo) sarifLog {
	driver := sarifDriver{Name: "logdoctor", Version: info.Version, InformationURI: info.InformationURI, Rules: []sarifRule{}}
	index := map[string]int{}
	addRule := func(id, desc, help string) int {
		if i, ok := index[id]; ok {
			return i
		}
		rule := sarifRule{ID: id, HelpURI: help}
		if desc != "" {
			rule.ShortDescription = &sarifText{Text: desc}
		}
		index[id] = len(driver.Rules)
		driver.Rules = append(driver.Rules, rule)
		return index[id]
	}
	for _, rl := range info.Rules {
		addRule(rl.ID, rl.Description, rl.HelpURI)
	}
	results := []sarifResult{}
	for _, f := range r.Findings {
		res := sarifResult{RuleID: f.ID, RuleIndex: addRule(f.ID, "", ""), Level: sarifLevel(f.Severity),
			Message: sarifText{Text: sarifMessage(f)}}
		if loc, ok := sarifLocationOf(f.Evidence); ok {
			res.Locations = []sarifLocation{loc}
		}
		res.Properties = map[string]any{"severity": f.Severity.String()}
		if len(f.Evidence) > 0 {
			res.Properties["evidence"] = f.Evidence
		}
		results = append(results, res)
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: results,
		Invocations: []sarifInvocation{{ExecutionSuccessful: true, StartTimeUTC: r.StartedAt.UTC().Format("2006-01-02T15:04:05.000Z")}}}
	return sarifLog{Schema: sarifSchemaURI, Version: "2.1.0", Runs: []sarifRun{run}}
}

func sarifMessage(f Finding) string {
	if f.Remedy == "" {
		return f.Summary
	}
	return f.Summary + "\nRemedy: " + f.Remedy
}

// sarifLocationOf reads "file", "line" and "column" from evidence.
func sarifLocationOf(ev map[string]any) (sarifLocation, bool) {
	file, _ := ev["file"].(string)
	if file == "" {
		return sarifLocation{}, false
	}
	loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(file)}}}
	if line := intOf(ev["line"]); line > 0 {
		loc.PhysicalLocation.Region = &sarifRegion{StartLine: line}
		if col := intOf(ev["column"]); col > 0 {
			loc.PhysicalLocation.Region.StartColumn = col
		}
	}
	return loc, true
}

func intOf(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

// fileURI makes a SARIF artifact URI: a relative path stays relative (code
// scanning resolves it against the repository root), an absolute one
// becomes a file:// URI.
func fileURI(p string) string {
	p = filepath.ToSlash(filepath.Clean(p))
	if strings.HasPrefix(p, "/") {
		return (&url.URL{Scheme: "file", Path: p}).String()
	}
	return (&url.URL{Path: p}).String()
}
