// Package sockettest brings TCP sockets into given states on loopback for
// tests: ESTABLISHED, CLOSE_WAIT (the server closes, the client never
// does), TIME_WAIT (the client closes first) and a full Send-Q (the server
// never reads). Each call uses its own listener on the server address and
// binds its clients to the client address, so tests using distinct
// 127.x.y.z addresses never see each other's sockets. Everything is closed
// when the test ends.
//
// The functions fail the test; a Maker's methods return the error instead,
// for code that runs off the test's goroutine (testenv.Netns.Do), where
// t.Fatal must not be called.
package sockettest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
)

// Set is one listener and the connections made to it.
type Set struct {
	// Server is the listener's address: the peer of the outbound sockets.
	Server netip.AddrPort
	// Clients are the client ends, in the order they were made.
	Clients []net.Conn
	// Listener is the server's listener, open until the test ends.
	Listener net.Listener
}

// Maker makes the sockets of the functions below and returns errors
// instead of failing the test. What it opens is closed by the test's
// Cleanup, which is safe to call from any goroutine.
type Maker struct{ cleanup func(func()) }

// For is the Maker of t.
func For(t testing.TB) Maker { return Maker{cleanup: t.Cleanup} }

// check fails t with err, on the test's goroutine.
func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Listen opens a listener on ip (port 0 picks one) closed at test end.
func Listen(t testing.TB, ip string) net.Listener {
	t.Helper()
	v, err := For(t).Listen(ip)
	check(t, err)
	return v
}

// Listen is the package's Listen, returning its error.
func (m Maker) Listen(ip string) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", ip, err)
	}
	m.cleanup(func() { ln.Close() })
	return ln, nil
}

// Dial connects from clientIP (any port) to addr; closed at test end.
func Dial(t testing.TB, clientIP string, addr net.Addr) net.Conn {
	t.Helper()
	v, err := For(t).Dial(clientIP, addr)
	check(t, err)
	return v
}

// Dial is the package's Dial, returning its error.
func (m Maker) Dial(clientIP string, addr net.Addr) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", addr, clientIP, err)
	}
	m.cleanup(func() { c.Close() })
	return c, nil
}

// Accept takes the next connection of ln, waiting at most 5 s; it is
// closed at test end.
func (m Maker) Accept(ln net.Listener) (net.Conn, error) {
	if tl, ok := ln.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(5 * time.Second))
	}
	c, err := ln.Accept()
	if err != nil {
		return nil, fmt.Errorf("accept on %s: %w", ln.Addr(), err)
	}
	m.cleanup(func() { c.Close() })
	return c, nil
}

func addrPort(a net.Addr) netip.AddrPort {
	ap := a.(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// pair dials ln once from clientIP and accepts the connection.
func (m Maker) pair(clientIP string, ln net.Listener) (client, server net.Conn, err error) {
	if client, err = m.Dial(clientIP, ln.Addr()); err != nil {
		return nil, nil, err
	}
	if server, err = m.Accept(ln); err != nil {
		return nil, nil, err
	}
	return client, server, nil
}

// Established makes n connections from clientIP to a new listener on
// serverIP and keeps both ends open.
func Established(t testing.TB, serverIP, clientIP string, n int) Set {
	t.Helper()
	v, err := For(t).Established(serverIP, clientIP, n)
	check(t, err)
	return v
}

// Established is the package's Established, returning its error.
func (m Maker) Established(serverIP, clientIP string, n int) (Set, error) {
	ln, err := m.Listen(serverIP)
	if err != nil {
		return Set{}, err
	}
	s := Set{Server: addrPort(ln.Addr()), Listener: ln}
	for range n {
		c, _, err := m.pair(clientIP, ln)
		if err != nil {
			return s, err
		}
		s.Clients = append(s.Clients, c)
	}
	return s, nil
}

// CloseWait makes n connections whose server end is closed at once while
// the client never closes: the client sockets sit in CLOSE_WAIT (and the
// server ends in FIN_WAIT2). It returns once each client has seen the FIN.
// The listener stays open so the server ends still count as inbound.
func CloseWait(t testing.TB, serverIP, clientIP string, n int) Set {
	t.Helper()
	v, err := For(t).CloseWait(serverIP, clientIP, n)
	check(t, err)
	return v
}

// CloseWait is the package's CloseWait, returning its error.
func (m Maker) CloseWait(serverIP, clientIP string, n int) (Set, error) {
	ln, err := m.Listen(serverIP)
	if err != nil {
		return Set{}, err
	}
	s := Set{Server: addrPort(ln.Addr()), Listener: ln}
	for range n {
		if err := m.addCloseWait(&s, clientIP); err != nil {
			return s, err
		}
	}
	return s, nil
}

// AddCloseWait adds one more CLOSE_WAIT connection to the set's listener
// (a set made by CloseWait in the same test).
func AddCloseWait(t testing.TB, s *Set, clientIP string) {
	t.Helper()
	check(t, For(t).addCloseWait(s, clientIP))
}

func (m Maker) addCloseWait(s *Set, clientIP string) error {
	c, sc, err := m.pair(clientIP, s.Listener)
	if err != nil {
		return err
	}
	sc.Close()
	if err := waitEOF(c); err != nil {
		return err
	}
	s.Clients = append(s.Clients, c)
	return nil
}

// WaitEOF reads from c until the peer's FIN arrives (EOF), bounded to 5 s.
func WaitEOF(t testing.TB, c net.Conn) {
	t.Helper()
	check(t, waitEOF(c))
}

// WaitEOF is the package's WaitEOF, returning its error.
func (Maker) WaitEOF(c net.Conn) error { return waitEOF(c) }

func waitEOF(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if errors.Is(err, io.EOF) {
			_ = c.SetReadDeadline(time.Time{})
			return nil
		}
		if err != nil {
			return fmt.Errorf("waiting for FIN on %s: %w", c.LocalAddr(), err)
		}
	}
}

// TimeWait makes n connections the client closes first (active close), so
// the client ends go to TIME_WAIT once the server, seeing EOF, closes too.
// It returns when every server end has closed; the FIN's arrival at the
// client is asynchronous, so callers poll the socket table.
func TimeWait(t testing.TB, serverIP, clientIP string, n int) Set {
	t.Helper()
	v, err := For(t).TimeWait(serverIP, clientIP, n)
	check(t, err)
	return v
}

// TimeWait is the package's TimeWait, returning its error.
func (m Maker) TimeWait(serverIP, clientIP string, n int) (Set, error) {
	ln, err := m.Listen(serverIP)
	if err != nil {
		return Set{}, err
	}
	s := Set{Server: addrPort(ln.Addr()), Listener: ln}
	var wg sync.WaitGroup
	defer wg.Wait()
	for range n {
		c, sc, err := m.pair(clientIP, ln)
		if err != nil {
			return s, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(io.Discard, sc)
			sc.Close()
		}()
		c.Close()
		s.Clients = append(s.Clients, c)
	}
	return s, nil
}

// SendQ makes one connection whose server never reads and whose client
// writes until its send buffer is full, so bytes sit in the client's
// Send-Q and the server's Recv-Q. Both buffers are shrunk first so this
// takes a few hundred KiB, not megabytes. It returns the client and the
// number of bytes the client managed to write.
func SendQ(t testing.TB, serverIP, clientIP string) (Set, int) {
	t.Helper()
	s, written, err := For(t).SendQ(serverIP, clientIP)
	check(t, err)
	return s, written
}

// SendQ is the package's SendQ, returning its error.
func (m Maker) SendQ(serverIP, clientIP string) (Set, int, error) {
	ln, err := m.Listen(serverIP)
	if err != nil {
		return Set{}, 0, err
	}
	// The listener's receive buffer is inherited by accepted sockets and
	// fixes the window scale at the handshake.
	if tl, ok := ln.(*net.TCPListener); ok {
		if f, err := tl.File(); err == nil {
			setRcvBuf(f, 32*1024)
			f.Close()
		}
	}
	s := Set{Server: addrPort(ln.Addr()), Listener: ln}
	c, _, err := m.pair(clientIP, ln)
	if err != nil {
		return s, 0, err
	}
	_ = c.(*net.TCPConn).SetWriteBuffer(32 * 1024)
	chunk := make([]byte, 16*1024)
	written := 0
	// Bounded: at most 4 MiB and ~50 timed-out rounds.
	for written < 4<<20 {
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Write(chunk)
		written += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return s, written, fmt.Errorf("write: %w", err)
		}
	}
	_ = c.SetWriteDeadline(time.Time{})
	s.Clients = append(s.Clients, c)
	return s, written, nil
}
