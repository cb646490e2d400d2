// Command logdoctor finds out why logs vanish, duplicate or stall between a
// shipper and Elasticsearch. All the work lives in internal/cli; main only
// wires the process to it so the command tree stays testable. Signals are
// handled here and nowhere else: SIGINT and SIGTERM cancel the context
// every command runs under (its cause names the signal), and SIGHUP is
// handed to the commands that reopen files on it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/logdoctor/logdoctor/internal/cli"
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	stops := make(chan os.Signal, 1)
	signal.Notify(stops, os.Interrupt, syscall.SIGTERM)
	go func() {
		// Only the first stops the command; later ones are swallowed
		// until exit, so a second Ctrl-C does not cut a flush short.
		cancel(&cli.SignalError{Signal: <-stops})
	}()
	streams := cli.SystemIO()
	streams.Hangups = hangups
	code := cli.Main(ctx, os.Args[1:], streams)
	signal.Stop(stops)
	cancel(nil)
	os.Exit(int(code))
}

// hangups delivers SIGHUP until stop is called. Only a command that asks
// catches it, so for every other command SIGHUP keeps its default action.
func hangups() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}
