package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// The old spellings of the Elasticsearch connection flags set the same
// values as the new ones and stay out of the help.
func TestESConnOldSpellingsAreHiddenAliases(t *testing.T) {
	for _, args := range [][]string{
		{"--es-user", "u", "--es-password-file", "pw", "--es-api-key", "k", "--es-ca", "ca.pem", "--es-insecure"},
		{"--user", "u", "--password-file", "pw", "--api-key", "k", "--ca", "ca.pem", "--insecure"},
	} {
		var c ESConn
		f := pflag.NewFlagSet("t", pflag.ContinueOnError)
		c.addFlags(f, esURLFlag{}, map[string]string{"es-user": "user", "es-password-file": "password-file",
			"es-api-key": "api-key", "es-ca": "ca", "es-insecure": "insecure"})
		if err := f.Parse(args); err != nil {
			t.Fatal(err)
		}
		if c.User != "u" || c.PasswordFile != "pw" || c.APIKey != "k" || c.CA != "ca.pem" || !c.Insecure {
			t.Fatalf("%v: %+v", args, c)
		}
		if !f.Lookup("ca").Hidden || f.Lookup("es-ca").Hidden {
			t.Fatal("the old name is shown or the new one hidden")
		}
	}
	code, out, _ := runCLI(t, "es", "probe", "--help")
	if code != ExitOK || !strings.Contains(out, "--es-ca") || strings.Contains(out, "  --ca ") {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
}

// --es takes URLs repeated or comma-separated, refuses what is not an
// http(s) URL as it is parsed, replaces its default with the first value
// given, and takes "embedded" only where a command has one.
func TestESConnURLs(t *testing.T) {
	parse := func(u esURLFlag, args ...string) (ESConn, error) {
		var c ESConn
		f := pflag.NewFlagSet("t", pflag.ContinueOnError)
		c.addFlags(f, u, map[string]string{"es": "es-old"})
		return c, f.Parse(args)
	}
	c, err := parse(esURLFlag{}, "--es", "http://a:9200, https://u:p@b", "--es-old", "http://c/path", "--es", "")
	if err != nil || !reflect.DeepEqual(c.URLs, []string{"http://a:9200", "https://u:p@b", "http://c/path"}) {
		t.Fatalf("%v %v", c.URLs, err)
	}
	for _, bad := range []string{"ftp://x", "a:9200", "http://", "http://a:99999", "embedded"} {
		if _, err := parse(esURLFlag{}, "--es", bad); err == nil || !strings.Contains(err.Error(), wantHTTPURL) {
			t.Errorf("--es %q: %v", bad, err)
		}
	}
	emb := esURLFlag{def: []string{"embedded"}, embedded: true}
	if c, err := parse(emb); err != nil || !reflect.DeepEqual(c.URLs, []string{"embedded"}) {
		t.Fatalf("default: %v %v", c.URLs, err)
	}
	if c, err := parse(emb, "--es", "http://a:9200", "--es", "embedded"); err != nil || !reflect.DeepEqual(c.URLs, []string{"http://a:9200", "embedded"}) {
		t.Fatalf("given: %v %v", c.URLs, err)
	}
	// The help's default never shows a password.
	var c2 ESConn
	f := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c2.addFlags(f, esURLFlag{def: []string{"http://elastic:s3cret@es:9200"}}, nil)
	if d := f.Lookup("es").DefValue; strings.Contains(d, "s3cret") || !strings.Contains(d, "es:9200") {
		t.Fatalf("default shown as %q", d)
	}
}
