package essim

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

// rsyslog runs Debian's rsyslogd with omelasticsearch shipping every line
// received on an imtcp port to the essim at esURL, and returns the port
// and the path of omelasticsearch's errorfile. extra is appended to the
// action; a "bulkid" template (the "event N" part of the message, unique
// per event in these tests) is there for dynbulkid.
func rsyslog(t *testing.T, esURL, extra string) (port int, errorFile string) {
	t.Helper()
	testenv.RequireFiles(t, "/usr/sbin/rsyslogd", "/usr/lib/x86_64-linux-gnu/rsyslog/omelasticsearch.so")
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, esPort, _ := net.SplitHostPort(strings.TrimPrefix(esURL, "http://"))
	errorFile = filepath.Join(dir, "errors.json")
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imtcp")
input(type="imtcp" port="%d" address="127.0.0.1")
module(load="omelasticsearch")
template(name="bulkid" type="string" string="%%msg:R,ERE,0,DFLT:event [0-9]+--end%%")
template(name="doc" type="list" option.json="on") {
  constant(value="{\"message\":\"") property(name="msg")
  constant(value="\",\"host\":\"") property(name="hostname")
  constant(value="\"}")
}
action(type="omelasticsearch" server="127.0.0.1" serverport="%s" searchIndex="rsyslog" template="doc"
       bulkmode="on" errorfile=%q queue.type="linkedlist" queue.dequeuebatchsize="50" %s)
`, dir, port, esPort, errorFile, extra)
	cf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/sbin/rsyslogd", "-n", "-f", cf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return port, errorFile
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("rsyslogd did not listen on %d:\n%s", port, out.String())
	return 0, ""
}

// sendSyslog writes n RFC 3164 lines to the imtcp port in one write, so
// imtcp reads them in one go and rsyslog's queue hands them to
// omelasticsearch as one batch. (Written line by line, rsyslog now and
// then dequeued "event 0" alone, and with a late cluster it retried that
// one-event batch for the whole test while the rest waited behind it.)
func sendSyslog(t *testing.T, port, n int) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "<13>Nov 21 18:00:00 web1 app: event %d\n", i)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(cond func() bool) bool {
	for i := 0; i < 200; i++ {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// TestRsyslogOmelasticsearch ships with a real shipper, rsyslog's
// omelasticsearch: its default bulk action lines carry a _type, which
// Elasticsearch 8 refuses for the whole request (everything lands in the
// errorfile) while 7.17 accepts; esVersion.major="8" fixes it; and with
// bulk items rejected (429) rsyslog without retryfailures loses exactly
// the rejected items to its errorfile.
func TestRsyslogOmelasticsearch(t *testing.T) {
	const n = 20
	t.Run("8 refuses _type", func(t *testing.T) {
		s := start(t, Config{})
		port, errFile := rsyslog(t, s.URL(), "")
		sendSyslog(t, port, n)
		if !waitFor(func() bool {
			b, _ := os.ReadFile(errFile)
			return strings.Contains(string(b), "unknown parameter [_type]")
		}) {
			t.Fatalf("errorfile lacks the _type refusal; stats %+v", s.Stats())
		}
		if s.Count("rsyslog") != 0 {
			t.Fatalf("stored %d", s.Count("rsyslog"))
		}
	})
	t.Run("7.17 accepts _type", func(t *testing.T) {
		s := start(t, Config{Version: "7.17.9"})
		port, _ := rsyslog(t, s.URL(), "")
		sendSyslog(t, port, n)
		if !waitFor(func() bool { return s.Count("rsyslog") == n }) {
			t.Fatalf("stored %d of %d", s.Count("rsyslog"), n)
		}
	})
	t.Run("esVersion.major 8", func(t *testing.T) {
		s := start(t, Config{})
		port, _ := rsyslog(t, s.URL(), `esVersion.major="8"`)
		sendSyslog(t, port, n)
		if !waitFor(func() bool { return s.Count("rsyslog") == n }) {
			t.Fatalf("stored %d of %d", s.Count("rsyslog"), n)
		}
		src, _ := s.Doc("rsyslog", s.firstID("rsyslog"))
		if !strings.Contains(string(src), `"host":"web1"`) {
			t.Fatalf("document %s", src)
		}
	})
	t.Run("rejected items are lost", func(t *testing.T) {
		s := start(t, Config{Faults: Faults{RejectRate: 0.5, Seed: 7}})
		port, errFile := rsyslog(t, s.URL(), `esVersion.major="8"`)
		sendSyslog(t, port, n)
		if !waitFor(func() bool { return s.Stats().BulkItems == n }) {
			t.Fatalf("essim saw %d of %d items", s.Stats().BulkItems, n)
		}
		st := s.Stats()
		if st.Rejected == 0 || int64(s.Count("rsyslog"))+st.Rejected != n {
			t.Fatalf("stored %d + rejected %d != %d", s.Count("rsyslog"), st.Rejected, n)
		}
		// Nothing comes back: without retryfailures the errorfile is the
		// only trace of the rejected events.
		time.Sleep(500 * time.Millisecond)
		b, _ := os.ReadFile(errFile)
		if s.Stats().BulkItems != n || !strings.Contains(string(b), "es_rejected_execution_exception") {
			t.Fatalf("items %d, errorfile %q", s.Stats().BulkItems, b)
		}
	})
}

// ids lists the _ids of index's live documents.
func (s *Server) ids(index string) []string {
	s.store.RLock()
	defer s.store.RUnlock()
	var out []string
	if ix := s.store.LookupLocked(index); ix != nil {
		for p := range int32(ix.Len()) {
			if d := ix.At(p); !d.Deleted() {
				id, _, err := s.store.DocLocked(d)
				if err != nil {
					panic(err) // tests only
				}
				out = append(out, id)
			}
		}
	}
	return out
}

// firstID is the _id of the oldest live document in index ("" if none);
// tests use it to look at a document whose id essim generated.
func (s *Server) firstID(index string) string {
	if ids := s.ids(index); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// TestRsyslogIndexLateDuplicates is duplicates in Elasticsearch
// (docs/troubleshooting.md) with rsyslog: indexTimeout
// shorter than the cluster's answer makes rsyslog resend a batch the
// cluster already stored. Without an id that is a second copy; with
// bulkid + writeoperation create the resend gets 409s and nothing doubles.
func TestRsyslogIndexLateDuplicates(t *testing.T) {
	const n = 10
	// rsyslog retries a timed-out batch over and over while the rest of
	// the queue waits behind it, so the test needs all n events in the
	// first batch: without the minimum its worker now and then took
	// "event 0" alone (stored 1, 20 conflicts after 10 s).
	const late = `esVersion.major="8" indexTimeout="500" action.resumeRetryCount="2" action.resumeInterval="1" ` +
		`queue.minDequeueBatchSize="10" queue.minDequeueBatchSize.timeout="3000"`
	for _, tc := range []struct {
		name, extra string
		dup         bool
	}{
		{"no id", late, true},
		{"bulkid create", late + ` template="doc" bulkid="bulkid" dynbulkid="on" writeoperation="create"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, Config{Faults: Faults{IndexLate: true, LateBy: 2 * time.Second}})
			port, errFile := rsyslog(t, s.URL(), tc.extra)
			sendSyslog(t, port, n)
			// A failure once showed every event under one _id, which
			// only rsyslog's bulkid template can cause; keep what is
			// needed to tell why if it happens again.
			defer func() {
				if t.Failed() {
					b, _ := os.ReadFile(errFile)
					t.Logf("ids stored: %q\nrsyslog errorfile: %s", s.ids("rsyslog"), b)
				}
			}()
			// Wait until every event was resent at least once: without ids
			// that is a second copy of each; with bulkid and create, all
			// n stored and at least n 409s. (Counting bulk items alone
			// was not enough: rsyslog resent its first batch twice before
			// the last events arrived, 8 stored and 16 conflicts.)
			resent := func() bool {
				if tc.dup {
					return s.Count("rsyslog") >= 2*n
				}
				return s.Count("rsyslog") >= n && s.Stats().Conflicts >= n
			}
			if !waitFor(resent) {
				t.Fatalf("no resend of every event: stored %d, %+v", s.Count("rsyslog"), s.Stats())
			}
			got := s.Count("rsyslog")
			if tc.dup && got < 2*n {
				t.Fatalf("stored %d, want at least %d (a copy per resend) %+v", got, 2*n, s.Stats())
			}
			if !tc.dup && (got != n || s.Stats().Conflicts < n) {
				t.Fatalf("stored %d (want %d), conflicts %d", got, n, s.Stats().Conflicts)
			}
		})
	}
}

// firstID is the _id of the oldest live document in index ("" if none);
// tests use it to look at a document whose id essim generated.
