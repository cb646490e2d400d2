package esout

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultIndex is the index name template when none is given: one index
// per tag and UTC day, as logstash_format does.
const DefaultIndex = "logs-{tag}-{yyyy.MM.dd}"

// IndexTemplate turns a tag and an event time into an index name.
// Placeholders in braces: {tag} (lowercased, characters Elasticsearch
// forbids in index names replaced by '_') and date patterns over the
// event's UTC time built from yyyy, yy, MM, dd and HH, such as
// {yyyy.MM.dd} or {yyyy-MM}.
type IndexTemplate struct {
	parts []part
	fixed bool // no placeholders at all
}

type part struct {
	lit  string
	kind int // 0 literal, 1 tag, 2 date
}

// ParseIndexTemplate validates a template.
func ParseIndexTemplate(s string) (*IndexTemplate, error) {
	if s == "" {
		s = DefaultIndex
	}
	t := &IndexTemplate{fixed: true}
	rest := s
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.ContainsRune(rest, '}') {
				return nil, fmt.Errorf("index template %q: unmatched '}'", s)
			}
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if i > 0 {
			if strings.ContainsRune(rest[:i], '}') {
				return nil, fmt.Errorf("index template %q: unmatched '}'", s)
			}
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("index template %q: unclosed '{'", s)
		}
		ph := rest[i+1 : i+j]
		switch {
		case ph == "tag":
			t.parts = append(t.parts, part{kind: 1})
		case validDate(ph):
			t.parts = append(t.parts, part{lit: ph, kind: 2})
		default:
			return nil, fmt.Errorf("index template %q: unknown placeholder {%s} (use {tag} or a date such as {yyyy.MM.dd})", s, ph)
		}
		t.fixed = false
		rest = rest[i+j+1:]
	}
	if t.fixed {
		if err := checkIndexName(s); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func validDate(p string) bool {
	if p == "" {
		return false
	}
	seen := false
	for p != "" {
		switch {
		case strings.HasPrefix(p, "yyyy"):
			p, seen = p[4:], true
		case strings.HasPrefix(p, "yy"), strings.HasPrefix(p, "MM"), strings.HasPrefix(p, "dd"), strings.HasPrefix(p, "HH"):
			p, seen = p[2:], true
		case p[0] == '.' || p[0] == '-' || p[0] == '_':
			p = p[1:]
		default:
			return false
		}
	}
	return seen
}

func checkIndexName(s string) error {
	if s == "" || s != strings.ToLower(s) || strings.ContainsAny(s, "\\/*?\"<>| ,#:") || strings.IndexAny(s[:1], "-_+") == 0 {
		return errors.New("index name " + fmt.Sprintf("%q", s) + ": must be lowercase, not start with - _ +, and not contain \\ / * ? \" < > | space , # :")
	}
	return nil
}

// Name resolves the template for one event.
func (t *IndexTemplate) Name(tag string, sec int64) string {
	var b strings.Builder
	var tm time.Time
	for _, p := range t.parts {
		switch p.kind {
		case 0:
			b.WriteString(p.lit)
		case 1:
			b.WriteString(sanitizeTag(tag))
		case 2:
			if tm.IsZero() {
				tm = time.Unix(sec, 0).UTC()
			}
			formatDate(&b, p.lit, tm)
		}
	}
	return b.String()
}

func formatDate(b *strings.Builder, p string, t time.Time) {
	for p != "" {
		switch {
		case strings.HasPrefix(p, "yyyy"):
			fmt.Fprintf(b, "%04d", t.Year())
			p = p[4:]
		case strings.HasPrefix(p, "yy"):
			fmt.Fprintf(b, "%02d", t.Year()%100)
			p = p[2:]
		case strings.HasPrefix(p, "MM"):
			fmt.Fprintf(b, "%02d", int(t.Month()))
			p = p[2:]
		case strings.HasPrefix(p, "dd"):
			fmt.Fprintf(b, "%02d", t.Day())
			p = p[2:]
		case strings.HasPrefix(p, "HH"):
			fmt.Fprintf(b, "%02d", t.Hour())
			p = p[2:]
		default:
			b.WriteByte(p[0])
			p = p[1:]
		}
	}
}

// sanitizeTag makes a tag usable inside an index name.
func sanitizeTag(tag string) string {
	if tag == "" {
		return "untagged"
	}
	out := []byte(strings.ToLower(tag))
	for i, c := range out {
		if c < 0x20 || c >= 0x7f || strings.IndexByte("\\/*?\"<>| ,#:", c) >= 0 {
			out[i] = '_'
		}
	}
	return string(out)
}
