package pcap

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/pcap/pcaptest"
)

type labnet struct{ *pcaptest.Labnet }

const (
	labSender4   = pcaptest.Sender4
	labReceiver4 = pcaptest.Receiver4
	labReceiver6 = pcaptest.Receiver6
)

func newLabnet(t *testing.T) *labnet { return &labnet{pcaptest.New(t, 5160)} }

// send sends one datagram of each seed size from the sender namespace.
func (l *labnet) send(t *testing.T, dst string) {
	t.Helper()
	var conn *net.UDPConn
	err := l.Sender.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := &net.UDPAddr{IP: net.ParseIP(dst), Port: 5160}
	for _, s := range pcaptest.SeedSizes {
		if _, err := conn.WriteToUDP(bytes.Repeat([]byte("x"), s), to); err != nil {
			t.Fatalf("send %d bytes: %v", s, err)
		}
		time.Sleep(20 * time.Millisecond) // keep datagrams apart in the capture
	}
}

// liveRun captures in the receiver namespace while the sender sends, with
// tcpdump capturing the same traffic beside it, and returns the live
// result and the two pcap files.
func (l *labnet) liveRun(t *testing.T, dst string, want uint64) (res *Result, ownPcap, tcpdumpPcap string) {
	t.Helper()
	testenv.RequireCommands(t, "tcpdump")
	dir := t.TempDir()
	ownPcap, tcpdumpPcap = filepath.Join(dir, "own.pcap"), filepath.Join(dir, "tcpdump.pcap")
	td := l.Receiver.Command("tcpdump", "-i", "eth0", "--immediate-mode", "-Z", "root", "-U", "-n", "-s", "0", "-w", tcpdumpPcap, "udp or ip6")
	stderr, err := td.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = td.Process.Kill(); _ = td.Wait() }()
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "listening on") {
				close(listening)
				once = true
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not start")
	}

	f, err := os.Create(ownPcap)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(f, 0, LinkEthernet)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAnalyzer(Config{Ports: []uint16{5160}, Timeout: time.Second})
	ready := make(chan struct{})
	done := make(chan error, 1)
	var st *CaptureStats
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		done <- l.Receiver.Do(func() error {
			ifs, err := Interfaces([]string{"eth0"})
			if err != nil {
				return err
			}
			st, err = Capture(ctx, LiveConfig{Interfaces: ifs, Ports: []uint16{5160}, Count: want, Write: w, Ready: ready}, a)
			return err
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("capture: %v", err)
	}
	l.send(t, dst)
	if err := <-done; err != nil {
		t.Fatalf("capture: %v", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a.Flush()
	res = a.Result()
	res.Capture = st
	time.Sleep(200 * time.Millisecond) // let tcpdump write what it read
	_ = td.Process.Signal(syscall.SIGINT)
	_ = td.Wait()
	return res, ownPcap, tcpdumpPcap
}

func analyzeFile(t *testing.T, path string) *Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := AnalyzeReader(context.Background(), f, Config{Ports: []uint16{5160}, Timeout: time.Second})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

func checkAll(t *testing.T, live *Result, own, tcpdump string, want Classes) {
	t.Helper()
	if live.Datagrams != want {
		t.Errorf("live capture: classes %v, want %v", live.Datagrams, want)
	}
	if live.Capture.Dropped != 0 {
		t.Errorf("live capture: kernel dropped %d", live.Capture.Dropped)
	}
	for name, p := range map[string]string{"own writer": own, "tcpdump": tcpdump} {
		if r := analyzeFile(t, p); r.Datagrams != want {
			t.Errorf("%s pcap: classes %v, want %v (packets %+v)", name, r.Datagrams, want, r.Packets)
		}
	}
}

func TestLabnetFragmentsArrive(t *testing.T) {
	l := newLabnet(t)
	t.Run("ipv4", func(t *testing.T) {
		live, own, td := l.liveRun(t, labReceiver4, 5)
		checkAll(t, live, own, td, Classes{Unfragmented: 2, FragmentedComplete: 3})
		if live.Sizes.PathMTU != 1460 || live.Sizes.MaxUnfragmented4 != 1432 || live.Sizes.OverMaxUnfragmented != 3 {
			t.Errorf("sizes %+v", live.Sizes)
		}
		if src := live.Sources[labSender4]; src == nil || src.Total() != 5 {
			t.Errorf("sources %v", live.Sources)
		}
		ids := findingIDs(Findings(live))
		if !ids[FindingFragmented] || ids[FindingFragmentsLost] {
			t.Errorf("findings %v", ids)
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		live, own, td := l.liveRun(t, labReceiver6, 5)
		checkAll(t, live, own, td, Classes{Unfragmented: 1, FragmentedComplete: 4})
	})
}

func TestLabnetBalancerDropsFragments(t *testing.T) {
	l := newLabnet(t)
	l.DropLaterFragments(t)
	t.Run("ipv4", func(t *testing.T) {
		live, own, td := l.liveRun(t, labReceiver4, 5)
		checkAll(t, live, own, td, Classes{Unfragmented: 2, FragmentedIncomplete: 3})
		var lost bool
		for _, f := range Findings(live) {
			if f.ID == FindingFragmentsLost {
				lost = f.Severity.String() == "critical"
			}
		}
		if !lost {
			t.Errorf("no critical %s: %v", FindingFragmentsLost, Findings(live))
		}
		if got := fmt.Sprint(live.Sizes.LostSizes); got != "[1440 2000 2312]" {
			t.Errorf("lost sizes %s", got)
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		live, own, td := l.liveRun(t, labReceiver6, 5)
		checkAll(t, live, own, td, Classes{Unfragmented: 1, FragmentedIncomplete: 4})
	})
}
