package smoke

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// PreflightTimeout bounds the connect that checks each endpoint before the
// canaries go out.
const PreflightTimeout = 5 * time.Second

// ErrEndpointDown says an endpoint accepts no connection.
var ErrEndpointDown = errors.New("nothing accepts connections there")

// Endpoint is one place the canaries go through.
type Endpoint struct {
	Name string // how an error names it: the flag and value that gave it
	Addr string // HOST:PORT
}

// Preflight connects once to each endpoint, each connect bounded by
// timeout. One that refuses (nothing listening, a wrong port) fails the
// run at once: the canaries would otherwise wait out the whole run timeout
// (a minute by default) before saying what a connect says in a
// millisecond. The error wraps ErrEndpointDown and the dial's error.
func Preflight(ctx context.Context, timeout time.Duration, eps ...Endpoint) error {
	d := net.Dialer{Timeout: timeout}
	for _, ep := range eps {
		c, err := d.DialContext(ctx, "tcp", ep.Addr)
		if err != nil {
			return fmt.Errorf("%s: %w: %w", ep.Name, ErrEndpointDown, err)
		}
		c.Close()
	}
	return nil
}

// ESAddr is the HOST:PORT an Elasticsearch URL connects to: its port, or
// the scheme's (80, 443).
func ESAddr(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// Probes are the looks at the canaries' path once they are counted. The
// command layer wires each one (this package imports no probe); a nil one
// is left out.
type Probes struct {
	// Sockets reads the socket table for connections to peers (the
	// forward input's and Elasticsearch's HOST:PORT).
	Sockets func(ctx context.Context, peers []string) ([]report.Finding, error)
	// Forward probes the forward input at addr.
	Forward func(ctx context.Context, addr string) ([]report.Finding, error)
	// ES probes the cluster at url.
	ES func(ctx context.Context, url string) ([]report.Finding, error)
}

// Run runs the probes on the path from forwardAddr to esURL: the sockets
// first, before the other probes add connections of their own, then the
// forward input, then Elasticsearch. A probe that cannot run is noted in
// its ProbeRun, not fatal: the canary count is the verdict.
func (p Probes) Run(ctx context.Context, forwardAddr, esURL string) ([]ProbeRun, []report.Finding) {
	var runs []ProbeRun
	var all []report.Finding
	add := func(name string, fs []report.Finding, err error) {
		pr := ProbeRun{Name: name, Findings: len(fs)}
		if err != nil {
			pr.Error = report.Redact(err.Error())
		}
		runs = append(runs, pr)
		all = append(all, fs...)
	}
	if p.Sockets != nil {
		peers := []string{forwardAddr}
		if addr, err := ESAddr(esURL); err == nil {
			peers = append(peers, addr)
		}
		fs, err := p.Sockets(ctx, peers)
		add("sockets", fs, err)
	}
	if p.Forward != nil {
		fs, err := p.Forward(ctx, forwardAddr)
		add("forward probe", fs, err)
	}
	if p.ES != nil {
		fs, err := p.ES(ctx, esURL)
		add("es probe", fs, err)
	}
	return runs, all
}
