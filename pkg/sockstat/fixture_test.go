package sockstat

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestFixtureIPv6AndMapped(t *testing.T) {
	socks, src, err := ReadTCP("testdata/v6")
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Read) != 2 || len(src.Skipped) != 0 || src.Read[0].Sockets != 2 || src.Read[1].Sockets != 5 {
		t.Fatalf("sources: %+v", src)
	}
	res := Aggregate(socks, AggregateOptions{Aliases: DefaultAliases()})
	got := map[string]string{}
	for _, p := range res.Peers {
		var st []string
		for _, s := range AllStates() {
			if p.States[s] > 0 {
				st = append(st, fmt.Sprintf("%s=%d", s, p.States[s]))
			}
		}
		got[p.Peer] = fmt.Sprintf("%s %s %s q=%d/%d", p.Direction, p.Alias, strings.Join(st, ","), p.SendQ, p.RecvQ)
	}
	want := map[string]string{
		// The v4 client and its IPv4-mapped server end (tcp6) are one
		// connection seen from both sides.
		"127.0.0.1:9200":     "outbound es ESTABLISHED=1,TIME_WAIT=1 q=0/0",
		"127.0.0.5 -> :9200": "inbound es ESTABLISHED=1 q=0/0",
		"[::1]:9200":         "outbound es ESTABLISHED=1 q=300/0",
		"::1 -> :9200":       "inbound es ESTABLISHED=1 q=0/300",
		"[::1]:9243":         "outbound es CLOSE_WAIT=1 q=0/0",
		"* -> :9200":         "inbound es LISTEN=1 q=0/0",
	}
	if len(got) != len(want) {
		t.Errorf("peers: got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("peer %q: got %q want %q", k, got[k], v)
		}
	}
	if res.Totals.Total() != 7 || res.Totals[Established] != 4 {
		t.Errorf("totals %v", res.Totals)
	}
	// Find sees through the IPv4-mapped form.
	if s, ok := Find(socks, netip.MustParseAddrPort("127.0.0.1:9200"), netip.MustParseAddrPort("127.0.0.5:40010")); !ok || s.Inode != 6004 {
		t.Errorf("find mapped: %+v %v", s, ok)
	}
}

func TestFixtureMalformedLinesAreReportedAndTheRestCounted(t *testing.T) {
	socks, src, err := ReadTCP("testdata/malformed")
	if err != nil {
		t.Fatal(err)
	}
	r := src.Read[0]
	if r.Path != "testdata/malformed/net/tcp" || r.Sockets != 3 || r.MalformedLines != 2 || len(r.Malformed) != 2 {
		t.Fatalf("source: %+v", r)
	}
	// Line numbers count the header as line 1, as an editor does.
	if r.Malformed[0].Line != 3 || !strings.Contains(r.Malformed[0].Error, "remote address") ||
		r.Malformed[1].Line != 5 || !strings.Contains(r.Malformed[1].Error, "4 fields") {
		t.Errorf("malformed: %+v", r.Malformed)
	}
	res := Aggregate(socks, AggregateOptions{Aliases: DefaultAliases(), SendQMin: 65536})
	if len(res.Peers) != 1 || res.Peers[0].Peer != "127.0.0.1:24224" || res.Peers[0].Alias != "forward" {
		t.Fatalf("peers: %+v", res.Peers)
	}
	p := res.Peers[0]
	if p.States[Established] != 1 || p.States[CloseWait] != 1 || p.States[TimeWait] != 1 || p.SendQ != 70000 || len(p.Stuck) != 1 {
		t.Errorf("peer: %+v", p)
	}
}

func TestFixtureMissingTCP6IsSkippedAndNoted(t *testing.T) {
	socks, src, err := ReadTCP("testdata/no-tcp6")
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 3 || len(src.Read) != 1 || len(src.Skipped) != 1 ||
		src.Skipped[0].Path != "testdata/no-tcp6/net/tcp6" || !strings.Contains(src.Skipped[0].Reason, "not present") {
		t.Fatalf("socks %d sources %+v", len(socks), src)
	}
	// Two hanging SYN_SENT and a TIME_WAIT to syslog, nothing established:
	// the seed-000 picture for a --peer.
	sp, err := ParsePeerSpec(t.Context(), "syslog", DefaultAliases(), nil)
	if err != nil {
		t.Fatal(err)
	}
	res := Aggregate(socks, AggregateOptions{Aliases: DefaultAliases(), Peers: []PeerSpec{sp}})
	fs := Findings(res, nil, DefaultThresholds())
	ids := map[string]string{}
	for _, f := range fs {
		ids[f.ID] = f.Severity.String()
	}
	if len(fs) != 2 || ids[FindingNoEstablished] != "critical" || ids[FindingSynSent] != "warning" {
		t.Errorf("findings: %+v", fs)
	}
}

func TestReadTCPWithoutTables(t *testing.T) {
	_, src, err := ReadTCP(t.TempDir())
	if err == nil || len(src.Skipped) != 2 {
		t.Fatalf("err %v sources %+v", err, src)
	}
	if _, _, err := ReadTCP("testdata/does-not-exist"); err == nil {
		t.Fatal("want an error for a missing proc root")
	}
}

func TestParsePeerSpecForms(t *testing.T) {
	resolve := func(_ context.Context, network, host string) ([]netip.Addr, error) {
		if host == "es.example" {
			return []netip.Addr{netip.MustParseAddr("127.0.0.9"), netip.MustParseAddr("::ffff:127.0.0.9"), netip.MustParseAddr("::1")}, nil
		}
		return nil, errors.New("no such host")
	}
	aliases := DefaultAliases()
	aliases["opensearch"] = []uint16{9200, 9201}
	cases := []struct {
		in   string
		addr string
		port uint16
		want bool
	}{
		{"es", "127.0.0.1", 9243, true},
		{"es", "127.0.0.1", 9300, false},
		{"forward", "::1", 24224, true},
		{"kafka", "127.0.0.1", 9092, true},
		{"syslog", "127.0.0.1", 601, true},
		{"opensearch", "127.0.0.1", 9201, true},
		{":9200", "127.0.0.3", 9200, true},
		{":9200", "127.0.0.3", 9201, false},
		{"127.0.0.3", "127.0.0.3", 1, true},
		{"127.0.0.3", "127.0.0.4", 1, false},
		{"127.0.0.3:80", "127.0.0.3", 80, true},
		{"127.0.0.3:80", "127.0.0.3", 81, false},
		{"[::1]:80", "::1", 80, true},
		{"::1", "::1", 5, true},
		{"127.0.0.0/8", "127.9.9.9", 5, true},
		{"127.0.0.0/8", "::1", 5, false},
		{"es.example", "127.0.0.9", 5, true},
		{"es.example", "::1", 5, true},
		{"es.example:9200", "127.0.0.9", 9200, true},
		{"es.example:9200", "127.0.0.9", 9201, false},
	}
	for _, c := range cases {
		sp, err := ParsePeerSpec(t.Context(), c.in, aliases, resolve)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := sp.Match(netip.MustParseAddr(c.addr), c.port); got != c.want {
			t.Errorf("%q match %s:%d = %v, want %v (%+v)", c.in, c.addr, c.port, got, c.want, sp)
		}
	}
	sp, _ := ParsePeerSpec(t.Context(), "es.example", aliases, resolve)
	if len(sp.Addrs) != 2 {
		t.Errorf("resolved addresses should be unmapped and deduplicated: %v", sp.Addrs)
	}
	for _, bad := range []string{"", "bad peer!", ":0", ":70000", "127.0.0.1/33", "nosuch.example", "host:port", "-x"} {
		_, err := ParsePeerSpec(t.Context(), bad, aliases, resolve)
		if !errors.Is(err, ErrBadPeer) || !strings.Contains(err.Error(), "accepted forms") {
			t.Errorf("%q: err %v", bad, err)
		}
	}
	for _, bad := range []string{"x", "=1", "x=", "x=0", "x=1,abc", "a.b=1"} {
		if _, _, err := ParseAlias(bad); !errors.Is(err, ErrBadPeer) {
			t.Errorf("alias %q: err %v", bad, err)
		}
	}
	if n, p, err := ParseAlias("opensearch=9200,9201"); err != nil || n != "opensearch" || len(p) != 2 {
		t.Errorf("alias: %v %v %v", n, p, err)
	}
}

func TestParseState(t *testing.T) {
	for in, want := range map[string]State{"CLOSE_WAIT": CloseWait, "close-wait": CloseWait, "fin-wait-1": FinWait1,
		"FIN_WAIT2": FinWait2, "estab": Established, "new_syn_recv": NewSynRecv, " listen ": Listen} {
		if got, err := ParseState(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseState("WAITING"); err == nil {
		t.Error("want an error")
	}
	for _, s := range AllStates() {
		if got, err := ParseState(s.String()); err != nil || got != s {
			t.Errorf("round trip %v: %v %v", s, got, err)
		}
	}
	if State(13).String() != "STATE_13" {
		t.Error(State(13).String())
	}
}

// Direction without a listener: the ephemeral side is the client.
func TestClassifyWithoutListener(t *testing.T) {
	s := Socket{Local: netip.MustParseAddrPort("127.0.0.1:9200"), Remote: netip.MustParseAddrPort("127.0.0.2:40000"), State: FinWait2}
	cl := NewClassifier(nil, DefaultEphemeral)
	if d, a, p := cl.Classify(s); d != Inbound || a.String() != "127.0.0.2" || p != 9200 {
		t.Errorf("got %v %v %v", d, a, p)
	}
	s.Local, s.Remote = s.Remote, s.Local
	if d, _, p := cl.Classify(s); d != Outbound || p != 9200 {
		t.Errorf("got %v %v", d, p)
	}
}

// --alias adds names to the defaults and may redefine one; a bad one is
// an error naming what was wrong.
func TestAliasesWith(t *testing.T) {
	a, err := AliasesWith([]string{"kafka=9092", "es=9201"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a["kafka"], []uint16{9092}) || !slices.Equal(a["es"], []uint16{9201}) || len(a["forward"]) == 0 {
		t.Fatalf("aliases %v", a)
	}
	if _, err := AliasesWith([]string{"bad"}); err == nil {
		t.Fatal("alias without ports accepted")
	}
}
