package pipeline

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
)

// BufferWriteFailures tells about buffer writes the disk failed: a
// write, its fdatasync, or creating the next segment. Each failed write
// refused every append in its group commit; nothing in them was
// acknowledged to a sender.
type BufferWriteFailures struct {
	Count    uint64 `json:"count"`     // failed writes (group commits)
	DiskFull uint64 `json:"disk_full"` // of those, for lack of space (ENOSPC, EDQUOT)
	// The last failure.
	Op    string    `json:"op"` // append, commit or rotate
	Path  string    `json:"path"`
	Error string    `json:"error"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Failing: no write succeeded since the last failure.
	Failing bool `json:"failing"`
}

// writeLogEvery is how often a failure that lasts is logged again.
const writeLogEvery = time.Minute

// corruptLogMax is how many damaged ranges are logged one by one; a disk
// that damaged thousands must not also flood the log. The report and the
// metric count them all.
const corruptLogMax = 20

// bufferEvents turns what the buffer reports into log lines, metrics and
// report data. The buffer does not log; this is where it happens.
type bufferEvents struct {
	p *Pipeline

	mu          sync.Mutex
	corrupted   int // damaged ranges reported
	fail        BufferWriteFailures
	streak      uint64 // failures since the last success
	lastLog     time.Time
	sinceLogged uint64

	mWriteErrors *prometheus.CounterVec
	mCommit      prometheus.Histogram
}

func newBufferEvents(p *Pipeline) *bufferEvents {
	e := &bufferEvents{p: p}
	e.mWriteErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_buffer_write_errors_total",
		Help: "Buffer writes that failed on the disk, by op: append (the write, and the flush of a direct write), commit (the fdatasync after a write through the page cache), rotate (creating the next segment). Their events were refused without ack.",
	}, []string{"op"})
	// From 0.1 ms (a small fdatasync on a fast SSD) to 1.6 s (a disk that
	// stalls): every ack waits at least for its commit.
	e.mCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "logdoctor_pipeline_buffer_commit_duration_seconds",
		Help:    "Group commits by duration: the write and fdatasync that every forward ack in them waited for.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15),
	})
	return e
}

// commit observes how long a durable group commit took.
func (e *bufferEvents) commit(d time.Duration) { e.mCommit.Observe(d.Seconds()) }

// corrupt logs damaged bytes the buffer found (at recovery, or in a record
// read for delivery).
func (e *bufferEvents) corrupt(c buffer.Corruption) {
	e.mu.Lock()
	e.corrupted++
	n := e.corrupted
	e.mu.Unlock()
	if n > corruptLogMax {
		if n == corruptLogMax+1 {
			e.p.log.Error("buffer corrupt: more damaged ranges; they are no longer logged one by one (see the report's pipeline.buffer_corrupt and logdoctor_pipeline_buffer_corrupt_records_total)",
				"logged", corruptLogMax)
		}
		return
	}
	args := []any{"segment", c.Segment, "from", c.From, "to", c.To, "bytes", c.Bytes,
		"records_lost", c.Records, "found", c.Found, "quarantine", c.Quarantine}
	if c.QuarantineError != "" {
		args = append(args, "quarantine_error", c.QuarantineError, "kept", "the segment file stays on disk")
	}
	e.p.log.Error("buffer corrupt: damaged bytes skipped; the records in them are lost, every intact record is delivered", args...)
}

// writeError is the buffer's OnWriteError: a failed group commit, or nil
// for the first that succeeds after failures. It logs the first failure at
// ERROR, then at most once per writeLogEvery while they last.
func (e *bufferEvents) writeError(we *buffer.WriteError) {
	now := e.p.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if we == nil {
		if e.fail.Failing {
			e.fail.Failing = false
			e.p.log.Info("buffer writes succeed again", "failed_writes", e.streak, "path", e.fail.Path)
		}
		e.streak = 0
		return
	}
	e.mWriteErrors.WithLabelValues(we.Op).Inc()
	if e.fail.Count == 0 {
		e.fail.First = now
	}
	e.fail.Count++
	if we.DiskFull() {
		e.fail.DiskFull++
	}
	e.fail.Op, e.fail.Path, e.fail.Error, e.fail.Last = we.Op, we.Path, we.Error(), now
	e.streak++
	e.sinceLogged++
	if e.fail.Failing && now.Sub(e.lastLog) < writeLogEvery {
		return
	}
	args := []any{"op", we.Op, "path", we.Path, "err", we.Error(), "disk_full", we.DiskFull()}
	if e.fail.Failing {
		args = append(args, "failed_writes", e.sinceLogged)
	}
	e.p.log.Error("buffer write failed: events are refused without ack until writes succeed", args...)
	e.fail.Failing = true
	e.lastLog = now
	e.sinceLogged = 0
}

func (e *bufferEvents) failures() *BufferWriteFailures {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail.Count == 0 {
		return nil
	}
	f := e.fail
	return &f
}
