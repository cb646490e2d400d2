// Command sockholder builds a large TCP socket table on loopback for
// bench/sockets.sh: ESTABLISHED connections (both ends held), CLOSE_WAIT
// (the server end closed, the client end held) and TIME_WAIT (the client
// closed first). It spreads connections over several 127.x listeners so the
// ephemeral ports of one destination are never exhausted, prints
// "READY sockets=N" and holds everything until stdin closes.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	est := flag.Int("established", 8000, "ESTABLISHED connections (two sockets each)")
	cw := flag.Int("close-wait", 5000, "CLOSE_WAIT connections (client CLOSE_WAIT + server FIN_WAIT2)")
	tw := flag.Int("time-wait", 6000, "TIME_WAIT connections (one socket each)")
	servers := flag.Int("servers", 8, "listeners, on 127.77.0.1..N")
	flag.Parse()
	if err := run(*est, *cw, *tw, *servers); err != nil {
		fmt.Fprintln(os.Stderr, "sockholder:", err)
		os.Exit(1)
	}
}

type mode int

const (
	keep mode = iota
	closeServer
	echoClose
)

func run(est, cw, tw, servers int) error {
	need := uint64(2*est+cw+tw+servers) + 256
	var lim unix.Rlimit
	// Raising the hard limit may not be allowed (containers drop
	// CAP_SYS_RESOURCE): the script runs several holders instead.
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < need {
		if lim.Max < need {
			return fmt.Errorf("need %d file descriptors, hard limit is %d: run more holders with fewer sockets each", need, lim.Max)
		}
		lim.Cur = need
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", need, err)
		}
	}
	var held []net.Conn
	var mu sync.Mutex
	modes := make(chan mode, 1)
	var lns []net.Listener
	for i := 1; i <= servers; i++ {
		ln, err := net.Listen("tcp4", fmt.Sprintf("127.77.0.%d:0", i))
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}
	accepted := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	for _, ln := range lns {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				switch <-modes {
				case keep:
					mu.Lock()
					held = append(held, c)
					mu.Unlock()
				case closeServer:
					c.Close()
				case echoClose:
					wg.Add(1)
					go func() {
						defer wg.Done()
						_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
						_, _ = io.Copy(io.Discard, c)
						c.Close()
					}()
				}
				accepted <- struct{}{}
			}
		}()
	}
	dial := func(i int, m mode) (net.Conn, error) {
		modes <- m
		c, err := net.Dial("tcp4", lns[i%len(lns)].Addr().String())
		if err != nil {
			return nil, err
		}
		<-accepted
		return c, nil
	}
	for i := range est {
		c, err := dial(i, keep)
		if err != nil {
			return fmt.Errorf("established %d: %w", i, err)
		}
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
	}
	for i := range cw {
		c, err := dial(i, closeServer)
		if err != nil {
			return fmt.Errorf("close-wait %d: %w", i, err)
		}
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
	}
	for i := range tw {
		c, err := dial(i, echoClose)
		if err != nil {
			return fmt.Errorf("time-wait %d: %w", i, err)
		}
		c.Close()
	}
	wg.Wait()
	fmt.Printf("READY sockets=%d pid=%d\n", 2*est+2*cw+tw+servers, os.Getpid())
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
	return nil
}
