package report

import (
	"net/url"
	"regexp"
)

// secretPattern finds credentials that tend to leak through error strings:
// URL userinfo, Authorization headers, and key=value pairs with secret-ish
// names.
var secretPattern = regexp.MustCompile(`(?i)(://[^/\s:@]+:)[^@\s/]+@|((?:authorization|api[_-]?key|password|passwd|shared[_-]?key|token|secret)\\?["']?\s*(?:=>|[:=])\s*\\?["']?(?:(?:basic|bearer|apikey)\s+)?)[^\s"'\\,&}]+`)

// Redact replaces credentials in s with "xxxxx". Use it on every error and
// evidence string that may carry a URL or a header.
func Redact(s string) string {
	return secretPattern.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretPattern.FindStringSubmatch(m)
		if sub[1] != "" {
			return sub[1] + "xxxxx@"
		}
		return sub[2] + "xxxxx"
	})
}

// RedactURL returns u as a string with any password replaced.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.Redacted()
}
