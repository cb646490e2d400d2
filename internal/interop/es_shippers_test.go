package interop

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
)

// The Elasticsearch outputs of both shippers into `es serve`: one shipper
// process per kind (Fluentd takes seconds to start) with a forward input
// and one ES output per scenario, routed by tag to an es serve of its
// own, so the scenarios run side by side with their own faults. Canaries
// go in through smoke --forward, and what smoke and es dups say is
// compared with the test's own count of the index.
//
// The shippers' flush and retry intervals are shortened (1 s flush,
// retries after 1-2 s, a 2 s request timeout under late answers) so a
// scenario takes seconds; Fluent Bit's late-answer scenarios keep its
// default scheduler (a first retry 5-10 s later), which smoke's default
// --settle must outwait.

// route sends one tag to one es serve.
type route struct {
	Tag    string
	ESPort string
	Extra  string // more output parameters, one per line
}

func esPort(t *testing.T, esURL string) string {
	t.Helper()
	u, err := url.Parse(esURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

const fluentdESOutputs = `
<system>
  workers 1
</system>
<source>
  @type forward
  bind 127.0.0.1
  port {{.Port}}
</source>
<filter genid.**>
  @type elasticsearch_genid
  hash_id_key _hash
</filter>
{{- range .Routes}}
<match {{.Tag}}>
  @type elasticsearch
  host 127.0.0.1
  port {{.ESPort}}
  index_name fluentd-smoke
  request_timeout 2s
{{.Extra}}
  <buffer>
    flush_interval 1s
    retry_wait 1s
    retry_max_interval 2s
    # The test is over when Fluentd stops: the dead sniffed pools would
    # otherwise retry their last chunks through the shutdown.
    flush_at_shutdown false
  </buffer>
</match>
{{- end}}
`

const fluentBitESOutputs = `
[SERVICE]
    Flush     1
    Log_Level info
{{- if .FastRetry}}
    scheduler.base 1
    scheduler.cap  2
{{- end}}
[INPUT]
    Name   forward
    Listen 127.0.0.1
    Port   {{.Port}}
{{- range .Routes}}
[OUTPUT]
    Name               es
    Match              {{.Tag}}
    Host               127.0.0.1
    Port               {{.ESPort}}
    Index              fb-smoke
    Suppress_Type_Name On
    Trace_Error        On
{{.Extra}}
{{- end}}
`

// startShipperES starts a shipper with a forward input and the routes;
// it returns the forward address and the process.
func startShipperES(t *testing.T, kind shippertest.Kind, routes []route, fastRetry bool) (string, *shippertest.Process) {
	t.Helper()
	peers := shippers.Require(t)
	port := shippertest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := fluentdESOutputs
	if kind == shippertest.FluentBit {
		conf = fluentBitESOutputs
	}
	p := shippertest.Start(t, peers, shippertest.Spec{Kind: kind, Config: conf, WaitTCP: []string{addr},
		Data: map[string]any{"Port": port, "Routes": routes, "FastRetry": fastRetry}})
	return addr, p
}

func TestFluentdESOutput(t *testing.T) {
	t.Parallel()
	shippers.Require(t)
	began := time.Now()
	healthy := esServe(t)
	reject := esServe(t, "--reject-rate", "0.2", "--seed", "3")
	stall := esServe(t, "--reject-rate", "0.2", "--seed", "7")
	late := esServe(t, "--index-late", "--late-by", "3s")
	lateID := esServe(t, "--index-late", "--late-by", "3s")
	genidRemove := esServe(t, "--reject-rate", "0.2", "--seed", "5")
	genidKeep := esServe(t, "--reject-rate", "0.2", "--seed", "5")
	sniffDead := esServe(t, "--publish-address", "127.0.0.2:1")
	sniffNone := esServe(t, "--publish-address", "none")
	// The sniffing outputs skip the version check at startup: it would
	// sniff too, and hold up the whole worker while it retries.
	sniff := "  reload_connections true\n  reload_after 2\n  verify_es_version_at_startup false\n  default_elasticsearch_version 8"
	fwd, p := startShipperES(t, shippertest.Fluentd, []route{
		{Tag: "smoke.healthy", ESPort: esPort(t, healthy)},
		{Tag: "smoke.reject", ESPort: esPort(t, reject)},
		{Tag: "stall.reject", ESPort: esPort(t, stall)},
		{Tag: "smoke.late", ESPort: esPort(t, late)},
		{Tag: "genid.late", ESPort: esPort(t, lateID), Extra: "  id_key _hash\n  write_operation create"},
		{Tag: "genid.remove", ESPort: esPort(t, genidRemove), Extra: "  id_key _hash\n  write_operation create\n  remove_keys _hash"},
		{Tag: "genid.keep", ESPort: esPort(t, genidKeep), Extra: "  id_key _hash\n  write_operation create"},
		{Tag: "sniff.dead", ESPort: esPort(t, sniffDead), Extra: sniff},
		{Tag: "sniff.none", ESPort: esPort(t, sniffNone), Extra: sniff},
	}, false)
	t.Logf("Fluentd ready in %s", time.Since(began).Round(time.Millisecond))
	const index = "fluentd-*"

	concurrently(t, scenario{"healthy", func(t *testing.T) {
		smokeHealthy(t, fwd, healthy, index, "smoke.healthy")
	}}, scenario{"reject", func(t *testing.T) {
		// A 429 item makes the plugin resend the whole chunk
		// (es_rejected_execution_exception is an unrecoverable_error_type:
		// the chunk fails and is retried); without ids the accepted part
		// is indexed again. Faults end after the first rejection so the
		// resend goes through.
		s, c := smokeFaulty(t, fwd, reject, index, "smoke.reject", 300, "5s",
			func(st essimStats) bool { return st.Rejected > 0 })
		if s.Duplicated == 0 || s.Missing != 0 {
			t.Fatalf("rejected items with Fluentd: want duplicates and no loss, got %+v (index %d documents)", s, c.total)
		}
	}}, scenario{"steady rejections stall the chunk", func(t *testing.T) {
		fluentdRejectionsStall(t, fwd, p, stall, index)
	}}, scenario{"late", func(t *testing.T) {
		// The first bulk is indexed and answered after the 2 s
		// request_timeout: the plugin resends the chunk and every canary
		// is there twice.
		s, _ := smokeFaulty(t, fwd, late, index, "smoke.late", 300, "5s",
			func(st essimStats) bool { return st.BulkRequests > 0 })
		if s.Duplicated != 300 || s.Documents != 600 {
			t.Fatalf("late answers with Fluentd: want every canary twice, got %+v", s)
		}
	}}, scenario{"late with a stable id", func(t *testing.T) {
		// The same late answers with id_key _hash and create: the resend
		// is answered 409 for every document, no copy (what
		// config.es_request_timeout says with a stable id).
		s, _ := smokeFaulty(t, fwd, lateID, index, "genid.late", 300, "5s",
			func(st essimStats) bool { return st.BulkRequests > 0 })
		if st := getStats(t, lateID); s.Duplicated != 0 || s.Missing != 0 || s.Documents != 300 || st.Conflicts == 0 {
			t.Fatalf("late answers with id_key: want exactly once and 409s on the resend, got %+v, essim %+v", s, st)
		}
	}}, scenario{"genid remove_keys loses retried records", func(t *testing.T) {
		fluentdGenidRemoveKeys(t, fwd, genidRemove, genidKeep, index)
	}}, scenario{"sniffing into a dead pool", func(t *testing.T) {
		fluentdSniffMessages(t, fwd, p, sniffDead, sniffNone, index)
	}})
}

func TestFluentBitESOutput(t *testing.T) {
	t.Parallel()
	shippers.Require(t)
	healthy := esServe(t)
	reject := esServe(t, "--reject-rate", "0.2", "--seed", "3")
	late := esServe(t, "--index-late", "--late-by", "3s")
	genidLate := esServe(t, "--index-late", "--late-by", "3s")
	// Healthy and rejecting outputs retry fast; the late ones keep the
	// default scheduler (first retry 5-10 s after the failure).
	fast, pFast := startShipperES(t, shippertest.FluentBit, []route{
		{Tag: "smoke.healthy", ESPort: esPort(t, healthy)},
		{Tag: "smoke.reject", ESPort: esPort(t, reject)},
	}, true)
	slow, pSlow := startShipperES(t, shippertest.FluentBit, []route{
		{Tag: "smoke.late", ESPort: esPort(t, late), Extra: "    net.io_timeout 2"},
		{Tag: "genid.late", ESPort: esPort(t, genidLate), Extra: "    net.io_timeout 2\n    Generate_ID On"},
	}, false)
	const index = "fb-*"

	concurrently(t, scenario{"healthy", func(t *testing.T) {
		smokeHealthy(t, fast, healthy, index, "smoke.healthy")
	}}, scenario{"reject", func(t *testing.T) {
		fluentBitRejectionsAreLoss(t, fast, pFast, reject, index)
	}}, scenario{"late", func(t *testing.T) {
		// Without ids: the first bulk is indexed and answered after the
		// 2 s net.io_timeout, Fluent Bit resends it 5-10 s later, and
		// smoke's default --settle (15 s) waits for those copies (the
		// old 500 ms said exactly once).
		// Fluent Bit may cut the 200 canaries into more than one chunk,
		// each retried on its own schedule: one CI run saw 100 copies at
		// the verdict, the other chunk's resend not yet there after 15 s
		// of a stable count. So: resent canaries and none lost, while
		// smokeFaulty holds smoke's verdict to the index's own count.
		s, _ := smokeFaulty(t, slow, late, index, "smoke.late", 200, "",
			func(st essimStats) bool { return st.BulkRequests > 0 })
		if s.Duplicated == 0 || s.Missing != 0 || s.Documents != 200+s.Duplicated {
			t.Fatalf("late answers with Fluent Bit: want resent canaries and none lost, got %+v", s)
		}
	}}, scenario{"Generate_ID resend all 409", func(t *testing.T) {
		fluentBitGenerateID409(t, slow, pSlow, genidLate, index)
	}})
}

// scenario is one subtest of a shipper's test.
type scenario struct {
	name string
	fn   func(t *testing.T)
}

// concurrently runs the scenarios as subtests all at once. They wait on
// shippers and timers, not on the CPU, so they do not go through
// t.Parallel, which would run only -parallel (GOMAXPROCS, 2 here) of them
// at a time and add their waits up.
func concurrently(t *testing.T, scenarios ...scenario) {
	t.Helper()
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(sc.name, sc.fn)
		}()
	}
	wg.Wait()
}
