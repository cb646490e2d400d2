// Command memload is bench/memory.sh's load: gzip bombs and valid acked
// senders against a forward port, or concurrent large bulks against an
// Elasticsearch endpoint; then it prints the target's peak RSS.
//
//	memload forward -addr 127.0.0.1:24224 -pid PID -bombs 12 -senders 100
//	memload es -url http://127.0.0.1:9200 -pid PID -bulks 6 -size 90000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/logdoctor/logdoctor/internal/memload"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: memload forward|es [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	pid := fs.Int("pid", 0, "process whose peak RSS to print")
	addr := fs.String("addr", "", "forward address")
	bombs := fs.Int("bombs", 12, "gzip bombs sent at once")
	bombSize := fs.Int64("bomb-size", 1<<30, "bytes each bomb inflates to")
	senders := fs.Int("senders", 0, "valid senders at once, with the bombs")
	chunks := fs.Int("chunks", 5, "chunks per sender")
	events := fs.Int("events", 200, "events per chunk")
	url := fs.String("url", "", "Elasticsearch URL")
	bulks := fs.Int("bulks", 6, "bulks sent at once")
	size := fs.Int("size", 90_000_000, "bytes per bulk")
	fs.Parse(os.Args[2:])
	ctx := context.Background()
	start := time.Now()
	switch os.Args[1] {
	case "forward":
		done := make(chan memload.SenderResult, 1)
		go func() {
			if *senders == 0 {
				done <- memload.SenderResult{}
				return
			}
			done <- memload.Senders(ctx, *addr, "memload", *senders, *chunks, *events, 5, time.Minute)
		}()
		b := memload.Bombs(ctx, *addr, *bombs, *bombSize, time.Minute)
		s := <-done
		fmt.Printf("bombs %d: refused %d, acked %d, other %d", b.Sent, b.Refused, b.Acked, len(b.Errors))
		if *senders > 0 {
			fmt.Printf("; senders %d: chunks acked %d/%d (retries %d, failed %d)", *senders, s.Acked, s.Chunks, s.Retries, len(s.Errors))
		}
	case "es":
		body := memload.BulkBody("memload", *size)
		r := memload.Bulks(ctx, *url, body, *bulks, 20)
		fmt.Printf("bulks %d of %d MB: indexed %d, answered 429 %d times, other errors %d", r.Sent, len(body)/1e6, r.OK, r.Breaker, len(r.Errors))
	default:
		fmt.Fprintln(os.Stderr, "usage: memload forward|es [flags]")
		os.Exit(2)
	}
	fmt.Printf("; %.1fs", time.Since(start).Seconds())
	if *pid > 0 {
		if rss, err := memload.PeakRSS(*pid); err == nil {
			fmt.Printf("; peak RSS %d MB", rss/1e6)
		}
	}
	fmt.Println()
}
