package esclient

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ParseURL normalises a cluster URL argument into a base URL that request
// paths are appended to: the scheme defaults to http, userinfo leaves the
// URL and comes back as Auth (so it is sent in a header and never logged),
// a path stays as a prefix (a cluster behind a proxy path), and the query,
// the fragment and a trailing slash are dropped. Errors never show a
// password.
func ParseURL(raw string) (base string, fromURL Auth, err error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, password included: keep only
		// what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", Auth{}, fmt.Errorf("URL %q: %w", RedactURL(raw), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", Auth{}, fmt.Errorf("URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return "", Auth{}, fmt.Errorf("URL %q: no host", u.Redacted())
	}
	if u.User != nil {
		fromURL.Username = u.User.Username()
		fromURL.Password, _ = u.User.Password()
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/"), fromURL, nil
}

// RedactURL hides the userinfo of a URL argument that may not even parse,
// for error messages.
func RedactURL(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "xxxxx@" + s[i+1:]
		}
	}
	return s
}
