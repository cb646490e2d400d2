package udpfrag

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/pcap"
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

// startTcpdump runs tcpdump in the receiver namespace until the test
// ends or stop is called, and waits until it is listening.
func (l *labnet) startTcpdump(t *testing.T, iface, out string) (stop func(wantUDP uint64)) {
	t.Helper()
	// -B: a 16 MiB ring, or tcpdump -i any drops part of a burst itself
	td := l.Receiver.Command("tcpdump", "-i", iface, "-B", "16384", "--immediate-mode", "-Z", "root", "-U", "-n", "-s", "0", "-w", out, "udp or ip6")
	stderr, err := td.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = td.Process.Kill(); _ = td.Wait() })
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
	// stop waits (bounded) until tcpdump has written as many UDP packets as
	// the live capture saw (-U writes each one as it is read), then stops it
	return func(wantUDP uint64) {
		for i := 0; i < 50; i++ {
			if b, err := os.ReadFile(out); err == nil {
				if r, err := AnalyzeReader(context.Background(), bytes.NewReader(b), Config{}); err == nil && r.Packets.UDPPackets >= wantUDP {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = td.Process.Signal(syscall.SIGINT)
		_ = td.Wait()
	}
}

// liveRun captures in the receiver namespace while the sender sends, with
// tcpdump capturing the same traffic beside it (on eth0, and on "any",
// which writes Linux cooked frames), and returns the live result and the
// pcap files: logdoctor's own writer's, tcpdump's, and tcpdump's converted
// to pcapng by tshark.
func (l *labnet) liveRun(t *testing.T, dst string, want uint64) (res *Result, pcaps map[string]string) {
	t.Helper()
	testenv.RequireCommands(t, "tcpdump", "tshark")
	dir := t.TempDir()
	pcaps = map[string]string{
		"own writer":        filepath.Join(dir, "own.pcap"),
		"tcpdump":           filepath.Join(dir, "tcpdump.pcap"),
		"tcpdump -i any":    filepath.Join(dir, "any.pcap"),
		"tcpdump to pcapng": filepath.Join(dir, "tcpdump.pcapng"),
	}
	stopEth := l.startTcpdump(t, "eth0", pcaps["tcpdump"])
	stopAny := l.startTcpdump(t, "any", pcaps["tcpdump -i any"])

	f, err := os.Create(pcaps["own writer"])
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcap.NewWriter(f, 0, pcap.LinkEthernet)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAnalyzer(Config{Ports: []uint16{5160}, Timeout: time.Second})
	ready := make(chan struct{})
	done := make(chan error, 1)
	var st *pcap.CaptureStats
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		done <- l.Receiver.Do(func() error {
			ifs, err := pcap.Interfaces([]string{"eth0"})
			if err != nil {
				return err
			}
			st, err = pcap.Capture(ctx, pcap.LiveConfig{Interfaces: ifs, Ports: []uint16{5160}, Write: w, Ready: ready}, a.Sink(want))
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
	stopEth(res.Packets.UDPPackets)
	stopAny(res.Packets.UDPPackets)
	testenv.Run(t, "tshark", "-r", pcaps["tcpdump"], "-F", "pcapng", "-w", pcaps["tcpdump to pcapng"])
	return res, pcaps
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

func checkAll(t *testing.T, live *Result, pcaps map[string]string, want Classes) {
	t.Helper()
	if live.Datagrams != want {
		t.Errorf("live capture: classes %v, want %v", live.Datagrams, want)
	}
	if live.Capture.Dropped != 0 {
		t.Errorf("live capture: kernel dropped %d", live.Capture.Dropped)
	}
	for name, p := range pcaps {
		if r := analyzeFile(t, p); r.Datagrams != want {
			out, _ := exec.Command("tcpdump", "-nn", "-r", p).CombinedOutput()
			t.Errorf("%s pcap: classes %v, want %v (packets %+v)\n%s", name, r.Datagrams, want, r.Packets, out)
		}
	}
}

func TestLabnetFragmentsArrive(t *testing.T) {
	l := newLabnet(t)
	t.Run("ipv4", func(t *testing.T) {
		live, pcaps := l.liveRun(t, labReceiver4, 5)
		checkAll(t, live, pcaps, Classes{Unfragmented: 2, FragmentedComplete: 3})
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
		live, pcaps := l.liveRun(t, labReceiver6, 5)
		checkAll(t, live, pcaps, Classes{Unfragmented: 1, FragmentedComplete: 4})
	})
}

func TestLabnetBalancerDropsFragments(t *testing.T) {
	l := newLabnet(t)
	l.DropLaterFragments(t)
	t.Run("ipv4", func(t *testing.T) {
		live, pcaps := l.liveRun(t, labReceiver4, 5)
		checkAll(t, live, pcaps, Classes{Unfragmented: 2, FragmentedIncomplete: 3})
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
		live, pcaps := l.liveRun(t, labReceiver6, 5)
		checkAll(t, live, pcaps, Classes{Unfragmented: 1, FragmentedIncomplete: 4})
	})
}
