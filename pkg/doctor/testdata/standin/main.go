// Command standin plays a log shipper in doctor's tests: the test starts
// it under a command line that looks like Fluentd's or Fluent Bit's (and,
// statically linked, inside a chroot that looks like a container), it
// holds TCP connections to the addresses in STANDIN_CONNECT
// (comma-separated) as a shipper holds its outputs' connections, and it
// waits to be stopped.
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	var conns []net.Conn
	for _, a := range strings.Split(os.Getenv("STANDIN_CONNECT"), ",") {
		if a == "" {
			continue
		}
		c, err := net.Dial("tcp", a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "standin:", err)
			os.Exit(2)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	for _, c := range conns {
		c.Close()
	}
}
