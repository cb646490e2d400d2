package forwardprobe

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/forward"
)

func TestProbeRecordNamesItselfAndHasTheAskedSize(t *testing.T) {
	for _, size := range []int{10, 100, 200, 1000, 70000} {
		b := newProbeRecords("run123", forward.ModePacked, size).append(nil, 42)
		var m map[string]any
		if err := msgpack.Unmarshal(b, &m); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if m["logdoctor"] != "probe" || m["run_id"] != "run123" || m["seq"] != uint64(42) || m["mode"] != "packed" {
			t.Fatalf("size %d: %v", size, m)
		}
		if size >= 100 && (len(b) < size-8 || len(b) > size+8) {
			t.Fatalf("asked %d bytes, got %d", size, len(b))
		}
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := summarize(d)
	if l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 || l.N != 100 {
		t.Fatalf("%+v", l)
	}
	if l := summarize([]time.Duration{3 * time.Millisecond}); l.P50 != 3 || l.P99 != 3 {
		t.Fatalf("%+v", l)
	}
}

type failingDialer struct{ err error }

func (d failingDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, d.err
}

// The dialer is injectable: a refused connection becomes connect_failed
// without touching the network.
func TestInjectedDialer(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	res, findings, err := Run(context.Background(), Options{Addr: "127.0.0.2:24224", Client: forward.ClientConfig{Dialer: failingDialer{refused}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 1 || findings[0].ID != FindingConnectFailed || findings[0].Evidence["step"] != "connect" {
		t.Fatalf("%+v", findings)
	}
	if len(res.Steps) != 2 || !res.Steps[0].OK || res.Steps[1].OK {
		t.Fatalf("%+v", res.Steps)
	}
}

func TestLoadModeNeedsOneMode(t *testing.T) {
	_, _, err := Run(context.Background(), Options{Addr: "127.0.0.1:1", Count: 10, Modes: forward.Modes()})
	if err == nil {
		t.Fatal("load mode with four modes accepted")
	}
}
