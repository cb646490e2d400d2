// Command logdoctor finds out why logs vanish, duplicate or stall between a
// shipper and Elasticsearch. All the work lives in internal/cli; main only
// wires the process to it so the command tree stays testable.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/logdoctor/logdoctor/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.SystemIO())
	stop()
	os.Exit(int(code))
}
