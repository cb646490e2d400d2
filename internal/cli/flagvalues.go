package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Flag values that refuse what is outside their meaning while the command
// line is parsed: a negative --mtu or a zero --es-workers is a usage error
// (exit 2) naming the flag and what it accepts, instead of being replaced
// by a default deep inside a package. pflag reports a refused value as
//
//	invalid argument "-5" for "--mtu" flag: want 0 (auto) or 68..65536
//
// Every flag of every command is covered by TestEveryFlagRefusesBadValues,
// which walks the command tree.

// errWant carries what a flag accepts; pflag prefixes the flag and value.
type errWant string

func (e errWant) Error() string { return "want " + string(e) }

// checked is a flag value parsed by parse and accepted when ok says so.
type checked[T any] struct {
	p     *T
	parse func(string) (T, error)
	ok    func(T) bool
	show  func(T) string
	want  string
	typ   string
}

func (c *checked[T]) Set(s string) error {
	v, err := c.parse(strings.TrimSpace(s))
	if err != nil || !c.ok(v) {
		return errWant(c.want)
	}
	*c.p = v
	return nil
}

func (c *checked[T]) String() string {
	if c.p == nil {
		return ""
	}
	return c.show(*c.p)
}

func (c *checked[T]) Type() string { return c.typ }

// addVar registers v under name (and shorthand, when not "").
func addVar(f *pflag.FlagSet, v pflag.Value, name, shorthand, usage string) {
	f.VarP(v, name, shorthand, usage)
}

// intVar is an int flag accepting lo..hi.
func intVar(f *pflag.FlagSet, p *int, name string, def, lo, hi int, want, usage string) {
	intCheckVar(f, p, name, def, func(n int) bool { return n >= lo && n <= hi }, want, usage)
}

// intCheckVar is an int flag accepted when ok says so.
func intCheckVar(f *pflag.FlagSet, p *int, name string, def int, ok func(int) bool, want, usage string) {
	*p = def
	addVar(f, &checked[int]{p: p, want: want, typ: "int", ok: ok,
		parse: func(s string) (int, error) { n, err := strconv.ParseInt(s, 0, strconv.IntSize); return int(n), err },
		show:  strconv.Itoa}, name, "", usage)
}

// int64Var is an int64 flag accepting lo..hi.
func int64Var(f *pflag.FlagSet, p *int64, name string, def, lo, hi int64, want, usage string) {
	*p = def
	addVar(f, &checked[int64]{p: p, want: want, typ: "int",
		parse: func(s string) (int64, error) { return strconv.ParseInt(s, 0, 64) },
		ok:    func(n int64) bool { return n >= lo && n <= hi },
		show:  func(n int64) string { return strconv.FormatInt(n, 10) }}, name, "", usage)
}

// uint64Var is a uint64 flag; it refuses negative numbers with want.
func uint64Var(f *pflag.FlagSet, p *uint64, name string, def uint64, want, usage string) {
	*p = def
	addVar(f, &checked[uint64]{p: p, want: want, typ: "int",
		parse: func(s string) (uint64, error) { return strconv.ParseUint(s, 0, 64) },
		ok:    func(uint64) bool { return true },
		show:  func(n uint64) string { return strconv.FormatUint(n, 10) }}, name, "", usage)
}

// floatVar is a float64 flag accepting lo..hi.
func floatVar(f *pflag.FlagSet, p *float64, name string, def, lo, hi float64, want, usage string) {
	*p = def
	addVar(f, &checked[float64]{p: p, want: want, typ: "float",
		parse: func(s string) (float64, error) { return strconv.ParseFloat(s, 64) },
		ok:    func(v float64) bool { return v >= lo && v <= hi },
		show:  func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }}, name, "", usage)
}

// durVar is a duration flag accepting lo and more.
func durVar(f *pflag.FlagSet, p *time.Duration, name string, def, lo time.Duration, want, usage string) {
	*p = def
	addVar(f, &checked[time.Duration]{p: p, want: want, typ: "duration",
		parse: time.ParseDuration,
		ok:    func(d time.Duration) bool { return d >= lo },
		show:  showDur}, name, "", usage)
}

// durCheckVar is a duration flag accepted when ok says so.
func durCheckVar(f *pflag.FlagSet, p *time.Duration, name string, def time.Duration, ok func(time.Duration) bool, want, usage string) {
	*p = def
	addVar(f, &checked[time.Duration]{p: p, want: want, typ: "duration", parse: time.ParseDuration, ok: ok,
		show: showDur}, name, "", usage)
}

// showDur prints 0 as "0" so that help, like pflag's own duration flags,
// shows no "(default 0s)".
func showDur(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return d.String()
}

// Common "want" texts, so the same range reads the same everywhere.
const (
	wantPositiveDur = "a duration above 0, like 5s or 250ms"
	wantAtLeast1    = "a whole number of 1 or more"
	wantAtLeast0    = "a whole number of 0 or more"
)

// wantDurOrZero says what 0 means for a duration that may be 0.
func wantDurOrZero(zero string) string { return "0 (" + zero + ") or a positive duration like 30s" }

// enumVar is a string flag accepting one of allowed.
func enumVar(f *pflag.FlagSet, p *string, name, def string, allowed []string, usage string) {
	enumVarP(f, p, name, "", def, allowed, usage)
}

// enumVarP is enumVar with a one-letter shorthand.
func enumVarP(f *pflag.FlagSet, p *string, name, shorthand, def string, allowed []string, usage string) {
	*p = def
	addVar(f, &checked[string]{p: p, want: orList(allowed), typ: "string",
		parse: func(s string) (string, error) { return s, nil },
		ok:    func(s string) bool { return slices.Contains(allowed, s) },
		show:  func(s string) string { return s }}, name, shorthand, usage)
}

// nonEmptyVar is a string flag that must not be empty.
func nonEmptyVar(f *pflag.FlagSet, p *string, name, def, want, usage string) {
	*p = def
	addVar(f, &checked[string]{p: p, want: want, typ: "string",
		parse: func(s string) (string, error) { return s, nil },
		ok:    func(s string) bool { return s != "" },
		show:  func(s string) string { return s }}, name, "", usage)
}

// sizeText writes n bytes as the size flags read them, for a default
// taken from a library: the largest binary unit that divides it (1GiB,
// 256MiB), else bytes.
func sizeText(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10)
}

// sizeVar is a byte-size flag kept as its text (the options structs hold
// what the user wrote) and checked with parse: at least lo bytes, or ""
// when allowEmpty.
func sizeVar(f *pflag.FlagSet, p *string, name, def string, parse func(string) (int64, error), lo int64, allowEmpty bool, want, usage string) {
	*p = def
	addVar(f, &checked[string]{p: p, want: want, typ: "size",
		parse: func(s string) (string, error) {
			if s == "" && allowEmpty {
				return s, nil
			}
			n, err := parse(s)
			if err != nil {
				return "", err
			}
			if n < lo {
				return "", errWant(want)
			}
			return s, nil
		},
		ok:   func(string) bool { return true },
		show: func(s string) string { return s }}, name, "", usage)
}

// Address flags. A listen address may use port 0 (any free port); an
// address to send to needs a real port. Names are not resolved here.
const (
	wantListen = "HOST:PORT with a port from 0 to 65535 (0: any free port), e.g. 127.0.0.1:24224"
	wantDial   = "HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:24224"
)

// errBadAddr marks a HOST:PORT that is not one.
var errBadAddr = errors.New("not HOST:PORT")

// checkHostPort accepts HOST:PORT with a numeric port of at least minPort.
func checkHostPort(s string, minPort int) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadAddr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < minPort || n > 65535 {
		return fmt.Errorf("%w: port %q", errBadAddr, port)
	}
	return nil
}

// addrVar is a HOST:PORT flag ("" allowed when allowEmpty: the input is
// off). listen allows port 0.
func addrVar(f *pflag.FlagSet, p *string, name, def string, listen, allowEmpty bool, usage string) {
	*p = def
	want, minPort := wantDial, 1
	if listen {
		want, minPort = wantListen, 0
	}
	if allowEmpty {
		want += `, or "" for off`
	}
	addVar(f, &checked[string]{p: p, want: want, typ: "host:port",
		parse: func(s string) (string, error) {
			if s == "" && allowEmpty {
				return s, nil
			}
			return s, checkHostPort(s, minPort)
		},
		ok:   func(string) bool { return true },
		show: func(s string) string { return s }}, name, "", usage)
}

// wantHTTPURL is what an Elasticsearch URL flag accepts.
const wantHTTPURL = "an http:// or https:// URL with a host, e.g. http://127.0.0.1:9200"

// checkHTTPURL accepts http(s)://host[:port][/path] with a valid port.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errWant(wantHTTPURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errWant(wantHTTPURL)
		}
	}
	return nil
}

// portList is a repeatable, comma-separated list of ports 1..65535; the
// first value given replaces the default, as pflag's slices do.
type portList struct {
	p       *[]int
	changed bool
}

func (l *portList) Set(s string) error {
	var ports []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 65535 {
			return errWant("ports from 1 to 65535, e.g. 5160 or 5160,5170")
		}
		ports = append(ports, n)
	}
	if !l.changed {
		*l.p, l.changed = nil, true
	}
	*l.p = append(*l.p, ports...)
	return nil
}

func (l *portList) String() string {
	s := make([]string, len(*l.p))
	for i, n := range *l.p {
		s[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(s, ",") + "]"
}

func (l *portList) Type() string { return "ports" }

// portsVarP registers a portList.
func portsVarP(f *pflag.FlagSet, p *[]int, name, shorthand string, def []int, usage string) {
	*p = def
	addVar(f, &portList{p: p}, name, shorthand, usage)
}

// orList joins choices as "a, b or c".
func orList(choices []string) string {
	q := make([]string, len(choices))
	for i, c := range choices {
		if c == "" {
			c = `""`
		}
		q[i] = c
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
