package report

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

// richData exercises every part of the page: diagnosis, excerpts, bars,
// charts, tables, collapsed sections.
type richData struct {
	Peers int `json:"peers"`
}

func (richData) DiagnosisLines() []string {
	return []string{"memory buffer (fluent.conf:41) + no ESTABLISHED connection to es:9200: set <buffer> @type file"}
}

func (richData) Excerpt(f Finding) (Excerpt, bool) {
	if f.Evidence["file"] != "fluent.conf" {
		return Excerpt{}, false
	}
	return Excerpt{File: "fluent.conf", First: 39, Lines: []string{"  <buffer>", "    @type memory", "  </buffer>"}, Mark: 40}, true
}

func (richData) Sections() []Section {
	return []Section{
		{Title: "Sockets per configured peer", Header: []string{"PEER", "ESTABLISHED", "TIME_WAIT"}, Rows: [][]string{{"127.0.0.1:9200", "0", "12"}},
			Bars: []Bar{{Label: "127.0.0.1:9200", Parts: []BarPart{{"ESTABLISHED", 0}, {"TIME_WAIT", 12}}}, {Label: "127.0.0.1:24224", Parts: []BarPart{{"ESTABLISHED", 3}, {"CLOSE_WAIT", 1}}}}},
		{Title: "Shipper samples", Chart: &Chart{XUnit: "s", Series: []Series{
			{Name: "buffer_total_queued_size", Unit: "bytes", Points: []Point{{0, 1000}, {1, 50000}, {2, 120000}}},
			{Name: "retry_count", Points: []Point{{0, 3}, {1, 4}, {2, 6}}},
			{Name: "flat", Points: []Point{{0, 5}, {2, 5}}}}}},
		{Title: "Raw monitor_agent answer", Collapsed: true, Lines: []string{`{"plugins":[]}`}},
	}
}

func richReport() *Report {
	start := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	r := New("doctor", start)
	r.Data = richData{Peers: 2}
	r.Add(Finding{ID: "shipper.buffer_filling", Severity: Critical, Summary: "buffer grows <fast> & \"steady\"; <script>alert(1)</script>",
		Remedy: "set @type file", Evidence: map[string]any{"file": "fluent.conf", "line": 40, "rate_bytes_per_second": 1234}},
		Finding{ID: "config.no_monitoring", Severity: Info, Summary: "no monitoring", Remedy: "add monitor_agent"})
	r.Finish(start.Add(5100 * time.Millisecond))
	return r
}

func TestHTMLIsSelfContained(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, richReport()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		"<!DOCTYPE html>", `http-equiv="Content-Security-Policy"`, "default-src &#39;none&#39;",
		"doctor: CRITICAL, 2 finding(s)", "<li>memory buffer (fluent.conf:41)",
		"shipper.buffer_filling", "buffer grows &lt;fast&gt; &amp; &#34;steady&#34;; &lt;script&gt;alert(1)&lt;/script&gt;",
		`<span class="mark"><i>40</i>    @type memory</span>`, "<svg", "<polyline", `<rect x="0.00" y="0" width="100.00"`,
		"TIME_WAIT: 12", "<details class=\"section\"><summary>Raw monitor_agent answer</summary>", "Raw data (JSON)",
		"&#34;rate_bytes_per_second&#34;: 1234",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Nothing to load and nothing to run: no scripts, no style sheets,
	// no src attributes, no URLs in attributes.
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script`), regexp.MustCompile(`(?i)<link`), regexp.MustCompile(`(?i)\ssrc=`),
		regexp.MustCompile(`(?i)(href|src|action)="(https?:)?//`), regexp.MustCompile(`(?i)@import`), regexp.MustCompile(`(?i)url\(`),
		regexp.MustCompile(`ZgotmplZ`), regexp.MustCompile(`(?i)\son[a-z]+=`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("page holds %q: it must load and run nothing", m)
		}
	}
	if n := strings.Count(page, `<article class="finding`); n != 2 {
		t.Errorf("%d finding articles, want 2", n)
	}
}

func TestHTMLWithoutFindingsOrData(t *testing.T) {
	r := New("sockets", time.Now())
	r.Finish(time.Now())
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sockets: OK, no findings", "None: nothing to report.", `class="verdict sev-ok"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(buf.String(), "Raw data") {
		t.Error("a report without data shows a raw data section")
	}
}

// TestHTMLInChromium loads the page in a real browser with JavaScript
// off: the findings, diagnosis and charts are in the DOM it built, the
// screenshot is not blank, and the page requested nothing but itself.
func TestHTMLInChromium(t *testing.T) {
	file := filepath.Join(t.TempDir(), "report.html")
	var buf bytes.Buffer
	if err := WriteHTML(&buf, richReport()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	page := testenv.LoadInChromium(t, file)
	for _, want := range []string{"shipper.buffer_filling", "config.no_monitoring", "memory buffer (fluent.conf:41)",
		"&lt;script&gt;alert(1)&lt;/script&gt;", "<polyline", "TIME_WAIT: 12", "@type memory"} {
		if !strings.Contains(page.DOM, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if strings.Contains(page.DOM, "<script>alert(1)") {
		t.Error("a summary was rendered as markup")
	}
	for _, u := range page.Requests {
		if u != "file://"+file {
			t.Errorf("the page requested %s", u)
		}
	}
	if len(page.ConsoleErr) > 0 {
		t.Errorf("console: %v", page.ConsoleErr)
	}
	ink, err := testenv.InkRatio(page.PNG)
	if err != nil {
		t.Fatal(err)
	}
	if ink < 0.01 {
		t.Errorf("screenshot is blank: %.4f of its pixels differ from the background", ink)
	}
}

func TestDiagnosisFollowsTheVerdictLine(t *testing.T) {
	var buf bytes.Buffer
	if err := (Renderer{Format: FormatTable}).Render(&buf, richReport()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if !strings.HasPrefix(lines[0], "doctor: CRITICAL") || lines[1] != "1. memory buffer (fluent.conf:41) + no ESTABLISHED connection to es:9200: set <buffer> @type file" {
		t.Errorf("want the verdict, then the numbered causes:\n%s", buf.String())
	}
	if f := strings.Index(buf.String(), "Findings"); f < strings.Index(buf.String(), "1. memory buffer") {
		t.Errorf("the diagnosis must come before the findings:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "Raw monitor_agent answer") || !strings.Contains(buf.String(), "Shipper samples") {
		t.Errorf("text output shows the sections, not the collapsed raw ones:\n%s", buf.String())
	}
}
