package cli

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
)

// nsDialer opens connections inside a network namespace.
type nsDialer struct{ ns *testenv.Netns }

func (d nsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := d.ns.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// TestProbeSeed001DroppedData reproduces "logs lost without errors"
// (docs/troubleshooting.md) in a namespace: the
// receiver's firewall lets SYN through and drops everything else, so TCP
// connects, the data never arrives, and the bytes sit in the probe's
// Send-Q. The probe must say forward.no_ack with that Send-Q as evidence.
func TestProbeSeed001DroppedData(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "ip", "nft", "sleep")
	ns := testenv.NewNetns(t)
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rec := forwardtest.NewRecorder()
	srv := &forward.Server{Handler: rec}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ns.Run(t, "nft", "add table inet ld; add chain inet ld in { type filter hook input priority 0; }; "+
		"add rule inet ld in tcp dport "+port+" tcp flags & syn == syn accept; add rule inet ld in tcp dport "+port+" drop")
	// A process in the namespace gives the probe a /proc/PID/net view of it.
	sleeper := ns.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()

	r, res := probe(t, ForwardProbeOptions{Addr: ln.Addr().String(), Modes: []string{"forward"}, AckTimeout: 600 * time.Millisecond,
		Dialer: nsDialer{ns}, Sockets: socketInspector(fmt.Sprintf("/proc/%d", sleeper.Process.Pid))})
	wantFindings(t, r, forwardprobe.FindingNoAck)
	f := forwardFinding(r, forwardprobe.FindingNoAck)
	sq, _ := f.Evidence["send_q_max"].(int)
	if sq != res.Canaries[0].Bytes || f.Evidence["socket_state"] != "ESTABLISHED" || !strings.Contains(f.Summary, strconv.Itoa(sq)+" bytes sat unacknowledged in our Send-Q") {
		t.Fatalf("evidence %+v\nsummary %s", f.Evidence, f.Summary)
	}
	if got := len(rec.Events()); got != 0 {
		t.Fatalf("receiver got %d events through the firewall", got)
	}
}
