// Package forwardtest has helpers for tests that run forward servers and
// clients on loopback: a throwaway CA with server and client certificates,
// and a Handler that records what it receives.
package forwardtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/forward"
)

// Certs are PEM files under a test's temp dir, valid for 127.0.0.1 and
// localhost.
type Certs struct {
	CAFile, CertFile, KeyFile     string // server certificate and key
	ClientCertFile, ClientKeyFile string
	CAPool                        *x509.CertPool
	ServerCert, ClientCert        tls.Certificate
}

// NewCerts makes a CA, a server certificate and a client certificate.
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "logdoctor test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	c := &Certs{CAFile: filepath.Join(dir, "ca.pem"), CAPool: x509.NewCertPool()}
	c.CAPool.AddCert(ca)
	writePEM(t, c.CAFile, "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string, tls.Certificate) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalPKCS8PrivateKey(key)
		cf, kf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, cf, "CERTIFICATE", der)
		writePEM(t, kf, "PRIVATE KEY", kb)
		pair, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		return cf, kf, pair
	}
	c.CertFile, c.KeyFile, c.ServerCert = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	c.ClientCertFile, c.ClientKeyFile, c.ClientCert = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return c
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ServerTLS is a server config presenting the server certificate; with
// requireClient it also demands a client certificate from the CA.
func (c *Certs) ServerTLS(requireClient bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{c.ServerCert}, MinVersion: tls.VersionTLS12}
	if requireClient {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = c.CAPool
	}
	return cfg
}

// Event is one received event, copied out of the decoder's buffer.
type Event struct {
	Tag    string
	Time   forward.EventTime
	Record []byte
	Chunk  string
	Mode   forward.Mode
}

// Recorder is a Handler that keeps every event.
type Recorder struct {
	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{notify: make(chan struct{}, 1)} }

func (r *Recorder) HandleForward(_ context.Context, _ net.Addr, req *forward.Request) error {
	r.mu.Lock()
	for _, e := range req.Entries {
		r.events = append(r.events, Event{Tag: req.Tag, Time: e.Time, Record: append([]byte(nil), e.Record...), Chunk: req.Chunk, Mode: req.Mode})
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return nil
}

// Events returns a copy of what arrived so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// WaitFor waits until n events arrived or the timeout passes.
func (r *Recorder) WaitFor(n int, timeout time.Duration) []Event {
	deadline := time.After(timeout)
	for {
		if ev := r.Events(); len(ev) >= n {
			return ev
		}
		select {
		case <-r.notify:
		case <-deadline:
			return r.Events()
		}
	}
}

// Start runs s on a fresh 127.0.0.1 listener until the test ends and
// returns the address.
func Start(t testing.TB, s *forward.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}
