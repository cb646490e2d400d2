package esclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// DefaultMaxBody is the largest answer a Client reads unless told
// otherwise: far above any cluster's info, health, stats or _nodes/http
// answer, and a bound on what a misbehaving proxy can make us hold.
const DefaultMaxBody = 8 << 20

// Client sends requests to one cluster URL. It is a value over an
// http.Client: cheap to make per node or per check, and safe for
// concurrent use when its http.Client is.
type Client struct {
	// Base is a URL from ParseURL, without a trailing slash.
	Base string
	Auth Auth
	// HTTP carries the requests; http.DefaultClient when nil.
	HTTP *http.Client
	// MaxBody caps an answer (DefaultMaxBody when 0); a larger one is
	// ErrBodyTooLarge.
	MaxBody int64
	// Gzip, when set, compresses request bodies (Content-Encoding: gzip)
	// with its pooled writers.
	Gzip *Gzipper
	// UserAgent is sent when set.
	UserAgent string
}

// Response is one answered request.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Elapsed runs from sending the request to the end of its body.
	Elapsed time.Duration
}

// Do sends method Base+path with body (nil for none) of content type
// ctype. Any HTTP answer is a Response, whatever its status. An error
// without a Response means no answer came (DNS, connect, TLS, timeout
// before the headers: ErrorKind tells which); an answer whose body could
// not be read to the end, or was larger than MaxBody (ErrBodyTooLarge),
// comes back as its Response (status and headers, no body) and the error.
func (c *Client) Do(ctx context.Context, method, path string, body []byte, ctype string) (*Response, error) {
	return c.DoInto(ctx, method, path, body, ctype, nil)
}

// DoInto is Do reading the answer into dst[:0], a buffer the caller
// reuses across requests.
func (c *Client) DoInto(ctx context.Context, method, path string, body []byte, ctype string, dst []byte) (*Response, error) {
	var rd io.Reader
	gz := false
	if body != nil {
		if c.Gzip != nil {
			body, gz = c.Gzip.Compress(body), true
		}
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %w", method, path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	c.Auth.Apply(req)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	start := time.Now()
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer drainClose(res.Body)
	limit := c.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	b, err := ReadBody(dst, res.Body, limit)
	r := &Response{Status: res.StatusCode, Header: res.Header, Elapsed: time.Since(start)}
	switch {
	case errors.Is(err, ErrBodyTooLarge):
		return r, fmt.Errorf("%s %s: %w (%d MiB)", method, path, err, limit>>20)
	case err != nil:
		return r, fmt.Errorf("reading %s %s: %w", method, path, err)
	}
	r.Body = b
	return r, nil
}

// GetJSON GETs path and decodes a 200 JSON answer into v (skipped when v
// is nil). Another status is a *StatusError; the Response comes back
// whenever there was an answer.
func (c *Client) GetJSON(ctx context.Context, path string, v any) (*Response, error) {
	r, err := c.Do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return r, err
	}
	if r.Status != http.StatusOK {
		return r, &StatusError{Path: path, Status: r.Status, Type: ErrorType(r.Body)}
	}
	if v == nil {
		return r, nil
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return r, fmt.Errorf("GET %s: decoding answer: %w", path, err)
	}
	return r, nil
}
