package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logdoctor/logdoctor/internal/clip"
	"github.com/logdoctor/logdoctor/pkg/inflight"
)

// Handler takes responsibility for the events of one request. Returning
// nil lets the server ack the chunk; an error withholds the ack (the
// sender's ack timeout makes it retry), and an error wrapping
// ErrCloseConnection also closes the connection. req and its Record bytes
// are valid only until HandleForward returns.
type Handler interface {
	HandleForward(ctx context.Context, peer net.Addr, req *Request) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, peer net.Addr, req *Request) error

func (f HandlerFunc) HandleForward(ctx context.Context, peer net.Addr, req *Request) error {
	return f(ctx, peer, req)
}

// Server is a forward protocol receiver (Fluentd's in_forward).
type Server struct {
	Handler Handler
	Limits  Limits
	// Budget, when set, bounds the bytes of the requests being read,
	// decoded and handled across all connections (see package inflight):
	// a request that does not fit waits, its connection unread, and one
	// larger than the whole budget is refused (connection closed, no
	// ack). Handlers take their own per-request memory with
	// Request.Reserve. Several servers may share one budget.
	Budget *inflight.Budget
	// SharedKey turns on the HELO/PING/PONG handshake; Users additionally
	// requires username/password auth.
	SharedKey string
	Users     map[string]string
	// TLSConfig, when set, wraps every accepted connection in TLS.
	TLSConfig *tls.Config
	// ReadTimeout bounds reading one request from its first byte to its
	// last: a peer trickling a request (slowloris) is closed. 0: no bound.
	// Time spent waiting for the Budget does not count.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection with no request started for this
	// long. 0 waits forever, as in_forward does: a sender that writes its
	// next chunk into a connection the server closed while it was idle
	// loses that chunk unless it waits for acks.
	IdleTimeout time.Duration
	// FirstRequestTimeout closes a connection that has not sent its first
	// complete request this long after it was accepted (0: no bound), so
	// connections that never send cannot hold slots.
	FirstRequestTimeout time.Duration
	// WriteTimeout bounds writing one ack or handshake message (default 10s).
	WriteTimeout time.Duration
	// MaxConns bounds open connections (0: unlimited). At the bound a new
	// connection is admitted by closing the one idle the longest (no
	// complete request for the longest time, or none since it was
	// accepted); it is refused only when every connection is busy
	// handling a request.
	MaxConns int
	// MaxBrokenValues closes a connection after this many values that
	// were not requests (default 100; negative: never).
	MaxBrokenValues int
	// WarnInterval aggregates repeated warnings of one kind, per
	// connection and for the accept loop: the first is logged, the next
	// ones are counted and logged as one line per interval (default 10s).
	WarnInterval time.Duration
	// Hostname is sent in PONG (default os.Hostname()).
	Hostname string
	Logger   *slog.Logger
	// AckFor, for fault injection, returns the chunk value to ack instead
	// of req.Chunk.
	AckFor func(req *Request) string

	stats serverStats
	pools pools // shared by the connections' decoders
}

type serverStats struct {
	accepted, refused, active, requests, events, acks, errors, authFailed, dropped atomic.Int64
	tlsFailed, badRequests, unknownCompression                                     atomic.Int64
	evicted, noFirstRequest, closedBroken                                          atomic.Int64

	mu     sync.Mutex // guards the examples below
	last   map[string]string
	codecs []string
}

// Stats are the server's counters since it started.
type Stats struct {
	Accepted   int64 `json:"accepted"`
	Refused    int64 `json:"refused"`
	Active     int64 `json:"active"`
	Requests   int64 `json:"requests"`
	Events     int64 `json:"events"`
	Acks       int64 `json:"acks"`
	Errors     int64 `json:"errors"`
	AuthFailed int64 `json:"auth_failed"`
	// Dropped counts well-formed values that were not requests (a bare
	// JSON object, say), logged and skipped as Fluentd does.
	Dropped int64 `json:"dropped"`
	// TLSFailed counts failed TLS handshakes (a plaintext sender on a TLS
	// port, a client certificate we do not trust); a peer that closes
	// before sending anything (a TCP health check) is not counted.
	TLSFailed int64 `json:"tls_failed"`
	// BadRequests counts connections closed on a malformed or oversized
	// request; UnknownCompression those closed on a "compressed" codec we
	// cannot read, which Codecs names (quoted, at most maxCodecs).
	BadRequests        int64    `json:"bad_requests"`
	UnknownCompression int64    `json:"unknown_compression"`
	Codecs             []string `json:"unknown_codecs,omitempty"`
	// LastErrors holds the latest error of each kind ("tls", "auth",
	// "bad_request", "unknown_compression", "in_flight_budget") with the
	// peer's address, so a report can show what a sender got wrong.
	LastErrors map[string]string `json:"last_errors,omitempty"`
	// Evicted counts connections closed at MaxConns to admit a new one.
	Evicted int64 `json:"evicted"`
	// NoFirstRequest counts connections closed by FirstRequestTimeout.
	NoFirstRequest int64 `json:"no_first_request"`
	// ClosedBroken counts connections closed after MaxBrokenValues.
	ClosedBroken int64 `json:"closed_broken"`
}

// maxCodecs bounds the distinct codec names kept for reports: a peer
// controls them.
const maxCodecs = 8

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := &s.stats
	out := Stats{Accepted: st.accepted.Load(), Refused: st.refused.Load(), Active: st.active.Load(),
		Requests: st.requests.Load(), Events: st.events.Load(), Acks: st.acks.Load(),
		Errors: st.errors.Load(), AuthFailed: st.authFailed.Load(), Dropped: st.dropped.Load(),
		TLSFailed: st.tlsFailed.Load(), BadRequests: st.badRequests.Load(), UnknownCompression: st.unknownCompression.Load(),
		Evicted: st.evicted.Load(), NoFirstRequest: st.noFirstRequest.Load(), ClosedBroken: st.closedBroken.Load()}
	st.mu.Lock()
	defer st.mu.Unlock()
	out.Codecs = append([]string(nil), st.codecs...)
	if len(st.last) > 0 {
		out.LastErrors = make(map[string]string, len(st.last))
		for k, v := range st.last {
			out.LastErrors[k] = v
		}
	}
	return out
}

// countError files the error that ended a connection under its kind.
func (s *Server) countError(peer net.Addr, err error) {
	st := &s.stats
	var kind string
	var ce *CompressionError
	switch {
	case errors.As(err, &ce):
		kind = "unknown_compression"
		st.unknownCompression.Add(1)
	case errors.Is(err, ErrTLSHandshake):
		kind = "tls"
		st.tlsFailed.Add(1)
	case errors.Is(err, ErrAuth):
		kind = "auth" // counted in handshake
	case errors.Is(err, inflight.ErrExceeded):
		// The server's memory, not the sender's mistake: the budget
		// counts these itself.
		kind = "in_flight_budget"
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLarge):
		kind = "bad_request"
		st.badRequests.Add(1)
	default:
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.last == nil {
		st.last = map[string]string{}
	}
	st.last[kind] = fmt.Sprintf("peer %s: %v", peer, err)
	if ce != nil && len(st.codecs) < maxCodecs {
		q := strconv.Quote(clip.String(ce.Codec, 32))
		if !slices.Contains(st.codecs, q) {
			st.codecs = append(st.codecs, q)
		}
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Server) hostname() string {
	if s.Hostname != "" {
		return s.Hostname
	}
	h, _ := os.Hostname()
	return h
}

func (s *Server) warnInterval() time.Duration {
	if s.WarnInterval > 0 {
		return s.WarnInterval
	}
	return 10 * time.Second
}

func (s *Server) maxBroken() int {
	if s.MaxBrokenValues == 0 {
		return 100
	}
	return s.MaxBrokenValues
}

// conn is one accepted connection as the accept loop sees it.
type conn struct {
	raw      net.Conn
	accepted time.Time
	last     atomic.Int64 // unix nanoseconds of its last complete request, or of the accept
	busy     atomic.Bool  // handling a request: not to be evicted
	evicted  atomic.Bool
}

// Serve accepts connections on ln until ctx is done, then closes ln and
// every open connection and waits for their goroutines. It returns nil
// after a cancellation, or the accept error that stopped it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("forward: Server.Handler is nil")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[*conn]struct{}{}
		warn  = newRepeats(s.logger(), s.warnInterval())
	)
	go func() {
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.raw.Close()
		}
		mu.Unlock()
	}()
	defer wg.Wait()
	defer warn.flush()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				// Out of file descriptors or similar: back off instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				warn.log(slog.LevelWarn, "accept", "forward: accept", "err", err, "retry_in", delay)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return fmt.Errorf("forward: accept: %w", err)
		}
		delay = 0
		s.stats.accepted.Add(1)
		now := time.Now()
		cs := &conn{raw: c, accepted: now}
		cs.last.Store(now.UnixNano())
		mu.Lock()
		if s.MaxConns > 0 && len(conns) >= s.MaxConns {
			victim := idlest(conns)
			if victim == nil {
				mu.Unlock()
				s.stats.refused.Add(1)
				warn.log(slog.LevelWarn, "refused", "forward: every connection busy at the connection limit, refusing", "peer", c.RemoteAddr(), "max_conns", s.MaxConns)
				c.Close()
				continue
			}
			delete(conns, victim)
			victim.evicted.Store(true)
			victim.raw.Close()
			s.stats.evicted.Add(1)
			warn.log(slog.LevelWarn, "evicted", "forward: connection limit reached, closed the connection idle the longest",
				"closed", victim.raw.RemoteAddr(), "idle", now.Sub(time.Unix(0, victim.last.Load())).Round(time.Millisecond), "admitted", c.RemoteAddr(), "max_conns", s.MaxConns)
		}
		conns[cs] = struct{}{}
		s.stats.active.Store(int64(len(conns)))
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serve(ctx, cs); err != nil {
				s.stats.errors.Add(1)
				s.countError(c.RemoteAddr(), err)
				s.logger().Warn("forward: connection closed on error", "peer", c.RemoteAddr(), "err", err)
			}
			mu.Lock()
			delete(conns, cs)
			s.stats.active.Store(int64(len(conns)))
			mu.Unlock()
		}()
	}
}

// idlest is the connection not handling a request whose last complete
// request (or accept) is the oldest; nil when all are busy.
func idlest(conns map[*conn]struct{}) *conn {
	var v *conn
	var oldest int64
	for c := range conns {
		if c.busy.Load() {
			continue
		}
		if l := c.last.Load(); v == nil || l < oldest {
			v, oldest = c, l
		}
	}
	return v
}

// ServeConn handles one connection until the peer closes it (nil error),
// a request is malformed or over the limits, or ctx is done. It closes c.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	cs := &conn{raw: c, accepted: time.Now()}
	cs.last.Store(cs.accepted.UnixNano())
	return s.serve(ctx, cs)
}

// readDeadlines keeps a connection's read deadline: the sooner of the
// phase's own (idle or request) and the first-request deadline, both
// pushed back by the time the decoder waited for the budget.
type readDeadlines struct {
	c            net.Conn
	phase, first time.Time // zero: none
}

func (d *readDeadlines) set(phase time.Time) {
	d.phase = phase
	d.apply()
}

func (d *readDeadlines) apply() {
	t := d.phase
	if !d.first.IsZero() && (t.IsZero() || d.first.Before(t)) {
		t = d.first
	}
	d.c.SetReadDeadline(t)
}

func (d *readDeadlines) extend(w time.Duration) {
	if !d.phase.IsZero() {
		d.phase = d.phase.Add(w)
	}
	if !d.first.IsZero() {
		d.first = d.first.Add(w)
	}
	d.apply()
}

// firstExpired: the first-request deadline is what ended the read.
func (d *readDeadlines) firstExpired() bool {
	return !d.first.IsZero() && !time.Now().Before(d.first)
}

func (s *Server) serve(ctx context.Context, cs *conn) error {
	c := cs.raw
	raw := c // closed from another goroutine: do not share the variable reassigned below
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	gone := func() bool { return ctx.Err() != nil || cs.evicted.Load() }
	if s.TLSConfig != nil {
		tc := tls.Server(c, s.TLSConfig)
		if err := s.withDeadline(c, s.writeTimeout(), func() error { return tc.HandshakeContext(ctx) }); err != nil {
			if errors.Is(err, io.EOF) || isReset(err) || gone() {
				return nil // a TCP health check or heartbeat: connected and closed
			}
			var rh tls.RecordHeaderError
			if errors.As(err, &rh) {
				// Not TLS at all: name what the peer sent (a forward
				// request starts with a msgpack array, 0x92-0x94).
				return fmt.Errorf("%w: the peer does not speak TLS (first bytes % x): %w", ErrTLSHandshake, rh.RecordHeader, err)
			}
			return fmt.Errorf("%w: %w", ErrTLSHandshake, err)
		}
		c = tc
	}
	peer := c.RemoteAddr()
	dl := &readDeadlines{c: c}
	if s.FirstRequestTimeout > 0 {
		dl.first = cs.accepted.Add(s.FirstRequestTimeout)
	}
	dec := NewDecoder(c, s.Limits)
	defer dec.Close()
	dec.UseBudget(ctx, s.Budget.Lease(), dl.extend)
	dec.pools = &s.pools
	warn := newRepeats(s.logger(), s.warnInterval())
	defer warn.flush()
	if s.SharedKey != "" || len(s.Users) > 0 {
		if err := s.handshake(c, dec); err != nil {
			// A failed handshake is counted even when shutdown or an
			// eviction raced it; other errors then are just the close.
			if errors.Is(err, errPeerGone) || gone() && !errors.Is(err, ErrAuth) {
				return nil
			}
			return err
		}
	}
	noFirst := func() error {
		s.stats.noFirstRequest.Add(1)
		s.logger().Debug("forward: closing connection: no complete request within the first-request timeout", "peer", peer, "timeout", s.FirstRequestTimeout)
		return nil
	}
	var out []byte
	broken := 0
	for {
		idle := time.Time{}
		if s.IdleTimeout > 0 {
			idle = time.Now().Add(s.IdleTimeout)
		}
		dl.set(idle)
		if err := dec.Wait(); err != nil {
			if errors.Is(err, io.EOF) || gone() {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if dl.firstExpired() {
					return noFirst()
				}
				s.logger().Debug("forward: closing idle connection", "peer", peer, "idle", s.IdleTimeout)
				return nil
			}
			return err
		}
		rt := time.Time{}
		if s.ReadTimeout > 0 {
			rt = time.Now().Add(s.ReadTimeout)
		}
		dl.set(rt)
		req, err := dec.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || gone() {
				return nil
			}
			if errors.Is(err, ErrNotRequest) {
				s.stats.dropped.Add(1)
				broken++
				warn.log(slog.LevelWarn, "broken", "forward: incoming chunk is broken, dropped", "peer", peer, "err", err)
				if max := s.maxBroken(); max > 0 && broken >= max {
					s.stats.closedBroken.Add(1)
					warn.flush()
					s.logger().Warn("forward: closing connection: too many values that are not forward requests", "peer", peer, "values", broken)
					return nil
				}
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && dl.firstExpired() {
				return noFirst()
			}
			return err
		}
		dl.first = time.Time{}
		cs.busy.Store(true)
		cs.last.Store(time.Now().UnixNano())
		err = s.handle(ctx, c, req, &out, warn)
		cs.busy.Store(false)
		if err != nil {
			if errors.Is(err, ErrCloseConnection) || gone() {
				return nil
			}
			return err
		}
	}
}

// handle passes one request to the Handler and acks it.
func (s *Server) handle(ctx context.Context, c net.Conn, req *Request, out *[]byte, warn *repeats) error {
	s.stats.requests.Add(1)
	s.stats.events.Add(int64(len(req.Entries)))
	if err := s.Handler.HandleForward(ctx, c.RemoteAddr(), req); err != nil {
		if errors.Is(err, ErrCloseConnection) || ctx.Err() != nil {
			return err
		}
		warn.log(slog.LevelDebug, "refused", "forward: handler refused request, no ack", "peer", c.RemoteAddr(), "tag", req.Tag, "err", err)
		return nil
	}
	if req.Chunk == "" {
		return nil
	}
	chunk := req.Chunk
	if s.AckFor != nil {
		chunk = s.AckFor(req)
	}
	if req.JSON {
		*out = AppendJSONAck((*out)[:0], chunk)
	} else {
		*out = AppendAck((*out)[:0], chunk)
	}
	if err := s.write(c, *out); err != nil {
		return fmt.Errorf("write ack: %w", err)
	}
	s.stats.acks.Add(1)
	return nil
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout > 0 {
		return s.WriteTimeout
	}
	return 10 * time.Second
}

func (s *Server) withDeadline(c net.Conn, d time.Duration, fn func() error) error {
	c.SetDeadline(time.Now().Add(d))
	err := fn()
	c.SetDeadline(time.Time{})
	return err
}

func (s *Server) write(c net.Conn, b []byte) error {
	c.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
	_, err := c.Write(b)
	return err
}

// ErrTLSHandshake marks a connection whose TLS handshake failed.
var ErrTLSHandshake = errors.New("TLS handshake failed")

// errPeerGone: the peer closed before sending anything (out_forward's TCP
// heartbeat connects and closes); not an error worth counting.
var errPeerGone = errors.New("peer closed before PING")

// handshake runs the server side of HELO/PING/PONG.
func (s *Server) handshake(c net.Conn, dec *Decoder) error {
	a := &serverAuth{sharedKey: s.SharedKey, users: s.Users, hostname: s.hostname(), nonce: randomBytes(16)}
	if len(s.Users) > 0 {
		a.authSalt = randomBytes(16)
	}
	if err := s.write(c, AppendHelo(nil, Helo{Nonce: a.nonce, Auth: a.authSalt, Keepalive: true})); err != nil {
		if isReset(err) {
			return errPeerGone
		}
		return fmt.Errorf("write HELO: %w", err)
	}
	// A client has a bounded time to answer HELO even without ReadTimeout.
	c.SetReadDeadline(time.Now().Add(s.writeTimeout()))
	frame, _, err := dec.NextFrame()
	c.SetReadDeadline(time.Time{})
	if err != nil {
		if errors.Is(err, io.EOF) || isReset(err) {
			return errPeerGone // a TCP heartbeat or a client that gave up
		}
		return fmt.Errorf("read PING: %w", err)
	}
	ping, err := ParsePing(frame)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	pong := a.verify(ping)
	if err := s.write(c, AppendPong(nil, pong)); err != nil {
		return fmt.Errorf("write PONG: %w", err)
	}
	if !pong.OK {
		s.stats.authFailed.Add(1)
		return fmt.Errorf("%w: %s (client hostname %q, user %q)", ErrAuth, pong.Reason, ping.Hostname, ping.Username)
	}
	return nil
}

// ServeHeartbeat answers each UDP datagram on pc with a single 0x00, as
// in_forward does for out_forward's heartbeat_type udp, until ctx is done.
func (s *Server) ServeHeartbeat(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, 512)
	for {
		_, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("forward: heartbeat read: %w", err)
		}
		if _, err := pc.WriteTo([]byte{0}, addr); err != nil {
			s.logger().Debug("forward: heartbeat reply", "peer", addr, "err", err)
		}
	}
}
