package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// Format is the -o flag.
type Format int

const (
	FormatTable Format = iota
	FormatJSON
	FormatSARIF // SARIF 2.1.0 (sarif.go)
)

// ParseFormat accepts table, json and sarif.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "table":
		return FormatTable, nil
	case "json":
		return FormatJSON, nil
	case "sarif":
		return FormatSARIF, nil
	}
	return 0, fmt.Errorf("invalid --output %q: want table, json or sarif", s)
}

// Section is one block of the table view: an optional title, a table
// (Header and Rows) and/or free lines (histogram bars, notes).
type Section struct {
	Title  string
	Header []string
	Rows   [][]string
	Lines  []string

	// What only the HTML page (--html) draws; text output keeps to the
	// rows and lines above, which must say the same in words.
	Bars    []Bar    // one stacked bar per item: socket states per peer
	Chart   *Chart   // small line charts of samples over time
	Excerpt *Excerpt // lines of a file with one of them marked
	// Collapsed puts the section in a closed <details> on the page: raw
	// evidence a person opens when they need it. Text output leaves it
	// out (-o json has the same data).
	Collapsed bool
}

// Bar is one stacked bar: parts in order, each a named share.
type Bar struct {
	Label string
	Parts []BarPart
}

// BarPart is one segment of a Bar.
type BarPart struct {
	Name  string
	Value float64
}

// Chart is a set of small line charts sharing a time axis, one per
// series (each on its own scale: bytes and retry counts do not share an
// axis).
type Chart struct {
	XUnit  string // unit of the X values, e.g. "s"
	Series []Series
}

// Series is one measured quantity over time.
type Series struct {
	Name   string
	Unit   string // "bytes", "count", ...
	Points []Point
}

// Point is one sample.
type Point struct{ X, Y float64 }

// Excerpt is a few lines of a file around one of interest.
type Excerpt struct {
	File  string   `json:"file"`
	First int      `json:"first_line"` // number of Lines[0]
	Lines []string `json:"lines"`
	Mark  int      `json:"mark"` // the line of interest (a number within First..)
}

// Diagnosis is implemented by a report's data when it joins the findings
// into ranked causes, most likely first: renderers number them and show
// them right after the verdict line, before the findings.
type Diagnosis interface {
	DiagnosisLines() []string
}

// Excerpter is implemented by a report's data when it can show the lines
// of a file a finding points at (its evidence's file and line), already
// redacted; the HTML page prints them under the finding.
type Excerpter interface {
	Excerpt(f Finding) (Excerpt, bool)
}

// Tabular is implemented by command data that knows how to show itself as
// tables. Data that does not implement it is shown as indented JSON.
type Tabular interface {
	Sections() []Section
}

// Renderer writes reports in one format. TTY selects boxed tables
// (tablewriter) over plain aligned columns, which is what people piping to
// grep or awk want.
type Renderer struct {
	Format Format
	TTY    bool
	// SARIF describes the tool and its rules for FormatSARIF.
	SARIF SARIFInfo
}

// Render writes one report. JSON is a single line, so --watch output is
// JSON Lines and each line parses on its own.
func (rd Renderer) Render(w io.Writer, r *Report) error {
	if rd.Format == FormatSARIF {
		return RenderSARIF(w, r, rd.SARIF)
	}
	if rd.Format == FormatJSON {
		return writeJSON(w, r)
	}
	return rd.renderText(w, r)
}

// renderText opens with the verdict, a one-line summary and then the
// findings, so the answer is on the first screen; the detail tables that
// support it follow.
func (rd Renderer) renderText(w io.Writer, r *Report) error {
	head := []string{Verdict(r)}
	if d, ok := r.Data.(Diagnosis); ok {
		for i, l := range d.DiagnosisLines() {
			head = append(head, fmt.Sprintf("%d. %s", i+1, l))
		}
	}
	sections := []Section{{Lines: head}}
	if len(r.Findings) > 0 {
		sections = append(sections, FindingsSection(r.Findings))
	}
	if t, ok := r.Data.(Tabular); ok {
		for _, s := range t.Sections() {
			if !s.Collapsed {
				sections = append(sections, s)
			}
		}
	} else if r.Data != nil {
		b, err := json.MarshalIndent(r.Data, "", "  ")
		if err != nil {
			return fmt.Errorf("encode data: %w", err)
		}
		sections = append(sections, Section{Lines: strings.Split(string(b), "\n")})
	}
	for i, s := range sections {
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		if err := rd.section(w, s); err != nil {
			return err
		}
	}
	return nil
}

// Verdict is the report's one-line summary: the command, whether anything
// was found and how bad the worst of it is, and how long it took.
func Verdict(r *Report) string {
	if len(r.Findings) == 0 {
		return fmt.Sprintf("%s: OK, no findings (took %dms)", r.Command, r.DurationMS)
	}
	counts := map[Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	var parts []string
	for _, s := range []Severity{Critical, Warning, Info} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	return fmt.Sprintf("%s: %s, %d finding(s): %s (took %dms)", r.Command, strings.ToUpper(r.Worst().String()),
		len(r.Findings), strings.Join(parts, ", "), r.DurationMS)
}

// FindingsSection shows findings, one block each, so long summaries and
// remedies stay readable in a narrow terminal.
func FindingsSection(fs []Finding) Section {
	s := Section{Title: "Findings"}
	if len(fs) == 0 {
		s.Lines = []string{"none: nothing to report"}
		return s
	}
	for _, f := range fs {
		s.Lines = append(s.Lines, fmt.Sprintf("[%s] %s: %s", strings.ToUpper(f.Severity.String()), f.ID, f.Summary))
		if f.Remedy != "" {
			s.Lines = append(s.Lines, "    remedy: "+f.Remedy)
		}
	}
	return s
}

func (rd Renderer) section(w io.Writer, s Section) error {
	if s.Title != "" {
		if _, err := fmt.Fprintf(w, "%s\n", s.Title); err != nil {
			return err
		}
	}
	if len(s.Header) > 0 {
		var err error
		if rd.TTY {
			err = boxed(w, s)
		} else {
			err = plain(w, s)
		}
		if err != nil {
			return err
		}
	}
	for _, l := range s.Lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}

func boxed(w io.Writer, s Section) error {
	// Headers print as written (Send-Q, TIME_WAIT, p50): the library's
	// default upper-cases them and turns '-', '_' and digits into spaces.
	t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	t.Header(s.Header)
	for _, row := range s.Rows {
		if err := t.Append(row); err != nil {
			return fmt.Errorf("table row: %w", err)
		}
	}
	return t.Render()
}

func plain(w io.Writer, s Section) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(s.Header, "\t"))
	for _, row := range s.Rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}
