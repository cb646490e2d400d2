package shipconf

import (
	"regexp"
	"strings"
)

// Fluentd evaluates "#{...}" in double-quoted values as Ruby. logdoctor
// evaluates nothing: it recognises the environment lookups that
// configurations use to take settings from a Kubernetes manifest, and
// marks every other expression unknown.

// rubyCodeEnd returns the index of the '}' that closes embedded code
// starting at start, or -1. Fluentd finds it by asking Ripper for the
// shortest prefix that parses; this scanner gets the same answer for the
// code configurations hold: nested braces, quoted strings (with their own
// #{...}) and comments, which run to the end of the line.
func rubyCodeEnd(src []byte, start int) int {
	depth := 0
	for i := start; i < len(src); i++ {
		switch c := src[i]; c {
		case '\'', '"':
			end := rubyStringEnd(src, i)
			if end < 0 {
				return -1
			}
			i = end
		case '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

// rubyStringEnd returns the index of the quote closing the string that
// opens at open.
func rubyStringEnd(src []byte, open int) int {
	q := src[open]
	for i := open + 1; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case q:
			return i
		case '#':
			if q == '"' && i+1 < len(src) && src[i+1] == '{' {
				end := rubyCodeEnd(src, i+2)
				if end < 0 {
					return -1
				}
				i = end
			}
		}
	}
	return -1
}

// rubyResult is what logdoctor makes of one embedded expression.
type rubyResult struct {
	value      string
	state      State
	env        []string
	note       string
	useDefault bool
}

var (
	rubyEnv      = regexp.MustCompile(`^ENV\s*\[\s*(?:'([^']*)'|"([^"#\\]*)")\s*\]$`)
	rubyEnvOr    = regexp.MustCompile(`^ENV\s*\[\s*(?:'([^']*)'|"([^"#\\]*)")\s*\]\s*(?:\|\||or)\s*(?:'([^'\\]*)'|"([^"#\\]*)")$`)
	rubyEnvFetch = regexp.MustCompile(`^ENV\.fetch\(\s*(?:'([^']*)'|"([^"#\\]*)")\s*(?:,\s*(?:'([^'\\]*)'|"([^"#\\]*)")\s*)?\)$`)
)

// evalRuby resolves ENV['X'], ENV['X'] || 'default' and ENV.fetch('X',
// 'default') from env; use_default and use_nil are Fluentd's own helpers.
// Anything else is unknown.
func evalRuby(code string, env map[string]string) rubyResult {
	c := strings.TrimSpace(code)
	switch c {
	case "use_default":
		return rubyResult{useDefault: true, note: "use_default: the plugin's default applies"}
	case "use_nil":
		return rubyResult{note: "use_nil: the parameter is nil"}
	case "hostname", "Socket.gethostname", "worker_id":
		return rubyResult{state: Unknown, note: c + " is known only on the host that runs Fluentd"}
	}
	pick := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	if m := rubyEnvOr.FindStringSubmatch(c); m != nil {
		name, def := pick(m[1], m[2]), pick(m[3], m[4])
		if v, ok := env[name]; ok && v != "" {
			return rubyResult{value: v, env: []string{name}}
		}
		return rubyResult{value: def, env: []string{name}, note: "environment variable " + name + " not given: its default " + quoteNote(def)}
	}
	if m := rubyEnvFetch.FindStringSubmatch(c); m != nil {
		name := pick(m[1], m[2])
		if v, ok := env[name]; ok {
			return rubyResult{value: v, env: []string{name}}
		}
		if m[3] != "" || m[4] != "" || strings.Contains(c, ",") {
			def := pick(m[3], m[4])
			return rubyResult{value: def, env: []string{name}, note: "environment variable " + name + " not given: its default " + quoteNote(def)}
		}
		return rubyResult{state: Unknown, env: []string{name}, note: "environment variable " + name + " not given (--env " + name + "=... or --use-env)"}
	}
	if m := rubyEnv.FindStringSubmatch(c); m != nil {
		name := pick(m[1], m[2])
		if v, ok := env[name]; ok {
			return rubyResult{value: v, env: []string{name}}
		}
		return rubyResult{state: Unknown, env: []string{name}, note: "environment variable " + name + " not given (--env " + name + "=... or --use-env)"}
	}
	return rubyResult{state: Unknown, note: "embedded Ruby is not evaluated: #{" + clipNote(c) + "}"}
}

func quoteNote(s string) string { return "'" + clipNote(s) + "'" }

func clipNote(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
