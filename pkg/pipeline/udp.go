package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/logdoctor/logdoctor/internal/clip"
	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
)

// udpQueue is how many parsed datagrams wait for the buffer. When it is
// full the reader stops reading and the kernel queue (SO_RCVBUF) takes
// over; its overflow shows in logdoctor_pipeline_udp_kernel_drops.
const udpQueue = 4096

func (p *Pipeline) startUDP(ctx context.Context) error {
	addr, err := net.ResolveUDPAddr("udp", p.cfg.UDPAddr)
	if err != nil {
		return fmt.Errorf("pipeline: udp address: %w", err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return fmt.Errorf("pipeline: udp listener: %w", err)
	}
	p.udpConn = conn
	if p.cfg.UDPReadBuffer > 0 {
		if err := conn.SetReadBuffer(p.cfg.UDPReadBuffer); err != nil {
			return fmt.Errorf("pipeline: SO_RCVBUF: %w", err)
		}
	}
	p.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_udp_kernel_drops_total",
		Help: "Datagrams the kernel dropped for the UDP input socket (drops column of /proc/net/udp): receive buffer overflow.",
	}, func() float64 { return float64(p.UDPKernelDrops()) }))

	ch := make(chan buffer.Record, udpQueue)
	p.inWG.Add(2)
	go func() { defer p.inWG.Done(); defer close(ch); p.readUDP(ctx, conn, ch) }()
	// The appender outlives the reader at shutdown: datagrams already read
	// are buffered unless the shutdown deadline passes first.
	go func() { defer p.inWG.Done(); p.appendUDP(p.drainCtx, ch) }()
	return nil
}

// UDPKernelDrops reads the kernel's drop counter for the UDP input socket;
// once the socket is closed, the last value read before closing it.
func (p *Pipeline) UDPKernelDrops() uint64 {
	if p.udpConn == nil {
		return 0
	}
	p.udpMu.Lock()
	defer p.udpMu.Unlock()
	if p.udpClosed {
		return p.udpFinalDrops
	}
	return p.udpKernelDrops(p.udpConn.LocalAddr().(*net.UDPAddr))
}

// closeUDP reads the drop counter one last time, then closes the socket:
// its row in /proc/net/udp goes with it.
func (p *Pipeline) closeUDP() {
	p.udpMu.Lock()
	defer p.udpMu.Unlock()
	if p.udpClosed {
		return
	}
	p.udpFinalDrops = p.udpKernelDrops(p.udpConn.LocalAddr().(*net.UDPAddr))
	p.udpClosed = true
	p.udpConn.Close()
}

func (p *Pipeline) udpKernelDrops(local *net.UDPAddr) uint64 {
	return kernelDrops(p.cfg.ProcRoot, local)
}

// kernelDrops is the drops column of /proc/net/udp{,6} for the socket
// bound to local.
func kernelDrops(procRoot string, local *net.UDPAddr) uint64 {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return 0
	}
	var lines procfs.NetUDP
	if local.IP.To4() != nil {
		lines, err = fs.NetUDP()
	} else {
		lines, err = fs.NetUDP6()
	}
	if err != nil {
		return 0
	}
	for _, l := range lines {
		if l.LocalPort == uint64(local.Port) && (l.LocalAddr.Equal(local.IP) || l.LocalAddr.IsUnspecified()) && l.Drops != nil {
			return *l.Drops
		}
	}
	return 0
}

func (p *Pipeline) readUDP(ctx context.Context, conn *net.UDPConn, ch chan<- buffer.Record) {
	buf := make([]byte, p.cfg.UDPMaxDatagram+1)
	for {
		n, peer, err := conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Warn("udp read", "err", err)
			continue
		}
		data := buf[:n]
		now := p.cfg.Now()
		rec, reason, err := p.udpRecord(data, now)
		if err != nil {
			p.udpBad.Add(1)
			p.mBad.WithLabelValues(reason).Inc()
			if derr := p.dead.write(DeadLetter{Source: "udp", Reason: err.Error(), Peer: peer.String()}, data); derr == nil {
				p.deadCount.Add(1)
				p.mDead.WithLabelValues("udp").Inc()
			} else {
				p.log.Error("dead-letter write failed", "err", derr)
			}
			continue
		}
		ch <- rec // blocks while the buffer is full: the kernel queue takes over
	}
}

// udpRecord checks one datagram: a single JSON object, no larger than the
// configured maximum.
func (p *Pipeline) udpRecord(data []byte, now time.Time) (buffer.Record, string, error) {
	if len(data) > p.cfg.UDPMaxDatagram {
		return buffer.Record{}, "too_large", fmt.Errorf("datagram over %d bytes", p.cfg.UDPMaxDatagram)
	}
	obj := bytes.TrimSpace(data)
	if len(obj) == 0 || obj[0] != '{' {
		return buffer.Record{}, "not_object", errors.New("not a JSON object")
	}
	if !json.Valid(obj) {
		return buffer.Record{}, "invalid_json", errors.New("invalid JSON")
	}
	tag := p.cfg.UDPTag
	t := now
	if key := p.cfg.UDPTimeKey; key != "" {
		var raw []byte
		found := false
		err := topLevel(obj, func(k, v []byte) bool {
			if keyIs(k, key) {
				raw, found = v, true
				return false
			}
			return true
		})
		if err != nil {
			return buffer.Record{}, "not_object", err
		}
		if found {
			et, err := parseEventTime(raw)
			if err != nil {
				return buffer.Record{}, "bad_time", fmt.Errorf("field %q: %w", key, err)
			}
			t = et
			if !p.cfg.UDPKeepTimeKey {
				obj = withoutKey(obj, key)
			}
		}
	}
	doc, id, err := p.docs.build(make([]byte, 0, len(obj)+96), obj, tag, t)
	if err != nil {
		return buffer.Record{}, "not_object", err
	}
	sec, nsec := t.Unix(), uint32(t.Nanosecond())
	if id == "" {
		id = eventID(tag, sec, nsec, obj)
	}
	return buffer.Record{ID: id, Tag: tag, Sec: sec, Nsec: nsec, Ingest: now.UnixNano(), Doc: doc}, "", nil
}

// maxEventSec is 9999-12-31T23:59:59Z: later times cannot be written in
// an index name or an RFC 3339 date.
const maxEventSec int64 = 253402300799

// parseEventTime reads a time field's raw JSON value: epoch seconds as a
// number, its decimal fraction kept to the nanosecond (a float64 would
// round 1700000000.123456789), or an RFC 3339 string.
func parseEventTime(v []byte) (time.Time, error) {
	if len(v) > 0 && v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return time.Time{}, fmt.Errorf("bad string %.40s", v)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not epoch seconds or an RFC 3339 time", clip.String(s, 40))
		}
		if t.Unix() < 0 || t.Unix() > maxEventSec {
			return time.Time{}, fmt.Errorf("%q is out of range", s)
		}
		return t, nil
	}
	num := string(v)
	intPart, frac, _ := strings.Cut(num, ".")
	if intPart == "" || strings.ContainsAny(num, "eE+-") || strings.ContainsFunc(intPart+frac, func(r rune) bool { return r < '0' || r > '9' }) {
		// Exponents and signs: rare enough for float64's precision.
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 || f > float64(maxEventSec) {
			return time.Time{}, fmt.Errorf("%.40s is not epoch seconds (0 to %d) or an RFC 3339 string", v, maxEventSec)
		}
		sec := math.Floor(f)
		return time.Unix(int64(sec), int64((f-sec)*1e9)).UTC(), nil
	}
	sec, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || sec > maxEventSec {
		return time.Time{}, fmt.Errorf("%.40s is not epoch seconds (0 to %d)", v, maxEventSec)
	}
	var nsec int64
	for i := 0; i < 9; i++ {
		nsec *= 10
		if i < len(frac) {
			nsec += int64(frac[i] - '0')
		}
	}
	return time.Unix(sec, nsec).UTC(), nil
}

// withoutKey returns obj (a valid JSON object) without its top-level
// member key, as Fluentd's parsers drop time_key unless keep_time_key.
func withoutKey(obj []byte, key string) []byte {
	out := make([]byte, 0, len(obj))
	out = append(out, '{')
	_ = topLevel(obj, func(k, v []byte) bool {
		if keyIs(k, key) {
			return true
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, v...)
		return true
	})
	return append(out, '}')
}

// appendUDP moves parsed datagrams into the buffer in batches. A full
// buffer blocks it (and so the reader) until there is room again.
func (p *Pipeline) appendUDP(ctx context.Context, ch <-chan buffer.Record) {
	// Batches stay well under the buffer's limit so that one always fits
	// once acknowledged segments are deleted.
	maxBytes := min(1<<20, int(p.cfg.BufferMaxBytes/16))
	size := func(r *buffer.Record) int { return len(r.Doc) + len(r.ID) + len(r.Tag) + 32 }
	batch := make([]buffer.Record, 0, 512)
	var carry *buffer.Record
	for {
		batch = batch[:0]
		bytes := 0
		if carry != nil {
			batch, bytes, carry = append(batch, *carry), size(carry), nil
		} else {
			r, ok := <-ch
			if !ok {
				return
			}
			batch, bytes = append(batch, r), size(&r)
		}
	fill:
		for len(batch) < cap(batch) && bytes < maxBytes {
			select {
			case r, ok := <-ch:
				if !ok {
					break fill
				}
				if bytes+size(&r) > maxBytes {
					carry = &r
					break fill
				}
				batch, bytes = append(batch, r), bytes+size(&r)
			default:
				break fill
			}
		}
		waiting := false
		for {
			err := p.buf.Append(ctx, batch)
			if err == nil {
				if waiting {
					p.log.Info("udp input buffering again")
				}
				p.udpEvents.Add(uint64(len(batch)))
				p.mEvents.WithLabelValues("udp").Add(float64(len(batch)))
				break
			}
			if errors.Is(err, buffer.ErrTooLarge) && len(batch) == 1 {
				// A datagram the buffer can never hold (over --buffer-max/2).
				p.udpBad.Add(1)
				p.mBad.WithLabelValues("too_large").Inc()
				if derr := p.dead.write(DeadLetter{Source: "udp", Reason: err.Error(), Tag: batch[0].Tag, ID: batch[0].ID}, batch[0].Doc); derr == nil {
					p.deadCount.Add(1)
					p.mDead.WithLabelValues("udp").Inc()
				}
				break
			}
			if ctx.Err() != nil || errors.Is(err, buffer.ErrClosed) {
				p.log.Warn("udp events not buffered at shutdown", "events", len(batch))
				// Drain so the reader can exit.
				for range ch {
				}
				return
			}
			if !waiting {
				// One line per state change, not per retry.
				p.log.Warn("udp input waiting for buffer space; kernel drops will follow", "err", err)
				waiting = true
			}
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}
