package pcap

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

// recorder keeps what a live capture handed over and stops after want
// frames.
type recorder struct {
	want  int
	metas []Meta
	heads [][]byte
	ticks int
}

func (r *recorder) Packet(data []byte, m Meta) bool {
	if len(data) != m.CapLen {
		m.CapLen = -1 // caught below: the slice and the length disagree
	}
	r.metas = append(r.metas, m)
	r.heads = append(r.heads, append([]byte(nil), data[:min(len(data), 42)]...))
	return len(r.metas) >= r.want
}

func (r *recorder) Tick(time.Time) bool { r.ticks++; return false }

// TestCaptureLoopbackSocket captures on the loopback of a namespace of
// its own: the packet socket must hand over each datagram to the port once
// (loopback shows it twice; outgoing copies are filtered), cut to the
// snaplen with the length on the wire kept, stamped with the kernel's
// receive time, count them in the kernel's statistics, and write them to
// the pcap writer as they were captured.
func TestCaptureLoopbackSocket(t *testing.T) {
	ns := testenv.NewNetns(t)
	var rx, tx *net.UDPConn
	var ifs []net.Interface
	err := ns.Do(func() error {
		var err error
		if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			return err
		}
		if tx, err = net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr)); err != nil {
			return err
		}
		ifs, err = Interfaces([]string{"lo"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	defer tx.Close()
	port := uint16(rx.LocalAddr().(*net.UDPAddr).Port)

	var out bytes.Buffer
	w, err := NewWriter(&out, 0, LinkEthernet)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{want: 3}
	ready := make(chan struct{})
	done := make(chan error, 1)
	var st *CaptureStats
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		done <- ns.Do(func() error {
			var err error
			st, err = Capture(ctx, LiveConfig{Interfaces: ifs, Ports: []uint16{port}, Snaplen: 200, Write: w, Ready: ready}, rec)
			return err
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("capture: %v", err)
	}
	// a datagram to another port first: the filter must keep it out
	other, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port) + 1})
	if err == nil {
		_, _ = other.Write(make([]byte, 10))
		other.Close()
	}
	before := time.Now()
	for _, n := range []int{100, 1000, 20} {
		if _, err := tx.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("capture: %v", err)
	}
	after := time.Now()

	const hdr = 14 + 20 + 8 // Ethernet (loopback's), IPv4, UDP
	wantOrig := []int{hdr + 100, hdr + 1000, hdr + 20}
	wantCap := []int{hdr + 100, 200, hdr + 20}
	if len(rec.metas) != 3 {
		t.Fatalf("%d frames, want 3", len(rec.metas))
	}
	for i, m := range rec.metas {
		if m.CapLen != wantCap[i] || m.OrigLen != wantOrig[i] || m.Link != LinkEthernet {
			t.Errorf("frame %d: %+v, want caplen %d origlen %d link %d", i, m, wantCap[i], wantOrig[i], LinkEthernet)
		}
		if m.TimeNS < before.UnixNano() || m.TimeNS > after.UnixNano() {
			t.Errorf("frame %d: time %v outside the sends (%v..%v)", i, time.Unix(0, m.TimeNS), before, after)
		}
		if dport := uint16(rec.heads[i][36])<<8 | uint16(rec.heads[i][37]); dport != port {
			t.Errorf("frame %d: to port %d, want %d", i, dport, port)
		}
	}
	if st.Received != 3 || st.Dropped != 0 || len(st.Interfaces) != 1 || st.Interfaces[0] != "lo" {
		t.Errorf("stats %+v, want 3 received on lo, none dropped", st)
	}

	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fr, err := NewFileReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rec.metas {
		data, m, err := fr.Next()
		if err != nil {
			t.Fatalf("written record %d: %v", i, err)
		}
		// the writer keeps microseconds
		if m.CapLen != wantCap[i] || m.OrigLen != wantOrig[i] || m.TimeNS/1000 != rec.metas[i].TimeNS/1000 || !bytes.Equal(data[:42], rec.heads[i]) {
			t.Errorf("written record %d: %+v, captured %+v", i, m, rec.metas[i])
		}
	}
}

// TestCaptureEndsWithContext: a quiet capture still notices its context
// and ticks the handler meanwhile.
func TestCaptureEndsWithContext(t *testing.T) {
	ns := testenv.NewNetns(t)
	rec := &recorder{want: 1}
	var st *CaptureStats
	start := time.Now()
	err := ns.Do(func() error {
		ifs, err := Interfaces([]string{"lo"})
		if err != nil {
			return err
		}
		st, err = Capture(context.Background(), LiveConfig{Interfaces: ifs, Ports: []uint16{9}, Duration: 1200 * time.Millisecond}, rec)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < time.Second || took > 5*time.Second {
		t.Errorf("capture took %v, want about 1.2s", took)
	}
	if len(rec.metas) != 0 || rec.ticks < 1 || st.Received != 0 {
		t.Errorf("frames %d ticks %d stats %+v, want no frames and a tick", len(rec.metas), rec.ticks, st)
	}
}
