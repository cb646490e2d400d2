package smoke

import (
	"context"
	"errors"
	"net"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/report"
)

func TestPreflight(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	ctx := context.Background()
	if err := Preflight(ctx, time.Second, Endpoint{"up", up.Addr().String()}); err != nil {
		t.Fatalf("listening endpoint: %v", err)
	}
	if err := Preflight(ctx, time.Second); err != nil {
		t.Fatalf("no endpoints: %v", err)
	}
	down := testenv.ClosedAddr(t)
	err = Preflight(ctx, time.Second, Endpoint{"up", up.Addr().String()}, Endpoint{"down", down})
	if !errors.Is(err, ErrEndpointDown) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("closed port: %v, want ErrEndpointDown wrapping ECONNREFUSED", err)
	}
	// The first refusal ends the check: later endpoints are not dialled.
	later, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	if err := Preflight(ctx, time.Second, Endpoint{"down", down}, Endpoint{"later", later.Addr().String()}); !errors.Is(err, ErrEndpointDown) {
		t.Fatalf("got %v", err)
	}
	_ = later.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
	if c, err := later.Accept(); err == nil {
		c.Close()
		t.Fatal("an endpoint after the refused one was dialled")
	}
}

func TestESAddr(t *testing.T) {
	for in, want := range map[string]string{
		"http://es:9200":            "es:9200",
		"https://es":                "es:443",
		"http://u:p@127.0.0.1/path": "127.0.0.1:80",
		"https://[::1]:9243":        "[::1]:9243",
	} {
		if got, err := ESAddr(in); err != nil || got != want {
			t.Errorf("ESAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ESAddr("http://es:9200/%zz"); err == nil {
		t.Error("a URL that does not parse was accepted")
	}
}

func TestProbesRun(t *testing.T) {
	var order []string
	var sockPeers []string
	f := func(id string) []report.Finding { return []report.Finding{{ID: id}} }
	p := Probes{
		Sockets: func(_ context.Context, peers []string) ([]report.Finding, error) {
			order, sockPeers = append(order, "sockets"), peers
			return f("tcp.x"), nil
		},
		Forward: func(_ context.Context, addr string) ([]report.Finding, error) {
			order = append(order, "forward "+addr)
			return nil, errors.New("dial http://elastic:s3cret@es:9200 failed")
		},
		ES: func(_ context.Context, url string) ([]report.Finding, error) {
			order = append(order, "es "+url)
			return append(f("es.a"), f("es.b")...), nil
		},
	}
	runs, fs := p.Run(context.Background(), "127.0.0.1:24224", "https://es")
	if want := []string{"sockets", "forward 127.0.0.1:24224", "es https://es"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	if want := []string{"127.0.0.1:24224", "es:443"}; !reflect.DeepEqual(sockPeers, want) {
		t.Fatalf("sockets peers %v, want %v", sockPeers, want)
	}
	if len(runs) != 3 || runs[0] != (ProbeRun{Name: "sockets", Findings: 1}) || runs[2] != (ProbeRun{Name: "es probe", Findings: 2}) ||
		runs[1].Name != "forward probe" || runs[1].Findings != 0 || runs[1].Error != "dial http://elastic:xxxxx@es:9200 failed" {
		t.Fatalf("runs %+v", runs)
	}
	if len(fs) != 3 || fs[0].ID != "tcp.x" || fs[1].ID != "es.a" || fs[2].ID != "es.b" {
		t.Fatalf("findings %+v", fs)
	}
	// Probes left nil are left out.
	runs, fs = Probes{ES: p.ES}.Run(context.Background(), "127.0.0.1:24224", "http://es:9200")
	if len(runs) != 1 || runs[0].Name != "es probe" || len(fs) != 2 {
		t.Fatalf("only ES: runs %+v findings %+v", runs, fs)
	}
}
