package esout

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/essim"
	"github.com/logdoctor/logdoctor/pkg/essim/essimtest"
	"github.com/logdoctor/logdoctor/pkg/forward/forwardtest"
	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
)

type deadLog struct {
	mu      sync.Mutex
	reasons map[string]string // id -> reason
}

func (d *deadLog) add(r buffer.Record, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reasons == nil {
		d.reasons = map[string]string{}
	}
	d.reasons[r.ID] = reason
	return nil
}

func (d *deadLog) get() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for k, v := range d.reasons {
		out[k] = v
	}
	return out
}

// run delivers recs through an Output built from cfg and waits until the
// buffer is empty.
func run(t *testing.T, cfg Config, recs []buffer.Record) (*Output, *deadLog) {
	t.Helper()
	buf, err := buffer.Open(buffer.Options{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	dl := &deadLog{}
	cfg.DeadLetter = dl.add
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 5 * time.Millisecond
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	o, err := New(buf, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if err := buf.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := buf.Wait(wctx); err != nil {
		t.Fatalf("not delivered: %v; stats %+v", err, o.Stats())
	}
	return o, dl
}

func records(n int, tag string) []buffer.Record {
	recs := make([]buffer.Record, n)
	for i := range recs {
		recs[i] = buffer.Record{ID: fmt.Sprintf("%s-%d", tag, i), Tag: tag, Sec: 1763719200 + int64(i),
			Doc: []byte(fmt.Sprintf(`{"msg":"%s-%d","n":%d}`, tag, i, i))}
	}
	return recs
}

func TestItemErrorsGoToDeadLetters(t *testing.T) {
	es := essimtest.Start(t, essim.Config{})
	recs := records(50, "ok")
	long := records(3, strings.Repeat("t", 300)) // index name over 255 bytes: 400
	for i := range long {
		long[i].ID = fmt.Sprint("long-", i)
	}
	o, dl := run(t, Config{URLs: []string{es.URL()}}, append(recs, long...))
	if n := es.Count("logs-ok-*"); n != 50 {
		t.Fatalf("indexed %d", n)
	}
	got := dl.get()
	if len(got) != 3 {
		t.Fatalf("dead letters %v", got)
	}
	for _, r := range long {
		if !strings.Contains(got[r.ID], "400") || !strings.Contains(got[r.ID], "invalid_index_name_exception") {
			t.Fatalf("reason %q", got[r.ID])
		}
	}
	if st := o.Stats(); st.DeadLetters != 3 || st.Indexed != 50 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPoolDeadNode: one of two URLs is a closed port; everything goes
// through the other and the dead one is marked so.
func TestPoolDeadNode(t *testing.T) {
	es := essimtest.Start(t, essim.Config{})
	// One worker: with two, both can pick the dead node before either
	// has marked it dead, and two first tries are not a retry within the
	// backoff (a CI run saw that).
	o, _ := run(t, Config{URLs: []string{"http://127.0.0.2:1", es.URL()}, BatchCount: 10, RetryInitial: time.Millisecond,
		DeadMin: time.Minute, DeadMax: time.Minute, Workers: 1}, records(200, "pool"))
	if n := es.Count("logs-pool-*"); n != 200 {
		t.Fatalf("indexed %d", n)
	}
	alive, total := o.pool.counts()
	if alive != 1 || total != 2 {
		t.Fatalf("pool %d/%d alive", alive, total)
	}
	if st := o.Stats(); st.TransportErr != 1 {
		t.Fatalf("dead node tried %d times within its backoff", st.TransportErr)
	}
}

// TestSniff: sniffing adds published nodes that are reachable and skips
// those that are not (pod IPs seen from outside).
func TestSniff(t *testing.T) {
	es := essimtest.Start(t, essim.Config{Nodes: 3})
	o, _ := run(t, Config{URLs: []string{es.URL()}, Sniff: true}, records(20, "sniff"))
	if _, total := o.pool.counts(); total != 3 {
		t.Fatalf("pool has %d nodes after sniffing 3", total)
	}
	es.SetFaults(essim.Faults{PublishAddress: "127.0.0.2:1"})
	o, _ = run(t, Config{URLs: []string{es.URL()}, Sniff: true}, records(20, "sniff2"))
	if alive, total := o.pool.counts(); total != 1 || alive != 1 {
		t.Fatalf("unreachable sniffed nodes used: %d/%d", alive, total)
	}
	if n := es.Count("logs-sniff*"); n != 40 {
		t.Fatalf("indexed %d", n)
	}
}

// TestSniffDialsThePublishedName: for a name/ip:port publish address the
// sniffer dials the name, resolved here, as elasticsearch-transport and
// elasticsearch-py do and as es probe checks (esprobe's
// TestSniffDialsThePublishedName): never the IP behind the slash.
func TestSniffDialsThePublishedName(t *testing.T) {
	es := essimtest.Start(t, essim.Config{Nodes: 2})
	_, port, _ := net.SplitHostPort(es.Addrs()[0])
	dns := testenv.NewFakeDNS(t, map[string][]string{"es-node.test": {"127.0.0.1"}})

	// A name this host cannot resolve: the node is left out, and the log
	// names the address it tried.
	es.SetFaults(essim.Faults{PublishAddress: "es-gone.test/127.0.0.2:1"})
	var logs bytes.Buffer
	o, _ := run(t, Config{URLs: []string{es.URL()}, Sniff: true, Resolver: dns.Resolver,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, records(20, "gone"))
	if alive, total := o.pool.counts(); total != 1 || alive != 1 {
		t.Fatalf("unresolvable sniffed nodes used: %d/%d", alive, total)
	}
	if !strings.Contains(logs.String(), "http://es-gone.test:1") || dns.Asked("es-gone.test") == 0 {
		t.Fatalf("the published name was not what was tried; log:\n%s", logs.String())
	}

	// The name resolves to where the nodes listen while 127.0.0.2 has
	// nothing on that port: the sniffed node is used.
	es.SetFaults(essim.Faults{PublishAddress: "es-node.test/127.0.0.2:" + port})
	o, _ = run(t, Config{URLs: []string{es.URL()}, Sniff: true, Resolver: dns.Resolver}, records(20, "named"))
	o.pool.mu.Lock()
	var bases []string
	for _, nd := range o.pool.nodes {
		if nd.alive {
			bases = append(bases, nd.base)
		}
	}
	o.pool.mu.Unlock()
	if !slices.Contains(bases, "http://es-node.test:"+port) || len(bases) != 2 {
		t.Fatalf("alive nodes %v, want the seed and http://es-node.test:%s", bases, port)
	}
	if n := es.Count("logs-named*"); n != 20 {
		t.Fatalf("indexed %d", n)
	}
}

// TestGiveUp: with every request failing, events are given up after the
// retry timeout, dead-lettered with the reason.
func TestGiveUp(t *testing.T) {
	es := essimtest.Start(t, essim.Config{Faults: essim.Faults{FailRate: 1, FailStatus: 503}})
	o, dl := run(t, Config{URLs: []string{es.URL()}, RetryTimeout: 200 * time.Millisecond, RetryInitial: 10 * time.Millisecond,
		RetryMax: 50 * time.Millisecond}, records(10, "gone"))
	if st := o.Stats(); st.GaveUp != 10 || st.Retried == 0 {
		t.Fatalf("stats %+v", st)
	}
	for id, reason := range dl.get() {
		if !strings.Contains(reason, "gave up") || !strings.Contains(reason, "503") {
			t.Fatalf("%s: %q", id, reason)
		}
	}
}

// TestAuthGzipVersionsAndMaxContentLength: basic auth, API key, gzip
// bodies, an Elasticsearch 7 without the product header, and a small
// http.max_content_length that the batches must stay under.
func TestAuthGzipVersionsAndMaxContentLength(t *testing.T) {
	es := essimtest.Start(t, essim.Config{Version: "7.10.2",
		Username: "elastic", Password: "s3cret", APIKey: "k3y", MaxContentLength: 16 << 10})
	o, _ := run(t, Config{URLs: []string{es.URL()}, Username: "elastic", Password: "s3cret", Gzip: true}, records(300, "basic"))
	if n := es.Count("logs-basic-*"); n != 300 {
		t.Fatalf("basic auth + gzip: indexed %d", n)
	}
	if st := o.Stats(); st.MaxBatch != 16<<10 || st.Requests < 2 {
		t.Fatalf("bulk size not capped by max_content_length: %+v", st)
	}
	run(t, Config{URLs: []string{es.URL()}, APIKey: "k3y"}, records(30, "apikey"))
	if n := es.Count("logs-apikey-*"); n != 30 {
		t.Fatalf("api key: indexed %d", n)
	}
}

// TestOpenSearchAndTLS: an OpenSearch 2 (no X-Elastic-Product header)
// over HTTPS with a CA the output is given.
func TestOpenSearchAndTLS(t *testing.T) {
	certs := forwardtest.NewCerts(t)
	es := essimtest.Start(t, essim.Config{Distribution: "opensearch",
		TLS: certs.ServerTLS(false)})
	if !strings.HasPrefix(es.URL(), "https://") {
		t.Fatalf("essim URL %s", es.URL())
	}
	run(t, Config{URLs: []string{es.URL()}, TLS: &tls.Config{RootCAs: certs.CAPool}}, records(40, "os"))
	if n := es.Count("logs-os-*"); n != 40 {
		t.Fatalf("indexed %d", n)
	}
}

// TestEventOverMaxContentLength: a single event larger than the cluster's
// http.max_content_length is dead-lettered, not retried forever.
func TestEventOverMaxContentLength(t *testing.T) {
	es := essimtest.Start(t, essim.Config{MaxContentLength: 16 << 10})
	recs := records(5, "small")
	big := buffer.Record{ID: "big", Tag: "small", Sec: 1763719200, Doc: []byte(`{"msg":"` + strings.Repeat("b", 20<<10) + `"}`)}
	o, dl := run(t, Config{URLs: []string{es.URL()}}, append(recs, big))
	if n := es.Count("logs-small-*"); n != 5 {
		t.Fatalf("indexed %d", n)
	}
	if r := dl.get()["big"]; !strings.Contains(r, "413") {
		t.Fatalf("dead letters %v", dl.get())
	}
	if st := o.Stats(); st.DeadLetters != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestKeepAlive: many bulk requests reuse a few connections (no
// TIME_WAIT churn: logs stop reaching Elasticsearch, docs/troubleshooting.md).
func TestKeepAlive(t *testing.T) {
	es := essimtest.Start(t, essim.Config{})
	o, _ := run(t, Config{URLs: []string{es.URL()}, BatchCount: 5, Workers: 2}, records(300, "ka"))
	st := es.Stats()
	if o.Stats().Requests < 20 || st.OpenedConns > 4 {
		t.Fatalf("%d bulk requests over %d connections", o.Stats().Requests, st.OpenedConns)
	}
}

// TestRawRecordsPrepared: records stored as the shipper sent them are
// made into documents and ids by Prepare at delivery; one it cannot
// convert is dead-lettered with Prepare's reason, the rest indexed under
// the ids Prepare gave them.
func TestRawRecordsPrepared(t *testing.T) {
	es := essimtest.Start(t, essim.Config{})
	recs := records(20, "raw")
	for i := range recs {
		recs[i].ID, recs[i].Raw, recs[i].Doc = "", true, []byte(fmt.Sprint(i))
	}
	errBad := errors.New("record 7 is not convertible")
	cfg := Config{URLs: []string{es.URL()}, Prepare: func(dst []byte, r buffer.Record) ([]byte, string, error) {
		if string(r.Doc) == "7" {
			return dst, "", errBad
		}
		return fmt.Appendf(dst, `{"n":%s}`, r.Doc), "prepared-" + string(r.Doc), nil
	}}
	o, dl := run(t, cfg, recs)
	if n := es.Count("logs-raw-*"); n != 19 {
		t.Fatalf("indexed %d, want 19", n)
	}
	for i := range recs {
		if i == 7 {
			continue
		}
		doc, ok := es.Doc(o.index.Name("raw", recs[i].Sec), fmt.Sprint("prepared-", i))
		if !ok || string(doc) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("document %d: %q, found %v", i, doc, ok)
		}
	}
	if got := dl.get(); len(got) != 1 || got[""] != errBad.Error() {
		t.Fatalf("dead letters %v", got)
	}
}

// concurrency is a transport that holds each request a moment and keeps
// the most requests it saw in flight at once.
type concurrency struct {
	rt        http.RoundTripper
	mu        sync.Mutex
	now, most int
}

func (c *concurrency) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.now++
	c.most = max(c.most, c.now)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	time.Sleep(10 * time.Millisecond)
	return c.rt.RoundTrip(r)
}

// TestBusyPausesDelivery: while Busy says intake has the cores, no bulk
// request is made; once it stops saying so, every worker delivers and
// everything is indexed.
func TestBusyPausesDelivery(t *testing.T) {
	es := essimtest.Start(t, essim.Config{})
	var busy atomic.Bool
	busy.Store(true)
	c := &concurrency{rt: &http.Transport{}}
	var asked atomic.Int64
	const tag = "busy"
	go func() {
		// Every worker asks every BusyPoll: 20 answers take tens of ms.
		for end := time.Now().Add(5 * time.Second); asked.Load() < 20 && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
		if n := es.Count("logs-" + tag + "-*"); n != 0 {
			t.Errorf("%d documents indexed while busy", n)
		}
		busy.Store(false)
	}()
	o, _ := run(t, Config{URLs: []string{es.URL()}, BatchCount: 10, Workers: 4, Transport: c,
		Busy: func() bool { asked.Add(1); return busy.Load() }}, records(400, tag))
	if n := es.Count("logs-" + tag + "-*"); n != 400 || o.Stats().Indexed != 400 {
		t.Fatalf("%d indexed, stats %+v", n, o.Stats())
	}
	if c.most < 2 {
		t.Fatalf("up to %d bulk requests at once with 4 workers once not busy", c.most)
	}
}
