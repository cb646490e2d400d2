package cli

import (
	"crypto/x509"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// ESConn is the one Elasticsearch connection flag group: es probe, es
// dups, pipeline run, smoke and exporter declare it with the same names,
// help and checks, the cluster's URL included (--es, repeatable or
// comma-separated, in every command). The password itself is not part of
// it: each command decides whether it takes one inline (es probe
// --password, pipeline run --es-password) or only from the file and
// LOGDOCTOR_ES_PASSWORD.
type ESConn struct {
	// URLs are --es's values in order; how many a command takes, and
	// whether "embedded" is one, is the command's esURLFlag.
	URLs         []string
	User         string
	PasswordFile string
	APIKey       string
	CA           string
	Insecure     bool

	aliases flagAliases
}

// esURLFlag is what --es means to one command.
type esURLFlag struct {
	usage    string
	def      []string
	embedded bool // "embedded" is a value: the in-process stand-in
}

// addFlags declares the group on f. old maps a flag's name to the
// spelling a command used before, kept working as a hidden alias.
func (c *ESConn) addFlags(f *pflag.FlagSet, u esURLFlag, old map[string]string) {
	c.URLs = u.def
	addVar(f, &urlList{p: &c.URLs, embedded: u.embedded}, "es", "", u.usage)
	f.StringVar(&c.User, "es-user", "", "Elasticsearch basic auth user (password from --es-password-file or LOGDOCTOR_ES_PASSWORD)")
	f.StringVar(&c.PasswordFile, "es-password-file", "", "read the Elasticsearch password from this file")
	f.StringVar(&c.APIKey, "es-api-key", "", "Elasticsearch API key (base64 id:key), sent as 'Authorization: ApiKey ...' (or LOGDOCTOR_ES_API_KEY)")
	f.StringVar(&c.CA, "es-ca", "", "PEM CA bundle to verify Elasticsearch's TLS certificate")
	f.BoolVar(&c.Insecure, "es-insecure", false, "do not verify Elasticsearch's TLS certificate")
	c.aliases.add(f, old)
}

// esURL is the one --es URL of a command that takes one ("": none).
func (c *ESConn) esURL() string {
	if len(c.URLs) == 0 {
		return ""
	}
	return c.URLs[0]
}

// flag is the spelling of the group's flag name that the user typed.
func (c *ESConn) flag(name string) string { return c.aliases.flag(name) }

// password resolves the password: inline, else the file, else
// LOGDOCTOR_ES_PASSWORD.
func (c *ESConn) password(inline string) (string, error) {
	return esPassword(inline, c.flag("es-password-file"), c.PasswordFile)
}

// apiKey is the flag's key, else LOGDOCTOR_ES_API_KEY.
func (c *ESConn) apiKey() string {
	if c.APIKey != "" {
		return c.APIKey
	}
	return os.Getenv("LOGDOCTOR_ES_API_KEY")
}

// rootCAs reads --es-ca (nil without it: the system's roots).
func (c *ESConn) rootCAs() (*x509.CertPool, error) {
	if c.CA == "" {
		return nil, nil
	}
	return certPool(c.flag("es-ca"), c.CA)
}

// urlList is --es: http(s) URLs, repeatable or comma-separated, each
// checked as it is parsed ("embedded" too where the command has one). The
// first value given replaces the default, as pflag's slices do.
type urlList struct {
	p        *[]string
	embedded bool
	changed  bool
}

func (l *urlList) Set(s string) error {
	var urls []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		switch {
		case u == "":
		case u == "embedded" && l.embedded:
			urls = append(urls, u)
		case checkHTTPURL(u) != nil:
			if l.embedded {
				return errWant(wantHTTPURL + ", or embedded")
			}
			return errWant(wantHTTPURL)
		default:
			urls = append(urls, u)
		}
	}
	if !l.changed {
		*l.p, l.changed = nil, true
	}
	*l.p = append(*l.p, urls...)
	return nil
}

// String shows the URLs with their passwords replaced: it is what --help
// prints as the default.
func (l *urlList) String() string {
	if len(*l.p) == 0 {
		return ""
	}
	return "[" + strings.Join(redactAll(*l.p), ",") + "]"
}

func (l *urlList) Type() string { return "urls" }
