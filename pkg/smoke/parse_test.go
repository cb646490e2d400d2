package smoke

import (
	"strings"
	"testing"
	"time"
)

func TestParseHits(t *testing.T) {
	raw := `{"took":1,"hits":{"total":{"value":4,"relation":"eq"},"hits":[
	 {"_index":"logs","_id":"a","_source":{"logdoctor_run":"abc","logdoctor_seq":0}},
	 {"_index":"logs","_id":"b","_source":{"logdoctor_run":"abc","logdoctor_seq":7}},
	 {"_index":"logs","_id":"c","_source":{"logdoctor_run":"abc","logdoctor_seq":"oops"}},
	 {"_index":"logs","_id":"d","_source":{"logdoctor_seq":1}},
	 {"_index":"logs","_id":"e","_source":{"logdoctor_run":"abc","logdoctor_seq":-1}},
	 {"_index":"logs","_id":"f","_source":{"logdoctor_run":"abc","logdoctor_seq":1e30}}]}}`
	hits, err := parseHits([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []Hit{{"abc", 0}, {"abc", 7}}
	if len(hits) != len(want) || hits[0] != want[0] || hits[1] != want[1] {
		t.Fatalf("hits = %+v, want %+v", hits, want)
	}
	if _, err := parseHits([]byte(`<html>`)); err == nil {
		t.Fatal("parseHits accepted HTML")
	}
}

func FuzzParseHits(f *testing.F) {
	f.Add([]byte(`{"hits":{"hits":[{"_source":{"logdoctor_run":"a","logdoctor_seq":1}}]}}`))
	f.Add([]byte(`{"hits":{"hits":[{"_source":null}]}}`))
	f.Add([]byte(`{"hits":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		hits, err := parseHits(b)
		if err != nil {
			return
		}
		for _, h := range hits {
			if h.Seq < 0 || h.Seq >= maxPage {
				t.Fatalf("seq %d out of range", h.Seq)
			}
		}
	})
}

func TestAccountingAndFindings(t *testing.T) {
	base := time.Unix(1000, 0)
	c := make([]canary, 5)
	for i := range c {
		c[i].sent = base
		c[i].acked = base.Add(time.Duration(i+1) * time.Millisecond)
	}
	// 0: once, 1: twice, 2: missing, 3: once, 4: never sent
	c[4] = canary{}
	observe([]Hit{{"r", 0}, {"r", 1}, {"r", 1}, {"r", 3}, {"other", 2}, {"r", 99}}, "r", c, base.Add(time.Second))
	res := &Result{RunID: "r", Sent: 4, Acked: 4, MissingIDs: []string{}, DuplicatedIDs: []string{}}
	account(c, res)
	if res.Indexed != 3 || res.Missing != 1 || res.Duplicated != 1 || res.Documents != 4 {
		t.Fatalf("accounting = %+v", res)
	}
	if res.MissingIDs[0] != "r-000002" || res.DuplicatedIDs[0] != "r-000001" {
		t.Fatalf("ids: missing %v duplicated %v", res.MissingIDs, res.DuplicatedIDs)
	}
	if res.SearchLatency.P50MS != 1000 || res.AckLatency.MaxMS != 4 {
		t.Fatalf("latency: %+v %+v", res.SearchLatency, res.AckLatency)
	}
	fs := res.Findings(time.Second)
	if len(fs) != 2 || fs[0].ID != FindingMissing || fs[1].ID != FindingDuplicated {
		t.Fatalf("findings = %+v", fs)
	}

	// A later search that misses a document seen before does not make it missing.
	observe([]Hit{{"r", 1}}, "r", c, base.Add(2*time.Second))
	if c[0].copies != 1 || c[1].copies != 1 {
		t.Fatalf("copies after a partial search: %d %d", c[0].copies, c[1].copies)
	}
}

// TestMissingRemedyFollowsTheEvidence: canaries never acked were lost on
// the forward hop, acked ones after the receiver; the remedy says only
// what the evidence shows.
func TestMissingRemedyFollowsTheEvidence(t *testing.T) {
	base := time.Unix(1000, 0)
	for _, c := range []struct {
		name         string
		acked        []bool // per missing canary
		want, absent []string
	}{
		{"none acked", []bool{false, false}, []string{"2 missing canaries were never acknowledged", "forward probe"}, []string{"acknowledged and still lost", "file buffer"}},
		{"all acked", []bool{true, true, true}, []string{"3 missing canaries were acknowledged and still lost", "file buffer", "es probe"}, []string{"never acknowledged"}},
		{"both", []bool{true, false}, []string{"1 missing canaries were never acknowledged", "1 missing canaries were acknowledged and still lost"}, nil},
	} {
		cs := make([]canary, len(c.acked))
		res := &Result{RunID: "r", Sent: len(cs), MissingIDs: []string{}, DuplicatedIDs: []string{}}
		for i, a := range c.acked {
			cs[i].sent = base
			if a {
				cs[i].acked = base.Add(time.Millisecond)
				res.Acked++
			}
		}
		account(cs, res)
		fs := res.Findings(time.Second)
		if len(fs) != 1 || fs[0].ID != FindingMissing {
			t.Fatalf("%s: findings %+v", c.name, fs)
		}
		for _, w := range c.want {
			if !strings.Contains(fs[0].Remedy, w) {
				t.Errorf("%s: remedy lacks %q: %s", c.name, w, fs[0].Remedy)
			}
		}
		for _, a := range c.absent {
			if strings.Contains(fs[0].Remedy, a) {
				t.Errorf("%s: remedy says %q against the evidence: %s", c.name, a, fs[0].Remedy)
			}
		}
	}
}

func TestMissingIDsCapped(t *testing.T) {
	c := make([]canary, 250)
	for i := range c {
		c[i].sent = time.Unix(1, 0)
	}
	res := &Result{RunID: "r", MissingIDs: []string{}, DuplicatedIDs: []string{}}
	account(c, res)
	if res.Missing != 250 || len(res.MissingIDs) != maxListedIDs {
		t.Fatalf("missing %d ids %d", res.Missing, len(res.MissingIDs))
	}
}
