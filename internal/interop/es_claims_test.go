package interop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/internal/shippertest"
	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/forward"
)

// What the docs and findings say about the shippers' Elasticsearch
// outputs, checked against the shippers themselves.

// fluentdGenidRemoveKeys: elasticsearch_genid + id_key _hash + create,
// with and without remove_keys _hash, against 20% rejected items. The
// plugin's error handler rebuilds each record's bulk line from the record
// after remove_keys: without _hash it has no _id and is skipped, so the
// 429 items are never seen, nothing is retried and they are lost without
// a log line. Keeping _hash, the chunk is retried until every item is in
// (409 for those already there): exactly once.
func fluentdGenidRemoveKeys(t *testing.T, fwd, removeURL, keepURL, index string) {
	removed := asyncRun(2*time.Minute, smokeArgs(fwd, removeURL, index, "genid.remove", 300, "--timeout", "15s", "--settle", "4s")...)
	kept := asyncRun(2*time.Minute, smokeArgs(fwd, keepURL, index, "genid.keep", 300, "--timeout", "40s", "--settle", "4s")...)
	for _, u := range []string{removeURL, keepURL} {
		waitFor(t, 30*time.Second, "rejections", func() bool { return getStats(t, u).Rejected > 0 })
		setFaults(t, u, `{}`)
	}

	r := removed(t)
	_, s := parseSmoke(t, r)
	st := getStats(t, removeURL)
	checkSmokeMatchesIndex(t, s, countRun(t, removeURL, index, s.RunID))
	if r.code != 3 || s.Missing == 0 || int64(s.Missing) != st.Rejected || s.Duplicated != 0 || st.BulkRequests != 1 {
		t.Errorf("remove_keys _hash: want every rejected item lost and no retry; smoke %+v, essim %+v", s, st)
	}

	r = kept(t)
	_, s = parseSmoke(t, r)
	st = getStats(t, keepURL)
	checkSmokeMatchesIndex(t, s, countRun(t, keepURL, index, s.RunID))
	if r.code != 0 || s.Indexed != 300 || s.Missing != 0 || s.Duplicated != 0 || st.Conflicts == 0 || st.Docs != 300 {
		t.Errorf("_hash kept: want exactly once with 409s on the resends; smoke %+v, essim %+v", s, st)
	}
	docMentions(t, "docs/commands/es.md", "remove_keys", "id_key _hash")
}

// fluentdRejectionsStall: under steady per-item rejections (faults that
// never end) fluent-plugin-elasticsearch 5.2.5 does not drop the 429
// items. Its error handler raises ElasticsearchRequestAbortError for
// es_rejected_execution_exception (an unrecoverable_error_types entry by
// default), send_bulk's `rescue => e` turns that into
// RecoverableRequestFailure, and Fluentd retries the whole chunk: every
// attempt indexes the accepted items again and meets new 429s, so the
// chunk never passes and what is queued behind it is never sent.
// config.es_429_dropped and docs/commands/config.md must say that.
func fluentdRejectionsStall(t *testing.T, fwd string, p *shippertest.Process, esURL, index string) {
	first := asyncRun(time.Minute, smokeArgs(fwd, esURL, index, "stall.reject", 200, "--timeout", "3s", "--settle", "1s")...)
	waitFor(t, 30*time.Second, "a first rejection", func() bool { return getStats(t, esURL).Rejected > 0 })
	second := asyncRun(time.Minute, smokeArgs(fwd, esURL, index, "stall.reject", 100, "--timeout", "3s", "--settle", "1s")...)
	waitFor(t, 40*time.Second, "four attempts", func() bool { return getStats(t, esURL).BulkRequests >= 4 })
	_, a := parseSmoke(t, first(t))
	_, b := parseSmoke(t, second(t))
	st := getStats(t, esURL)
	ca, cb := countRun(t, esURL, index, a.RunID), countRun(t, esURL, index, b.RunID)
	_, extra := ca.duplicated()
	if st.Rejected < st.BulkRequests || extra == 0 || cb.total != 0 {
		t.Errorf("steady rejections: want every attempt rejected, the first run's accepted items indexed again and nothing of the later run; "+
			"essim %+v, first run %d documents (%d distinct), later run %d documents", st, ca.total, len(ca.copies), cb.total)
	}
	// Other scenarios share the Fluentd: count this output's lines by its
	// port.
	n := 0
	for _, l := range p.LogLines("Rejected Elasticsearch due to es_rejected_execution_exception") {
		if strings.Contains(l, "RecoverableRequestFailure") && strings.Contains(l, ":port=>"+esPort(t, esURL)+",") {
			n++
		}
	}
	if n < 3 {
		t.Errorf("steady rejections: want Fluentd to log RecoverableRequestFailure for es_rejected_execution_exception on each attempt, saw %d", n)
	}
	t.Logf("steady rejections: %d bulk requests, %d items rejected, the first run's %d canaries are %d documents, the later run's %d are none",
		st.BulkRequests, st.Rejected, a.Sent, ca.total, b.Sent)
	setFaults(t, esURL, `{}`)
	docMentions(t, "docs/commands/config.md", "RecoverableRequestFailure", "the whole chunk is retried", "never passes")
}

// fluentdSniffMessages is the sniffing stall (logs stop reaching
// Elasticsearch, docs/troubleshooting.md) through real Fluentd: reload_connections
// re-sniffs _nodes/http (here after 2 requests) and replaces the pool with
// what it publishes. An unreachable address shows as "Connection refused -
// connect(2) for 127.0.0.2:1" and then, with the pool's only connection
// dead, "undefined method `host' for nil:NilClass" (a bug in
// elasticsearch-transport 7.17's error logging); no address at all as
// "Cannot get new connection from pool.". The docs must list each form, and
// es probe flags the cluster.
func fluentdSniffMessages(t *testing.T, fwd string, p *shippertest.Process, deadURL, noneURL, index string) {
	// One chunk a second per tag: each flush is one request, and the third
	// goes to the sniffed pool.
	if err := sendEvery(fwd, []string{"sniff.dead", "sniff.none"}, 5, 1100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	forms := map[string]string{
		"Connection refused - connect(2) for 127.0.0.2:1": "a sniffed address that refuses",
		"undefined method `host' for nil:NilClass":        "the pool's only connection dead",
		"Cannot get new connection from pool.":            "a sniff that published no address",
	}
	waitFor(t, 30*time.Second, "Fluentd to log every form", func() bool {
		for msg := range forms {
			if len(p.LogLines(msg)) == 0 {
				return false
			}
		}
		return true
	})
	for msg, what := range forms {
		t.Logf("Fluentd logged %q (%s) %d times", msg, what, len(p.LogLines(msg)))
	}
	docMentions(t, "docs/commands/es.md", "Connection refused - connect(2) for", "undefined method `host' for nil:NilClass",
		"Cannot get new connection from pool")
	docMentions(t, "docs/troubleshooting.md", "Connection refused - connect(2) for", "undefined method `host' for nil:NilClass",
		"Cannot get new connection from pool")
	for _, u := range []string{deadURL, noneURL} {
		r := run(t, time.Minute, "es", "probe", u, "--idle-wait", "0", "-o", "json")
		if rep := parseReport(t, r); r.code != 3 || !rep.has("es.sniff_unreachable") {
			t.Errorf("es probe %s: exit %d, findings %v", u, r.code, rep.ids())
		}
	}
}

// fluentBitRejectionsAreLoss: Fluent Bit's es output counts a bulk with
// any 200/201 item as a success, so the 429 items are dropped: not
// retried, not logged (Trace_Error On), no duplicate either. es probe's
// rejection finding must say so for Fluent Bit.
func fluentBitRejectionsAreLoss(t *testing.T, fwd string, p *shippertest.Process, esURL, index string) {
	r := run(t, 2*time.Minute, smokeArgs(fwd, esURL, index, "smoke.reject", 300, "--timeout", "12s", "--settle", "4s")...)
	rep, s := parseSmoke(t, r)
	st := getStats(t, esURL)
	c := countRun(t, esURL, index, s.RunID)
	checkSmokeMatchesIndex(t, s, c)
	if r.code != 3 || !rep.has("smoke.missing") || s.Acked != 300 || st.Rejected == 0 || int64(s.Missing) != st.Rejected ||
		s.Duplicated != 0 || st.BulkItems != 300 {
		t.Fatalf("want every rejected item lost, none resent: smoke %+v, essim %+v\n%s", s, st, r)
	}
	if lines := append(p.LogLines("[error]"), p.LogLines("[ warn]")...); len(lines) > 0 {
		t.Fatalf("Fluent Bit logged something about the rejections after all: %q", lines)
	}
	checkDupsMatchesIndex(t, esURL, index, c)

	r = run(t, time.Minute, "es", "probe", esURL, "--idle-wait", "0", "-o", "json")
	rep = parseReport(t, r)
	var summary, remedy string
	for _, f := range rep.Findings {
		if f.ID == "es.write_rejections" {
			summary, remedy = f.Summary, f.Remedy
		}
	}
	if !strings.Contains(summary, "Fluent Bit drops the rejected items") || !strings.Contains(summary, "loss, not duplicates") ||
		!strings.Contains(remedy, "for Fluent Bit rejections mean loss, not duplicates") {
		t.Fatalf("es.write_rejections must say that Fluent Bit loses rejected items: %q / %q (findings %v)", summary, remedy, rep.ids())
	}
	docMentions(t, "docs/commands/es.md", "Fluent Bit", "200/201")
}

// fluentBitGenerateID409: with Generate_ID On a bulk answered after
// net.io_timeout is resent with the same ids and answered 409 for every
// item. Fluent Bit counts that as a failure and retries it until
// Retry_Limit (1 by default: "cannot be retried", though every event is
// indexed; forever with Retry_Limit False).
func fluentBitGenerateID409(t *testing.T, fwd string, p *shippertest.Process, esURL, index string) {
	wait := asyncRun(2*time.Minute, smokeArgs(fwd, esURL, index, "genid.late", 200, "--timeout", "40s", "--settle", "4s")...)
	waitFor(t, 30*time.Second, "the first bulk", func() bool { return getStats(t, esURL).BulkRequests > 0 })
	setFaults(t, esURL, `{}`)
	r := wait(t)
	_, s := parseSmoke(t, r)
	if r.code != 0 || s.Indexed != 200 || s.Duplicated != 0 || s.Missing != 0 {
		t.Fatalf("Generate_ID On: want exactly once, got %+v\n%s", s, r)
	}
	waitFor(t, 40*time.Second, "Fluent Bit to give up on the resend answered 409", func() bool {
		return len(p.LogLines("cannot be retried")) > 0
	})
	if st := getStats(t, esURL); st.Conflicts < 200 || st.Docs != 200 {
		t.Fatalf("want the resend answered 409 for every item: essim %+v", st)
	}
	docMentions(t, "docs/commands/es.md", "Generate_ID", "409")
}

// sendEvery sends one single-event forward chunk per tag every interval,
// n times, each acked.
func sendEvery(addr string, tags []string, n int, interval time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := forward.Dial(ctx, addr, forward.ClientConfig{})
	if err != nil {
		return err
	}
	defer c.Close()
	for i := 0; i < n; i++ {
		for _, tag := range tags {
			rec, err := msgpack.Marshal(map[string]any{"message": "sniff", "n": i})
			if err != nil {
				return err
			}
			req := &forward.Request{Tag: tag, Entries: []forward.Entry{{Time: forward.NewEventTime(time.Now()), Record: rec}},
				Chunk: forward.NewChunkID(), Mode: forward.ModeForward, Size: 1}
			if err := c.Send(req, 10*time.Second); err != nil {
				return err
			}
		}
		time.Sleep(interval)
	}
	return nil
}

// docMentions fails unless the doc holds every phrase: what the shippers
// were just seen doing must be what the docs tell users.
func docMentions(t *testing.T, doc string, phrases ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range phrases {
		if !strings.Contains(string(b), ph) {
			t.Errorf("%s does not mention %q", doc, ph)
		}
	}
}
