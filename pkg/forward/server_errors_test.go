package forward_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
)

// What a sender gets wrong is counted by kind, with the latest error as
// an example: the reports of forward serve and pipeline run show it.
func TestServerCountsErrorsByKind(t *testing.T) {
	srv := &forward.Server{Handler: forwardtest.NewRecorder()}
	addr := forwardtest.Start(t, srv)
	sent := int64(0)
	send := func(b []byte) {
		t.Helper()
		sent++
		// The server counts after it closed: wait, so that "last" is the
		// last one sent.
		defer waitStats(t, srv, func(st forward.Stats) bool { return st.Errors == sent })
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(b)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the server answered a refused request")
		}
	}
	packed := func(codec string) []byte {
		entry, _ := msgpack.Marshal([]any{1700000000, map[string]any{"a": 1}})
		b, _ := msgpack.Marshal([]any{"t", entry, map[string]any{"compressed": codec, "chunk": "c1"}})
		return b
	}
	send(packed("zstd"))
	send(packed("zstd"))
	send(packed("lz4\n"))
	send([]byte{0x93, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff}) // a 4 GiB array
	// A connect and close (TCP heartbeat) counts as nothing.
	if _, err := forward.HeartbeatTCP(context.Background(), nil, addr); err != nil {
		t.Fatal(err)
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.Errors == 4 && st.Accepted == 5 && st.Active == 0 })
	st := srv.Stats()
	if st.UnknownCompression != 3 || st.BadRequests != 1 || st.TLSFailed != 0 || st.AuthFailed != 0 {
		t.Fatalf("%+v", st)
	}
	if strings.Join(st.Codecs, ",") != `"zstd","lz4\n"` {
		t.Fatalf("codecs %q", st.Codecs)
	}
	if !strings.Contains(st.LastErrors["unknown_compression"], `"lz4\n"`) || !strings.Contains(st.LastErrors["bad_request"], "peer 127.0.0.1:") {
		t.Fatalf("last errors %q", st.LastErrors)
	}
}

// A plaintext sender on a TLS port is a failed TLS handshake, named as
// such; a TCP health check (connect, close) is not.
func TestServerCountsTLSFailures(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	srv := &forward.Server{Handler: forwardtest.NewRecorder(), TLSConfig: certs.ServerTLS(false)}
	addr := forwardtest.Start(t, srv)
	if _, err := forward.HeartbeatTCP(context.Background(), nil, addr); err != nil {
		t.Fatal(err)
	}
	c, err := forward.Dial(context.Background(), addr, forward.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &forward.Request{Tag: "t", Mode: forward.ModeMessage, Chunk: forward.NewChunkID(), Entries: []forward.Entry{{Record: record(t, map[string]any{"a": 1})}}}
	if err := c.Send(req, 5*time.Second); !errors.Is(err, forward.ErrClosedBeforeAck) {
		t.Fatalf("plaintext request to a TLS port: %v", err)
	}
	waitStats(t, srv, func(st forward.Stats) bool { return st.TLSFailed == 1 && st.Accepted == 2 && st.Active == 0 })
	st := srv.Stats()
	if st.Errors != 1 || !strings.Contains(st.LastErrors["tls"], "does not speak TLS (first bytes 94 ") {
		t.Fatalf("%+v", st)
	}
}
