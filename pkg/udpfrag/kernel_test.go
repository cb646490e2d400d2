package udpfrag

import (
	"net"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// TestKernelReceiveBufferDrops overflows a real UDP socket on loopback (a
// tiny receive buffer nobody reads) and expects the kernel's counters, as
// read from /proc, to show it and the finding to name it.
func TestKernelReceiveBufferDrops(t *testing.T) {
	testenv.RequireLinux(t)
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := rx.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	port := uint16(rx.LocalAddr().(*net.UDPAddr).Port)
	before, err := ReadKernel("/proc", []uint16{port})
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Sockets) != 1 {
		t.Fatalf("sockets on port %d: %+v", port, before.Sockets)
	}
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	payload := make([]byte, 1000)
	for i := 0; i < 200; i++ {
		if _, err := tx.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // loopback delivery is synchronous; this is slack
	after, err := ReadKernel("/proc", []uint16{port})
	if err != nil {
		t.Fatal(err)
	}
	d := before.Delta(after)
	counter, sockets := d.RcvbufDrops()
	if sockets == 0 || sockets > 200 || counter < int64(sockets) {
		t.Fatalf("drops: counter %d sockets %d (%+v)", counter, sockets, d)
	}
	f, ok := ReceiveBufferFinding(d)
	if !ok || f.Severity != report.Critical || f.ID != FindingReceiveBufferDrops {
		t.Fatalf("finding %+v %v", f, ok)
	}
	// a later run where nothing grew: only a warning about old drops
	again, _ := ReadKernel("/proc", []uint16{port})
	d2 := after.Delta(again)
	d2.Counters["Udp.RcvbufErrors"] = 0 // other tests may overflow their own sockets meanwhile
	if f, ok := ReceiveBufferFinding(d2); !ok || f.Severity != report.Warning {
		t.Fatalf("historic drops: %+v %v", f, ok)
	}
}

// TestReadKernelOfAnotherNamespace reads a process's namespace through
// /proc/PID/net: a socket in a namespace of the test's own is seen there
// and not in this one.
func TestReadKernelOfAnotherNamespace(t *testing.T) {
	testenv.RequireCommands(t, "python3")
	ns := testenv.NewNetns(t)
	child, _ := ns.Start(t, "python3", "-c", "import socket,time\n"+
		"s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 5999))\n"+
		"print('ready', flush=True); time.sleep(60)")
	k, err := ReadKernelOf("/proc", child.Process.Pid, []uint16{5999})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Sockets) != 1 || len(k.Errors) != 0 {
		t.Errorf("the child's namespace: %+v", k)
	}
	if _, ok := k.Counters["Udp.RcvbufErrors"]; !ok {
		t.Errorf("counters %v", k.Counters)
	}
	own, err := ReadKernel("/proc", []uint16{5999})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range own.Sockets {
		if s.Local == "127.0.0.1:5999" {
			t.Errorf("the child's socket is visible in this namespace: %+v", own.Sockets)
		}
	}
}
