// Package memload puts memory pressure on logdoctor's servers, for the
// tests that bound their memory and for bench/memory.sh: gzip bombs and
// valid acked senders against a forward port, concurrent large bulks
// against an Elasticsearch endpoint, and the target's peak RSS read from
// /proc. Traffic goes only to the address it is given.
package memload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/forward"
)

// PeakRSS is a process's peak resident set size in bytes (VmHWM in
// /proc/PID/status).
func PeakRSS(pid int) (int64, error) {
	return statusBytes(pid, "VmHWM:")
}

// RSS is a process's resident set size now (VmRSS).
func RSS(pid int) (int64, error) {
	return statusBytes(pid, "VmRSS:")
}

func statusBytes(pid int, field string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field)
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %q: %w", field, rest, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// BombResult counts what happened to the bombs.
type BombResult struct {
	Sent, Refused, Acked int
	Errors               []error // anything else: write errors, timeouts
}

// Bombs sends n gzip bombs of size bytes inflated (about size/1000 on
// the wire), each on its own connection and all at once, alternating
// zeros and valid 1 MiB entries (GzipBomb), and waits up to
// ackTimeout for each: a bomb is refused when the server closes the
// connection without acking it.
func Bombs(ctx context.Context, addr string, n int, size int64, ackTimeout time.Duration) BombResult {
	var (
		mu  sync.Mutex
		res = BombResult{Sent: n}
		wg  sync.WaitGroup
	)
	bombs := [2][]byte{GzipBomb("memload.bomb", "bomb", size, false), GzipBomb("memload.bomb", "bomb", size, true)}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := bomb(ctx, addr, bombs[i%2], ackTimeout)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				res.Acked++
			case errors.Is(err, forward.ErrClosedBeforeAck):
				res.Refused++
			default:
				res.Errors = append(res.Errors, fmt.Errorf("bomb %d: %w", i, err))
			}
		}()
	}
	wg.Wait()
	return res
}

func bomb(ctx context.Context, addr string, wire []byte, ackTimeout time.Duration) error {
	c, err := forward.Dial(ctx, addr, forward.ClientConfig{})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(ackTimeout))
	if err := c.WriteRaw(wire); err != nil {
		// Refused while still writing: the server closed first.
		return fmt.Errorf("%w: %w", forward.ErrClosedBeforeAck, err)
	}
	return c.WaitAck(time.Now().Add(ackTimeout), "bomb")
}

// SenderResult counts what the valid senders got.
type SenderResult struct {
	Chunks, Acked, Retries int
	Events                 int
	Errors                 []error
}

// Senders runs n senders at once, each sending chunks PackedForward
// chunks of events records (about 200 bytes, with a unique "id" field
// tag-sender-chunk-event) on its own connection, waiting for each ack as
// out_forward with require_ack_response does, and resending a chunk on a
// new connection when the ack does not come (up to retries times).
func Senders(ctx context.Context, addr, tag string, n, chunks, events, retries int, ackTimeout time.Duration) SenderResult {
	var (
		res            = SenderResult{Chunks: n * chunks, Events: n * chunks * events}
		acked, retried atomic.Int64
		mu             sync.Mutex
		wg             sync.WaitGroup
		msg            = strings.Repeat("v", 160)
		recordFor      = func(s, c, e int) []byte {
			b, _ := msgpack.Marshal(map[string]any{"id": fmt.Sprintf("%s-%d-%d-%d", tag, s, c, e), "message": msg})
			return b
		}
	)
	for s := 0; s < n; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn *forward.Conn
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for c := 0; c < chunks; c++ {
				req := &forward.Request{Tag: tag, Mode: forward.ModePacked, Chunk: forward.NewChunkID()}
				for e := 0; e < events; e++ {
					req.Entries = append(req.Entries, forward.Entry{Time: forward.NewEventTime(time.Now()), Record: recordFor(s, c, e)})
				}
				var err error
				for try := 0; try <= retries; try++ {
					if try > 0 {
						retried.Add(1)
						time.Sleep(time.Duration(try) * 100 * time.Millisecond)
					}
					if conn == nil {
						if conn, err = forward.Dial(ctx, addr, forward.ClientConfig{}); err != nil {
							continue
						}
					}
					if err = conn.Send(req, ackTimeout); err == nil {
						break
					}
					conn.Close()
					conn = nil
				}
				if err != nil {
					mu.Lock()
					res.Errors = append(res.Errors, fmt.Errorf("sender %d chunk %d: %w", s, c, err))
					mu.Unlock()
					continue
				}
				acked.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Acked, res.Retries = int(acked.Load()), int(retried.Load())
	return res
}

// BulkBody is about size bytes of bulk index actions for index, with
// documents of about 1 KB.
func BulkBody(index string, size int) []byte {
	var b bytes.Buffer
	doc := strings.Repeat("d", 1000)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "{\"index\":{\"_index\":%q}}\n{\"seq\":%d,\"message\":%q}\n", index, i, doc)
	}
	return b.Bytes()
}

// BulkResult counts the bulks' outcomes.
type BulkResult struct {
	Sent, OK, Breaker, Retries int
	Errors                     []error
}

// Bulks posts body to url/_bulk n times at once; a bulk answered 429 or
// failed is sent again after a pause, up to retries times, as shippers do.
func Bulks(ctx context.Context, url string, body []byte, n, retries int) BulkResult {
	var (
		mu  sync.Mutex
		res = BulkResult{Sent: n}
		wg  sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Minute}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for try := 0; ; try++ {
				status, err := post(ctx, client, url+"/_bulk", body)
				mu.Lock()
				switch {
				case err != nil:
					res.Errors = append(res.Errors, fmt.Errorf("bulk %d: %w", i, err))
				case status == http.StatusOK:
					res.OK++
				case status == http.StatusTooManyRequests:
					res.Breaker++
				default:
					res.Errors = append(res.Errors, fmt.Errorf("bulk %d: status %d", i, status))
				}
				again := (err != nil || status == http.StatusTooManyRequests) && try < retries
				if again {
					res.Retries++
				}
				mu.Unlock()
				if !again {
					return
				}
				time.Sleep(time.Duration(200+100*i) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return res
}

func post(ctx context.Context, c *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var sink [32 << 10]byte
	for {
		if _, err := res.Body.Read(sink[:]); err != nil {
			break
		}
	}
	return res.StatusCode, nil
}
