// Package report is the contract every logdoctor command produces: a Report
// holding Findings (stable ids, a severity, evidence and a remedy) and
// command-specific data, rendered as a table for people or as JSON for CI.
package report

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Severity orders findings; FailOn compares against it.
type Severity int

const (
	Info Severity = iota + 1
	Warning
	Critical
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// ParseSeverity accepts the names used in JSON and on the command line.
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(s) {
	case "info":
		return Info, nil
	case "warning", "warn":
		return Warning, nil
	case "critical", "crit":
		return Critical, nil
	}
	return 0, fmt.Errorf("unknown severity %q (want info, warning or critical)", s)
}

func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

func (s *Severity) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("severity: %w", err)
	}
	v, err := ParseSeverity(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Finding is one thing a person should know. ID is stable API: CI pipelines
// grep for it, and docs/ explains each one.
type Finding struct {
	ID       string         `json:"id"`
	Severity Severity       `json:"severity"`
	Summary  string         `json:"summary"`
	Evidence map[string]any `json:"evidence,omitempty"`
	Remedy   string         `json:"remedy"`
}

// Report is what one command run (or one --watch sample) produces.
type Report struct {
	Command    string    `json:"command"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	Findings   []Finding `json:"findings"`
	Data       any       `json:"data"`
}

// New starts a report; call Finish when the work is done.
func New(command string, started time.Time) *Report {
	return &Report{Command: command, StartedAt: started.UTC(), Findings: []Finding{}}
}

// Add appends findings.
func (r *Report) Add(f ...Finding) { r.Findings = append(r.Findings, f...) }

// Finish records the duration and orders findings most severe first, so the
// first line a person reads is the one that matters.
func (r *Report) Finish(now time.Time) {
	r.DurationMS = now.Sub(r.StartedAt).Milliseconds()
	sort.SliceStable(r.Findings, func(i, j int) bool {
		if r.Findings[i].Severity != r.Findings[j].Severity {
			return r.Findings[i].Severity > r.Findings[j].Severity
		}
		return r.Findings[i].ID < r.Findings[j].ID
	})
}

// Worst is the highest severity among the findings, 0 when there are none.
func (r *Report) Worst() Severity {
	var w Severity
	for _, f := range r.Findings {
		if f.Severity > w {
			w = f.Severity
		}
	}
	return w
}

// FailOn is the --fail-on policy.
type FailOn int

const (
	FailNever FailOn = iota
	FailWarning
	FailCritical
)

// ParseFailOn accepts never, warning and critical.
func ParseFailOn(s string) (FailOn, error) {
	switch s {
	case "never":
		return FailNever, nil
	case "warning":
		return FailWarning, nil
	case "critical":
		return FailCritical, nil
	}
	return 0, fmt.Errorf("invalid --fail-on %q: want never, warning or critical", s)
}

func (f FailOn) String() string {
	return [...]string{"never", "warning", "critical"}[f]
}

// Fails reports whether a worst severity w trips the policy.
func (f FailOn) Fails(w Severity) bool {
	switch f {
	case FailWarning:
		return w >= Warning
	case FailCritical:
		return w >= Critical
	}
	return false
}
