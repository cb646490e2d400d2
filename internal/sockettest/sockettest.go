// Package sockettest brings TCP sockets into given states on loopback for
// tests: ESTABLISHED, CLOSE_WAIT (the server closes, the client never
// does), TIME_WAIT (the client closes first) and a full Send-Q (the server
// never reads). Each call uses its own listener on the server address and
// binds its clients to the client address, so tests using distinct
// 127.x.y.z addresses never see each other's sockets. Everything is closed
// when the test ends.
package sockettest

import (
	"errors"
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

// Listen opens a listener on ip (port 0 picks one) closed at test end.
func Listen(t testing.TB, ip string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen %s: %v", ip, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Dial connects from clientIP (any port) to addr; closed at test end.
func Dial(t testing.TB, clientIP string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, clientIP, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func accept(t testing.TB, ln net.Listener) net.Conn {
	t.Helper()
	if tl, ok := ln.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(5 * time.Second))
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept on %s: %v", ln.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrPort(a net.Addr) netip.AddrPort {
	ap := a.(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Established makes n connections from clientIP to a new listener on
// serverIP and keeps both ends open.
func Established(t testing.TB, serverIP, clientIP string, n int) Set {
	t.Helper()
	ln := Listen(t, serverIP)
	s := Set{Server: addrPort(ln.Addr()), Listener: ln}
	for range n {
		s.Clients = append(s.Clients, Dial(t, clientIP, ln.Addr()))
		accept(t, ln)
	}
	return s
}

// CloseWait makes n connections whose server end is closed at once while
// the client never closes: the client sockets sit in CLOSE_WAIT (and the
// server ends in FIN_WAIT2). It returns once each client has seen the FIN.
// The listener stays open so the server ends still count as inbound.
func CloseWait(t testing.TB, serverIP, clientIP string, n int) Set {
	t.Helper()
	ln := Listen(t, serverIP)
	s := Set{Server: addrPort(ln.Addr()), Listener: ln}
	for range n {
		s.Clients = append(s.Clients, Dial(t, clientIP, ln.Addr()))
		accept(t, ln).Close()
	}
	for _, c := range s.Clients {
		WaitEOF(t, c)
	}
	return s
}

// AddCloseWait adds one more CLOSE_WAIT connection to the set's listener
// (a set made by CloseWait in the same test).
func AddCloseWait(t testing.TB, s *Set, clientIP string) {
	t.Helper()
	c := Dial(t, clientIP, s.Listener.Addr())
	accept(t, s.Listener).Close()
	WaitEOF(t, c)
	s.Clients = append(s.Clients, c)
}

// WaitEOF reads from c until the peer's FIN arrives (EOF), bounded to 5 s.
func WaitEOF(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if errors.Is(err, io.EOF) {
			_ = c.SetReadDeadline(time.Time{})
			return
		}
		if err != nil {
			t.Fatalf("waiting for FIN on %s: %v", c.LocalAddr(), err)
		}
	}
}

// TimeWait makes n connections the client closes first (active close), so
// the client ends go to TIME_WAIT once the server, seeing EOF, closes too.
// It returns when every server end has closed; the FIN's arrival at the
// client is asynchronous, so callers poll the socket table.
func TimeWait(t testing.TB, serverIP, clientIP string, n int) Set {
	t.Helper()
	ln := Listen(t, serverIP)
	s := Set{Server: addrPort(ln.Addr()), Listener: ln}
	var wg sync.WaitGroup
	for range n {
		c := Dial(t, clientIP, ln.Addr())
		sc := accept(t, ln)
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
	wg.Wait()
	return s
}

// SendQ makes one connection whose server never reads and whose client
// writes until its send buffer is full, so bytes sit in the client's
// Send-Q and the server's Recv-Q. Both buffers are shrunk first so this
// takes a few hundred KiB, not megabytes. It returns the client and the
// number of bytes the client managed to write.
func SendQ(t testing.TB, serverIP, clientIP string) (Set, int) {
	t.Helper()
	ln := Listen(t, serverIP)
	// The listener's receive buffer is inherited by accepted sockets and
	// fixes the window scale at the handshake.
	if tl, ok := ln.(*net.TCPListener); ok {
		if f, err := tl.File(); err == nil {
			setRcvBuf(f, 32*1024)
			f.Close()
		}
	}
	s := Set{Server: addrPort(ln.Addr()), Listener: ln}
	c := Dial(t, clientIP, ln.Addr())
	accept(t, ln)
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
			t.Fatalf("write: %v", err)
		}
	}
	_ = c.SetWriteDeadline(time.Time{})
	s.Clients = append(s.Clients, c)
	return s, written
}
