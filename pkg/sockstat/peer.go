package sockstat

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Aliases names service ports: "es" is 9200 and 9243.
type Aliases map[string][]uint16

// DefaultAliases are the services a log shipper talks to.
func DefaultAliases() Aliases {
	return Aliases{
		"es":      {9200, 9243},
		"forward": {24224},
		"kafka":   {9092},
		"syslog":  {514, 601},
	}
}

// ErrBadPeer marks a --peer or --alias value that is not one of the accepted
// forms.
var ErrBadPeer = errors.New("bad peer")

// PeerForms lists the accepted --peer forms, for error messages and help.
const PeerForms = "an alias (es, forward, kafka, syslog, or one set with --alias name=port,port), " +
	"host, host:port, :port, a CIDR (127.0.0.0/8), or a DNS name (resolved once)"

// AliasesWith is DefaultAliases plus each "name=port,port" of extra
// (--alias), which may also redefine a default name.
func AliasesWith(extra []string) (Aliases, error) {
	aliases := DefaultAliases()
	for _, a := range extra {
		name, ports, err := ParseAlias(a)
		if err != nil {
			return nil, err
		}
		aliases[name] = ports
	}
	return aliases, nil
}

// ParseAlias parses "name=port,port".
func ParseAlias(s string) (string, []uint16, error) {
	name, ports, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, ":/[]. ") {
		return "", nil, fmt.Errorf("%w: alias %q: want name=port[,port...]", ErrBadPeer, s)
	}
	var out []uint16
	for _, p := range strings.Split(ports, ",") {
		n, err := parsePort(strings.TrimSpace(p))
		if err != nil {
			return "", nil, fmt.Errorf("%w: alias %q: %w", ErrBadPeer, s, err)
		}
		out = append(out, n)
	}
	return name, out, nil
}

// portNames maps each port to its alias; with two aliases on one port, the
// alphabetically first wins so output is stable.
func (a Aliases) portNames() map[uint16]string {
	names := make([]string, 0, len(a))
	for n := range a {
		names = append(names, n)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	m := map[uint16]string{}
	for _, n := range names {
		for _, p := range a[n] {
			m[p] = n
		}
	}
	return m
}

// Resolver looks a DNS name up; net.DefaultResolver.LookupNetIP fits.
type Resolver func(ctx context.Context, network, host string) ([]netip.Addr, error)

// PeerSpec is one parsed --peer: a set of service ports and/or addresses.
// A socket matches when its peer address and service port both match what
// the spec constrains.
type PeerSpec struct {
	Raw    string       `json:"peer"`
	Alias  string       `json:"alias,omitempty"`
	Ports  []uint16     `json:"ports,omitempty"`
	Addrs  []netip.Addr `json:"addrs,omitempty"`
	Prefix netip.Prefix `json:"prefix,omitzero"`
}

// ParsePeerSpec parses one --peer value. DNS names are resolved here, once,
// to all their addresses.
func ParsePeerSpec(ctx context.Context, s string, aliases Aliases, resolve Resolver) (PeerSpec, error) {
	spec := PeerSpec{Raw: s}
	bad := func(why string) (PeerSpec, error) {
		return spec, fmt.Errorf("%w %q: %s; accepted forms: %s", ErrBadPeer, s, why, PeerForms)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return bad("empty")
	}
	if ports, ok := aliases[s]; ok {
		spec.Alias, spec.Ports = s, ports
		return spec, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return bad("not a CIDR")
		}
		spec.Prefix = p.Masked()
		return spec, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		spec.Addrs = []netip.Addr{a.Unmap().WithZone("")}
		return spec, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		spec.Addrs = []netip.Addr{ap.Addr().Unmap().WithZone("")}
		spec.Ports = []uint16{ap.Port()}
		return spec, nil
	}
	if strings.HasPrefix(s, ":") {
		p, err := parsePort(s[1:])
		if err != nil {
			return bad(err.Error())
		}
		spec.Ports = []uint16{p}
		return spec, nil
	}
	host := s
	if h, p, ok := strings.Cut(s, ":"); ok {
		port, err := parsePort(p)
		if err != nil {
			return bad(err.Error())
		}
		host, spec.Ports = h, []uint16{port}
	}
	if !validHostname(host) {
		return bad("not an alias, address or host name")
	}
	if resolve == nil {
		return bad("no resolver to look the name up")
	}
	addrs, err := resolve(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		why := "name does not resolve"
		if err != nil {
			why = "name does not resolve: " + err.Error()
		}
		return bad(why)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if !seen[a] {
			seen[a] = true
			spec.Addrs = append(spec.Addrs, a)
		}
	}
	return spec, nil
}

// Match reports whether a peer address and service port fall under spec.
func (p PeerSpec) Match(addr netip.Addr, port uint16) bool {
	if len(p.Ports) > 0 && !containsPort(p.Ports, port) {
		return false
	}
	if p.Prefix.IsValid() && !p.Prefix.Contains(addr) {
		return false
	}
	if len(p.Addrs) > 0 {
		for _, a := range p.Addrs {
			if a == addr {
				return true
			}
		}
		return false
	}
	return true
}

func containsPort(ps []uint16, p uint16) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q: want 1-65535", s)
	}
	return uint16(n), nil
}

// validHostname accepts RFC 1123 names with at least one letter (so
// "300.1.1.1" is not taken for a name).
func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 || h[0] == '.' || h[0] == '-' {
		return false
	}
	letter := false
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return letter
}
