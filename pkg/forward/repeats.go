package forward

import (
	"context"
	"log/slog"
	"time"
)

// repeats aggregates log lines by kind: the first of a kind is logged at
// once; the next ones within the interval are only counted, and logged as
// one line carrying the count (and the last one's attributes) when the
// interval has passed or at flush. One peer sending 200,000 bad values
// thus costs a few lines, not 200,000. Not safe for concurrent use.
type repeats struct {
	logger   *slog.Logger
	interval time.Duration
	kinds    map[string]*repeat
}

type repeat struct {
	level      slog.Level
	msg        string
	args       []any
	since      time.Time // start of the current interval
	suppressed int
}

func newRepeats(log *slog.Logger, interval time.Duration) *repeats {
	return &repeats{logger: log, interval: interval}
}

func (r *repeats) log(level slog.Level, kind, msg string, args ...any) {
	if !r.logger.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	k := r.kinds[kind]
	if k != nil && now.Sub(k.since) < r.interval {
		k.suppressed++
		k.level, k.msg, k.args = level, msg, args
		return
	}
	if k == nil {
		if r.kinds == nil {
			r.kinds = map[string]*repeat{}
		}
		k = &repeat{}
		r.kinds[kind] = k
	}
	r.emit(k, now)
	r.logger.Log(context.Background(), level, msg, args...)
	k.since = now
}

// emit logs the count of what was suppressed in k's interval, if any.
func (r *repeats) emit(k *repeat, now time.Time) {
	if k.suppressed == 0 {
		return
	}
	args := append(k.args[:len(k.args):len(k.args)], "repeated", k.suppressed, "over", now.Sub(k.since).Round(time.Millisecond))
	r.logger.Log(context.Background(), k.level, k.msg, args...)
	k.suppressed = 0
}

// flush logs what is still counted.
func (r *repeats) flush() {
	now := time.Now()
	for _, k := range r.kinds {
		r.emit(k, now)
	}
}
