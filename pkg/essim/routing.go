package essim

import (
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The REST routing of a node: the dispatch on method and path, and what
// every request goes through (authentication, body reading, the
// answers for unknown endpoints and methods).

// ServeHTTP routes the REST subset essim speaks.
func (n *node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := n.s
	s.requests.Add(1)
	f := s.Faults()
	if n.s.productHeader() && !f.StripProductHeader {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	p := strings.Trim(r.URL.Path, "/")
	var seg []string
	if p != "" {
		seg = strings.Split(p, "/")
	}
	if len(seg) > 0 && seg[0] == "_essim" {
		n.admin(w, r, seg[1:])
		return
	}
	if !n.authorized(w, r) {
		return
	}
	if f.NoKeepAlive {
		w.Header().Set("Connection", "close")
	}
	release, ok := n.chargeBody(w, r)
	if !ok {
		return
	}
	defer release()
	// Writes spend their latency inside the write thread pool (see
	// write), so slow indexing builds a real queue; other requests here.
	if f.Latency > 0 && !isWrite(r, seg) && !sleepCtx(r.Context(), f.Latency) {
		return
	}
	n.route(w, r, seg)
}

// isWrite reports the requests that go through the write thread pool.
func isWrite(r *http.Request, seg []string) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || len(seg) == 0 {
		return false
	}
	op := seg[0] // /_bulk
	if len(seg) >= 2 {
		op = seg[1] // /{index}/_bulk, /{index}/_doc/{id}, /{index}/_create/{id}
	}
	return op == "_bulk" || op == "_doc" || op == "_create"
}

// sleepCtx waits d or until ctx ends; false means ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (n *node) route(w http.ResponseWriter, r *http.Request, seg []string) {
	m := r.Method
	is := func(methods ...string) bool {
		for _, x := range methods {
			if m == x {
				return true
			}
		}
		n.methodNotAllowed(w, r, methods)
		return false
	}
	switch {
	case len(seg) == 0:
		if is(http.MethodGet, http.MethodHead) {
			n.root(w, r)
		}
	case seg[0] == "_bulk" && len(seg) == 1:
		if is(http.MethodPost, http.MethodPut) {
			n.bulk(w, r, "")
		}
	case len(seg) == 2 && seg[1] == "_bulk" && !strings.HasPrefix(seg[0], "_"):
		if is(http.MethodPost, http.MethodPut) {
			n.bulk(w, r, seg[0])
		}
	case (len(seg) == 1 && seg[0] == "_refresh") || (len(seg) == 2 && seg[1] == "_refresh"):
		if is(http.MethodPost, http.MethodGet) {
			n.refresh(w, r, indexArg(seg))
		}
	case (len(seg) == 1 && seg[0] == "_count") || (len(seg) == 2 && seg[1] == "_count"):
		if is(http.MethodGet, http.MethodPost) {
			n.search(w, r, indexArg(seg), true)
		}
	case seg[0] == "_search" && len(seg) >= 2 && len(seg) <= 3 && seg[1] == "scroll":
		if is(http.MethodGet, http.MethodPost, http.MethodDelete) {
			id := ""
			if len(seg) == 3 {
				id = seg[2]
			}
			n.scrollAPI(w, r, id)
		}
	case (len(seg) == 1 && seg[0] == "_search") || (len(seg) == 2 && seg[1] == "_search"):
		if is(http.MethodGet, http.MethodPost) {
			n.search(w, r, indexArg(seg), false)
		}
	case seg[0] == "_cluster" && len(seg) >= 2 && seg[1] == "health":
		if is(http.MethodGet) {
			n.health(w, r)
		}
	case seg[0] == "_nodes":
		if is(http.MethodGet) {
			n.nodesAPI(w, r, seg[1:])
		}
	case seg[0] == "_cat" && len(seg) >= 2 && seg[1] == "thread_pool":
		if is(http.MethodGet) {
			n.catThreadPool(w, r, seg[2:])
		}
	case seg[0] == "_cat" && len(seg) >= 2 && seg[1] == "indices":
		if is(http.MethodGet) {
			pattern := "_all"
			if len(seg) > 2 {
				pattern = seg[2]
			}
			n.catIndices(w, r, pattern)
		}
	case len(seg) == 2 && isTemplateAPI(seg[0]), len(seg) == 3 && seg[0] == "_ilm" && seg[1] == "policy",
		len(seg) == 3 && seg[0] == "_ingest" && seg[1] == "pipeline":
		n.templateAPI(w, r, strings.Join(seg[:len(seg)-1], "/"), seg[len(seg)-1])
	case strings.HasPrefix(seg[0], "_"):
		n.noHandler(w, r)
	case len(seg) == 1:
		switch m {
		case http.MethodPut:
			n.createIndex(w, r, seg[0])
		case http.MethodGet, http.MethodHead:
			n.getIndex(w, r, seg[0])
		case http.MethodDelete:
			n.deleteIndex(w, r, seg[0])
		default:
			n.methodNotAllowed(w, r, []string{http.MethodPut, http.MethodGet, http.MethodHead, http.MethodDelete})
		}
	case (len(seg) == 2 || len(seg) == 3) && (seg[1] == "_doc" || seg[1] == "_create"):
		id := ""
		if len(seg) == 3 {
			id = seg[2]
		}
		n.docAPI(w, r, seg[0], seg[1], id)
	default:
		n.noHandler(w, r)
	}
}

func isTemplateAPI(s string) bool {
	return s == "_template" || s == "_index_template" || s == "_component_template"
}

// noHandler answers like Elasticsearch for an unknown endpoint: 400 and
// {"error": "no handler found ..."} without a status field.
func (n *node) noHandler(w http.ResponseWriter, r *http.Request) {
	n.respondJSON(w, r, http.StatusBadRequest, map[string]any{
		"error": fmt.Sprintf("no handler found for uri [%s] and method [%s]", r.URL.Path, r.Method)})
}

func indexArg(seg []string) string {
	if len(seg) == 2 {
		return seg[0]
	}
	return "_all"
}

func (n *node) methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed []string) {
	w.Header().Set("Allow", strings.Join(allowed, ","))
	n.respondJSON(w, r, http.StatusMethodNotAllowed, map[string]any{
		"error":  fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]", r.URL.RequestURI(), r.Method, strings.Join(allowed, ", ")),
		"status": 405})
}

// authorized checks basic auth or an API key when the cluster has security
// on, answering 401 security_exception like Elasticsearch otherwise.
func (n *node) authorized(w http.ResponseWriter, r *http.Request) bool {
	c := n.s.cfg
	if c.Username == "" && c.APIKey == "" {
		return true
	}
	h := r.Header.Get("Authorization")
	reason := "missing authentication credentials for REST request [" + r.URL.RequestURI() + "]"
	if h != "" {
		scheme, cred, _ := strings.Cut(h, " ")
		switch strings.ToLower(scheme) {
		case "basic":
			if c.Username != "" {
				raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
				user, pass, _ := strings.Cut(string(raw), ":")
				if err == nil && subtle.ConstantTimeCompare([]byte(user), []byte(c.Username)) == 1 &&
					subtle.ConstantTimeCompare([]byte(pass), []byte(c.Password)) == 1 {
					return true
				}
				reason = "unable to authenticate user [" + user + "] for REST request [" + r.URL.RequestURI() + "]"
			}
		case "apikey":
			if c.APIKey != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), []byte(c.APIKey)) == 1 {
				return true
			}
			reason = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
		}
	}
	w.Header()["WWW-Authenticate"] = []string{`Basic realm="security" charset="UTF-8"`, `ApiKey`}
	n.esError(w, r, http.StatusUnauthorized, "security_exception", reason,
		map[string]any{"header": map[string]any{"WWW-Authenticate": []string{`Basic realm="security" charset="UTF-8"`, "ApiKey"}}})
	return false
}

// readBody reads a request body up to the cluster's max_content_length,
// inflating gzip; errTooLarge means 413.
func (n *node) readBody(r *http.Request) ([]byte, error) { return n.readBodyInto(r, nil) }

// readBodyInto is readBody reading into buf's memory when it is large
// enough for the declared length.
func (n *node) readBodyInto(r *http.Request, buf []byte) ([]byte, error) {
	max := n.s.cfg.MaxContentLength
	if r.ContentLength > max {
		return nil, errTooLarge
	}
	var rd io.Reader = io.LimitReader(r.Body, max+1)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		rd = io.LimitReader(zr, max+1)
	}
	size := r.ContentLength
	if size < 0 || size > max || r.Header.Get("Content-Encoding") != "" {
		size = 64 << 10
	}
	if int64(cap(buf)) >= size+1 {
		buf = buf[:0]
	} else {
		buf = make([]byte, 0, size+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		k, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if int64(len(buf)) > max {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading body: %w", err)
		}
	}
}

var errTooLarge = errors.New("request body larger than http.max_content_length")

// tooLarge answers 413 the way Elasticsearch's HTTP layer does: an empty
// body and the connection closed.
func (n *node) tooLarge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
}

func (n *node) bodyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errTooLarge) {
		n.tooLarge(w, r)
		return
	}
	var be *errBreaking
	if errors.As(err, &be) {
		n.discardBody(r)
		n.circuitBreaking(w, r, err)
		return
	}
	n.esError(w, r, http.StatusBadRequest, "parse_exception", err.Error(), nil)
}
