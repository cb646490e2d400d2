package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
)

// WriteHTML writes r as one self-contained HTML page: the verdict, the
// diagnosis when the data has one, every finding with its evidence (and
// the configuration lines around it when the data can show them), the
// data's sections as tables, bars and charts, and the raw data in
// collapsed sections.
//
// The page must open offline, from an e-mail attachment or a ticket, and
// read the same with JavaScript off: it loads nothing (no scripts, fonts,
// style sheets or images from anywhere; a Content-Security-Policy of
// default-src 'none' makes the browser refuse them should one slip in),
// draws charts as inline SVG and folds raw evidence with <details>.
func WriteHTML(w io.Writer, r *Report) error {
	page, err := buildPage(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := pageTmpl().Execute(&buf, page); err != nil {
		return fmt.Errorf("render html: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

type htmlPage struct {
	Title     string
	Command   string
	Verdict   string
	Worst     string
	Started   string
	Duration  int64
	Diagnosis []string
	Findings  []htmlFinding
	Sections  []htmlSection
	RawData   string
}

type htmlFinding struct {
	Index    int
	ID       string
	Severity string
	Summary  string
	Remedy   string
	Evidence string
	Excerpt  *htmlExcerpt
}

type htmlExcerpt struct {
	File  string
	Lines []htmlLine
}

type htmlLine struct {
	N    int
	Text string
	Mark bool
}

type htmlSection struct {
	Title     string
	Collapsed bool
	Header    []string
	Rows      [][]string
	Lines     []string
	Bars      *htmlBars
	Charts    []htmlChart
	Excerpt   *htmlExcerpt
}

type htmlBars struct {
	Rows   []htmlBarRow
	Legend []htmlLegend
}

type htmlBarRow struct {
	Label string
	Total string
	Segs  []htmlSeg
}

type htmlSeg struct {
	X, W  string // percent of the bar's width
	Color string
	Title string
}

type htmlLegend struct {
	Name  string
	Color string
}

type htmlChart struct {
	Name     string
	Unit     string
	Points   string // SVG polyline points
	Dots     []htmlDot
	Min, Max string
	Last     string
	XSpan    string
}

type htmlDot struct {
	X, Y  string
	Title string
}

func buildPage(r *Report) (*htmlPage, error) {
	p := &htmlPage{Command: r.Command, Verdict: Verdict(r), Started: r.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC"), Duration: r.DurationMS}
	p.Title = "logdoctor " + r.Command
	p.Worst = "ok"
	if w := r.Worst(); w > 0 {
		p.Worst = w.String()
	}
	if d, ok := r.Data.(Diagnosis); ok {
		p.Diagnosis = d.DiagnosisLines()
	}
	ex, _ := r.Data.(Excerpter)
	for i, f := range r.Findings {
		hf := htmlFinding{Index: i + 1, ID: f.ID, Severity: f.Severity.String(), Summary: f.Summary, Remedy: f.Remedy}
		if len(f.Evidence) > 0 {
			b, err := json.MarshalIndent(f.Evidence, "", "  ")
			if err != nil {
				return nil, fmt.Errorf("render html: evidence of %s: %w", f.ID, err)
			}
			hf.Evidence = string(b)
		}
		if ex != nil {
			if e, ok := ex.Excerpt(f); ok {
				hf.Excerpt = excerptOf(e)
			}
		}
		p.Findings = append(p.Findings, hf)
	}
	if t, ok := r.Data.(Tabular); ok {
		for _, s := range t.Sections() {
			p.Sections = append(p.Sections, sectionOf(s))
		}
	}
	if r.Data != nil {
		b, err := json.MarshalIndent(r.Data, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("render html: data: %w", err)
		}
		p.RawData = string(b)
	}
	return p, nil
}

func excerptOf(e Excerpt) *htmlExcerpt {
	he := &htmlExcerpt{File: e.File}
	for i, l := range e.Lines {
		n := e.First + i
		he.Lines = append(he.Lines, htmlLine{N: n, Text: l, Mark: n == e.Mark})
	}
	return he
}

func sectionOf(s Section) htmlSection {
	hs := htmlSection{Title: s.Title, Collapsed: s.Collapsed, Header: s.Header, Rows: s.Rows, Lines: s.Lines}
	if len(s.Bars) > 0 {
		hs.Bars = barsOf(s.Bars)
	}
	if s.Chart != nil {
		for _, se := range s.Chart.Series {
			if c, ok := chartOf(se, s.Chart.XUnit); ok {
				hs.Charts = append(hs.Charts, c)
			}
		}
	}
	if s.Excerpt != nil {
		hs.Excerpt = excerptOf(*s.Excerpt)
	}
	return hs
}

// stateColors keeps the colours of well-known parts stable from page to
// page: green for what works, amber for churn, red for what is stuck.
var stateColors = map[string]string{
	"ESTABLISHED": "#2e7d32", "TIME_WAIT": "#f9a825", "CLOSE_WAIT": "#c62828", "SYN_SENT": "#6a1b9a",
	"SYN_RECV": "#8e24aa", "FIN_WAIT1": "#ef6c00", "FIN_WAIT2": "#fb8c00", "LAST_ACK": "#ad1457",
	"CLOSING": "#d84315", "LISTEN": "#1565c0", "CLOSE": "#616161",
}

var palette = []string{"#1565c0", "#2e7d32", "#f9a825", "#c62828", "#6a1b9a", "#00838f", "#ef6c00", "#5d4037"}

func colorOf(name string) string {
	if c, ok := stateColors[name]; ok {
		return c
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return palette[h.Sum32()%uint32(len(palette))]
}

func barsOf(bars []Bar) *htmlBars {
	hb := &htmlBars{}
	seen := map[string]bool{}
	for _, b := range bars {
		total := 0.0
		for _, p := range b.Parts {
			if p.Value > 0 {
				total += p.Value
			}
		}
		row := htmlBarRow{Label: b.Label, Total: fmtNum(total)}
		x := 0.0
		for _, p := range b.Parts {
			if p.Value <= 0 || total == 0 {
				continue
			}
			w := p.Value / total * 100
			row.Segs = append(row.Segs, htmlSeg{X: fmtPct(x), W: fmtPct(w), Color: colorOf(p.Name), Title: p.Name + ": " + fmtNum(p.Value)})
			x += w
			if !seen[p.Name] {
				seen[p.Name] = true
				hb.Legend = append(hb.Legend, htmlLegend{Name: p.Name, Color: colorOf(p.Name)})
			}
		}
		hb.Rows = append(hb.Rows, row)
	}
	return hb
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 320.0, 80.0
	chartPad       = 6.0
)

func chartOf(s Series, xUnit string) (htmlChart, bool) {
	var pts []Point
	for _, p := range s.Points {
		if !math.IsNaN(p.X) && !math.IsNaN(p.Y) && !math.IsInf(p.X, 0) && !math.IsInf(p.Y, 0) {
			pts = append(pts, p)
		}
	}
	if len(pts) == 0 {
		return htmlChart{}, false
	}
	minX, maxX, minY, maxY := pts[0].X, pts[0].X, pts[0].Y, pts[0].Y
	for _, p := range pts {
		minX, maxX = math.Min(minX, p.X), math.Max(maxX, p.X)
		minY, maxY = math.Min(minY, p.Y), math.Max(maxY, p.Y)
	}
	// A flat series sits in the middle; a rising one from the bottom.
	lo, hi := minY, maxY
	if hi == lo {
		lo, hi = lo-1, hi+1
	}
	spanX := maxX - minX
	c := htmlChart{Name: s.Name, Unit: s.Unit, Min: fmtVal(minY, s.Unit), Max: fmtVal(maxY, s.Unit),
		Last: fmtVal(pts[len(pts)-1].Y, s.Unit), XSpan: fmtNum(spanX) + " " + xUnit}
	var sb strings.Builder
	for i, p := range pts {
		x := chartPad
		if spanX > 0 {
			x += (p.X - minX) / spanX * (chartW - 2*chartPad)
		}
		y := chartH - chartPad - (p.Y-lo)/(hi-lo)*(chartH-2*chartPad)
		if i > 0 {
			sb.WriteByte(' ')
		}
		xs, ys := strconv.FormatFloat(x, 'f', 1, 64), strconv.FormatFloat(y, 'f', 1, 64)
		sb.WriteString(xs + "," + ys)
		c.Dots = append(c.Dots, htmlDot{X: xs, Y: ys, Title: fmt.Sprintf("%s %s: %s", fmtNum(p.X-minX), xUnit, fmtVal(p.Y, s.Unit))})
	}
	c.Points = sb.String()
	return c, true
}

func fmtPct(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

func fmtNum(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

func fmtVal(f float64, unit string) string {
	if unit == "bytes" {
		return humanBytes(f)
	}
	if unit == "" || unit == "count" {
		return fmtNum(f)
	}
	return fmtNum(f) + " " + unit
}

func humanBytes(f float64) string {
	switch a := math.Abs(f); {
	case a >= 1<<30:
		return strconv.FormatFloat(f/(1<<30), 'f', 1, 64) + " GiB"
	case a >= 1<<20:
		return strconv.FormatFloat(f/(1<<20), 'f', 1, 64) + " MiB"
	case a >= 1<<10:
		return strconv.FormatFloat(f/(1<<10), 'f', 1, 64) + " KiB"
	}
	return fmtNum(f) + " B"
}

// pageCSP forbids every external resource and every script: the page
// needs none, and a browser opening it from a ticket then loads nothing.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

// pageTmpl is parsed on first use, not at start-up: parsing is 0.4 ms and
// 1,100 allocations (GODEBUG=inittrace=1) that every command but -o html
// paid before main.
var pageTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Funcs(template.FuncMap{
		"csp": func() string { return pageCSP },
	}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{csp}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="logdoctor">
<title>{{.Title}}: {{.Verdict}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:0 1.5em 2em;color:#1b1b1b;background:#fafafa;max-width:1200px}
h1{font-size:1.4em;margin:.8em 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .5em;border-bottom:1px solid #ddd;padding-bottom:.2em}h3{font-size:1em;margin:0 0 .3em}
.verdict{font-weight:600;padding:.5em .8em;border-radius:4px;border-left:6px solid #777;background:#fff}
.sev-critical,article.finding.sev-critical{border-left-color:#c62828}.sev-warning,article.finding.sev-warning{border-left-color:#f9a825}.sev-info,article.finding.sev-info{border-left-color:#1565c0}.sev-ok{border-left-color:#2e7d32}
.meta{color:#555;font-size:.9em}
ol.diagnosis li{margin:.4em 0;padding:.3em .5em;background:#fff;border:1px solid #e0e0e0;border-radius:4px}
article.finding{background:#fff;border:1px solid #e0e0e0;border-left:6px solid #777;border-radius:4px;padding:.6em .9em;margin:.7em 0}
.badge{display:inline-block;font-size:.75em;font-weight:700;padding:.1em .5em;border-radius:3px;color:#fff;background:#777;vertical-align:middle}
.sev-critical .badge{background:#c62828}.sev-warning .badge{background:#b7791f}.sev-info .badge{background:#1565c0}
.remedy{color:#333}
pre{background:#f3f3f3;padding:.5em .7em;overflow:auto;border-radius:3px;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre.code{padding:0}pre.code span{display:block;padding:0 .7em}pre.code span.mark{background:#fff3c4;font-weight:700}
pre.code i{display:inline-block;width:4em;color:#888;font-style:normal;user-select:none}
figure{margin:.5em 0}figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;background:#fff;margin:.4em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f0f0f0}
td.bar{width:420px}td.num{text-align:right}
.legend span{display:inline-block;margin-right:1em;font-size:.85em}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:middle}
.charts{display:flex;flex-wrap:wrap;gap:1em}.chart{background:#fff;border:1px solid #e0e0e0;border-radius:4px;padding:.4em .6em}.chart b{font-size:.9em}.chart small{color:#555}
details{margin:.4em 0}summary{cursor:pointer;color:#1565c0}
footer{margin-top:2em;color:#777;font-size:.85em}
</style>
</head>
<body>
<header>
<h1>logdoctor {{.Command}}</h1>
<p class="verdict sev-{{.Worst}}" id="verdict">{{.Verdict}}</p>
<p class="meta">Started {{.Started}}, took {{.Duration}} ms.</p>
</header>
{{if .Diagnosis}}<section id="diagnosis">
<h2>Diagnosis</h2>
<ol class="diagnosis">{{range .Diagnosis}}
<li>{{.}}</li>{{end}}
</ol>
</section>
{{end}}<section id="findings">
<h2>Findings ({{len .Findings}})</h2>
{{if not .Findings}}<p>None: nothing to report.</p>{{end}}{{range .Findings}}<article class="finding sev-{{.Severity}}" id="finding-{{.Index}}">
<h3><span class="badge">{{.Severity}}</span> <code>{{.ID}}</code></h3>
<p class="summary">{{.Summary}}</p>
{{if .Remedy}}<p class="remedy"><b>Remedy:</b> {{.Remedy}}</p>{{end}}
{{with .Excerpt}}<figure><figcaption>{{.File}}</figcaption><pre class="code">{{range .Lines}}<span{{if .Mark}} class="mark"{{end}}><i>{{.N}}</i>{{.Text}}</span>{{end}}</pre></figure>
{{end}}{{if .Evidence}}<details><summary>Evidence</summary><pre>{{.Evidence}}</pre></details>
{{end}}</article>
{{end}}</section>
{{range .Sections}}{{if .Collapsed}}<details class="section"><summary>{{if .Title}}{{.Title}}{{else}}Details{{end}}</summary>{{else}}<section>{{if .Title}}<h2>{{.Title}}</h2>{{end}}{{end}}
{{with .Bars}}<table class="bars"><tbody>{{range .Rows}}<tr><td>{{.Label}}</td><td class="num">{{.Total}}</td><td class="bar"><svg width="400" height="16" viewBox="0 0 100 16" preserveAspectRatio="none" role="img" aria-label="{{.Label}}">{{range .Segs}}<rect x="{{.X}}" y="0" width="{{.W}}" height="16" fill="{{.Color}}"><title>{{.Title}}</title></rect>{{end}}</svg></td></tr>{{end}}</tbody></table>
<p class="legend">{{range .Legend}}<span><i style="background:{{.Color}}"></i>{{.Name}}</span>{{end}}</p>
{{end}}{{if .Charts}}<div class="charts">{{range .Charts}}<div class="chart"><b>{{.Name}}</b> <small>last {{.Last}} (min {{.Min}}, max {{.Max}}) over {{.XSpan}}</small><br>
<svg width="320" height="80" viewBox="0 0 320 80" role="img" aria-label="{{.Name}}"><rect x="0" y="0" width="320" height="80" fill="#fbfbfb" stroke="#e0e0e0"/><polyline points="{{.Points}}" fill="none" stroke="#1565c0" stroke-width="2"/>{{range .Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="3" fill="#1565c0"><title>{{.Title}}</title></circle>{{end}}</svg></div>{{end}}</div>
{{end}}{{with .Excerpt}}<figure><figcaption>{{.File}}</figcaption><pre class="code">{{range .Lines}}<span{{if .Mark}} class="mark"{{end}}><i>{{.N}}</i>{{.Text}}</span>{{end}}</pre></figure>
{{end}}{{if .Header}}<table><thead><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr></thead><tbody>{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</tbody></table>
{{end}}{{if .Lines}}<pre>{{range .Lines}}{{.}}
{{end}}</pre>
{{end}}{{if .Collapsed}}</details>{{else}}</section>{{end}}
{{end}}{{if .RawData}}<details id="raw-data"><summary>Raw data (JSON)</summary><pre>{{.RawData}}</pre></details>
{{end}}<footer>Generated by logdoctor. This page loads nothing from the network and runs no scripts.</footer>
</body>
</html>
`))
})
