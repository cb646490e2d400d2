package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/pcap"
	"github.com/logdoctor/logdoctor/pkg/pcap/pcaptest"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/udpfrag"
	"github.com/logdoctor/logdoctor/pkg/udpprobe"
)

// udpfragReport is the JSON report as a CI job reads it.
type udpfragReport struct {
	Findings []struct {
		ID       string `json:"id"`
		Severity string `json:"severity"`
	} `json:"findings"`
	Data struct {
		Datagrams map[string]uint64            `json:"datagrams"`
		Sources   map[string]map[string]uint64 `json:"sources"`
		Sizes     struct {
			PathMTU   int   `json:"path_mtu"`
			LostSizes []int `json:"lost_sizes"`
		} `json:"sizes"`
		File struct {
			Corrupt     uint64 `json:"corrupt_records"`
			Corruptions []struct {
				Offset int64 `json:"offset"`
			} `json:"corruptions"`
		} `json:"file"`
		Kernel struct {
			Counters map[string]int64 `json:"counters"`
		} `json:"kernel"`
	} `json:"data"`
}

func (r udpfragReport) ids() map[string]string {
	m := map[string]string{}
	for _, f := range r.Findings {
		m[f.ID] = f.Severity
	}
	return m
}

func parseReport(t *testing.T, out string) udpfragReport {
	t.Helper()
	var r udpfragReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, out)
	}
	return r
}

// writeSeedPcap writes the sizes of "big UDP messages missing"
// (docs/troubleshooting.md) at MTU 1460 with logdoctor's own
// writer; with blackHole only the first fragment of each big datagram is
// kept, as behind the load balancer.
func writeSeedPcap(t *testing.T, blackHole bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seed.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcap.NewWriter(f, 0, pcap.LinkEthernet)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	for i, size := range pcaptest.SeedSizes {
		d := pcap.Datagram{Src: netip.MustParseAddr("10.77.1.2"), Dst: netip.MustParseAddr("10.77.2.2"),
			SrcPort: 40000, DstPort: 5160, Payload: size, ID: uint32(i + 1), MTU: 1460}
		for j, fr := range d.Frames() {
			if blackHole && j > 0 {
				continue
			}
			ts = ts.Add(time.Millisecond)
			if err := w.WritePacket(ts, fr, len(fr)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCLIStdin(t *testing.T, stdin []byte, args ...string) (ExitCode, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, IO{In: bytes.NewReader(stdin), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestUDPFragReadBlackHole(t *testing.T) {
	path := writeSeedPcap(t, true)
	code, out, errOut := runCLI(t, "udp-frag", "--read", path, "-o", "json")
	if code != ExitFindings {
		t.Fatalf("exit %d, want 3; stderr %s", code, errOut)
	}
	r := parseReport(t, out)
	want := map[string]uint64{"unfragmented": 2, "fragmented_complete": 0, "fragmented_incomplete": 3,
		"orphan_fragments": 0, "bad_length": 0, "snap_truncated": 0}
	if len(r.Data.Datagrams) != len(want) {
		t.Fatalf("datagrams keys %v", r.Data.Datagrams)
	}
	for k, v := range want {
		if r.Data.Datagrams[k] != v {
			t.Fatalf("datagrams %v, want %v", r.Data.Datagrams, want)
		}
	}
	if r.Data.Sources["10.77.1.2"]["fragmented_incomplete"] != 3 {
		t.Fatalf("sources %v", r.Data.Sources)
	}
	ids := r.ids()
	if ids[udpfrag.FindingFragmentsLost] != "critical" || ids[udpfrag.FindingFragmented] != "warning" {
		t.Fatalf("findings %v", ids)
	}
	if r.Data.Sizes.PathMTU != 1460 || len(r.Data.Sizes.LostSizes) != 3 {
		t.Fatalf("sizes %+v", r.Data.Sizes)
	}

	// the table, and --fail-on never
	code, out, _ = runCLI(t, "udp-frag", "--read", path, "--fail-on", "never")
	if code != ExitOK {
		t.Fatalf("--fail-on never: exit %d", code)
	}
	for _, s := range []string{"fragmented_incomplete", "10.77.1.2", "#", "path MTU 1460", "udp.fragments_lost"} {
		if !strings.Contains(out, s) {
			t.Fatalf("table lacks %q:\n%s", s, out)
		}
	}

	// from stdin, as `tcpdump -w - | logdoctor udp-frag --read -`
	b, _ := os.ReadFile(path)
	code, out, _ = runCLIStdin(t, b, "udp-frag", "--read", "-", "-o", "json", "--port", "5160")
	if code != ExitFindings || parseReport(t, out).Data.Datagrams["fragmented_incomplete"] != 3 {
		t.Fatalf("stdin: exit %d %s", code, out)
	}
	// another port: nothing counted, healthy
	code, out, _ = runCLI(t, "udp-frag", "--read", path, "--port", "514", "-o", "json")
	if code != ExitOK || len(parseReport(t, out).Findings) != 0 {
		t.Fatalf("port 514: exit %d %s", code, out)
	}
}

func TestUDPFragReadHealthyAndErrors(t *testing.T) {
	path := writeSeedPcap(t, false)
	code, out, _ := runCLI(t, "udp-frag", "--read", path, "-o", "json")
	r := parseReport(t, out)
	if code != ExitOK || r.Data.Datagrams["fragmented_complete"] != 3 || r.ids()[udpfrag.FindingFragmented] != "warning" {
		t.Fatalf("healthy: exit %d %s", code, out)
	}
	code, _, _ = runCLI(t, "udp-frag", "--read", path, "--fail-on", "warning")
	if code != ExitFindings {
		t.Fatalf("--fail-on warning: exit %d", code)
	}

	// corrupt record: counted with its offset, the rest still read
	b, _ := os.ReadFile(path)
	b[24+8] = 0xff // first record's capture length
	b[24+11] = 0x7f
	bad := filepath.Join(t.TempDir(), "corrupt.pcap")
	_ = os.WriteFile(bad, b, 0o644)
	code, out, _ = runCLI(t, "udp-frag", "--read", bad, "-o", "json")
	r = parseReport(t, out)
	if code != ExitOK || r.Data.File.Corrupt != 1 || r.Data.File.Corruptions[0].Offset != 24 || r.Data.Datagrams["unfragmented"] != 1 {
		t.Fatalf("corrupt: exit %d %s", code, out)
	}

	notPcap := filepath.Join(t.TempDir(), "fluentd.log")
	_ = os.WriteFile(notPcap, []byte("2026-11-21 17:00:00 +0000 [info]: starting fluentd\n"), 0o644)
	code, _, errOut := runCLI(t, "udp-frag", "--read", notPcap)
	if code != ExitError || !strings.Contains(errOut, "not a pcap or pcapng file") || !strings.Contains(errOut, notPcap) {
		t.Fatalf("not a pcap: exit %d %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "udp-frag", "--read", filepath.Join(t.TempDir(), "missing.pcap"))
	if code != ExitError || !strings.Contains(errOut, "missing.pcap") {
		t.Fatalf("missing: exit %d %q", code, errOut)
	}
	for _, args := range [][]string{
		{"udp-frag", "--read", path, "--send", "127.0.0.1:9"},
		{"udp-frag", "--port", "70000", "--read", path},
		{"udp-frag", "--send", "127.0.0.1:9", "--sizes", "12"},
		{"udp-frag", "extra-arg"},
	} {
		if code, _, errOut := runCLI(t, args...); code != ExitUsage {
			t.Fatalf("%v: exit %d %q", args, code, errOut)
		}
	}
}

type udpfragListen struct {
	r   *report.Report
	err error
}

func TestUDPFragSendListenLoopback(t *testing.T) {
	ready := make(chan net.Addr, 1)
	done := make(chan *udpfragListen, 1)
	go func() {
		r, err := runUDPFrag(context.Background(), UDPFragOptions{Listen: "127.0.0.1:0", Duration: 20 * time.Second, Count: 6,
			ListenReady: func(a net.Addr) { ready <- a }})
		done <- &udpfragListen{r: r, err: err}
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case l := <-done:
		t.Fatalf("listen: %v", l.err)
	}
	// 9000 bytes crosses loopback whole; 70000 cannot be sent at all
	code, out, errOut := runCLI(t, "udp-frag", "--send", addr.String(), "--sizes", "200,1400,9000,70000", "--probes", "2", "--wait", "1s", "-o", "json")
	if code != ExitFindings {
		t.Fatalf("send: exit %d %s %s", code, out, errOut)
	}
	var sr struct {
		Data struct {
			ReceiverAnswered bool `json:"receiver_answered"`
			LargestThrough   int  `json:"largest_through"`
			Sizes            []struct {
				Size, Sent, Acked int
				Oversize          bool
			} `json:"sizes"`
		} `json:"data"`
		Findings []struct{ ID, Severity string } `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &sr); err != nil {
		t.Fatal(err)
	}
	if !sr.Data.ReceiverAnswered || sr.Data.LargestThrough != 9000 || len(sr.Data.Sizes) != 4 {
		t.Fatalf("send data %+v", sr.Data)
	}
	for _, z := range sr.Data.Sizes[:3] {
		if z.Sent != 2 || z.Acked != 2 {
			t.Fatalf("size %+v", z)
		}
	}
	if z := sr.Data.Sizes[3]; z.Sent != 0 || !z.Oversize {
		t.Fatalf("70000: %+v", z)
	}
	if len(sr.Findings) != 1 || sr.Findings[0].ID != udpfrag.FindingOversize {
		t.Fatalf("findings %+v", sr.Findings)
	}
	l := <-done
	if l.err != nil {
		t.Fatal(l.err)
	}
	var lr struct {
		Probes int `json:"probes"`
	}
	b, _ := json.Marshal(l.r.Data)
	_ = json.Unmarshal(b, &lr)
	if lr.Probes != 6 {
		t.Fatalf("listener counted %d probes: %s", lr.Probes, b)
	}
}

// TestUDPFragNeedsCapNetRaw runs the binary without CAP_NET_RAW: the error
// must name the capability and the --read alternative.
func TestUDPFragNeedsCapNetRaw(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "setpriv")
	bin := testenv.BuildLogdoctor(t)
	cmd := exec.Command("setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", bin, "udp-frag", "-i", "lo", "--duration", "1s")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != int(ExitError) {
		t.Fatalf("exit %v, want 1: %s", err, out)
	}
	if !strings.Contains(string(out), "CAP_NET_RAW") || !strings.Contains(string(out), "--read") {
		t.Fatalf("error does not name the capability and --read: %s", out)
	}
}

// waitFor polls cond (bounded) for a namespace-side condition.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestUDPFragBinaryBehindDroppingBalancer is "big UDP
// messages missing" (docs/troubleshooting.md) end to end: the
// binary captures in the receiver's namespace while the balancer drops
// non-first fragments; then the probe sweep finds the largest size that
// gets through.
func TestUDPFragBinaryBehindDroppingBalancer(t *testing.T) {
	l := pcaptest.New(t, 5160)
	l.DropLaterFragments(t)
	bin := testenv.BuildLogdoctor(t)

	capture := l.Receiver.Command(bin, "udp-frag", "-i", "eth0", "--duration", "5s", "--reassembly-timeout", "1s", "-o", "json")
	var out, errb bytes.Buffer
	capture.Stdout, capture.Stderr = &out, &errb
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	// the capture is up once the receiver namespace has a packet socket
	waitFor(t, "packet socket", func() bool {
		b, _ := l.Receiver.Command("cat", "/proc/net/packet").Output()
		return strings.Count(string(b), "\n") > 1
	})
	time.Sleep(300 * time.Millisecond) // the filter is attached right after the socket opens
	err := l.Sender.Do(func() error {
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		for _, s := range pcaptest.SeedSizes {
			if _, err := c.WriteToUDP(bytes.Repeat([]byte("y"), s), &net.UDPAddr{IP: net.ParseIP(pcaptest.Receiver4), Port: 5160}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = capture.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != int(ExitFindings) {
		t.Fatalf("capture exit %v, want 3; stderr %s", err, errb.String())
	}
	r := parseReport(t, out.String())
	if r.Data.Datagrams["unfragmented"] != 2 || r.Data.Datagrams["fragmented_incomplete"] != 3 || r.Data.Datagrams["fragmented_complete"] != 0 {
		t.Fatalf("datagrams %v", r.Data.Datagrams)
	}
	if r.ids()[udpfrag.FindingFragmentsLost] != "critical" {
		t.Fatalf("findings %v", r.ids())
	}
	// the receiver's kernel saw the same: three reassemblies timed out
	if got := r.Data.Kernel.Counters["Ip.ReasmTimeout"]; got != 3 {
		t.Fatalf("Ip.ReasmTimeout delta %d, want 3 (counters %v)", got, r.Data.Kernel.Counters)
	}

	// the sweep: a receiver in the receiver namespace answers what arrives
	listen := l.Receiver.Command(bin, "udp-frag", "--listen", "0.0.0.0:5170", "--duration", "20s", "--count", "4", "-o", "json")
	var lout bytes.Buffer
	listen.Stdout = &lout
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = listen.Process.Kill(); _ = listen.Wait() }()
	waitFor(t, "listener", func() bool {
		b, _ := l.Receiver.Command("ss", "-Huln", "sport = :5170").Output()
		return len(bytes.TrimSpace(b)) > 0
	})
	sout, err := l.Sender.Command(bin, "udp-frag", "--send", pcaptest.Receiver4+":5170", "--sizes", "1400,1432,1440,2000",
		"--probes", "2", "--wait", "2s", "-o", "json").Output()
	if !errors.As(err, &ee) || ee.ExitCode() != int(ExitFindings) {
		t.Fatalf("send exit %v, want 3: %s", err, sout)
	}
	var sr struct {
		Data struct {
			LargestThrough int `json:"largest_through"`
			PathMTU        int `json:"path_mtu"`
		} `json:"data"`
	}
	var sf udpfragReport
	_ = json.Unmarshal(sout, &sr)
	if err := json.Unmarshal(sout, &struct {
		Findings *[]struct {
			ID       string `json:"id"`
			Severity string `json:"severity"`
		} `json:"findings"`
	}{&sf.Findings}); err != nil {
		t.Fatal(err)
	}
	ids := sf.ids()
	if sr.Data.LargestThrough != 1432 || sr.Data.PathMTU != 1460 || ids[udpfrag.FindingFragmentsLost] != "critical" {
		t.Fatalf("sweep: %s", sout)
	}
	if err := listen.Wait(); err != nil {
		t.Fatalf("listener: %v", err)
	}
	if !strings.Contains(lout.String(), `"probes":4`) {
		t.Fatalf("listener report: %s", lout.String())
	}
}

func TestUDPFragReadDirectoryAndSendNothing(t *testing.T) {
	dir := t.TempDir()
	code, _, errOut := runCLI(t, "udp-frag", "--read", dir)
	if code != ExitError || !strings.Contains(errOut, "--read "+dir+": is a directory") {
		t.Fatalf("--read DIR: exit %d %q", code, errOut)
	}

	// Port 0 is no destination: refused as usage, never a report that
	// exits 0 with the error in a table cell.
	code, out, errOut := runCLI(t, "udp-frag", "--send", "127.0.0.1:0")
	if code != ExitUsage || out != "" || !strings.Contains(errOut, `"--send" flag: want HOST:PORT with a port from 1 to 65535`) {
		t.Fatalf("--send port 0: exit %d out %q err %q", code, out, errOut)
	}
	// Every probe failing to leave (the kernel refuses port 0 when the
	// flag check is bypassed) is a run that measured nothing: an error
	// (exit 1), not a report.
	_, err := runUDPFrag(context.Background(), UDPFragOptions{Send: "127.0.0.1:0", Sizes: []int{200}, Probes: 1, Wait: 100 * time.Millisecond})
	if !errors.Is(err, udpprobe.ErrNothingSent) {
		t.Fatalf("nothing sent: %v", err)
	}
}

// TestUDPFragLiveLoopbackLargestUnfragmented: on lo (MTU 65536) the
// largest payload that leaves in one packet is UDP's own maximum, 65,507
// bytes, not 65536-28.
func TestUDPFragLiveLoopbackLargestUnfragmented(t *testing.T) {
	testenv.RequireRoot(t)
	// The kernel's receive-buffer counters are host-wide: other tests'
	// UDP floods can raise udp.receive_buffer_drops during the run, which
	// is not what this test is about.
	code, out, errOut := runCLI(t, "udp-frag", "-i", "lo", "--port", "5161", "--duration", "300ms", "-o", "json", "--fail-on", "never")
	if code != ExitOK {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	var r struct {
		Data struct {
			Sizes struct {
				PathMTU int `json:"path_mtu"`
				Max4    int `json:"max_unfragmented_payload_ipv4"`
				Max6    int `json:"max_unfragmented_payload_ipv6"`
			} `json:"sizes"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if s := r.Data.Sizes; s.PathMTU != 65536 || s.Max4 != 65507 || s.Max6 != 65536-48 {
		t.Fatalf("sizes on lo: %+v", s)
	}
}
