package interop

import (
	"testing"
	"time"
)

// smokeHealthy: 500 canaries through a shipper into a healthy es serve
// with smoke's defaults (15 s settle): exit 0, each exactly once, and the
// index holds exactly 500 documents, which es dups agrees with.
func smokeHealthy(t *testing.T, fwd, esURL, index, tag string) {
	r := run(t, 2*time.Minute, smokeArgs(fwd, esURL, index, tag, 500, "--timeout", "60s")...)
	rep, s := parseSmoke(t, r)
	if r.code != 0 || len(rep.Findings) != 0 || s.Sent != 500 || s.Acked != 500 || s.Indexed != 500 || s.Missing != 0 ||
		s.Duplicated != 0 || s.Documents != 500 || s.TimedOut {
		t.Fatalf("healthy smoke: %+v, findings %v\n%s", s, rep.ids(), r)
	}
	c := countRun(t, esURL, index, s.RunID)
	if st := getStats(t, esURL); c.total != 500 || len(c.copies) != 500 || st.Docs != 500 {
		t.Fatalf("the index holds %d documents of the run (%d distinct), %d in all; want 500", c.total, len(c.copies), st.Docs)
	}
	checkSmokeMatchesIndex(t, s, c)
	checkDupsMatchesIndex(t, esURL, index, c)
	t.Logf("exactly once, verdict after %d ms (count settled for %d ms)", s.WaitedMS, s.SettledMS)
}

// smokeFaulty runs smoke through a shipper into an es serve whose faults
// end once faultHit says they did their work (so the shipper's resend goes
// through and the index stops changing), then checks that smoke's verdict
// and es dups both match the index. settle "" keeps smoke's default.
func smokeFaulty(t *testing.T, fwd, esURL, index, tag string, count int, settle string, faultHit func(essimStats) bool) (smokeResult, indexCopies) {
	t.Helper()
	args := smokeArgs(fwd, esURL, index, tag, count, "--timeout", "40s", "--fail-on", "warning")
	if settle != "" {
		args = append(args, "--settle", settle)
	}
	wait := asyncRun(2*time.Minute, args...)
	waitFor(t, 30*time.Second, "the fault to hit a bulk", func() bool { return faultHit(getStats(t, esURL)) })
	setFaults(t, esURL, `{}`)
	r := wait(t)
	rep, s := parseSmoke(t, r)
	c := countRun(t, esURL, index, s.RunID)
	checkSmokeMatchesIndex(t, s, c)
	wantCode := 0
	if s.Missing > 0 || s.Duplicated > 0 {
		wantCode = 3
	}
	if r.code != wantCode || rep.has("smoke.missing") != (s.Missing > 0) || rep.has("smoke.duplicated") != (s.Duplicated > 0) ||
		rep.has("smoke.count_incomplete") || s.TimedOut {
		t.Fatalf("smoke exit %d, findings %v for %+v\n%s", r.code, rep.ids(), s, r)
	}
	checkDupsMatchesIndex(t, esURL, index, c)
	t.Logf("%d canaries: %d documents, %d duplicated, %d missing; verdict after %d ms", count, s.Documents, s.Duplicated, s.Missing, s.WaitedMS)
	return s, c
}
