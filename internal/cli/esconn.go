package cli

import (
	"crypto/x509"
	"os"

	"github.com/spf13/pflag"
)

// ESConn is the one Elasticsearch connection flag group: es probe, es
// dups, pipeline run and smoke declare it with the same names, help and
// checks. The password itself is not part of it: each command decides
// whether it takes one inline (es probe --password, pipeline run
// --es-password) or only from the file and LOGDOCTOR_ES_PASSWORD.
type ESConn struct {
	User         string
	PasswordFile string
	APIKey       string
	CA           string
	Insecure     bool

	aliases flagAliases
}

// addFlags declares the group on f. old maps a flag's name to the
// spelling a command used before, kept working as a hidden alias.
func (c *ESConn) addFlags(f *pflag.FlagSet, old map[string]string) {
	f.StringVar(&c.User, "es-user", "", "Elasticsearch basic auth user (password from --es-password-file or LOGDOCTOR_ES_PASSWORD)")
	f.StringVar(&c.PasswordFile, "es-password-file", "", "read the Elasticsearch password from this file")
	f.StringVar(&c.APIKey, "es-api-key", "", "Elasticsearch API key (base64 id:key), sent as 'Authorization: ApiKey ...' (or LOGDOCTOR_ES_API_KEY)")
	f.StringVar(&c.CA, "es-ca", "", "PEM CA bundle to verify Elasticsearch's TLS certificate")
	f.BoolVar(&c.Insecure, "es-insecure", false, "do not verify Elasticsearch's TLS certificate")
	c.aliases.add(f, old)
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
