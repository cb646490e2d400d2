package forward

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// Resolver looks up host names (net.DefaultResolver fits).
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Dialer opens connections (*net.Dialer fits).
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// ClientConfig configures Dial.
type ClientConfig struct {
	Resolver  Resolver // default net.DefaultResolver
	Dialer    Dialer   // default &net.Dialer{}
	TLSConfig *tls.Config
	// SharedKey, Username and Password answer the server's HELO.
	SharedKey, Username, Password string
	// Hostname is sent in PING (default os.Hostname()).
	Hostname string
	// HeloWait is how long to listen for an unsolicited HELO when no
	// SharedKey is set, to notice a server that requires one. 0: don't.
	HeloWait time.Duration
	// HandshakeTimeout bounds HELO/PING/PONG (default 10s).
	HandshakeTimeout time.Duration
	Limits           Limits
}

// Trace times the steps of Dial.
type Trace struct {
	DNS, Connect, TLS, Handshake time.Duration
	Resolved                     string // the address actually dialed
	Handshook                    bool   // the server sent HELO and accepted PING
	ServerHostname               string
	HeloKeepalive                bool
}

// StepError says which step of Dial failed.
type StepError struct {
	Step string // dns, connect, tls, handshake
	Err  error
}

// Error prefixes the step unless the cause already starts with it, as
// crypto/tls errors do ("tls: failed to verify certificate"): no "tls: tls:".
func (e *StepError) Error() string {
	msg := e.Err.Error()
	if strings.HasPrefix(msg, e.Step+": ") {
		return msg
	}
	return e.Step + ": " + msg
}
func (e *StepError) Unwrap() error { return e.Err }

// ErrHandshakeRequired: the server sent HELO but no shared key was given.
var ErrHandshakeRequired = errors.New("server requires a shared key handshake (sent HELO)")

// ErrNoHelo: a shared key was given but the server sent no HELO within the
// handshake timeout and nothing else either: it has no shared key
// configured. Fluentd and Fluent Bit send HELO at once when they have one.
var ErrNoHelo = errors.New("server sent no HELO: it does not ask for a shared key")

// ErrSpeaksTLS: a plaintext connection got TLS record bytes back (an alert
// or a handshake record): the port expects TLS.
var ErrSpeaksTLS = errors.New("the port expects TLS")

// AuthError carries the server's reason from PONG.
type AuthError struct{ Reason string }

func (e *AuthError) Error() string { return "server rejected authentication: " + e.Reason }
func (e *AuthError) Unwrap() error { return ErrAuth }

// Conn is a client connection to a forward server.
type Conn struct {
	conn  net.Conn
	raw   net.Conn   // the TCP connection under TLS
	sniff *sniffConn // plaintext only: what the server sent first
	dec   *Decoder
	enc   Encoder
	buf   []byte
	Trace Trace
}

// Dial resolves, connects, optionally wraps in TLS and runs the handshake.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &StepError{"dns", err}
	}
	c := &Conn{}
	start := time.Now()
	ip := host
	if net.ParseIP(host) == nil {
		res := cfg.Resolver
		if res == nil {
			res = net.DefaultResolver
		}
		addrs, err := res.LookupHost(ctx, host)
		if err == nil && len(addrs) == 0 {
			err = fmt.Errorf("no addresses for %s", host)
		}
		if err != nil {
			return nil, &StepError{"dns", err}
		}
		ip = addrs[0]
	}
	c.Trace.DNS = time.Since(start)
	c.Trace.Resolved = net.JoinHostPort(ip, port)
	d := cfg.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	start = time.Now()
	raw, err := d.DialContext(ctx, "tcp", c.Trace.Resolved)
	if err != nil {
		return nil, &StepError{"connect", err}
	}
	c.Trace.Connect = time.Since(start)
	c.raw, c.conn = raw, raw
	if cfg.TLSConfig != nil {
		tc := cfg.TLSConfig.Clone()
		if tc.ServerName == "" && !tc.InsecureSkipVerify {
			tc.ServerName = host
		}
		start = time.Now()
		t := tls.Client(raw, tc)
		// Bounded: a plaintext Fluentd reads a ClientHello as broken
		// msgpack and waits for more, forever.
		hctx, cancel := context.WithTimeout(ctx, cfg.handshakeTimeout())
		err := t.HandshakeContext(hctx)
		if err != nil && hctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no answer to the TLS ClientHello within %s: %w", cfg.handshakeTimeout(), err)
		}
		cancel()
		if err != nil {
			raw.Close()
			return nil, &StepError{"tls", err}
		}
		c.Trace.TLS = time.Since(start)
		c.conn = t
	} else {
		c.sniff = &sniffConn{Conn: raw}
		c.conn = c.sniff
	}
	c.dec = NewDecoder(c.conn, cfg.Limits)
	start = time.Now()
	if err := c.handshake(ctx, cfg); err != nil {
		c.conn.Close()
		return nil, &StepError{"handshake", err}
	}
	if c.Trace.Handshook {
		c.Trace.Handshake = time.Since(start)
	}
	return c, nil
}

// DefaultHandshakeTimeout bounds the TLS handshake and HELO/PING/PONG when
// ClientConfig.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 10 * time.Second

func (cfg ClientConfig) handshakeTimeout() time.Duration {
	if cfg.HandshakeTimeout > 0 {
		return cfg.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

func (c *Conn) handshake(ctx context.Context, cfg ClientConfig) error {
	wait := cfg.HeloWait
	if cfg.SharedKey != "" {
		wait = cfg.handshakeTimeout()
	}
	if wait <= 0 {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	defer stop()
	c.conn.SetReadDeadline(time.Now().Add(wait))
	defer c.conn.SetDeadline(time.Time{})
	frame, _, err := c.dec.NextFrame()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && c.dec.Buffered() == 0 && ctx.Err() == nil {
			if cfg.SharedKey == "" {
				return nil // no HELO: an open server
			}
			return fmt.Errorf("%w (waited %s)", ErrNoHelo, wait)
		}
		if errors.Is(err, io.EOF) {
			return c.tlsReply(fmt.Errorf("server closed the connection before HELO: %w", ErrClosedBeforeAck))
		}
		return c.tlsReply(fmt.Errorf("waiting for HELO: %w", err))
	}
	helo, err := ParseHelo(frame)
	if err != nil {
		return c.tlsReply(err)
	}
	c.Trace.HeloKeepalive = helo.Keepalive
	if cfg.SharedKey == "" {
		return ErrHandshakeRequired
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	// A hex salt, like out_forward's SecureRandom.hex(16): printable, so it
	// survives receivers that read it as text.
	p := Ping{Hostname: hostname, SharedKeySalt: []byte(hex.EncodeToString(randomBytes(16))), Username: cfg.Username}
	p.SharedKeyDigest = SharedKeyDigest(p.SharedKeySalt, hostname, helo.Nonce, cfg.SharedKey)
	if len(helo.Auth) > 0 {
		p.PasswordDigest = PasswordDigest(helo.Auth, cfg.Username, cfg.Password)
	}
	c.conn.SetDeadline(time.Now().Add(wait))
	if _, err := c.conn.Write(AppendPing(nil, p)); err != nil {
		return fmt.Errorf("write PING: %w", err)
	}
	frame, _, err = c.dec.NextFrame()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("server closed the connection after PING without PONG: %w", ErrAuth)
		}
		return fmt.Errorf("waiting for PONG: %w", err)
	}
	pong, err := ParsePong(frame)
	if err != nil {
		return err
	}
	if !pong.OK {
		return &AuthError{Reason: pong.Reason}
	}
	if pong.Hostname == hostname {
		return &AuthError{Reason: "same hostname between input and output: invalid configuration"}
	}
	if !digestEqual(pong.SharedKeyDigest, SharedKeyDigest(p.SharedKeySalt, pong.Hostname, helo.Nonce, cfg.SharedKey)) {
		return &AuthError{Reason: "server's shared key digest does not match ours (wrong server or key)"}
	}
	c.Trace.Handshook = true
	c.Trace.ServerHostname = pong.Hostname
	return nil
}

// NetConn is the underlying TCP connection (for socket statistics).
func (c *Conn) NetConn() net.Conn { return c.raw }

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// Write encodes and writes req; it does not wait for the ack.
func (c *Conn) Write(req *Request) error {
	var err error
	c.buf, err = c.enc.Append(c.buf[:0], req)
	if err != nil {
		return err
	}
	return c.WriteRaw(c.buf)
}

// WriteRaw writes already encoded bytes.
func (c *Conn) WriteRaw(b []byte) error {
	_, err := c.conn.Write(b)
	return err
}

// SetWriteDeadline bounds the next writes.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// WaitAck reads the next response until deadline and compares its chunk
// with chunk byte for byte. Errors: ErrNoAck (deadline), ErrClosedBeforeAck
// (EOF or reset), *AckMismatchError (wraps ErrAckMismatch).
func (c *Conn) WaitAck(deadline time.Time, chunk string) error {
	c.conn.SetReadDeadline(deadline)
	defer c.conn.SetReadDeadline(time.Time{})
	frame, _, err := c.dec.NextFrame()
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return c.tlsReply(fmt.Errorf("%w: %w", ErrNoAck, err))
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isReset(err):
			return c.tlsReply(fmt.Errorf("%w: %w", ErrClosedBeforeAck, err))
		}
		return c.tlsReply(err)
	}
	got, err := ParseAck(frame)
	if err != nil {
		return c.tlsReply(err)
	}
	if got != chunk {
		return &AckMismatchError{Sent: chunk, Got: got}
	}
	return nil
}

// AckMismatchError reports an ack for another chunk.
type AckMismatchError struct{ Sent, Got string }

func (e *AckMismatchError) Error() string {
	return fmt.Sprintf("ack %q does not match chunk %q", e.Got, e.Sent)
}
func (e *AckMismatchError) Unwrap() error { return ErrAckMismatch }

// Send writes req and, when it carries a chunk, waits up to ackTimeout for
// the matching ack.
func (c *Conn) Send(req *Request, ackTimeout time.Duration) error {
	if err := c.Write(req); err != nil {
		if isReset(err) {
			return fmt.Errorf("%w: %w", ErrClosedBeforeAck, err)
		}
		return err
	}
	if req.Chunk == "" {
		return nil
	}
	return c.WaitAck(time.Now().Add(ackTimeout), req.Chunk)
}

func isReset(err error) bool {
	return errors.Is(err, syscallECONNRESET) || errors.Is(err, syscallEPIPE) || errors.Is(err, net.ErrClosed)
}

// HeartbeatTCP is out_forward's heartbeat_type tcp: connect and close,
// returning how long the connect took. A nil dialer means net.Dialer.
func HeartbeatTCP(ctx context.Context, d Dialer, addr string) (time.Duration, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	rtt := time.Since(start)
	return rtt, c.Close()
}

// HeartbeatUDP sends one 0x00 datagram to addr and waits up to timeout for
// the 0x00 reply, returning the round trip.
func HeartbeatUDP(ctx context.Context, addr string, timeout time.Duration) (time.Duration, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(timeout))
	if _, err := c.Write([]byte{0}); err != nil {
		return 0, err
	}
	var b [16]byte
	n, err := c.Read(b[:])
	if err != nil {
		return 0, err
	}
	if n != 1 || b[0] != 0 {
		return 0, fmt.Errorf("unexpected heartbeat reply % x", b[:n])
	}
	return time.Since(start), nil
}

// sniffConn keeps the first bytes a plaintext server sends: when what
// follows fails, a TLS record there says the port expects TLS.
type sniffConn struct {
	net.Conn
	first [5]byte
	n     int
}

func (s *sniffConn) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	if s.n < len(s.first) && n > 0 {
		s.n += copy(s.first[s.n:], b[:n])
	}
	return n, err
}

// LooksLikeTLSRecord reports whether b starts like a TLS record from a
// server: an alert (0x15) or a handshake (0x16) with a 3.x version. No
// forward message starts so: a msgpack positive int followed by 0x03.
func LooksLikeTLSRecord(b []byte) bool {
	return len(b) >= 3 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03 && b[2] <= 0x04
}

// tlsReply wraps err with ErrSpeaksTLS when the server's first bytes on
// this plaintext connection were a TLS record.
func (c *Conn) tlsReply(err error) error {
	if c.sniff == nil || !LooksLikeTLSRecord(c.sniff.first[:c.sniff.n]) {
		return err
	}
	return fmt.Errorf("%w (it answered with TLS record bytes % x): %w", ErrSpeaksTLS, c.sniff.first[:c.sniff.n], err)
}

// SniffTLS tells whether addr expects TLS by sending a TLS ClientHello on
// a new connection and looking at the first bytes of the answer. Fluentd
// and Fluent Bit close a plaintext connection on their TLS port without
// a word (a reset, or a FIN after 0.5 s), so asking in TLS is the only
// sure way to tell. A plaintext forward server reads the ClientHello as
// a broken chunk (Fluentd logs "incoming chunk is broken"); call it only
// after plaintext failed. A nil dialer means net.Dialer.
func SniffTLS(ctx context.Context, d Dialer, addr string, timeout time.Duration) (bool, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	defer raw.Close()
	sc := &sniffConn{Conn: raw}
	// Only the answer's framing matters, not who signed the certificate.
	t := tls.Client(sc, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // no data is sent over it
	_ = t.HandshakeContext(ctx)
	return LooksLikeTLSRecord(sc.first[:sc.n]), nil
}
