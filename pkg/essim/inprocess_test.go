package essim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The in-process transport answers as the node's listener does, opens
// no connection, and leaves the caller's request as it was.
func TestTransportServesInProcess(t *testing.T) {
	s := start(t, Config{})
	c := &http.Client{Transport: s.Transport()}
	bulk := `{"create":{"_index":"logs","_id":"1"}}` + "\n" + `{"msg":"one"}` + "\n" +
		`{"create":{"_index":"logs","_id":"1"}}` + "\n" + `{"msg":"again"}` + "\n"
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/_bulk?refresh=true", strings.NewReader(bulk))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"errors":true`) || !strings.Contains(string(b), `"status":409`) ||
		res.Header.Get("X-Elastic-Product") != "Elasticsearch" || res.ContentLength != int64(len(b)) {
		t.Fatalf("bulk: %d %v %s", res.StatusCode, res.Header, b)
	}
	if req.RequestURI != "" || req.RemoteAddr != "" {
		t.Errorf("the caller's request was changed: %q %q", req.RequestURI, req.RemoteAddr)
	}

	// The same document, in process and over the listener.
	inProc := do(t, c, http.MethodGet, s.URL()+"/logs/_doc/1", "")
	overTCP := do(t, nil, http.MethodGet, s.URL()+"/logs/_doc/1", "")
	if inProc.status != 200 || inProc.status != overTCP.status || string(inProc.body) != string(overTCP.body) ||
		!strings.Contains(string(inProc.body), `"msg":"one"`) {
		t.Fatalf("in process %d %s, over TCP %d %s", inProc.status, inProc.body, overTCP.status, overTCP.body)
	}
	if st := s.Stats(); st.OpenedConns != 1 || st.BulkRequests != 1 || st.Requests != 3 {
		t.Errorf("stats: %d connections (want the GET's 1), %d bulks, %d requests", st.OpenedConns, st.BulkRequests, st.Requests)
	}

	// HEAD: the length a GET would get, no body.
	head := do(t, c, http.MethodHead, s.URL()+"/logs/_doc/1", "")
	if head.status != 200 || len(head.body) != 0 || head.header.Get("Content-Length") != strconv.Itoa(len(inProc.body)) {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %s (GET: %d)", head.status, len(head.body), head.header.Get("Content-Length"), len(inProc.body))
	}

	// An answer's memory is reused only once its body is closed: one
	// left open keeps its bytes while others come and go.
	open, err := c.Get(s.URL() + "/logs/_doc/1")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if r := do(t, c, http.MethodGet, s.URL()+"/_cluster/health", ""); r.status != 200 {
			t.Fatalf("health: %d %s", r.status, r.body)
		}
	}
	b, _ = io.ReadAll(open.Body)
	open.Body.Close()
	if string(b) != string(inProc.body) {
		t.Errorf("an open answer changed while others were served: %s", b)
	}
	if _, err := open.Body.Read(make([]byte, 1)); !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Errorf("read after close: %v", err)
	}

	// An address no node listens on fails like a refused connection.
	if _, err := c.Get("http://127.0.0.2:1/"); err == nil || !strings.Contains(err.Error(), "no node listens") {
		t.Errorf("unknown node: %v", err)
	}
	// A request whose context has ended is not served.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/", nil)
	if _, err := c.Do(req); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}
	if st := s.Stats(); st.Requests != 25 {
		t.Errorf("%d requests served, want 25 (the refused and cancelled ones are not)", st.Requests)
	}
}

// A handler that panics fails its request with an error, as a dropped
// connection would, and closes the request body; the caller's process
// goes on.
func TestServeInProcessPanic(t *testing.T) {
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:9200/_bulk", body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := serveInProcess(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }), req, nil)
	if res != nil || err == nil || !strings.Contains(err.Error(), "handler panic: boom") {
		t.Fatalf("%v %v", res, err)
	}
	if !body.closed {
		t.Error("request body not closed")
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error {
	c.closed = true
	return nil
}
