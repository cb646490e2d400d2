package exporter

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/internal/sockettest"
	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/doctor"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func sock(local, remote string, st sockstat.State, inode uint64) sockstat.Socket {
	return sockstat.Socket{Local: ap(local), Remote: ap(remote), State: st, Inode: inode}
}

// manyPeers is a table with a forward listener on 24224 and one
// ESTABLISHED connection from each of n clients (127.1.x.y), plus CLOSE_WAIT
// sockets to an es peer.
func manyPeers(n, closeWait int) []sockstat.Socket {
	socks := []sockstat.Socket{sock("0.0.0.0:24224", "0.0.0.0:0", sockstat.Listen, 1)}
	for i := range n {
		client := fmt.Sprintf("127.1.%d.%d:40000", i/250, i%250+1)
		socks = append(socks, sock("127.0.0.1:24224", client, sockstat.Established, uint64(100+i)))
	}
	for i := range closeWait {
		socks = append(socks, sock(fmt.Sprintf("127.0.0.1:%d", 41000+i), "127.0.0.5:9200", sockstat.CloseWait, uint64(90000+i)))
	}
	return socks
}

func runSockets(t *testing.T, s *Sockets) map[string]float64 {
	t.Helper()
	e := New(Options{})
	e.Add(s, Schedule{Interval: time.Second})
	e.RunOnce(context.Background())
	mfs := gather(t, e)
	if v := mustValue(t, mfs, "logdoctor_source_up", map[string]string{"source": "sockets"}); v != 1 {
		t.Fatalf("sockets source failed: %v", mfs["logdoctor_source_errors_total"])
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf(",%s=%s", l.GetName(), l.GetValue())
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// TestSocketsCapFoldsPeers: thousands of peers stay within the cap: at
// most MaxPeers peer label values plus one "other" per alias, with every
// socket still counted, and findings about folded peers named "other".
func TestSocketsCapFoldsPeers(t *testing.T) {
	const clients, cw, limit = 5000, 3, 50
	socks := manyPeers(clients, cw)
	s := NewSockets(SocketsConfig{Read: func() ([]sockstat.Socket, error) { return socks, nil }, MaxPeers: limit,
		Thresholds: sockstat.DefaultThresholds()})
	e := New(Options{})
	e.Add(s, Schedule{Interval: time.Second})
	e.RunOnce(context.Background())
	mfs := gather(t, e)

	peers := map[string]bool{}
	total := 0.0
	for _, m := range mfs["logdoctor_tcp_sockets"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "peer" {
				peers[l.GetValue()] = true
			}
		}
		total += m.GetGauge().GetValue()
	}
	if len(peers) > limit+1 {
		t.Errorf("%d peer label values, cap %d (+ other)", len(peers), limit)
	}
	if !peers[OtherPeer] {
		t.Errorf("no peer=%q series for the folded peers", OtherPeer)
	}
	// The es peer has the most sockets and is kept by name.
	if !peers["127.0.0.5:9200"] {
		t.Errorf("the busiest peer was folded: %v", peers)
	}
	if int(total) != len(socks) {
		t.Errorf("sockets counted %v, table has %d", total, len(socks))
	}
	if v := mustValue(t, mfs, "logdoctor_tcp_peers", nil); v != clients+2 {
		t.Errorf("logdoctor_tcp_peers = %v, want %d", v, clients+2)
	}
	if v := mustValue(t, mfs, "logdoctor_tcp_peers_folded", nil); v != clients+2-limit {
		t.Errorf("logdoctor_tcp_peers_folded = %v, want %d", v, clients+2-limit)
	}
	if v := mustValue(t, mfs, "logdoctor_tcp_sockets", map[string]string{"peer": "127.0.0.5:9200", "state": "CLOSE_WAIT", "alias": "es"}); v != cw {
		t.Errorf("CLOSE_WAIT to es = %v", v)
	}
	if n := len(mfs["logdoctor_tcp_sockets"].GetMetric()) + len(mfs["logdoctor_tcp_queue_bytes"].GetMetric()); n > 4*(limit+2) {
		t.Errorf("%d socket series for a cap of %d peers", n, limit)
	}
	if v := mustValue(t, mfs, "logdoctor_finding", map[string]string{"id": "tcp.close_wait", "target": "127.0.0.5:9200"}); v != 1 {
		t.Errorf("no tcp.close_wait finding for the es peer")
	}
	text, parsed := exposition(t, promRegistry(e))
	if len(parsed["logdoctor_tcp_sockets"].GetMetric()) == 0 {
		t.Fatalf("exposition lost logdoctor_tcp_sockets:\n%s", text)
	}
	promtoolCheck(t, text)
}

// TestSocketsFoldedFindings: a CLOSE_WAIT pile to each of many peers gives
// findings about the kept peers by name and one about "other".
func TestSocketsFoldedFindings(t *testing.T) {
	var socks []sockstat.Socket
	for i := range 300 {
		socks = append(socks, sock(fmt.Sprintf("127.0.0.1:%d", 40000+i), fmt.Sprintf("127.2.%d.%d:9200", i/250, i%250+1), sockstat.CloseWait, uint64(i+1)))
	}
	s := NewSockets(SocketsConfig{Read: func() ([]sockstat.Socket, error) { return socks, nil }, MaxPeers: 10, Thresholds: sockstat.DefaultThresholds()})
	e := New(Options{})
	e.Add(s, Schedule{Interval: time.Second})
	e.RunOnce(context.Background())
	mfs := gather(t, e)
	if n := len(mfs["logdoctor_finding"].GetMetric()); n != 11 {
		t.Errorf("%d finding series for 300 peers with a cap of 10; want 10 named + 1 other", n)
	}
	if _, ok := value(mfs, "logdoctor_finding", map[string]string{"id": "tcp.close_wait", "target": OtherPeer}); !ok {
		t.Error("no finding about the folded peers")
	}
}

// TestSocketsTargets: a configured peer with no socket reports 0 in every
// state, ESTABLISHED included, and tcp.no_connection.
func TestSocketsTargets(t *testing.T) {
	s := NewSockets(SocketsConfig{Shipper: "fluentd", Read: func() ([]sockstat.Socket, error) { return manyPeers(2, 0), nil },
		Peers:      []sockstat.PeerSpec{{Raw: "es", Alias: "es", Ports: []uint16{9200, 9243}}, {Raw: "127.0.0.9:9201", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.9")}, Ports: []uint16{9201}}},
		Aliases:    sockstat.Aliases{"es": {9200, 9243}, "es2": {9201}},
		Thresholds: sockstat.DefaultThresholds()})
	got := runSockets(t, s)
	for _, k := range []string{
		"logdoctor_tcp_target_sockets,alias=es,shipper=fluentd,state=ESTABLISHED,target=es",
		"logdoctor_tcp_target_sockets,alias=es2,shipper=fluentd,state=ESTABLISHED,target=127.0.0.9:9201",
		"logdoctor_finding,id=tcp.no_connection,severity=warning,shipper=fluentd,target=es",
	} {
		v, ok := got[k]
		if !ok {
			t.Errorf("no %s", k)
		} else if v != 0 && k[:16] != "logdoctor_findin" {
			t.Errorf("%s = %v, want 0", k, v)
		}
	}
	// Only the configured peers are exported per peer.
	for k := range got {
		if len(k) > 21 && k[:21] == "logdoctor_tcp_sockets" {
			t.Errorf("a socket series for a peer not configured: %s", k)
		}
	}
}

// TestSocketsRetransmitCounter: the counter starts at the first run's
// baseline, adds each connection's growth, counts a new connection from
// zero, keeps what a closed connection contributed, and never falls.
func TestSocketsRetransmitCounter(t *testing.T) {
	conn := func(local string, inode uint64, total uint32) sockstat.Socket {
		s := sock(local, "127.0.0.5:9200", sockstat.Established, inode)
		s.TCP = &sockstat.TCPInfo{TotalRetrans: total}
		return s
	}
	var table []sockstat.Socket
	s := NewSockets(SocketsConfig{Read: func() ([]sockstat.Socket, error) { return table, nil }})
	e := New(Options{})
	e.Add(s, Schedule{Interval: time.Second})
	counter := func() (float64, bool) {
		e.RunOnce(context.Background())
		return value(gather(t, e), "logdoctor_tcp_retransmits_total", map[string]string{"peer": "127.0.0.5:9200", "alias": "es"})
	}
	steps := []struct {
		table []sockstat.Socket
		want  float64
	}{
		{[]sockstat.Socket{conn("127.0.0.1:40001", 1, 5), conn("127.0.0.1:40002", 2, 0)}, 0}, // baseline
		{[]sockstat.Socket{conn("127.0.0.1:40001", 1, 8), conn("127.0.0.1:40002", 2, 1)}, 4}, // +3 +1
		{[]sockstat.Socket{conn("127.0.0.1:40002", 2, 1), conn("127.0.0.1:40003", 3, 2)}, 6}, // 40001 gone, new +2
		{[]sockstat.Socket{conn("127.0.0.1:40003", 4, 1)}, 7},                                // same 4-tuple, new inode: new connection
	}
	for i, st := range steps {
		table = st.table
		got, ok := counter()
		if !ok || got != st.want {
			t.Fatalf("step %d: retransmits_total = %v (found %v), want %v", i, got, ok, st.want)
		}
	}
	table = nil
	if _, ok := counter(); ok {
		t.Error("the counter of a peer without connections is still served")
	}
}

// promRegistry registers e alone, for the exposition tests.
func promRegistry(e *Engine) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	return reg
}

// TestSocketsTargetNonStandardPort: an Elasticsearch output on a port no
// alias names (a managed cluster's 443; here a free port) in the
// shipper's own network namespace, as the shipper's configuration gives
// it: its target series is alias="es", which LogdoctorCloseWaitToESGrowing
// keys on, and counts the shipper's end of each connection only, not the
// server's end or its listener. logdoctor_tcp_sockets knows the port by no
// alias.
func TestSocketsTargetNonStandardPort(t *testing.T) {
	testenv.RequireLinux(t)
	cw := sockettest.CloseWait(t, "127.74.0.1", "127.74.0.2", 3)
	es := cw.Server.String()
	conf := fmt.Sprintf("<match **>\n  @type elasticsearch\n  host %s\n  port %d\n</match>\n", cw.Server.Addr(), cw.Server.Port())
	c, err := shipconf.Parse("fluent.conf", []byte(conf), shipconf.Options{Format: shipconf.FormatFluentd})
	if err != nil {
		t.Fatal(err)
	}
	specs, skipped := doctor.PeerSpecs(context.Background(), doctor.FindEndpoints(c), nil)
	if len(specs) != 1 || len(skipped) != 0 {
		t.Fatalf("peers %+v, skipped %v", specs, skipped)
	}
	read := func() ([]sockstat.Socket, error) {
		socks, _, err := sockstat.ReadTCP("/proc/self")
		return socks, err
	}
	got := runSockets(t, NewSockets(SocketsConfig{Shipper: "fluentd", Read: read, Peers: specs, Thresholds: sockstat.DefaultThresholds()}))
	target := func(state string) float64 {
		return got["logdoctor_tcp_target_sockets,alias=es,shipper=fluentd,state="+state+",target="+es]
	}
	if target("CLOSE_WAIT") != 3 || target("FIN_WAIT2") != 0 || target("LISTEN") != 0 {
		t.Errorf("target %s: CLOSE_WAIT %v, FIN_WAIT2 %v, LISTEN %v; want the shipper's 3 CLOSE_WAIT only", es, target("CLOSE_WAIT"), target("FIN_WAIT2"), target("LISTEN"))
	}
	if v := got["logdoctor_tcp_sockets,alias=,peer="+es+",shipper=fluentd,state=CLOSE_WAIT"]; v != 3 {
		t.Errorf("logdoctor_tcp_sockets to %s: %v CLOSE_WAIT, want 3 (with no alias for the port)", es, v)
	}
}
