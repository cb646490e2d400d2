package esprobe

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBody caps every response body the probe reads.
const maxBody = 8 << 20

// dialer opens every connection the probe makes, counting them and
// noticing when the server closes one (a read returning EOF on a
// connection we did not close ourselves).
type dialer struct {
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	opened atomic.Int64
}

func newDialer(o *Options) *dialer {
	if o.DialContext != nil {
		return &dialer{dial: o.DialContext}
	}
	return &dialer{dial: o.Dialer.DialContext}
}

type trackedConn struct {
	net.Conn
	ours     atomic.Bool
	peerOnce sync.Once
	peerAt   chan time.Time // receives the time the peer closed, once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !c.ours.Load() {
		c.peerOnce.Do(func() { c.peerAt <- time.Now() })
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.ours.Store(true)
	return c.Conn.Close()
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.opened.Add(1)
	return &trackedConn{Conn: c, peerAt: make(chan time.Time, 1)}, nil
}

// client is one HTTP client with its own pool, plus the counters of the
// connections it opened and reused.
type client struct {
	o     *Options
	tr    *http.Transport
	hc    *http.Client
	d     *dialer
	newC  atomic.Int64
	reuse atomic.Int64
	mu    sync.Mutex
	last  *trackedConn // connection of the last request
	// maxBody caps a response body (the package's maxBody when 0); a
	// larger one is errBodyTooLarge, never silently cut.
	maxBody int64
}

// errBodyTooLarge: an answer larger than the client reads.
var errBodyTooLarge = errors.New("answer larger than the probe reads")

func tlsConfig(o *Options) *tls.Config {
	return &tls.Config{RootCAs: o.RootCAs, InsecureSkipVerify: o.Insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // --insecure is the user's explicit choice
}

func newClient(o *Options, d *dialer, tlsCfg *tls.Config, maxIdle int) *client {
	tr := &http.Transport{
		DialContext:         d.DialContext,
		TLSClientConfig:     tlsCfg,
		MaxIdleConnsPerHost: maxIdle,
		MaxIdleConns:        maxIdle * 4,
		IdleConnTimeout:     90 * time.Second,
		// Compression would hide the server's own framing; the shippers
		// under test mostly do not ask for it either.
		DisableCompression:    true,
		ResponseHeaderTimeout: o.Timeout,
		TLSHandshakeTimeout:   o.Timeout,
	}
	if o.Transport != nil {
		o.Transport(tr)
	}
	c := &client{o: o, tr: tr, d: d}
	c.hc = &http.Client{Transport: tr, Timeout: o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c
}

func (c *client) close() { c.tr.CloseIdleConnections() }

// response is one answered request.
type response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Elapsed time.Duration
	Reused  bool
}

// do sends one request with auth and a connection trace.
func (c *client) do(ctx context.Context, method, rawURL string, body []byte, ctype string) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var reused bool
	var conn *trackedConn
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		reused = info.Reused
		if tc, ok := info.Conn.(*trackedConn); ok {
			conn = tc
		} else if tlsC, ok := info.Conn.(*tls.Conn); ok {
			if tc, ok := tlsC.NetConn().(*trackedConn); ok {
				conn = tc
			}
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, rawURL, rd)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", method, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "logdoctor-es-probe")
	switch {
	case c.o.APIKey != "":
		req.Header.Set("Authorization", "ApiKey "+c.o.APIKey)
	case c.o.Username != "":
		req.SetBasicAuth(c.o.Username, c.o.Password)
	}
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	limit := c.maxBody
	if limit <= 0 {
		limit = maxBody
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	elapsed := time.Since(start)
	if reused {
		c.reuse.Add(1)
	} else {
		c.newC.Add(1)
	}
	c.mu.Lock()
	c.last = conn
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", method, req.URL.Path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s %s: %w (%d MiB)", method, req.URL.Path, errBodyTooLarge, limit>>20)
	}
	return &response{Status: res.StatusCode, Header: res.Header, Body: b, Elapsed: elapsed, Reused: reused}, nil
}

// getJSON GETs base+path and decodes a 200 JSON answer into v.
func (c *client) getJSON(ctx context.Context, base, path string, v any) (*response, error) {
	r, err := c.do(ctx, http.MethodGet, base+path, nil, "")
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return r, &statusError{Path: path, Status: r.Status, Type: errorType(r.Body)}
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return r, fmt.Errorf("GET %s: decoding answer: %w", path, err)
	}
	return r, nil
}

// statusError is a non-200 answer.
type statusError struct {
	Path   string
	Status int
	Type   string // Elasticsearch error.type when there is one
}

func (e *statusError) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("%s: HTTP %d (%s)", e.Path, e.Status, e.Type)
	}
	return fmt.Sprintf("%s: HTTP %d", e.Path, e.Status)
}

// errorType extracts error.type (or the error string) from an
// Elasticsearch error body.
func errorType(b []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Error == nil {
		return ""
	}
	var s string
	if json.Unmarshal(e.Error, &s) != nil {
		var o struct {
			Type string `json:"type"`
		}
		json.Unmarshal(e.Error, &o)
		s = o.Type
	}
	if len(s) > 120 { // a cluster's text, capped before it reaches a report
		s = s[:120]
	}
	return s
}

// baseURL normalises a URL argument: scheme defaults to http, userinfo is
// moved into the options (and never printed), the path is kept as a prefix.
func baseURL(raw string, o *Options) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("URL %q: %w", redactedArg(raw), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return "", fmt.Errorf("URL %q: no host", u.Redacted())
	}
	if u.User != nil {
		if o.Username == "" {
			o.Username = u.User.Username()
			if p, ok := u.User.Password(); ok && o.Password == "" {
				o.Password = p
			}
		}
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/"), nil
}

func redactedArg(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "xxxxx@" + s[i+1:]
		}
	}
	return s
}

// isUnauthorized reports a 401/403 status error.
func isUnauthorized(err error) (int, bool) {
	var se *statusError
	if errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden) {
		return se.Status, true
	}
	return 0, false
}
