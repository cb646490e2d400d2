package essim

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Transport returns an http.RoundTripper that serves requests in this
// process: each goes to the node whose address its URL names, as the
// *http.Request a client built, and comes back as the *http.Response
// that node's handler wrote, with no socket in between. It is for a
// client living in the same process as the server (`pipeline run --es
// embedded`): the loopback socket cost that pair as much CPU as a sixth
// of the documents, on cores the two share. The nodes' listeners still
// serve everyone else.
//
// What only a connection has does not happen here: no connection is
// opened (Stats.OpenedConns does not count these requests), IdleClose
// closes nothing and NoKeepAlive's "Connection: close" is only a header.
// A URL naming no node fails as a refused connection would, and a
// request whose context ends while the node works on it fails with the
// context's error, as over HTTP; a handler that panics fails its
// request as a dropped connection would. An answer's body is valid
// until it is closed, when its memory serves a later answer.
func (s *Server) Transport() http.RoundTripper { return &inProcess{s: s} }

type inProcess struct {
	s *Server
	// bufs holds the memory of answers whose body was closed: a bulk
	// answer is about 100 bytes an item, and a new buffer for each was a
	// third of what a pipeline catching up allocated.
	bufs sync.Pool
}

func (t *inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	n := t.s.nodeFor(req.URL.Host)
	if n == nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("essim in process: no node listens on %q", req.URL.Host)
	}
	return serveInProcess(n, req, &t.bufs)
}

// nodeFor returns the node listening on hostport, or nil.
func (s *Server) nodeFor(hostport string) *node {
	for _, n := range s.nodes {
		if n.addr == hostport {
			return n
		}
	}
	return nil
}

// maxPooledAnswer bounds the answer buffers kept for reuse.
const maxPooledAnswer = 16 << 20

// serveInProcess answers req with h, as net/http's server would on the
// other end of a connection, into a response of its own whose body
// memory comes from bufs and goes back there when the body is closed
// (bufs nil: plain memory).
func serveInProcess(h http.Handler, req *http.Request, bufs *sync.Pool) (res *http.Response, err error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	w := &bufferedResponse{header: http.Header{}}
	if bufs != nil {
		if b, ok := bufs.Get().(*[]byte); ok {
			w.body = (*b)[:0]
		}
	}
	// net/http recovers a handler's panic and drops the connection; the
	// client sees a transport error, not a crash of its own process.
	defer func() {
		if v := recover(); v != nil {
			res, err = nil, fmt.Errorf("essim in process: %s %s: handler panic: %v", req.Method, req.URL.Path, v)
		}
	}()
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	// The server's view of the request; the caller's stays untouched (a
	// RoundTripper must not change it).
	sr := req.Clone(req.Context())
	sr.RequestURI = req.URL.RequestURI()
	sr.RemoteAddr = "in-process"
	if sr.Host == "" {
		sr.Host = req.URL.Host
	}
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	h.ServeHTTP(w, sr)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	body, length := w.body, int64(len(w.body))
	if req.Method == http.MethodHead {
		// No body, and the length of the one a GET would get, when the
		// handler said it.
		body, length = body[:0], -1
		if n, err := strconv.ParseInt(w.header.Get("Content-Length"), 10, 64); err == nil {
			length = n
		}
	} else {
		w.header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Body:          &answerBody{b: body, pool: bufs},
		ContentLength: length,
		Request:       req,
	}, nil
}

// bufferedResponse is the http.ResponseWriter of an in-process request:
// the answer is kept whole, since the handler's buffers are reused once
// it returns.
type bufferedResponse struct {
	header http.Header
	status int
	body   []byte
}

func (w *bufferedResponse) Header() http.Header { return w.header }

func (w *bufferedResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *bufferedResponse) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if len(w.body) == 0 && cap(w.body) < len(p) {
		// Nearly every answer is written at once: one buffer its size.
		w.body = make([]byte, 0, len(p))
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// answerBody reads an in-process answer; Close gives its memory back.
type answerBody struct {
	b      []byte
	off    int
	pool   *sync.Pool
	closed bool
}

func (a *answerBody) Read(p []byte) (int, error) {
	if a.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if a.off >= len(a.b) {
		return 0, io.EOF
	}
	n := copy(p, a.b[a.off:])
	a.off += n
	return n, nil
}

func (a *answerBody) Close() error {
	if !a.closed && a.pool != nil && cap(a.b) > 0 && cap(a.b) <= maxPooledAnswer {
		b := a.b[:0]
		a.pool.Put(&b)
	}
	a.closed, a.b = true, nil
	return nil
}
