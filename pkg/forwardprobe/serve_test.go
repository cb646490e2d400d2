package forwardprobe

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardserve"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// startReceiver runs forwardserve's misbehaving receiver on a free loopback
// port until the test ends and returns its address and a function that
// stops it and returns its tally.
func startReceiver(t *testing.T, o forwardserve.Options) (string, func() *forwardserve.Result) {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	addrc := make(chan string, 1)
	o.OnListen = func(a net.Addr) { addrc <- a.String() }
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		r   *forwardserve.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := forwardserve.Run(ctx, o)
		done <- result{r, err}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case res := <-done:
		cancel()
		t.Fatalf("receiver did not start: %v", res.err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("receiver did not start")
	}
	var got *forwardserve.Result
	stop := func() *forwardserve.Result {
		if got != nil {
			return got
		}
		cancel()
		res := <-done
		if res.err != nil {
			t.Fatalf("receiver: %v", res.err)
		}
		got = res.r
		return got
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

func policy(t *testing.T, s string) forwardserve.AckPolicy {
	t.Helper()
	p, err := forwardserve.ParseAckPolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func onlyFinding(t *testing.T, fs []report.Finding, id string) report.Finding {
	t.Helper()
	if len(fs) != 1 || fs[0].ID != id {
		t.Fatalf("want only %s, got %+v", id, fs)
	}
	return fs[0]
}

// The probe's ack verdicts, each against a receiver that misbehaves in
// exactly that way.
func TestProbeVerdictsAgainstMisbehavingReceiver(t *testing.T) {
	cases := []struct {
		name    string
		serve   forwardserve.Options
		probe   Options
		want    string
		outcome []string // the canaries' outcomes, in order
		check   func(t *testing.T, f report.Finding, res *Result, served *forwardserve.Result)
	}{
		{"no ack", forwardserve.Options{Ack: policy(t, "never")},
			Options{Modes: []forward.Mode{forward.ModeMessage, forward.ModePacked}, AckTimeout: 300 * time.Millisecond},
			FindingNoAck, []string{"no_ack", "skipped"},
			func(t *testing.T, f report.Finding, res *Result, served *forwardserve.Result) {
				if f.Severity != report.Critical || served.AcksWithheld != 1 || served.Stats.Acks != 0 {
					t.Fatalf("%+v; served %+v", f, served)
				}
			}},
		{"ack mismatch", forwardserve.Options{Ack: policy(t, "wrong")},
			Options{Modes: []forward.Mode{forward.ModePacked}},
			FindingAckMismatch, []string{"ack_mismatch"},
			func(t *testing.T, f report.Finding, res *Result, served *forwardserve.Result) {
				if f.Evidence["got_ack"] != "logdoctor-wrong-"+res.Canaries[0].Chunk || res.Canaries[0].GotAck != f.Evidence["got_ack"] {
					t.Fatalf("%+v %+v", f.Evidence, res.Canaries)
				}
			}},
		{"slow ack", forwardserve.Options{Ack: policy(t, "delay=300ms")},
			Options{Modes: []forward.Mode{forward.ModeForward}, SlowAck: 100 * time.Millisecond},
			FindingSlowAck, []string{"acked"},
			func(t *testing.T, f report.Finding, res *Result, served *forwardserve.Result) {
				if f.Severity != report.Warning || f.Evidence["p99_ms"].(float64) < 300 || res.Canaries[0].AckMS < 300 {
					t.Fatalf("%+v %+v", f, res.Canaries)
				}
			}},
		{"closed before ack", forwardserve.Options{CloseAfter: 2},
			Options{Modes: []forward.Mode{forward.ModeMessage, forward.ModePacked}},
			FindingClosedBeforeAck, []string{"acked", "closed_before_ack"},
			func(t *testing.T, f report.Finding, res *Result, served *forwardserve.Result) {
				if served.ClosedByRule < 1 || served.Stats.Acks != 1 {
					t.Fatalf("served %+v", served)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, stop := startReceiver(t, tc.serve)
			tc.probe.Addr = addr
			tc.probe.Tag = "logdoctor.probe"
			if tc.probe.AckTimeout == 0 {
				tc.probe.AckTimeout = 5 * time.Second
			}
			if tc.probe.SlowAck == 0 {
				tc.probe.SlowAck = 5 * time.Second
			}
			res, findings, err := Run(context.Background(), tc.probe)
			if err != nil {
				t.Fatal(err)
			}
			f := onlyFinding(t, findings, tc.want)
			if len(res.Canaries) != len(tc.outcome) {
				t.Fatalf("canaries %+v", res.Canaries)
			}
			for i, want := range tc.outcome {
				if res.Canaries[i].Outcome != want {
					t.Fatalf("canary %d: %+v, want %s", i, res.Canaries, want)
				}
			}
			tc.check(t, f, res, stop())
		})
	}
}

// A fixed clock seeds drop-rate's random source: the same clock gives the
// same acks dropped.
func TestDropRateIsReproducibleUnderAFixedClock(t *testing.T) {
	clock := func() time.Time { return time.Unix(1700000000, 0) }
	outcomes := func() []string {
		addr, _ := startReceiver(t, forwardserve.Options{Ack: policy(t, "drop-rate=0.5"), Now: clock})
		var out []string
		for range 2 {
			res, _, err := Run(context.Background(), Options{Addr: addr, Tag: "logdoctor.probe", AckTimeout: 200 * time.Millisecond, SlowAck: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range res.Canaries {
				out = append(out, c.Outcome)
			}
		}
		return out
	}
	a, b := outcomes(), outcomes()
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%v vs %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same clock, different drops: %v vs %v", a, b)
		}
	}
}
