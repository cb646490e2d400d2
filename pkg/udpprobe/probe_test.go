package udpprobe

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestPayloadIsExactSizeJSON(t *testing.T) {
	for _, size := range []int{MinSize, 1400, 1432, 2000, 9000} {
		b := Payload("run1", 7, size)
		if len(b) != size {
			t.Fatalf("size %d: got %d bytes", size, len(b))
		}
		p, ok := parseProbe(b)
		if !ok || p.Run != "run1" || p.Seq != 7 || p.Size != size {
			t.Fatalf("size %d: parsed %+v %v", size, p, ok)
		}
	}
	if _, ok := parseProbe([]byte(`{"log":"x"}`)); ok {
		t.Fatal("a log line parsed as a probe")
	}
	if _, err := ParseSizes([]string{"1400", "50"}); err == nil {
		t.Fatal("size 50 accepted")
	}
}

func TestSendWithoutReceiver(t *testing.T) {
	// a bound socket that never answers: probes leave, nothing comes back
	mute, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	r, err := Send(context.Background(), SendConfig{Target: mute.LocalAddr().String(), Sizes: []int{200, 1500}, Probes: 2, Wait: 200 * time.Millisecond, Run: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ReceiverAnswered || r.LargestThrough != 0 || len(r.Sizes) != 2 || r.Sizes[1].Sent != 2 || r.RouteMTU == 0 {
		t.Fatalf("result %+v", r)
	}
	rep := NewSendReport(r, 1460, nil)
	if rep.MaxUnfragmented != 1432 {
		t.Fatalf("max unfragmented %d", rep.MaxUnfragmented)
	}
	fs := rep.Findings()
	if len(fs) != 1 || fs[0].ID != "udp.fragmented" {
		t.Fatalf("findings %+v", fs)
	}
}

// TestSendStopsOnceEveryProbeIsAnswered: with a receiver answering every
// probe, the sweep ends as soon as the last answer is in, not after Wait.
func TestSendStopsOnceEveryProbeIsAnswered(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = Listen(ctx, ListenConfig{Addr: "127.0.0.1:0", Ready: func(a net.Addr) { ready <- a }})
	}()
	addr := <-ready
	start := time.Now()
	r, err := Send(ctx, SendConfig{Target: addr.String(), Sizes: []int{200, 1500, 9000}, Probes: 2, Wait: 20 * time.Second, Run: "early"})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range r.Sizes {
		if z.Acked != 2 {
			t.Fatalf("size %d: %d of 2 acked: %+v", z.Size, z.Acked, r.Sizes)
		}
	}
	if took > 10*time.Second {
		t.Fatalf("the sweep took %s: it waited for --wait although every probe was answered", took)
	}
	if err := r.NothingSent(); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
}

func TestNothingSent(t *testing.T) {
	r := &SendResult{Sizes: []SizeResult{{Size: 200, SendErrors: 3, Error: "connection refused"}, {Size: 70000, Oversize: true, SendErrors: 3}}}
	if err := r.NothingSent(); !errors.Is(err, ErrNothingSent) {
		t.Fatalf("every sendable probe failed: %v", err)
	}
	oversizeOnly := &SendResult{Sizes: []SizeResult{{Size: 70000, Oversize: true, SendErrors: 3}}}
	if err := oversizeOnly.NothingSent(); err != nil {
		t.Fatalf("oversize sizes failing is the verdict, not a failure to run: %v", err)
	}
}

// TestMaxUnfragmentedOnLoopback: the loopback's MTU of 65536 leaves room
// for 65,508 bytes after the headers, but UDP over IPv4 carries 65,507 at
// most.
func TestMaxUnfragmentedOnLoopback(t *testing.T) {
	rep := NewSendReport(&SendResult{Target: "127.0.0.1:9", RouteMTU: 65536}, 0, nil)
	if rep.MaxUnfragmented != MaxPayload {
		t.Fatalf("max unfragmented on lo = %d, want %d", rep.MaxUnfragmented, MaxPayload)
	}
	rep6 := NewSendReport(&SendResult{Target: "[::1]:9", RouteMTU: 65536}, 0, nil)
	if rep6.MaxUnfragmented != 65536-48 {
		t.Fatalf("IPv6 max unfragmented on lo = %d, want %d", rep6.MaxUnfragmented, 65536-48)
	}
}
