package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/olekukonko/tablewriter"
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
	case "table", "":
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

func (rd Renderer) renderText(w io.Writer, r *Report) error {
	var sections []Section
	if t, ok := r.Data.(Tabular); ok {
		sections = t.Sections()
	} else if r.Data != nil {
		b, err := json.MarshalIndent(r.Data, "", "  ")
		if err != nil {
			return fmt.Errorf("encode data: %w", err)
		}
		sections = append(sections, Section{Lines: strings.Split(string(b), "\n")})
	}
	sections = append(sections, FindingsSection(r.Findings))
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
	_, err := fmt.Fprintf(w, "\n%s: %d finding(s), took %dms\n", r.Command, len(r.Findings), r.DurationMS)
	return err
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
	t := tablewriter.NewWriter(w)
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
