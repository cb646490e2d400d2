package smoke

import (
	"context"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/logdoctor/logdoctor/pkg/forward"
)

// ForwardSender sends canary chunks in Forward mode with a chunk id over one
// keep-alive connection and waits for each ack. After a failure it drops the
// connection and dials again for the next chunk, as Fluentd's out_forward
// does; it never resends a chunk, so every loss shows in the count.
type ForwardSender struct {
	Addr       string
	Config     forward.ClientConfig
	AckTimeout time.Duration // per chunk; 10 s when zero

	conn  *forward.Conn
	Dials int // connections opened, for the report
}

// Send implements Sender.
func (f *ForwardSender) Send(ctx context.Context, tag string, events []Event) (bool, error) {
	entries := make([]forward.Entry, len(events))
	for i, e := range events {
		rec, err := msgpack.Marshal(e.Record)
		if err != nil {
			return false, fmt.Errorf("encode canary: %w", err)
		}
		entries[i] = forward.Entry{Time: forward.NewEventTime(e.Time), Record: rec}
	}
	if f.conn == nil {
		c, err := forward.Dial(ctx, f.Addr, f.Config)
		if err != nil {
			return false, fmt.Errorf("forward %s: %w", f.Addr, err)
		}
		f.conn = c
		f.Dials++
	}
	// A cancelled run must not sit out a whole ack timeout.
	stop := context.AfterFunc(ctx, func() { _ = f.conn.NetConn().SetDeadline(time.Now()) })
	defer stop()

	req := &forward.Request{Tag: tag, Entries: entries, Chunk: forward.NewChunkID(), Mode: forward.ModeForward, Size: len(entries)}
	if err := f.conn.Write(req); err != nil {
		f.drop()
		return false, fmt.Errorf("forward %s: write chunk: %w", f.Addr, err)
	}
	timeout := f.AckTimeout
	if timeout <= 0 {
		timeout = DefaultAckTimeout
	}
	if err := f.conn.WaitAck(time.Now().Add(timeout), req.Chunk); err != nil {
		f.drop()
		return true, fmt.Errorf("forward %s: chunk %s: %w", f.Addr, req.Chunk, err)
	}
	return true, nil
}

func (f *ForwardSender) drop() {
	if f.conn != nil {
		_ = f.conn.Close()
		f.conn = nil
	}
}

// Close closes the connection.
func (f *ForwardSender) Close() error {
	f.drop()
	return nil
}
