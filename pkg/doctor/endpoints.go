package doctor

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// The endpoints a configuration names, with what a probe needs to talk
// to them as the shipper does. Credentials are kept out of JSON.

// ESOutput is an Elasticsearch or OpenSearch output.
type ESOutput struct {
	Plugin *shipconf.Plugin `json:"-"`
	Name   string           `json:"output"`
	At     string           `json:"at"`
	URLs   []string         `json:"urls"`
	// Addrs are the host:port pairs the URLs dial.
	Addrs    []string     `json:"addrs"`
	HostAt   shipconf.Pos `json:"host_at"`
	User     string       `json:"user,omitempty"`
	Password string       `json:"-"`
	APIKey   string       `json:"-"`
	TLS      bool         `json:"tls"`
	Verify   bool         `json:"tls_verify"`
	CAFile   string       `json:"ca_file,omitempty"`
	// Sniffs: the client replaces its hosts with _nodes/http addresses.
	Sniffs     bool            `json:"sniffs"`
	SniffParam *shipconf.Param `json:"-"`
	// BulkSize is the largest bulk body, from BulkParam.
	BulkSize       int64           `json:"max_bulk_bytes"`
	BulkParam      *shipconf.Param `json:"-"`
	RequestTimeout time.Duration   `json:"-"`
	// Unknown names settings whose values could not be resolved (an
	// environment variable the process does not have).
	Unknown []string `json:"unknown,omitempty"`
}

// ForwardServer is one destination of a forward output.
type ForwardServer struct {
	Addr      string       `json:"addr"`
	At        shipconf.Pos `json:"-"`
	SharedKey string       `json:"-"`
	Username  string       `json:"username,omitempty"`
	Password  string       `json:"-"`
}

// ForwardOutput is a forward output.
type ForwardOutput struct {
	Plugin       *shipconf.Plugin `json:"-"`
	Name         string           `json:"output"`
	At           string           `json:"at"`
	Servers      []ForwardServer  `json:"servers"`
	TLS          bool             `json:"tls"`
	Verify       bool             `json:"tls_verify"`
	CAFile       string           `json:"ca_file,omitempty"`
	SelfHostname string           `json:"self_hostname,omitempty"`
	RequireAck   bool             `json:"require_ack_response"`
	AckParam     *shipconf.Param  `json:"-"`
	Unknown      []string         `json:"unknown,omitempty"`
}

// UDPInput is an input that reads UDP datagrams.
type UDPInput struct {
	Plugin     *shipconf.Plugin `json:"-"`
	Name       string           `json:"input"`
	At         string           `json:"at"`
	Bind       string           `json:"bind"`
	Port       int              `json:"port"`
	Limit      int64            `json:"max_message_bytes"`
	LimitParam *shipconf.Param  `json:"-"`
}

// Monitor is the shipper's own monitoring endpoint.
type Monitor struct {
	Kind string       `json:"kind"` // monitor_agent or http_server
	Addr string       `json:"addr"` // host:port to dial
	At   shipconf.Pos `json:"-"`
	Bind string       `json:"bind"`
}

// Endpoints is everything a configuration points at.
type Endpoints struct {
	ES      []*ESOutput      `json:"elasticsearch,omitempty"`
	Forward []*ForwardOutput `json:"forward,omitempty"`
	UDP     []*UDPInput      `json:"udp,omitempty"`
	Monitor *Monitor         `json:"monitor,omitempty"`
}

func at(p shipconf.Pos) string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// value returns a parameter's resolved value, def when it is not set,
// and notes an unknown one.
func value(c *shipconf.Config, p *shipconf.Plugin, sec *shipconf.Section, name, def string, unknown *[]string) string {
	var prm *shipconf.Param
	if sec != nil {
		prm = sec.Get(name)
	} else {
		prm = c.Setting(p, nil, name)
	}
	if prm == nil {
		return def
	}
	if prm.State == shipconf.Unknown {
		if unknown != nil {
			*unknown = append(*unknown, fmt.Sprintf("%s (%s)", prm.Key, at(prm.Pos)))
		}
		return def
	}
	return prm.Value
}

// bool reads a boolean as the shipper does; Fluentd takes a key written
// without a value for true.
func (c *cfgReader) bool(v string, def bool) bool {
	if c.c.Shipper == shipconf.FluentBit {
		b, ok := shipconf.FluentBitBool(v)
		if !ok {
			return def
		}
		return b
	}
	b, ok := shipconf.FluentdBool(v)
	if !ok {
		return def
	}
	return b
}

type cfgReader struct{ c *shipconf.Config }

// FindEndpoints reads the endpoints of c.
func FindEndpoints(c *shipconf.Config) Endpoints {
	r := cfgReader{c: c}
	var e Endpoints
	for _, o := range c.Outputs() {
		switch {
		case o.IsElasticsearch():
			e.ES = append(e.ES, r.es(o))
		case o.Type == "forward":
			e.Forward = append(e.Forward, r.forward(o))
		}
	}
	for _, in := range c.Inputs() {
		if u := r.udp(in); u != nil {
			e.UDP = append(e.UDP, u)
		}
		if c.Shipper == shipconf.Fluentd && in.Type == "monitor_agent" && e.Monitor == nil {
			bind := value(c, in, in.Section, "bind", "0.0.0.0", nil)
			port := value(c, in, in.Section, "port", "24220", nil)
			e.Monitor = &Monitor{Kind: "monitor_agent", Bind: bind, Addr: net.JoinHostPort(dialHost(bind), port), At: in.Pos}
		}
	}
	if c.Shipper == shipconf.FluentBit && c.Service != nil {
		on := c.Setting(nil, c.Service, "http_server")
		if on != nil && on.State != shipconf.Unknown && r.bool(on.Value, false) {
			bind := value(c, nil, c.Service, "http_listen", "0.0.0.0", nil)
			port := value(c, nil, c.Service, "http_port", "2020", nil)
			e.Monitor = &Monitor{Kind: "http_server", Bind: bind, Addr: net.JoinHostPort(dialHost(bind), port), At: on.Pos}
		}
	}
	return e
}

// dialHost turns a bind address into one to connect to: a wildcard is
// reached on loopback.
func dialHost(bind string) string {
	switch bind {
	case "", "0.0.0.0", "*":
		return "127.0.0.1"
	case "::", "[::]":
		return "::1"
	}
	return strings.Trim(bind, "[]")
}

func (r cfgReader) es(o *shipconf.Plugin) *ESOutput {
	c := r.c
	e := &ESOutput{Plugin: o, Name: o.Name(), At: at(o.Pos), HostAt: o.Pos}
	sec := o.Section
	if c.Shipper == shipconf.FluentBit {
		host := value(c, o, sec, "host", "127.0.0.1", &e.Unknown)
		port := value(c, o, sec, "port", "9200", &e.Unknown)
		path := value(c, o, sec, "path", "", &e.Unknown)
		e.TLS = r.bool(value(c, o, sec, "tls", "off", &e.Unknown), false)
		e.Verify = r.bool(value(c, o, sec, "tls.verify", "on", &e.Unknown), true)
		e.CAFile = value(c, o, sec, "tls.ca_file", "", &e.Unknown)
		e.User = value(c, o, sec, "http_user", "", &e.Unknown)
		e.Password = value(c, o, sec, "http_passwd", "", &e.Unknown)
		if h := sec.Get("host"); h != nil {
			e.HostAt = h.Pos
		}
		scheme := "http"
		if e.TLS {
			scheme = "https"
		}
		e.add(scheme, host, port, path)
	} else {
		host := value(c, o, sec, "host", "localhost", &e.Unknown)
		port := value(c, o, sec, "port", "9200", &e.Unknown)
		scheme := value(c, o, sec, "scheme", "http", &e.Unknown)
		path := value(c, o, sec, "path", "", &e.Unknown)
		e.User = value(c, o, sec, "user", "", &e.Unknown)
		e.Password = value(c, o, sec, "password", "", &e.Unknown)
		e.APIKey = value(c, o, sec, "api_key", "", &e.Unknown)
		e.Verify = r.bool(value(c, o, sec, "ssl_verify", "true", &e.Unknown), true)
		e.CAFile = value(c, o, sec, "ca_file", "", &e.Unknown)
		if hosts := sec.Get("hosts"); hosts != nil && hosts.State != shipconf.Unknown && strings.TrimSpace(hosts.Value) != "" {
			e.HostAt = hosts.Pos
			for _, h := range strings.Split(hosts.Value, ",") {
				h = strings.TrimSpace(h)
				if h == "" {
					continue
				}
				if strings.Contains(h, "://") {
					u, err := url.Parse(h)
					if err != nil {
						e.Unknown = append(e.Unknown, "hosts entry that is not a URL ("+at(hosts.Pos)+")")
						continue
					}
					if u.User != nil {
						e.User = u.User.Username()
						if pw, ok := u.User.Password(); ok {
							e.Password = pw
						}
					}
					p := u.Port()
					if p == "" {
						p = port
					}
					e.add(u.Scheme, u.Hostname(), p, u.Path)
					continue
				}
				hh, pp, err := net.SplitHostPort(h)
				if err != nil {
					hh, pp = h, port
				}
				e.add(scheme, hh, pp, path)
			}
		} else {
			if h := sec.Get("host"); h != nil {
				e.HostAt = h.Pos
			}
			e.add(scheme, host, port, path)
		}
		for _, u := range e.URLs {
			if strings.HasPrefix(u, "https://") {
				e.TLS = true
			}
		}
		e.Sniffs, e.SniffParam = configcheck.Sniffs(c, o)
		if rt := c.Setting(o, nil, "request_timeout"); rt != nil && rt.State != shipconf.Unknown {
			e.RequestTimeout, _ = shipconf.FluentdTime(rt.Value)
		}
	}
	e.BulkSize, e.BulkParam = configcheck.BulkSize(c, o)
	return e
}

func (e *ESOutput) add(scheme, host, port, path string) {
	if host == "" {
		return
	}
	if _, err := strconv.Atoi(port); err != nil {
		port = "9200"
	}
	hp := net.JoinHostPort(strings.Trim(host, "[]"), port)
	u := (&url.URL{Scheme: scheme, Host: hp, Path: path}).String()
	e.URLs = append(e.URLs, u)
	e.Addrs = append(e.Addrs, hp)
}

func (r cfgReader) forward(o *shipconf.Plugin) *ForwardOutput {
	c := r.c
	f := &ForwardOutput{Plugin: o, Name: o.Name(), At: at(o.Pos)}
	sec := o.Section
	f.AckParam = c.Setting(o, nil, "require_ack_response")
	if f.AckParam != nil && f.AckParam.State != shipconf.Unknown {
		f.RequireAck = r.bool(f.AckParam.Value, false)
	}
	if c.Shipper == shipconf.FluentBit {
		host := value(c, o, sec, "host", "127.0.0.1", &f.Unknown)
		port := value(c, o, sec, "port", "24224", &f.Unknown)
		s := ForwardServer{Addr: net.JoinHostPort(host, port), At: o.Pos,
			SharedKey: value(c, o, sec, "shared_key", "", &f.Unknown),
			Username:  value(c, o, sec, "username", "", &f.Unknown),
			Password:  value(c, o, sec, "password", "", &f.Unknown)}
		if h := sec.Get("host"); h != nil {
			s.At = h.Pos
		}
		f.Servers = append(f.Servers, s)
		f.TLS = r.bool(value(c, o, sec, "tls", "off", &f.Unknown), false)
		f.Verify = r.bool(value(c, o, sec, "tls.verify", "on", &f.Unknown), true)
		f.CAFile = value(c, o, sec, "tls.ca_file", "", &f.Unknown)
		f.SelfHostname = value(c, o, sec, "self_hostname", "", &f.Unknown)
		return f
	}
	key := ""
	if s := sec.Sub("security"); len(s) > 0 {
		key = value(c, o, s[0], "shared_key", "", &f.Unknown)
		f.SelfHostname = value(c, o, s[0], "self_hostname", "", &f.Unknown)
	}
	for _, srv := range sec.Sub("server") {
		host := value(c, o, srv, "host", "", &f.Unknown)
		port := value(c, o, srv, "port", "24224", &f.Unknown)
		if host == "" {
			continue
		}
		s := ForwardServer{Addr: net.JoinHostPort(host, port), At: srv.Pos, SharedKey: key,
			Username: value(c, o, srv, "username", "", &f.Unknown), Password: value(c, o, srv, "password", "", &f.Unknown)}
		if k := value(c, o, srv, "shared_key", "", &f.Unknown); k != "" {
			s.SharedKey = k
		}
		if h := srv.Get("host"); h != nil {
			s.At = h.Pos
		}
		f.Servers = append(f.Servers, s)
	}
	f.TLS = value(c, o, sec, "transport", "tcp", &f.Unknown) == "tls"
	f.Verify = !r.bool(value(c, o, sec, "tls_insecure_mode", "false", &f.Unknown), false)
	if p := value(c, o, sec, "tls_cert_path", "", &f.Unknown); p != "" {
		f.CAFile = strings.TrimSpace(strings.Split(strings.Trim(p, "[]\""), ",")[0])
	}
	return f
}

func (r cfgReader) udp(in *shipconf.Plugin) *UDPInput {
	c := r.c
	limit, prm, bind := configcheck.UDPInput(c, in)
	if prm == nil {
		return nil
	}
	def := "5160"
	switch {
	case c.Shipper == shipconf.FluentBit && in.Type == "udp":
		def = "5170"
	case in.Type == "syslog":
		def = "5140"
	}
	port, err := strconv.Atoi(value(c, in, in.Section, "port", def, nil))
	if err != nil {
		return nil
	}
	return &UDPInput{Plugin: in, Name: in.Name(), At: at(in.Pos), Bind: bind, Port: port, Limit: limit, LimitParam: prm}
}
