package sockstat

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// TestNoEstablishedRemedyFollowsThePeer: the advice for a peer with nothing
// ESTABLISHED names the settings of what talks to that kind of peer, and
// a named peer with no socket at all is reported too.
func TestNoEstablishedRemedyFollowsThePeer(t *testing.T) {
	es := PeerSpec{Raw: "es", Alias: "es", Ports: []uint16{9200, 9243}}
	esPort := PeerSpec{Raw: "10.0.0.1:9200", Ports: []uint16{9200}}
	fwd := PeerSpec{Raw: "forward", Alias: "forward", Ports: []uint16{24224}}
	fwdPort := PeerSpec{Raw: ":24224", Ports: []uint16{24224}}
	other := PeerSpec{Raw: "127.0.0.9"}
	trying := StateCounts{}
	trying[TimeWait], trying[SynSent] = 4, 1
	healthy := StateCounts{}
	healthy[Established], healthy[TimeWait] = 1, 9

	esAdvice, fwdAdvice := "reload_connections false", "out_forward"
	for _, c := range []struct {
		spec      PeerSpec
		states    StateCounts
		id        string
		sev       report.Severity
		want, not []string
	}{
		{es, trying, FindingNoEstablished, report.Critical, []string{esAdvice, "es probe"}, []string{fwdAdvice}},
		{esPort, trying, FindingNoEstablished, report.Critical, []string{esAdvice}, []string{fwdAdvice}},
		{fwd, trying, FindingNoEstablished, report.Critical, []string{fwdAdvice, "forward probe"}, []string{esAdvice, "fluent-plugin-elasticsearch"}},
		{fwdPort, trying, FindingNoEstablished, report.Critical, []string{fwdAdvice}, []string{esAdvice}},
		{other, trying, FindingNoEstablished, report.Critical, []string{"reachable on that port"}, []string{esAdvice, fwdAdvice, "fluent-plugin-elasticsearch"}},
		{es, StateCounts{}, FindingNoConnection, report.Warning, []string{"not talking to Elasticsearch", "--pid"}, []string{fwdAdvice}},
		{fwd, StateCounts{}, FindingNoConnection, report.Warning, []string{"forward input", "--pid"}, []string{"Elasticsearch"}},
		{other, StateCounts{}, FindingNoConnection, report.Warning, []string{"--pid"}, []string{"Elasticsearch", fwdAdvice}},
		{es, healthy, "", 0, nil, nil},
	} {
		fs := Findings(Result{Specs: []SpecCount{{Spec: c.spec, States: c.states}}}, nil, DefaultThresholds())
		if c.id == "" {
			if len(fs) != 0 {
				t.Errorf("%s with ESTABLISHED: %+v", c.spec.Raw, fs)
			}
			continue
		}
		if len(fs) != 1 || fs[0].ID != c.id || fs[0].Severity != c.sev {
			t.Errorf("%s %v: findings %+v, want one %s %s", c.spec.Raw, c.states, fs, c.id, c.sev)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(fs[0].Remedy, w) {
				t.Errorf("%s %s: remedy lacks %q: %s", c.spec.Raw, c.id, w, fs[0].Remedy)
			}
		}
		for _, n := range c.not {
			if strings.Contains(fs[0].Remedy, n) {
				t.Errorf("%s %s: remedy has advice for another kind of peer (%q): %s", c.spec.Raw, c.id, n, fs[0].Remedy)
			}
		}
	}
}

// TestSpecsOutbound: a peer in the same namespace is seen from both ends;
// SpecsOutbound counts the client's end only, without the listener.
func TestSpecsOutbound(t *testing.T) {
	mk := func(local, remote string, st State) Socket {
		return Socket{Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote), State: st}
	}
	socks := []Socket{
		mk("127.0.0.1:19299", "0.0.0.0:0", Listen),
		mk("127.0.0.1:41000", "127.0.0.1:19299", Established),
		mk("127.0.0.1:19299", "127.0.0.1:41000", Established),
	}
	spec := PeerSpec{Raw: "127.0.0.1:19299", Alias: "es", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Ports: []uint16{19299}}
	both := Aggregate(socks, AggregateOptions{Peers: []PeerSpec{spec}}).Specs[0].States
	out := Aggregate(socks, AggregateOptions{Peers: []PeerSpec{spec}, SpecsOutbound: true}).Specs[0].States
	if both[Established] != 2 || both[Listen] != 1 || out[Established] != 1 || out[Listen] != 0 {
		t.Errorf("both ends %v, outbound %v", both, out)
	}
}
