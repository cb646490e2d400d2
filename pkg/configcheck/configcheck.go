// Package configcheck turns a shipper configuration model (pkg/shipconf)
// into report findings: the settings that lose, duplicate or stall logs
// in the field reports logdoctor exists for, each pointing at the file,
// line and setting to change.
package configcheck

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// Finding ids of `logdoctor config check` (stable API, documented in
// docs/commands/config.md).
const (
	FindingParseError          = "config.parse_error"
	FindingIncludeMissing      = "config.include_missing"
	FindingIncludeNotFollowed  = "config.include_not_followed"
	FindingForwardNoAck        = "config.forward_no_ack"
	FindingMemoryBuffer        = "config.memory_buffer"
	FindingRetryUnbounded      = "config.retry_unbounded"
	FindingRetryDrops          = "config.retry_drops"
	FindingOverflowDrops       = "config.overflow_drops"
	FindingESNoID              = "config.es_no_id"
	FindingES429Dropped        = "config.es_429_dropped"
	FindingESReloadConnections = "config.es_reload_connections"
	FindingESRequestTimeout    = "config.es_request_timeout"
	FindingChunkTooLarge       = "config.chunk_too_large"
	FindingESTypeName          = "config.es_type_name"
	FindingMemBufLimitIgnored  = "config.mem_buf_limit_ignored"
	FindingUDPMessageSize      = "config.udp_message_size"
	FindingSecretPlaintext     = "config.secret_plaintext"
	FindingNoMonitoring        = "config.no_monitoring"
)

// Rules lists every finding id with a one-line description, for SARIF's
// rule metadata and the docs test.
var Rules = []report.Rule{
	{ID: FindingParseError, Description: "The configuration has a syntax error the shipper refuses, or a file it cannot read."},
	{ID: FindingIncludeMissing, Description: "An include matches no file; Fluentd then includes nothing without a word."},
	{ID: FindingIncludeNotFollowed, Description: "An include logdoctor does not read (a URL or a path from embedded Ruby)."},
	{ID: FindingForwardNoAck, Description: "A forward output sends without waiting for acks: a receiver that drops chunks loses them silently."},
	{ID: FindingMemoryBuffer, Description: "An output buffers in memory: a restart or an OOM kill loses the buffer."},
	{ID: FindingRetryUnbounded, Description: "Retries never give up on a memory buffer, which grows to its limit while the output is down."},
	{ID: FindingRetryDrops, Description: "Chunks are dropped after a bounded number of retries with nowhere to go."},
	{ID: FindingOverflowDrops, Description: "A full buffer drops data (drop_oldest_chunk), or refuses it from an input that cannot replay."},
	{ID: FindingESNoID, Description: "An Elasticsearch output without a stable document id: retries index duplicates."},
	{ID: FindingES429Dropped, Description: "Per-item 429 rejections are not retried on their own: Fluentd retries the whole chunk (and stalls under steady rejections), Fluent Bit drops them."},
	{ID: FindingESReloadConnections, Description: "The Elasticsearch client re-sniffs and replaces the configured hosts with node addresses."},
	{ID: FindingESRequestTimeout, Description: "The Elasticsearch request timeout is short for the size of the bulk requests."},
	{ID: FindingChunkTooLarge, Description: "A bulk request can exceed Elasticsearch's http.max_content_length: 413 and a chunk that is never sent."},
	{ID: FindingESTypeName, Description: "Fluent Bit's es output sends _type, which Elasticsearch 8 rejects."},
	{ID: FindingMemBufLimitIgnored, Description: "Mem_Buf_Limit does not do what it seems to with this storage type."},
	{ID: FindingUDPMessageSize, Description: "A UDP input accepts messages larger than one unfragmented datagram."},
	{ID: FindingSecretPlaintext, Description: "A password or key is written in the configuration file."},
	{ID: FindingNoMonitoring, Description: "Nothing exposes buffer and retry state to watch."},
}

// Version is an Elasticsearch or OpenSearch version (--es-version).
type Version struct {
	OpenSearch   bool
	Major, Minor int
}

// ErrBadVersion is returned by ParseVersion.
var ErrBadVersion = errors.New("invalid version")

// ParseVersion reads "8", "7.17", "opensearch-2", "opensearch:2.11" or
// "os2".
func ParseVersion(s string) (Version, error) {
	v := Version{}
	t := strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"opensearch", "os"} {
		if rest, ok := strings.CutPrefix(t, p); ok {
			v.OpenSearch = true
			t = strings.TrimLeft(rest, "-:/ ")
			break
		}
	}
	t = strings.TrimPrefix(t, "v")
	maj, min, _ := strings.Cut(t, ".")
	var err error
	if v.Major, err = strconv.Atoi(maj); err != nil || v.Major < 0 {
		return Version{}, fmt.Errorf("%q: %w: want 8, 7.17 or opensearch-2", s, ErrBadVersion)
	}
	if min != "" {
		m, _, _ := strings.Cut(min, ".")
		if v.Minor, err = strconv.Atoi(m); err != nil {
			return Version{}, fmt.Errorf("%q: %w: want 8, 7.17 or opensearch-2", s, ErrBadVersion)
		}
	}
	return v, nil
}

func (v Version) String() string {
	s := strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor)
	if v.OpenSearch {
		return "OpenSearch " + s
	}
	return "Elasticsearch " + s
}

// rejectsType reports whether the cluster refuses _type in bulk actions.
func (v Version) rejectsType() bool {
	if v.OpenSearch {
		return v.Major >= 2
	}
	return v.Major >= 8
}

// Options are what the rules cannot read from the files.
type Options struct {
	// MTU is the path MTU for config.udp_message_size; MTUSource says
	// where it came from (flag, interface, default).
	MTU       int
	MTUSource string
	// ESVersion, when set, makes the type-name rule exact.
	ESVersion *Version
	// ESMaxContentLength is the cluster's http.max_content_length in
	// bytes; 0 means not given (Elasticsearch's default, 100 MiB,
	// applies).
	ESMaxContentLength int64
}

// ESDefaultMaxContentLength is Elasticsearch's default
// http.max_content_length (100mb).
const ESDefaultMaxContentLength = 100 << 20

// Check runs every rule over one configuration.
func Check(c *shipconf.Config, o Options) []report.Finding {
	fs, _ := Analyze(c, o)
	return fs
}

// Analyze is Check and Summarize together, computing the routes once.
func Analyze(c *shipconf.Config, o Options) ([]report.Finding, Summary) {
	routes := c.Routes()
	return check(c, o, routes), summarize(c, routes)
}

// DefaultMTU is the path MTU the UDP size rule assumes when none is known:
// Ethernet's.
const DefaultMTU = 1500

func check(c *shipconf.Config, o Options, routes []shipconf.Route) []report.Finding {
	if o.MTU <= 0 {
		o.MTU, o.MTUSource = DefaultMTU, "default"
	}
	ck := &checker{c: c, o: o, routes: routes, to: map[*shipconf.Plugin][]shipconf.Route{}, from: map[*shipconf.Plugin][]shipconf.Route{}}
	for _, r := range routes {
		ck.to[r.Output] = append(ck.to[r.Output], r)
		ck.from[r.Input] = append(ck.from[r.Input], r)
	}
	ck.problems()
	ck.forwardNoAck()
	ck.buffers()
	ck.elasticsearch()
	ck.fluentBitStorage()
	ck.udpMessageSize()
	ck.secrets()
	ck.monitoring()
	return ck.out
}

type checker struct {
	c        *shipconf.Config
	o        Options
	routes   []shipconf.Route
	to, from map[*shipconf.Plugin][]shipconf.Route // routes by output and by input
	out      []report.Finding
}

func (ck *checker) add(f report.Finding) { ck.out = append(ck.out, f) }

func (ck *checker) fluentBit() bool { return ck.c.Shipper == shipconf.FluentBit }

// evidence is what every finding about a setting carries: where, which
// plugin, which setting, its value (redacted when secret) and whether it
// is the plugin's default.
func evidence(p *shipconf.Plugin, prm *shipconf.Param, secret bool, extra map[string]any) map[string]any {
	ev := map[string]any{}
	if prm != nil {
		ev["file"], ev["line"] = prm.Pos.File, prm.Pos.Line
		if prm.Pos.Col > 0 {
			ev["column"] = prm.Pos.Col
		}
		ev["setting"] = prm.Key
		if secret {
			ev["value"] = "xxxxx"
		} else {
			ev["value"] = report.Redact(prm.Value)
		}
		if prm.State == shipconf.Default {
			ev["default"] = true
		}
		if prm.Note != "" && prm.Note != "default" {
			ev["note"] = prm.Note
		}
		if len(prm.Env) > 0 {
			ev["env"] = prm.Env
		}
	} else if p != nil {
		ev["file"], ev["line"] = p.Pos.File, p.Pos.Line
		if p.Pos.Col > 0 {
			ev["column"] = p.Pos.Col
		}
	}
	if p != nil {
		ev["plugin"] = p.Name()
		if p.Match != "" {
			ev["match"] = p.Match
		}
		if p.Label != "" {
			ev["label"] = p.Label
		}
	}
	for k, v := range extra {
		ev[k] = v
	}
	return ev
}

// where is "file:line" for a summary.
func where(prm *shipconf.Param, p *shipconf.Plugin) string {
	if prm != nil && prm.State != shipconf.Default {
		return fmt.Sprintf("%s:%d", prm.Pos.File, prm.Pos.Line)
	}
	return fmt.Sprintf("%s:%d", p.Pos.File, p.Pos.Line)
}

// defaultNote is appended to summaries that rest on a default;
// defaultIn is the same inside parentheses.
func defaultNote(prm *shipconf.Param) string {
	if prm != nil && prm.State == shipconf.Default {
		return " (the default: the file does not set it)"
	}
	return ""
}

func defaultIn(prm *shipconf.Param) string {
	if prm != nil && prm.State == shipconf.Default {
		return ", the default: the file does not set it"
	}
	return ""
}

func (ck *checker) problems() {
	for _, pr := range ck.c.Problems {
		ev := map[string]any{"file": pr.Pos.File, "line": pr.Pos.Line, "message": pr.Msg}
		if pr.Pos.Col > 0 {
			ev["column"] = pr.Pos.Col
		}
		if pr.Expected != "" {
			ev["expected"] = pr.Expected
		}
		switch {
		case pr.Kind == shipconf.NotFollowed:
			ck.add(report.Finding{ID: FindingIncludeNotFollowed, Severity: report.Info, Evidence: ev,
				Summary: fmt.Sprintf("%s: %s", pr.Pos, pr.Msg),
				Remedy:  "Check the included configuration on its own (save it to a file and run `logdoctor config check FILE`), or include a local copy."})
		case errors.Is(pr, shipconf.ErrNoMatch) && ck.c.Shipper == shipconf.Fluentd:
			ck.add(report.Finding{ID: FindingIncludeMissing, Severity: report.Warning, Evidence: ev,
				Summary: fmt.Sprintf("%s: %s", pr.Pos, pr.Msg),
				Remedy:  "Fix the @include path (relative paths are relative to the including file) or remove the line; Fluentd starts without the sources and matches you meant to include."})
		default:
			summary := fmt.Sprintf("%s: %s", pr.Pos, pr.Msg)
			if pr.Expected != "" {
				summary += " (expected " + pr.Expected + ")"
			}
			ck.add(report.Finding{ID: FindingParseError, Severity: report.Critical, Evidence: ev, Summary: summary,
				Remedy: "Fix the line: " + shipperName(ck.c.Shipper) + " refuses to start with this error (check with its --dry-run). logdoctor checked the rest of the file where it could."})
		}
	}
}

func shipperName(s shipconf.Shipper) string {
	if s == shipconf.FluentBit {
		return "Fluent Bit"
	}
	return "Fluentd"
}
