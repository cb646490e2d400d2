package exporter

import (
	"context"
	"io"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// benchTable is 30,000 sockets with tcp_info: ESTABLISHED connections to
// 8 services from 2,000 clients, and CLOSE_WAIT to an es peer.
func benchTable() []sockstat.Socket {
	socks := make([]sockstat.Socket, 0, 30000)
	infos := make([]sockstat.TCPInfo, 30000)
	for i := range 30000 {
		s := sock("127.0.0.1:"+strconv.Itoa(32768+i%28000), "127.77.0."+strconv.Itoa(1+i%8)+":9200", sockstat.Established, uint64(i+1))
		if i%10 == 0 {
			s.State = sockstat.CloseWait
		}
		infos[i].TotalRetrans = uint32(i % 3)
		s.TCP = &infos[i]
		socks = append(socks, s)
	}
	return socks
}

// BenchmarkSocketsCollect is one sample of a 30,000-socket table: the
// aggregation, findings and series a run builds (the table read itself is
// bench/sockets.sh's).
func BenchmarkSocketsCollect(b *testing.B) {
	table := benchTable()
	s := NewSockets(SocketsConfig{Read: func() ([]sockstat.Socket, error) { return table, nil }, Thresholds: sockstat.DefaultThresholds()})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Collect(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrape is one /metrics request once the samples are taken: what
// Prometheus waits for.
func BenchmarkScrape(b *testing.B) {
	table := benchTable()
	e := New(Options{})
	e.Add(NewSockets(SocketsConfig{Read: func() ([]sockstat.Socket, error) { return table, nil }, Thresholds: sockstat.DefaultThresholds()}), Schedule{Interval: time.Minute})
	e.Add(NewUDP(UDPConfig{Ports: []uint16{5160}}), Schedule{Interval: time.Minute})
	e.RunOnce(context.Background())
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	h := Handler(reg, nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
		_, _ = io.Copy(io.Discard, rec.Body)
	}
}
