// Package smoke is the end-to-end canary: numbered events sent through the
// forward protocol with acks, searched for in Elasticsearch by run id, and
// counted so that every canary is accounted for exactly once. It knows
// neither the forward client nor the pipeline: the command layer hands it a
// Sender and a Searcher.
package smoke

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/internal/stats"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// Finding ids (stable API, documented in docs/commands/smoke.md).
const (
	FindingMissing         = "smoke.missing"
	FindingDuplicated      = "smoke.duplicated"
	FindingCountIncomplete = "smoke.count_incomplete"
)

// Record fields every canary carries. The run id is lowercase hex so that
// Elasticsearch's standard analyzer keeps it one token: a term query then
// matches it on a dynamically mapped text field as well as on a keyword.
const (
	FieldRun    = "logdoctor_run"
	FieldSeq    = "logdoctor_seq"
	FieldCanary = "logdoctor_canary"
	FieldSentAt = "logdoctor_sent_at"
)

// MaxCount bounds --count: the count asks one terms aggregation bucket per
// canary, and Elasticsearch's search.max_buckets allows 65,536 (room is
// left for buckets of stray sequence numbers).
const MaxCount = 50000

// DefaultSettle is how long the document count must stay unchanged once
// every canary was seen before the verdict: longer than a shipper's first
// resend of a bulk it gave up on, so that its copies are counted.
// fluent-plugin-elasticsearch resends after request_timeout (5 s) plus
// retry_wait (1 s, randomised by up to 12.5%): about 6.2 s after the first
// copy was indexed. Fluent Bit's first retry waits scheduler.base to twice
// that (5-10 s) plus up to a second, after the failure (an error answer,
// or net.io_timeout when one is set). 15 s covers both with a margin for
// an io timeout of a few seconds.
const DefaultSettle = 15 * time.Second

// Defaults of a zero Config field (and of the command's flags).
const (
	DefaultChunkSize = 100
	DefaultTag       = "logdoctor.smoke"
	DefaultTimeout   = time.Minute
	DefaultPoll      = 100 * time.Millisecond
	// DefaultAckTimeout is how long ForwardSender waits for a chunk's ack.
	DefaultAckTimeout = 10 * time.Second
)

// maxListedIDs caps missing_ids and duplicated_ids in the report.
const maxListedIDs = 100

// Event is one canary as handed to the Sender.
type Event struct {
	Time   time.Time
	Record map[string]any
}

// Sender delivers one chunk of events with a chunk id and returns once the
// receiver acknowledged it. written reports whether the chunk reached the
// connection, so a lost ack (written, error) is told apart from a refused
// connection (not written).
type Sender interface {
	Send(ctx context.Context, tag string, events []Event) (written bool, err error)
}

// Counts is one count of a run's documents in Elasticsearch.
type Counts struct {
	Copies []int // documents per canary, by sequence number
	Total  int   // every document of the run
	// Unattributed documents of the run no canary could claim: no or a
	// bad sequence number, or in buckets the cluster cut off.
	Unattributed int
	// Inexact: the cluster said its count is a lower bound, or cut
	// buckets off (sum_other_doc_count).
	Inexact bool
}

// Searcher counts the documents of one run.
type Searcher interface {
	Count(ctx context.Context, runID string, canaries int) (Counts, error)
}

// Progress is what a waiting person is shown.
type Progress struct {
	Phase                string // "sending", "waiting"
	Sent, Acked, Indexed int
	Count                int
	Elapsed, TimeoutLeft time.Duration
}

// Config is one smoke run.
type Config struct {
	RunID     string        // generated when empty
	Count     int           // canaries to send
	ChunkSize int           // canaries per forward chunk
	Tag       string        // forward tag
	Timeout   time.Duration // bound on the wait until searchable
	Poll      time.Duration // search interval while waiting
	// Settle is how long the run's document count must stay unchanged,
	// once every canary was found, before the verdict: a shipper's
	// resend (a copy indexed after the first) restarts the window, so
	// late duplicates count. Callers use DefaultSettle unless told
	// otherwise; zero ends at the first complete count.
	Settle time.Duration
	// MaxSendFailures stops sending after this many chunks in a row were
	// not acked: an endpoint that never acks would otherwise cost one ack
	// timeout per chunk.
	MaxSendFailures int
	// Drained, when set, returns once every acked canary was answered by
	// Elasticsearch and is searchable (the embedded pipeline, flushed, and
	// the index refreshed). The first search after it is the final count,
	// missing canaries included: nothing more is coming, so neither Settle
	// nor Timeout need to pass.
	Drained  func(ctx context.Context) error
	Now      func() time.Time
	Progress func(Progress)
}

func (c *Config) defaults() error {
	if c.Count <= 0 || c.Count > MaxCount {
		return fmt.Errorf("count %d out of range 1..%d", c.Count, MaxCount)
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.Tag == "" {
		c.Tag = DefaultTag
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.Settle < 0 {
		c.Settle = 0
	}
	if c.MaxSendFailures <= 0 {
		c.MaxSendFailures = 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Progress == nil {
		c.Progress = func(Progress) {}
	}
	if c.RunID == "" {
		id, err := NewRunID()
		if err != nil {
			return err
		}
		c.RunID = id
	}
	return nil
}

// NewRunID returns 16 random lowercase hex characters.
func NewRunID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// CanaryID names canary seq of a run; these are the ids the report lists.
func CanaryID(run string, seq int) string { return fmt.Sprintf("%s-%06d", run, seq) }

// Latency holds percentiles in milliseconds.
type Latency struct {
	Samples int     `json:"samples"` // canaries measured; 0 leaves the rest unset
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
	MaxMS   float64 `json:"max_ms"`
}

// Result is the canary accounting; the command adds it to its report data.
type Result struct {
	RunID   string `json:"run_id"`
	Tag     string `json:"tag"`
	Count   int    `json:"count"`
	Sent    int    `json:"sent"`
	Acked   int    `json:"acked"`
	Indexed int    `json:"indexed"`
	Missing int    `json:"missing"`
	// MissingUnacked and MissingAcked split Missing by what the forward
	// endpoint said: never acknowledged (lost on the forward hop), or
	// acknowledged and still lost after the receiver.
	MissingUnacked int `json:"missing_unacked"`
	MissingAcked   int `json:"missing_acked"`
	Duplicated     int `json:"duplicated"`
	Documents      int `json:"documents"`
	// Unattributed documents of the run the count could not give to a
	// canary, and whether the cluster's count was inexact: either makes
	// the verdict unsure (smoke.count_incomplete).
	Unattributed  int      `json:"unattributed_documents"`
	CountInexact  bool     `json:"count_inexact,omitempty"`
	SettledMS     int64    `json:"settled_ms"` // how long the count had stayed unchanged at the verdict
	MissingIDs    []string `json:"missing_ids"`
	DuplicatedIDs []string `json:"duplicated_ids"`
	SendErrors    []string `json:"send_errors,omitempty"`
	SearchErrors  int      `json:"search_errors,omitempty"`
	AckLatency    Latency  `json:"send_to_ack"`
	SearchLatency Latency  `json:"send_to_searchable"`
	WaitedMS      int64    `json:"waited_ms"` // from the first send to the verdict
	TimedOut      bool     `json:"timed_out"`
	Interrupted   bool     `json:"interrupted,omitempty"` // stopped by a signal before the verdict
}

type canary struct {
	sent, acked, seen time.Time
	copies            int
}

// Run sends the canaries, waits until they are searchable (or Timeout
// after the last send) and counts them. Searching starts with the first
// send, so send-to-searchable is measured per canary, not from the end of
// the sending. An error means smoke could not run at all (nothing could be
// sent, or Elasticsearch never answered a search); losses are in the Result.
func Run(ctx context.Context, cfg Config, s Sender, es Searcher) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, canaries: make([]canary, cfg.Count), start: cfg.Now(),
		res: &Result{RunID: cfg.RunID, Tag: cfg.Tag, Count: cfg.Count, MissingIDs: []string{}, DuplicatedIDs: []string{}}}

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sendDone := make(chan struct{})
	pollDone := make(chan error, 1)
	go func() { pollDone <- r.wait(pctx, es, sendDone) }()

	sendErr := r.send(ctx, s)
	close(sendDone)
	if sendErr == nil && r.res.Sent == 0 && ctx.Err() != nil {
		sendErr = ctx.Err()
	}
	if sendErr == nil && r.res.Sent == 0 {
		sendErr = fmt.Errorf("no canary could be sent: %s", firstOr(r.res.SendErrors, "no chunk written"))
	}
	if sendErr != nil {
		cancel()
		<-pollDone
		return nil, sendErr
	}
	if err := <-pollDone; err != nil {
		return nil, err
	}
	account(r.canaries, r.res)
	return r.res, nil
}

// run is one smoke run's state, shared by the sender and the poller.
type run struct {
	cfg   Config
	start time.Time

	mu       sync.Mutex
	canaries []canary
	res      *Result
}

// send writes the chunks one after another, each waiting for its ack.
func (r *run) send(ctx context.Context, s Sender) error {
	cfg := r.cfg
	failures := 0
	for first := 0; first < cfg.Count && failures < cfg.MaxSendFailures; first += cfg.ChunkSize {
		if ctx.Err() != nil {
			return nil // interrupted: count what was sent
		}
		last := min(first+cfg.ChunkSize, cfg.Count)
		events := make([]Event, 0, last-first)
		sentAt := cfg.Now()
		for seq := first; seq < last; seq++ {
			events = append(events, Event{Time: sentAt, Record: map[string]any{
				"message":   fmt.Sprintf("logdoctor smoke canary %d/%d", seq+1, cfg.Count),
				FieldRun:    cfg.RunID,
				FieldSeq:    seq,
				FieldCanary: CanaryID(cfg.RunID, seq),
				FieldSentAt: sentAt.UTC().Format(time.RFC3339Nano),
			}})
		}
		written, err := s.Send(ctx, cfg.Tag, events)
		now := cfg.Now()
		r.mu.Lock()
		if written {
			for seq := first; seq < last; seq++ {
				r.canaries[seq].sent = sentAt
			}
			r.res.Sent += last - first
		}
		if err != nil {
			failures++
			if len(r.res.SendErrors) < 10 {
				r.res.SendErrors = append(r.res.SendErrors, report.Redact(err.Error()))
			}
		} else {
			failures = 0
			for seq := first; seq < last; seq++ {
				r.canaries[seq].acked = now
			}
			r.res.Acked += last - first
		}
		r.mu.Unlock()
	}
	return nil
}

// wait counts the run's documents from the first send until every sent
// canary was seen and the count then stayed unchanged for Settle (a
// shipper's resend restarts that window), or until Timeout after the last
// send. It is the only one reporting progress, so lines never interleave.
func (r *run) wait(ctx context.Context, es Searcher, sendDone <-chan struct{}) error {
	cfg := r.cfg
	var deadline, drainedAt time.Time // deadline is set once sending is done
	// lastTotal is the run's document count at the last search, changed
	// when it last moved.
	lastTotal, changed := -1, time.Time{}
	drained := make(chan struct{})
	var lastErr error
	searched := false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return r.interrupted(ctx, searched)
		case <-t.C:
		}
		if deadline.IsZero() {
			select {
			case <-sendDone:
				deadline = cfg.Now().Add(cfg.Timeout)
				if cfg.Drained != nil {
					dctx, cancel := context.WithDeadline(ctx, deadline)
					defer cancel()
					go func() {
						if cfg.Drained(dctx) == nil {
							close(drained)
						}
					}()
				}
			default:
			}
		}
		if drainedAt.IsZero() {
			select {
			case <-drained:
				drainedAt = cfg.Now() // the search below is the first to see everything
			default:
			}
		}
		counts, err := es.Count(ctx, cfg.RunID, cfg.Count)
		now := cfg.Now()
		if err != nil {
			if ctx.Err() != nil {
				return r.interrupted(ctx, searched)
			}
			if errors.Is(err, ErrAuth) {
				return err
			}
			lastErr = err
		}
		r.mu.Lock()
		if err != nil {
			r.res.SearchErrors++
		} else {
			searched = true
			observe(counts, r.canaries, now)
			// The newest count is the truth for what no canary claims.
			r.res.Unattributed, r.res.CountInexact = counts.Unattributed, counts.Inexact
			if counts.Total != lastTotal {
				lastTotal, changed = counts.Total, now
			}
		}
		seen, want := 0, 0
		for i := range r.canaries {
			if !r.canaries[i].sent.IsZero() {
				want++
			}
			if !r.canaries[i].seen.IsZero() {
				seen++
			}
		}
		p := Progress{Phase: "sending", Sent: r.res.Sent, Acked: r.res.Acked, Indexed: seen, Count: cfg.Count, Elapsed: now.Sub(r.start)}
		r.mu.Unlock()
		if !deadline.IsZero() {
			p.Phase, p.TimeoutLeft = "waiting", deadline.Sub(now)
		}
		cfg.Progress(p)
		if deadline.IsZero() {
			t.Reset(cfg.Poll)
			continue
		}
		// Once drained, nothing more can arrive (not even a late
		// duplicate): a search after the drain is the final count.
		final := err == nil && !drainedAt.IsZero()
		// Everything is there and the count stopped moving for a whole
		// retry cycle: no resend is on its way.
		settled := searched && seen >= want && !changed.IsZero() && now.Sub(changed) >= cfg.Settle
		if final || settled || !now.Before(deadline) {
			r.mu.Lock()
			r.res.WaitedMS = now.Sub(r.start).Milliseconds()
			r.res.TimedOut = !final && !settled
			if !changed.IsZero() {
				r.res.SettledMS = now.Sub(changed).Milliseconds()
			}
			r.mu.Unlock()
			break
		}
		t.Reset(min(cfg.Poll, deadline.Sub(now)))
	}
	if !searched {
		return fmt.Errorf("elasticsearch never answered a search within %s: %w", cfg.Timeout, lastErr)
	}
	return nil
}

// interrupted ends the wait early (SIGINT, SIGTERM from a cancelled CI
// job): what was counted so far is still a report, unless nothing was.
func (r *run) interrupted(ctx context.Context, searched bool) error {
	if !searched {
		return ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Interrupted = true
	r.res.WaitedMS = r.cfg.Now().Sub(r.start).Milliseconds()
	return nil
}

// observe records the copies of each canary one count found; the newest
// count is the truth for copies, the first sighting for latency.
func observe(c Counts, canaries []canary, now time.Time) {
	for i := range canaries {
		copies := 0
		if i < len(c.Copies) {
			copies = c.Copies[i]
		}
		if copies > 0 && canaries[i].seen.IsZero() {
			canaries[i].seen = now
		}
		// A search can miss a document an earlier one saw (a replica not yet
		// refreshed); never count a canary as lost once it was seen.
		canaries[i].copies = max(copies, min(canaries[i].copies, 1))
	}
}

func account(canaries []canary, res *Result) {
	var ack, searchable []time.Duration
	for i, c := range canaries {
		if !c.acked.IsZero() && !c.sent.IsZero() {
			ack = append(ack, c.acked.Sub(c.sent))
		}
		if !c.seen.IsZero() && !c.sent.IsZero() {
			searchable = append(searchable, c.seen.Sub(c.sent))
		}
		res.Documents += c.copies
		switch {
		case c.copies > 0:
			res.Indexed++
			if c.copies > 1 {
				res.Duplicated++
				if len(res.DuplicatedIDs) < maxListedIDs {
					res.DuplicatedIDs = append(res.DuplicatedIDs, CanaryID(res.RunID, i))
				}
			}
		case !c.sent.IsZero():
			res.Missing++
			if c.acked.IsZero() {
				res.MissingUnacked++
			} else {
				res.MissingAcked++
			}
			if len(res.MissingIDs) < maxListedIDs {
				res.MissingIDs = append(res.MissingIDs, CanaryID(res.RunID, i))
			}
		}
	}
	res.AckLatency = percentiles(ack)
	res.SearchLatency = percentiles(searchable)
}

// percentiles summarises d (sorted in place) with the nearest-rank
// percentiles every report uses.
func percentiles(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	at := func(q float64) float64 { return stats.MS(stats.PercentileSorted(d, q)) }
	return Latency{Samples: len(d), P50MS: at(0.50), P99MS: at(0.99), MaxMS: stats.MS(d[len(d)-1])}
}

func firstOr(s []string, d string) string {
	if len(s) > 0 {
		return s[0]
	}
	return d
}

// Findings turns the accounting into smoke.missing and smoke.duplicated.
func (r *Result) Findings(timeout time.Duration) []report.Finding {
	var out []report.Finding
	if r.Missing > 0 {
		// The remedy follows the evidence: where each missing canary was
		// last seen decides which hop lost it.
		var parts []string
		if r.MissingUnacked > 0 {
			parts = append(parts, fmt.Sprintf("%d missing canaries were never acknowledged by the forward endpoint: they were lost on "+
				"the forward hop, before or in the receiver (see the forward.* findings). A sender without `require_ack_response true` "+
				"(Fluent Bit `Require_ack_response On`) drops such chunks silently; check the receiver with `logdoctor forward probe`.",
				r.MissingUnacked))
		}
		if r.MissingAcked > 0 {
			parts = append(parts, fmt.Sprintf("%d missing canaries were acknowledged and still lost: after the receiver, between its "+
				"buffer and Elasticsearch. Use a file buffer (`<buffer> @type file`, Fluent Bit `storage.type filesystem`), keep "+
				"retrying (`retry_forever true` or a large `retry_max_times`), check the ES output's error log and dead letters, "+
				"and run `logdoctor es probe` against the same URL. If the shipper's bulk items succeeded, the cluster dropped them: "+
				"check ingest pipelines (a drop processor), aliases and `logdoctor es probe --index` (es.bulk_lost).", r.MissingAcked))
		}
		remedy := strings.Join(parts, " ")
		unacked := r.Sent - r.Acked
		if r.TimedOut {
			remedy += fmt.Sprintf(" If the path is only slow, raise --timeout (was %s).", timeout)
		}
		summary := fmt.Sprintf("%d of %d canaries sent were never searchable in Elasticsearch (waited %s)",
			r.Missing, r.Sent, time.Duration(r.WaitedMS)*time.Millisecond)
		if r.Interrupted {
			summary = fmt.Sprintf("%d of %d canaries sent were not searchable yet when smoke was interrupted (after %s)",
				r.Missing, r.Sent, time.Duration(r.WaitedMS)*time.Millisecond)
		}
		out = append(out, report.Finding{
			ID:       FindingMissing,
			Severity: report.Critical,
			Summary:  summary,
			Evidence: map[string]any{
				"run_id": r.RunID, "count": r.Count, "sent": r.Sent, "acked": r.Acked, "indexed": r.Indexed,
				"missing": r.Missing, "missing_ids": r.MissingIDs, "unacked": unacked,
				"missing_unacked": r.MissingUnacked, "missing_acked": r.MissingAcked,
			},
			Remedy: remedy,
		})
	}
	if r.Unattributed > 0 || r.CountInexact {
		out = append(out, report.Finding{
			ID:       FindingCountIncomplete,
			Severity: report.Critical,
			Summary: fmt.Sprintf("%d documents of run %s could not be counted for a canary (the cluster's count inexact: %v): "+
				"the missing and duplicated counts may be wrong", r.Unattributed, r.RunID, r.CountInexact),
			Evidence: map[string]any{"run_id": r.RunID, "unattributed_documents": r.Unattributed, "count_inexact": r.CountInexact,
				"documents": r.Documents},
			Remedy: "Something rewrites the canaries on the way (a filter or an ingest pipeline removing or renaming " +
				FieldSeq + ", a template mapping it as text), or the cluster cut the count short (search.max_buckets below --count, " +
				"a partial search): check the documents with `" + FieldRun + ":" + r.RunID + "` and lower --count.",
		})
	}
	if r.Duplicated > 0 {
		out = append(out, report.Finding{
			ID:       FindingDuplicated,
			Severity: report.Warning,
			Summary: fmt.Sprintf("%d canaries were indexed more than once (%d documents for %d canaries)",
				r.Duplicated, r.Documents, r.Indexed),
			Evidence: map[string]any{
				"run_id": r.RunID, "duplicated": r.Duplicated, "duplicated_ids": r.DuplicatedIDs, "documents": r.Documents,
			},
			Remedy: "The shipper resent a bulk request and Elasticsearch generated a new _id for each copy (\"Duplicates in Elasticsearch\", docs/troubleshooting.md). " +
				"Give every event a stable id before it is buffered (fluent-plugin-elasticsearch: `elasticsearch_genid` " +
				"filter + `id_key _hash`; Fluent Bit: `Generate_ID On`) and index with `write_operation create`, " +
				"so a replay gets 409 instead of a second copy.",
		})
	}
	return out
}
