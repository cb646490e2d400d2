// Package forwardserve is the receiver behind `logdoctor forward serve`: a
// forward server that counts events per tag and can misbehave on purpose
// (withhold, delay or corrupt acks, close connections unacked, or accept
// and never read), so a real sender's delivery failures can be reproduced
// and the forward probe's own verdicts tested against a known peer.
package forwardserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/inflight"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// Ack policy kinds.
const (
	AckAlways   = "always"
	AckNever    = "never"
	AckWrong    = "wrong"
	AckDelay    = "delay"
	AckDropRate = "drop-rate"
)

// AckPolicy is what the receiver does with a request that asks for an ack.
type AckPolicy struct {
	Kind  string        // AckAlways, AckNever, AckWrong, AckDelay or AckDropRate
	Delay time.Duration // AckDelay: how long to wait before acking
	Rate  float64       // AckDropRate: the probability of withholding an ack
}

// ParseAckPolicy reads always, never, wrong, delay=DURATION or drop-rate=P;
// its errors name the --ack flag, the one place the text comes from.
func ParseAckPolicy(s string) (AckPolicy, error) {
	k, v, hasV := strings.Cut(s, "=")
	switch {
	case !hasV && (k == AckAlways || k == AckNever || k == AckWrong):
		return AckPolicy{Kind: k}, nil
	case hasV && k == AckDelay:
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return AckPolicy{}, fmt.Errorf("--ack delay=%s: want a duration like 2s", v)
		}
		return AckPolicy{Kind: k, Delay: d}, nil
	case hasV && k == AckDropRate:
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p < 0 || p > 1 {
			return AckPolicy{}, fmt.Errorf("--ack drop-rate=%s: want a probability from 0 to 1", v)
		}
		return AckPolicy{Kind: k, Rate: p}, nil
	}
	return AckPolicy{}, fmt.Errorf("--ack %q: want always, never, wrong, delay=DURATION or drop-rate=P", s)
}

// Options configure Run.
type Options struct {
	Listen     string    // TCP address, and UDP for heartbeats
	Ack        AckPolicy // what to do with ack requests
	AckText    string    // the policy as the user wrote it, for the report
	CloseAfter int       // close each connection, unacked, on its Nth request (0: never)
	Blackhole  bool      // accept connections and never read them

	SharedKey string
	Users     map[string]string
	TLSConfig *tls.Config
	Hostname  string // self hostname sent in PONG

	Duration        time.Duration // stop after this long (0: when ctx is done)
	Heartbeat       bool          // answer UDP heartbeats on the same port
	MaxRequestBytes int64
	// MaxDecompressedBytes caps a CompressedPackedForward request after
	// gunzip (0: forward's default).
	MaxDecompressedBytes int64
	// Budget bounds the memory of requests being read and decoded across
	// all connections (nil: no bound).
	Budget              *inflight.Budget
	ReadTimeout         time.Duration
	IdleTimeout         time.Duration
	FirstRequestTimeout time.Duration
	MaxConns            int

	Logger *slog.Logger
	// Now is the clock; it also seeds drop-rate's random source, so a
	// fixed clock gives a reproducible sequence of dropped acks.
	Now func() time.Time
	// OnListen, if set, is told the bound address once the receiver
	// accepts connections.
	OnListen func(net.Addr)
}

// TagCount is the tally of one tag.
type TagCount struct {
	Tag      string `json:"tag"`
	Events   int64  `json:"events"`
	Requests int64  `json:"requests"`
	Bytes    int64  `json:"bytes"`
}

// Result is the report of a run.
type Result struct {
	Listen       string           `json:"listen"`
	Ack          string           `json:"ack"`
	CloseAfter   int              `json:"close_after,omitempty"`
	Blackhole    bool             `json:"blackhole,omitempty"`
	Seconds      float64          `json:"seconds"`
	Stats        forward.Stats    `json:"stats"`
	Tags         []TagCount       `json:"tags"`
	Modes        map[string]int64 `json:"modes"`
	JSONReqs     int64            `json:"json_requests"`
	AcksWithheld int64            `json:"acks_withheld"`
	ClosedByRule int64            `json:"closed_by_close_after"`
	Blackholed   int64            `json:"blackholed_connections,omitempty"`
	// InFlight is the memory budget's account (Options.Budget).
	InFlight *inflight.Stats `json:"in_flight,omitempty"`
}

// Sections renders the result as tables (report.Tabular).
func (d *Result) Sections() []report.Section {
	s := report.Section{Title: fmt.Sprintf("forward serve on %s for %.1fs (ack %s)", d.Listen, d.Seconds, d.Ack), Header: []string{"TAG", "EVENTS", "REQUESTS", "BYTES"}}
	for _, t := range d.Tags {
		s.Rows = append(s.Rows, []string{t.Tag, strconv.FormatInt(t.Events, 10), strconv.FormatInt(t.Requests, 10), strconv.FormatInt(t.Bytes, 10)})
	}
	st := d.Stats
	lines := []string{fmt.Sprintf("connections %d (refused %d, closed on error %d, auth failed %d, replaced at --max-conns %d, no request in time %d, closed for broken values %d); requests %d, events %d, acks sent %d, acks withheld %d, closed by --close-after %d, non-requests dropped %d",
		st.Accepted, st.Refused, st.Errors, st.AuthFailed, st.Evicted, st.NoFirstRequest, st.ClosedBroken, st.Requests, st.Events, st.Acks, d.AcksWithheld, d.ClosedByRule, st.Dropped)}
	if st.TLSFailed+st.BadRequests+st.UnknownCompression > 0 {
		lines = append(lines, fmt.Sprintf("closed on error: TLS handshake failed %d, bad requests %d, unknown compression %d",
			st.TLSFailed, st.BadRequests, st.UnknownCompression))
	}
	if b := d.InFlight; b != nil {
		lines = append(lines, fmt.Sprintf("in-flight memory: peak %d of %d bytes; requests waited %d times, refused %d (larger than the budget) and %d (to break a wait cycle)",
			b.Peak, b.Limit, b.Waits, b.Refused, b.Preempted))
	}
	if d.Blackhole {
		lines = append(lines, fmt.Sprintf("blackhole: %d connection(s) accepted and never read", d.Blackholed))
	}
	return []report.Section{s, {Lines: lines}}
}

// counter is the receiver's forward.Handler and tally.
type counter struct {
	mu         sync.Mutex
	policy     AckPolicy
	closeAfter int
	rng        *rand.Rand
	tags       map[string]*TagCount
	modes      map[string]int64
	withheld   int64
	closed     int64
	json       int64
}

// ErrAckWithheld is what the handler returns for a request whose ack the
// policy withholds: the server then sends none.
var ErrAckWithheld = errors.New("ack withheld on purpose (--ack)")

func (c *counter) HandleForward(ctx context.Context, _ net.Addr, req *forward.Request) error {
	c.mu.Lock()
	t := c.tags[req.Tag]
	if t == nil {
		t = &TagCount{Tag: req.Tag}
		c.tags[req.Tag] = t
	}
	t.Events += int64(len(req.Entries))
	t.Requests++
	t.Bytes += int64(req.Bytes)
	c.modes[req.Mode.String()]++
	if req.JSON {
		c.json++
	}
	if c.closeAfter > 0 && req.Seq >= c.closeAfter {
		c.closed++
		c.mu.Unlock()
		return fmt.Errorf("--close-after %d: %w", c.closeAfter, forward.ErrCloseConnection)
	}
	drop := c.policy.Kind == AckNever || c.policy.Kind == AckDropRate && c.rng.Float64() < c.policy.Rate
	if drop && req.Chunk != "" {
		c.withheld++
	}
	c.mu.Unlock()
	if drop {
		return ErrAckWithheld
	}
	if c.policy.Kind == AckDelay {
		t := time.NewTimer(c.policy.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Run listens, serves until ctx is done or Duration passes, and returns
// the tally.
func Run(ctx context.Context, o Options) (*Result, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.Ack.Kind == "" {
		o.Ack.Kind = AckAlways
	}
	if o.AckText == "" {
		o.AckText = o.Ack.Kind
	}
	started := now()
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	data := &Result{Listen: ln.Addr().String(), Ack: o.AckText, CloseAfter: o.CloseAfter, Blackhole: o.Blackhole, Modes: map[string]int64{}, Tags: []TagCount{}}
	if o.Blackhole {
		if o.OnListen != nil {
			o.OnListen(ln.Addr())
		}
		data.Blackholed = blackhole(ctx, ln)
		data.Seconds = now().Sub(started).Seconds()
		return data, nil
	}
	counts := &counter{policy: o.Ack, closeAfter: o.CloseAfter, rng: rand.New(rand.NewPCG(uint64(started.UnixNano()), 1)),
		tags: map[string]*TagCount{}, modes: map[string]int64{}}
	srv := &forward.Server{Handler: counts, SharedKey: o.SharedKey, Users: o.Users, TLSConfig: o.TLSConfig, Hostname: o.Hostname,
		Logger: logger, Limits: forward.Limits{MaxRequestBytes: o.MaxRequestBytes, MaxDecompressedBytes: o.MaxDecompressedBytes}, Budget: o.Budget,
		ReadTimeout: o.ReadTimeout, IdleTimeout: o.IdleTimeout, FirstRequestTimeout: o.FirstRequestTimeout, MaxConns: o.MaxConns}
	if o.Ack.Kind == AckWrong {
		srv.AckFor = func(req *forward.Request) string { return "logdoctor-wrong-" + req.Chunk }
	}
	var wg sync.WaitGroup
	if o.Heartbeat {
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen UDP for heartbeats: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ServeHeartbeat(ctx, pc); err != nil {
				logger.Warn("heartbeat", "err", err)
			}
		}()
	}
	if o.OnListen != nil {
		o.OnListen(ln.Addr())
	}
	err = srv.Serve(ctx, ln)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	counts.mu.Lock()
	for _, t := range counts.tags {
		data.Tags = append(data.Tags, *t)
	}
	sort.Slice(data.Tags, func(i, j int) bool { return data.Tags[i].Tag < data.Tags[j].Tag })
	data.Modes, data.JSONReqs, data.AcksWithheld, data.ClosedByRule = counts.modes, counts.json, counts.withheld, counts.closed
	counts.mu.Unlock()
	data.Stats = srv.Stats()
	if o.Budget != nil {
		st := o.Budget.Stats()
		data.InFlight = &st
	}
	data.Seconds = now().Sub(started).Seconds()
	return data, nil
}

// blackhole accepts connections and never reads them, until ctx is done:
// a receiver that looks healthy to TCP while nothing is delivered, which
// is how logs get lost without errors (docs/troubleshooting.md, "Logs lost
// without errors"). It returns how many connections it swallowed.
func blackhole(ctx context.Context, ln net.Listener) int64 {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return int64(len(conns))
		}
		conns = append(conns, c)
	}
}
