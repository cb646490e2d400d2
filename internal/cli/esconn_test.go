package cli

import (
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
		c.addFlags(f, map[string]string{"es-user": "user", "es-password-file": "password-file",
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
