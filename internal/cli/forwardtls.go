package cli

import (
	"crypto/tls"
	"errors"

	"github.com/spf13/pflag"
)

// ForwardTLS is the one client TLS flag group for a forward input:
// forward probe and smoke declare it with the same names, help and checks
// (forward probe's old --ca, --cert, --key and --insecure still work).
type ForwardTLS struct {
	TLS      bool
	CA       string
	Cert     string
	Key      string
	Insecure bool

	aliases flagAliases
}

func (t *ForwardTLS) addFlags(f *pflag.FlagSet, old map[string]string) {
	f.BoolVar(&t.TLS, "tls", false, "connect to the forward input with TLS (the other --tls-* flags imply it)")
	f.StringVar(&t.CA, "tls-ca", "", "PEM CA bundle to verify the forward input's certificate (implies --tls)")
	f.StringVar(&t.Cert, "tls-cert", "", "PEM client certificate, for an input that requires one (implies --tls; with --tls-key)")
	f.StringVar(&t.Key, "tls-key", "", "PEM client key of --tls-cert")
	f.BoolVar(&t.Insecure, "tls-insecure", false, "do not verify the forward input's certificate (implies --tls)")
	t.aliases.add(f, old)
}

// on reports whether any flag of the group asks for TLS.
func (t *ForwardTLS) on() bool {
	return t.TLS || t.CA != "" || t.Cert != "" || t.Key != "" || t.Insecure
}

// config builds the client TLS config (nil: plain TCP). serverName, if
// set, is the name to verify instead of the dialled host.
func (t *ForwardTLS) config(serverName string) (*tls.Config, error) {
	if !t.on() {
		return nil, nil
	}
	cfg := &tls.Config{InsecureSkipVerify: t.Insecure, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pool, err := certPool(t.aliases.flag("tls-ca"), t.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	pair, err := keyPair(t.aliases.flag("tls-cert"), t.Cert, t.aliases.flag("tls-key"), t.Key)
	if errors.Is(err, errPairIncomplete) {
		return nil, &UsageError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	if pair != nil {
		cfg.Certificates = []tls.Certificate{*pair}
	}
	return cfg, nil
}

// flagAliases are the old spellings of a flag group, kept as hidden
// aliases, and the flag set they were declared on.
type flagAliases struct {
	fs  *pflag.FlagSet
	old map[string]string // name -> old spelling
}

func (a *flagAliases) add(f *pflag.FlagSet, old map[string]string) {
	for name, alias := range old {
		hiddenAlias(f, name, alias)
	}
	a.fs, a.old = f, old
}

// flag is the spelling of name that the user typed, so an error names
// what is on their command line.
func (a *flagAliases) flag(name string) string {
	if alias, ok := a.old[name]; ok && a.fs != nil {
		if fl := a.fs.Lookup(alias); fl != nil && fl.Changed {
			return "--" + alias
		}
	}
	return "--" + name
}

// hiddenAlias adds alias as another name of the flag name, sharing its
// value (and so its checks). It is hidden and prints no deprecation
// notice: cobra would print it on stdout and break -o json.
func hiddenAlias(f *pflag.FlagSet, name, alias string) {
	fl := f.Lookup(name)
	f.AddFlag(&pflag.Flag{Name: alias, Usage: "old name of --" + name, Value: fl.Value,
		DefValue: fl.DefValue, NoOptDefVal: fl.NoOptDefVal, Hidden: true})
}
