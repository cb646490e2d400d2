package esprobe

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logdoctor/logdoctor/pkg/esclient"
)

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

// client is an esclient.Client over its own connection pool, counting the
// connections its requests opened and reused (net/http/httptrace).
type client struct {
	es    esclient.Client
	tr    *http.Transport
	newC  atomic.Int64
	reuse atomic.Int64
	mu    sync.Mutex
	last  *trackedConn // connection of the last request
}

// newClient is a client of base with a pool of maxIdle keep-alive
// connections per host.
func newClient(o *Options, base string, d *dialer, tlsCfg *tls.Config, maxIdle int) *client {
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
	hc := &http.Client{Transport: tr, Timeout: o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &client{tr: tr, es: esclient.Client{Base: base, Auth: o.auth(), HTTP: hc, UserAgent: "logdoctor-es-probe"}}
}

func (c *client) close() { c.tr.CloseIdleConnections() }

// do sends one request (path after the base URL) and counts the
// connection it used.
func (c *client) do(ctx context.Context, method, path string, body []byte, ctype string) (*esclient.Response, error) {
	return c.traced(ctx, func(ctx context.Context) (*esclient.Response, error) {
		return c.es.Do(ctx, method, path, body, ctype)
	})
}

// getJSON is esclient.Client.GetJSON with the connection counted.
func (c *client) getJSON(ctx context.Context, path string, v any) (*esclient.Response, error) {
	return c.traced(ctx, func(ctx context.Context) (*esclient.Response, error) {
		return c.es.GetJSON(ctx, path, v)
	})
}

// traced runs send with a connection trace and, when an answer came,
// counts whether its connection was new or reused.
func (c *client) traced(ctx context.Context, send func(context.Context) (*esclient.Response, error)) (*esclient.Response, error) {
	var reused bool
	var conn *trackedConn
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		reused, conn = info.Reused, tracked(info.Conn)
	}})
	r, err := send(ctx)
	if r != nil {
		c.count(reused, conn)
	}
	return r, err
}

func (c *client) count(reused bool, conn *trackedConn) {
	if reused {
		c.reuse.Add(1)
	} else {
		c.newC.Add(1)
	}
	c.mu.Lock()
	c.last = conn
	c.mu.Unlock()
}

// tracked finds our trackedConn under a connection, TLS or not.
func tracked(nc net.Conn) *trackedConn {
	if tc, ok := nc.(*trackedConn); ok {
		return tc
	}
	if tlsC, ok := nc.(*tls.Conn); ok {
		if tc, ok := tlsC.NetConn().(*trackedConn); ok {
			return tc
		}
	}
	return nil
}
