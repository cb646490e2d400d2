package esclient

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in, base, user, pass string
	}{
		{"localhost:9200", "http://localhost:9200", "", ""},
		{"https://es:9200/", "https://es:9200", "", ""},
		{"https://u:p%40ss@es:9200/prefix/?x=1#f", "https://es:9200/prefix", "u", "p@ss"},
		{"http://elastic@es", "http://es", "elastic", ""},
	} {
		base, a, err := ParseURL(c.in)
		if err != nil || base != c.base || a.Username != c.user || a.Password != c.pass {
			t.Errorf("ParseURL(%q) = %q %+v %v; want %q user %q pass %q", c.in, base, a, err, c.base, c.user, c.pass)
		}
	}
	for _, bad := range []string{"ftp://es:21", "http://", "http://u:hunter2@[::1", "https://u:hunter2@"} {
		_, _, err := ParseURL(bad)
		if err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q): the error shows the password: %v", bad, err)
		}
	}
}

func TestAuth(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	Auth{Username: "u", Password: "p", APIKey: "aWQ6a2V5"}.Apply(req)
	if req.Header.Get("Authorization") != "ApiKey aWQ6a2V5" {
		t.Fatalf("an API key wins: %q", req.Header.Get("Authorization"))
	}
	req.Header.Del("Authorization")
	Auth{Username: "u", Password: "p"}.Apply(req)
	if u, p, ok := req.BasicAuth(); !ok || u != "u" || p != "p" {
		t.Fatalf("basic auth: %q %q %v", u, p, ok)
	}
	a := Auth{Username: "elastic", Password: "hunter2", APIKey: "c2VjcmV0"}
	for _, s := range []string{a.String(), a.GoString(), Auth{Username: "u", Password: "hunter2"}.String()} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "c2VjcmV0") {
			t.Fatalf("Auth printed a secret: %s", s)
		}
	}
	var got Auth
	got.Fill(Auth{Username: "url-user", Password: "url-pass"})
	if got.Username != "url-user" || got.Password != "url-pass" {
		t.Fatalf("Fill from URL: %+v", got)
	}
	got = Auth{Username: "flag-user"}
	got.Fill(Auth{Username: "url-user", Password: "url-pass"})
	if got.Username != "flag-user" || got.Password != "" {
		t.Fatalf("a given user keeps its (empty) password: %+v", got)
	}
}

func TestClientAgainstEssim(t *testing.T) {
	ctx := context.Background()
	s := essimtest.Start(t, essim.Config{Username: "elastic", Password: "hunter2"})
	base, fromURL, err := ParseURL(strings.Replace(s.URL(), "http://", "http://elastic:hunter2@", 1))
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Base: base, Auth: fromURL, Gzip: &Gzipper{}}
	var root struct {
		Version struct{ Number string } `json:"version"`
	}
	if r, err := c.GetJSON(ctx, "/", &root); err != nil || r.Status != 200 || root.Version.Number != essim.DefaultVersion {
		t.Fatalf("GET /: %+v %v %+v", r, err, root)
	}
	// A gzipped bulk body is inflated by the cluster and indexed.
	r, err := c.Do(ctx, http.MethodPost, "/_bulk?refresh=true", []byte("{\"create\":{\"_index\":\"gz\",\"_id\":\"1\"}}\n{\"a\":1}\n"), "application/x-ndjson")
	if err != nil || r.Status != 200 || s.Count("gz") != 1 {
		t.Fatalf("gzip bulk: %+v %v count %d", r, err, s.Count("gz"))
	}
	// Elasticsearch's error answers are typed.
	_, err = c.GetJSON(ctx, "/missing/_doc/1", nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 404 || se.Type != "index_not_found_exception" {
		t.Fatalf("missing index: %v", err)
	}
	_, err = (&Client{Base: base, Auth: Auth{Username: "elastic", Password: "wrong"}}).GetJSON(ctx, "/", nil)
	if st, ok := Unauthorized(err); !ok || st != 401 {
		t.Fatalf("wrong password: %v", err)
	}
	// An answer over MaxBody is an error that still carries the status.
	r, err = (&Client{Base: base, Auth: c.Auth, MaxBody: 64}).Do(ctx, http.MethodGet, "/_nodes/http", nil, "")
	if !errors.Is(err, ErrBodyTooLarge) || r == nil || r.Status != 200 || r.Body != nil {
		t.Fatalf("over MaxBody: %+v %v", r, err)
	}
}

func TestReadBody(t *testing.T) {
	b, err := ReadBody(make([]byte, 0, 2), strings.NewReader("12345"), 5)
	if err != nil || string(b) != "12345" {
		t.Fatalf("at the limit: %q %v", b, err)
	}
	if _, err := ReadBody(nil, strings.NewReader("123456"), 5); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
}

// TestErrorKinds provokes each kind of failure against real sockets and
// checks it is told apart by type alone.
func TestErrorKinds(t *testing.T) {
	ctx := context.Background()
	get := func(hc *http.Client, base string) error {
		_, err := (&Client{Base: base, HTTP: hc}).Do(ctx, http.MethodGet, "/", nil, "")
		if err == nil {
			t.Fatalf("GET %s succeeded", base)
		}
		return err
	}

	closed, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	err = get(nil, "http://"+addr)
	if ErrorKind(err) != KindRefused || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("closed port: %s %v", ErrorKind(err), err)
	}
	// Credentials given in the URL travel in a header, never in an error.
	base, fromURL, err := ParseURL("http://elastic:hunter2@" + addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Client{Base: base, Auth: fromURL}).Do(ctx, http.MethodGet, "/", nil, ""); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("closed port with credentials: %v", err)
	}

	// A listener that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	err = get(&http.Client{Timeout: 100 * time.Millisecond}, "http://"+silent.Addr().String())
	var ne net.Error
	if ErrorKind(err) != KindTimeout || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent server: %s %v", ErrorKind(err), err)
	}

	// A listener that resets every connection.
	reset, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer reset.Close()
	go func() {
		for {
			c, err := reset.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1024)
			c.Read(buf) // the request, so the reset comes as the answer
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	err = get(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, "http://"+reset.Addr().String())
	if ErrorKind(err) != KindNetwork || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reset: %s %v", ErrorKind(err), err)
	}

	dns := testenv.NewFakeDNS(t, nil)
	hc := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Resolver: dns.Resolver}).DialContext}}
	err = get(hc, "http://no-such-node.test:9200")
	if ErrorKind(err) != KindDNS || dns.Asked("no-such-node.test") == 0 {
		t.Fatalf("unknown name: %s %v", ErrorKind(err), err)
	}

	certs := forwardtest.NewCerts(t)
	tlsSim := essimtest.Start(t, essim.Config{TLS: certs.ServerTLS(false)})
	err = get(&http.Client{Transport: &http.Transport{TLSClientConfig: TLSConfig(x509.NewCertPool(), false)}}, tlsSim.URL())
	var unknown x509.UnknownAuthorityError
	if ErrorKind(err) != KindTLS || !errors.As(err, &unknown) {
		t.Fatalf("untrusted certificate: %s %v", ErrorKind(err), err)
	}
	if _, err := (&Client{Base: tlsSim.URL(), HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: TLSConfig(certs.CAPool, false)}}}).Do(ctx, http.MethodGet, "/", nil, ""); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	if _, err := (&Client{Base: tlsSim.URL(), HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: TLSConfig(nil, true)}}}).Do(ctx, http.MethodGet, "/", nil, ""); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	// A server that wants a client certificate refuses us with an alert.
	mtls := essimtest.Start(t, essim.Config{TLS: certs.ServerTLS(true)})
	err = get(&http.Client{Transport: &http.Transport{TLSClientConfig: TLSConfig(certs.CAPool, false)}}, mtls.URL())
	if ErrorKind(err) != KindTLS {
		t.Fatalf("client certificate required: %s %v", ErrorKind(err), err)
	}
}

func TestDialAddress(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9200":            "127.0.0.1:9200",
		"[::1]:9200":                "[::1]:9200",
		"es-0.local/127.0.0.1:9200": "es-0.local:9200",
		"es-0/[fe80::1]:9201":       "es-0:9201",
		"/10.0.0.1:9200":            "10.0.0.1:9200",
	} {
		if got, err := DialAddress(in); err != nil || got != want {
			t.Errorf("DialAddress(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "nope", ":9200", "es/1.2.3.4", "1.2.3.4:0", "1.2.3.4:99999", "1.2.3.4:http"} {
		if got, err := DialAddress(bad); err == nil {
			t.Errorf("DialAddress(%q) = %q, want an error", bad, got)
		}
	}
	if b, err := PublishedBase("https", "es-0/10.0.0.1:9200"); err != nil || b != "https://es-0:9200" {
		t.Fatalf("PublishedBase: %q %v", b, err)
	}
}

func TestNodesHTTP(t *testing.T) {
	s := essimtest.Start(t, essim.Config{Nodes: 2, MaxContentLength: 1 << 20, Faults: essim.Faults{PublishAddress: "es-node.test/127.0.0.2:1"}})
	nh, _, err := (&Client{Base: s.URL()}).NodesHTTP(context.Background())
	if err != nil || len(nh.Nodes) != 2 || nh.MinMaxContentLength() != 1<<20 {
		t.Fatalf("%+v %v", nh, err)
	}
	for _, n := range nh.Nodes {
		if a, err := DialAddress(n.HTTP.PublishAddress); err != nil || a != "es-node.test:1" {
			t.Fatalf("node %s: %q %v", n.Name, a, err)
		}
	}
	s.SetFaults(essim.Faults{PublishAddress: "none"})
	nh, _, err = (&Client{Base: s.URL()}).NodesHTTP(context.Background())
	if err != nil || len(nh.Nodes) != 2 || nh.MinMaxContentLength() != 0 {
		t.Fatalf("no http: %+v %v", nh, err)
	}
	for _, n := range nh.Nodes {
		if n.HTTP != nil {
			t.Fatalf("node %s publishes %+v", n.Name, n.HTTP)
		}
	}
}
