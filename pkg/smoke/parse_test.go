package smoke

import (
	"strings"
	"testing"
	"time"
)

func TestParseCounts(t *testing.T) {
	raw := `{"took":1,"hits":{"total":{"value":9,"relation":"eq"},"hits":[]},"aggregations":{"seq":{
	 "doc_count_error_upper_bound":0,"sum_other_doc_count":0,"buckets":[
	 {"key":0,"doc_count":1},{"key":7,"doc_count":2},{"key":"3","doc_count":1},{"key":2.0,"doc_count":1},
	 {"key":-1,"doc_count":1},{"key":1e30,"doc_count":1},{"key":"oops","doc_count":1}]}}}`
	c, err := parseCounts([]byte(raw), 8)
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 9 || c.Copies[0] != 1 || c.Copies[7] != 2 || c.Copies[3] != 1 || c.Copies[2] != 1 || c.Unattributed != 4 || c.Inexact {
		t.Fatalf("counts = %+v", c)
	}
	// Elasticsearch 6 shape, buckets cut off, a lower bound.
	c, err = parseCounts([]byte(`{"hits":{"total":5},"aggregations":{"seq":{"sum_other_doc_count":2,"buckets":[{"key":1,"doc_count":3}]}}}`), 2)
	if err != nil || c.Total != 5 || c.Copies[1] != 3 || c.Unattributed != 2 || !c.Inexact {
		t.Fatalf("cut: %+v %v", c, err)
	}
	c, err = parseCounts([]byte(`{"hits":{"total":{"value":10000,"relation":"gte"}}}`), 2)
	if err != nil || !c.Inexact || c.Unattributed != 10000 {
		t.Fatalf("gte: %+v %v", c, err)
	}
	for _, bad := range []string{`<html>`, `{"hits":{"total":"x"}}`, `{"hits":{"total":-1}}`} {
		if _, err := parseCounts([]byte(bad), 2); err == nil {
			t.Fatalf("parseCounts accepted %s", bad)
		}
	}
}

func FuzzParseCounts(f *testing.F) {
	f.Add([]byte(`{"hits":{"total":{"value":2}},"aggregations":{"seq":{"buckets":[{"key":1,"doc_count":2}]}}}`))
	f.Add([]byte(`{"hits":{"total":3},"aggregations":{"seq":{"sum_other_doc_count":1,"buckets":[{"key":"0","doc_count":-4}]}}}`))
	f.Add([]byte(`{"hits":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCounts(b, 10)
		if err != nil {
			return
		}
		attributed := 0
		for _, n := range c.Copies {
			if n < 0 {
				t.Fatalf("negative copies in %+v", c)
			}
			attributed += n
		}
		if len(c.Copies) != 10 || c.Total < 0 || c.Unattributed < 0 || c.Unattributed > c.Total {
			t.Fatalf("counts %+v", c)
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
	observe(Counts{Copies: []int{1, 2, 0, 1, 0}, Total: 5}, c, base.Add(time.Second))
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
	observe(Counts{Copies: []int{0, 1, 0, 0, 0}, Total: 1}, c, base.Add(2*time.Second))
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
