package forward_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
)

// The step prefix is not doubled on crypto/tls errors.
func TestStepErrorNotDoubled(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	addr := forwardtest.Start(t, &forward.Server{Handler: forwardtest.NewRecorder(), TLSConfig: certs.ServerTLS(false)})
	_, err := forward.Dial(context.Background(), addr, forward.ClientConfig{TLSConfig: &tls.Config{}})
	var se *forward.StepError
	if !errors.As(err, &se) || se.Step != "tls" || strings.Contains(err.Error(), "tls: tls:") || !strings.HasPrefix(err.Error(), "tls: ") {
		t.Fatalf("%v", err)
	}
	if got := (&forward.StepError{Step: "connect", Err: errors.New("refused")}).Error(); got != "connect: refused" {
		t.Fatal(got)
	}
}

// With a shared key and no HELO, the client says the server has no key
// instead of a bare read timeout.
func TestDialNoHelo(t *testing.T) {
	addr := forwardtest.Start(t, &forward.Server{Handler: forwardtest.NewRecorder()})
	start := time.Now()
	_, err := forward.Dial(context.Background(), addr, forward.ClientConfig{SharedKey: "k", HandshakeTimeout: 300 * time.Millisecond})
	var se *forward.StepError
	if !errors.Is(err, forward.ErrNoHelo) || !errors.As(err, &se) || se.Step != "handshake" {
		t.Fatalf("%v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %v", el)
	}
}

// TLS record bytes in the answer to a plaintext request mean the port
// expects TLS, whatever else went wrong.
func TestPlaintextAnsweredWithTLSAlert(t *testing.T) {
	ln := serveOnce(t, func(c net.Conn) {
		c.Read(make([]byte, 512))
		// What an OpenSSL server may send for a non-TLS record: a fatal
		// protocol_version alert, then it closes.
		c.Write([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46})
	})
	c, err := forward.Dial(context.Background(), ln.Addr().String(), forward.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &forward.Request{Tag: "t", Mode: forward.ModeMessage, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	if err := c.Send(req, 5*time.Second); !errors.Is(err, forward.ErrSpeaksTLS) || !strings.Contains(err.Error(), "15 03 03") {
		t.Fatalf("%v", err)
	}
}

func TestLooksLikeTLSRecord(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{[]byte{0x15, 0x03, 0x03}, true}, {[]byte{0x16, 0x03, 0x01, 0x00}, true},
		{[]byte{0x15, 0x03}, false}, {[]byte{0x81, 0xa3, 'a'}, false}, {[]byte{0x16, 0x03, 0x09}, false}, {nil, false},
	} {
		if got := forward.LooksLikeTLSRecord(tc.b); got != tc.want {
			t.Errorf("% x: %v", tc.b, got)
		}
	}
}

func TestSniffTLS(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	tlsAddr := forwardtest.Start(t, &forward.Server{Handler: forwardtest.NewRecorder(), TLSConfig: certs.ServerTLS(true)})
	plainSrv := &forward.Server{Handler: forwardtest.NewRecorder()}
	plainAddr := forwardtest.Start(t, plainSrv)
	ctx := context.Background()
	// A client certificate is required, yet the server's answer is TLS.
	if ok, err := forward.SniffTLS(ctx, nil, tlsAddr, 3*time.Second); !ok || err != nil {
		t.Fatalf("TLS port: %v %v", ok, err)
	}
	if ok, err := forward.SniffTLS(ctx, nil, plainAddr, time.Second); ok || err != nil {
		t.Fatalf("plaintext port: %v %v", ok, err)
	}
	if _, err := forward.SniffTLS(ctx, nil, "127.0.0.2:1", time.Second); err == nil {
		t.Fatal("closed port: no error")
	}
}

// A TLS client against a plaintext port that reads the ClientHello and
// waits (as Fluentd does) gives up after the handshake timeout.
func TestTLSHandshakeIsBounded(t *testing.T) {
	ln := serveOnce(t, func(c net.Conn) {
		c.Read(make([]byte, 4096))
		time.Sleep(5 * time.Second)
	})
	start := time.Now()
	_, err := forward.Dial(context.Background(), ln.Addr().String(), forward.ClientConfig{TLSConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 300 * time.Millisecond})
	var se *forward.StepError
	if !errors.As(err, &se) || se.Step != "tls" || !strings.Contains(err.Error(), "no answer to the TLS ClientHello within 300ms") {
		t.Fatalf("%v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %v", el)
	}
}

// serveOnce listens on loopback and hands the first connection to fn,
// closing it after; the listener closes when the test ends.
func serveOnce(t *testing.T, fn func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fn(c)
	}()
	return ln
}
