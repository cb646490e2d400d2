package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

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
	local := conn.LocalAddr().(*net.UDPAddr)
	p.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "logdoctor_pipeline_udp_kernel_drops_total",
		Help: "Datagrams the kernel dropped for the UDP input socket (drops column of /proc/net/udp): receive buffer overflow.",
	}, func() float64 { return float64(p.udpKernelDrops(local)) }))

	ch := make(chan buffer.Record, udpQueue)
	p.inWG.Add(2)
	go func() { defer p.inWG.Done(); defer close(ch); p.readUDP(ctx, conn, ch) }()
	// The appender outlives the reader at shutdown: datagrams already read
	// are buffered unless the shutdown deadline passes first.
	go func() { defer p.inWG.Done(); p.appendUDP(p.drainCtx, ch) }()
	return nil
}

// UDPKernelDrops reads the kernel's drop counter for the UDP input socket.
func (p *Pipeline) UDPKernelDrops() uint64 {
	if p.udpConn == nil {
		return 0
	}
	return p.udpKernelDrops(p.udpConn.LocalAddr().(*net.UDPAddr))
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
	doc, id, err := p.docs.build(make([]byte, 0, len(obj)+96), obj, tag, now)
	if err != nil {
		return buffer.Record{}, "not_object", err
	}
	sec, nsec := now.Unix(), uint32(now.Nanosecond())
	if id == "" {
		id = eventID(tag, sec, nsec, obj)
	}
	return buffer.Record{ID: id, Tag: tag, Sec: sec, Nsec: nsec, Ingest: now.UnixNano(), Doc: doc}, "", nil
}

// appendUDP moves parsed datagrams into the buffer in batches. A full
// buffer blocks it (and so the reader) until there is room again.
func (p *Pipeline) appendUDP(ctx context.Context, ch <-chan buffer.Record) {
	batch := make([]buffer.Record, 0, 512)
	for {
		r, ok := <-ch
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-ch:
				if !ok {
					break fill
				}
				batch = append(batch, r)
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
