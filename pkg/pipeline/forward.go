package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/inflight"
	"github.com/logdoctor/logdoctor/pkg/pipeline/buffer"
)

// forwardInput adapts the forward server to the buffer: a request is
// acknowledged (the handler returns nil) only after Append returned, that
// is after its events were fsync'd.
type forwardInput struct {
	p       *Pipeline
	srv     *forward.Server
	full    atomic.Bool
	scratch sync.Pool
	// recs holds *[]buffer.Record for rawRecords: a chunk's records are
	// about 100 KB of pointer-holding structs, dropped as soon as Append
	// has copied them into its batch.
	recs sync.Pool
}

func (p *Pipeline) startForward(ctx context.Context) error {
	ln, err := net.Listen("tcp", p.cfg.ForwardAddr)
	if err != nil {
		return fmt.Errorf("pipeline: forward listener: %w", err)
	}
	p.fwdLn = ln
	// The heartbeat (a 0x00 UDP datagram, answered in kind) lives on the
	// same port as the TCP listener.
	tcp := ln.Addr().(*net.TCPAddr)
	pc, err := net.ListenPacket("udp", net.JoinHostPort(tcp.IP.String(), fmt.Sprint(tcp.Port)))
	if err != nil {
		p.log.Warn("forward heartbeat port not available; heartbeats unanswered", "err", err)
	} else {
		p.fwdPC = pc
	}
	in := &forwardInput{p: p}
	if p.cfg.MaxInFlightBytes > 0 {
		p.budget = inflight.New(p.cfg.MaxInFlightBytes)
	}
	in.srv = &forward.Server{
		Handler: in,
		Limits: forward.Limits{
			MaxRequestBytes:      p.cfg.MaxRequestBytes,
			MaxDecompressedBytes: p.cfg.MaxDecompressedBytes,
		},
		Budget:              p.budget,
		SharedKey:           p.cfg.ForwardSharedKey,
		TLSConfig:           p.cfg.ForwardTLS,
		ReadTimeout:         p.cfg.ReadTimeout,
		IdleTimeout:         p.cfg.IdleTimeout,
		FirstRequestTimeout: max(p.cfg.FirstRequestTimeout, 0),
		MaxConns:            p.cfg.MaxConns,
		Hostname:            p.cfg.ForwardHostname,
		Logger:              p.log.With("component", "forward"),
	}
	st := func() forward.Stats { return in.srv.Stats() }
	closed := func(reason string, f func(forward.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_forward_connections_closed_total",
			Help:        "Forward connections the pipeline closed, by reason: evicted (idle the longest when the connection limit was reached), no_first_request (no complete request within --first-request-timeout), broken (too many values that were not requests).",
			ConstLabels: prometheus.Labels{"reason": reason}}, func() float64 { return float64(f(st())) })
	}
	p.reg.MustRegister(
		closed("evicted", func(s forward.Stats) int64 { return s.Evicted }),
		closed("no_first_request", func(s forward.Stats) int64 { return s.NoFirstRequest }),
		closed("broken", func(s forward.Stats) int64 { return s.ClosedBroken }),
	)
	if b := p.budget; b != nil {
		bs := func(f func(inflight.Stats) float64) func() float64 { return func() float64 { return f(b.Stats()) } }
		p.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logdoctor_pipeline_forward_inflight_bytes", Help: "Bytes held by forward requests being read, decoded and buffered."},
				bs(func(s inflight.Stats) float64 { return float64(s.Used) })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logdoctor_pipeline_forward_inflight_limit_bytes", Help: "The in-flight budget (--max-in-flight)."},
				bs(func(s inflight.Stats) float64 { return float64(s.Limit) })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logdoctor_pipeline_forward_inflight_waiting", Help: "Forward requests waiting for room in the in-flight budget (their connections not read)."},
				bs(func(s inflight.Stats) float64 { return float64(s.Waiting) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_forward_inflight_waits_total", Help: "Times a forward request waited for room in the in-flight budget."},
				bs(func(s inflight.Stats) float64 { return float64(s.Waits) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_forward_inflight_refused_total", Help: "Forward requests refused by the in-flight budget: larger than all of it, or holding the most when every request waited for more."},
				bs(func(s inflight.Stats) float64 { return float64(s.Refused + s.Preempted) })),
		)
	}
	p.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_forward_connections_total", Help: "Forward connections accepted."},
			func() float64 { return float64(st().Accepted) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_forward_connections_refused_total", Help: "Forward connections refused over the connection limit."},
			func() float64 { return float64(st().Refused) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logdoctor_pipeline_forward_connections", Help: "Open forward connections."},
			func() float64 { return float64(st().Active) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_forward_errors_total", Help: "Forward connections ended by bad input (malformed, over a limit, timeout)."},
			func() float64 { return float64(st().Errors) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_forward_broken_requests_total", Help: "Forward messages that were well-formed msgpack or JSON but not a request (in_forward's \"incoming chunk is broken\"): dropped, connection kept."},
			func() float64 { return float64(st().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logdoctor_pipeline_forward_auth_failures_total", Help: "Forward handshakes that failed."},
			func() float64 { return float64(st().AuthFailed) }),
	)
	p.fwdStats = func() forward.Stats { return in.srv.Stats() }
	p.inWG.Add(1)
	go func() {
		defer p.inWG.Done()
		if err := in.srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			p.log.Error("forward input stopped", "err", err)
		}
	}()
	if p.fwdPC != nil {
		p.inWG.Add(1)
		go func() {
			defer p.inWG.Done()
			in.srv.ServeHeartbeat(ctx, p.fwdPC)
		}()
	}
	return nil
}

const (
	// recordOverhead is a buffer.Record and its _id, per event.
	recordOverhead = 256
	// maxPooledDocs: larger document buffers go back to the GC, not to
	// the pool, so idle memory does not stay at the largest chunk seen.
	maxPooledDocs = 1 << 20
)

// HandleForward buffers one request's events.
func (in *forwardInput) HandleForward(ctx context.Context, peer net.Addr, req *forward.Request) error {
	p := in.p
	if len(req.Entries) == 0 {
		return nil
	}
	now := p.cfg.Now()
	ingest := now.UnixNano()
	size := 0
	for _, e := range req.Entries {
		size += len(e.Record)*5/4 + 96
	}
	// The documents (with --id-key), their Records, and the buffer's
	// encoded copy of them, held until the append is durable. Stored as
	// sent there are no documents: the same reservation is kept, an
	// over-estimate, so what the budget admits does not depend on the flag.
	if err := req.Reserve(2*int64(size) + int64(len(req.Entries))*recordOverhead); err != nil {
		p.fwdRefused.Add(1)
		p.mRefused.WithLabelValues("in_flight_budget").Inc()
		p.log.Warn("forward request refused without ack: its events do not fit in the in-flight memory budget",
			"peer", peer, "tag", req.Tag, "events", len(req.Entries), "err", err)
		return fmt.Errorf("%w: %w", forward.ErrCloseConnection, err)
	}
	var recs []buffer.Record
	var err error
	if p.docs.idKey == "" {
		rp, _ := in.recs.Get().(*[]buffer.Record)
		if rp == nil {
			rp = new([]buffer.Record)
		}
		recs = rawRecords((*rp)[:0], req, ingest)
		err = p.buf.Append(ctx, recs)
		// Append copied them; drop the references into the request.
		clear(recs)
		*rp = recs[:0]
		in.recs.Put(rp)
	} else {
		recs, err = in.documents(ctx, peer, req, ingest)
	}
	if err != nil {
		reason := "buffer_error"
		if errors.Is(err, buffer.ErrFull) {
			reason = "buffer_full"
			if !in.full.Swap(true) {
				p.log.Warn("buffer full: forward requests refused without ack until Elasticsearch catches up",
					"max_bytes", p.cfg.BufferMaxBytes)
			}
		} else if errors.Is(err, buffer.ErrTooLarge) {
			reason = "too_large"
		}
		p.fwdRefused.Add(1)
		p.mRefused.WithLabelValues(reason).Inc()
		// Closing the connection makes the sender retry at once instead of
		// after its ack timeout (190 s for Fluentd).
		return fmt.Errorf("%w: %w", forward.ErrCloseConnection, err)
	}
	if in.full.Swap(false) {
		p.log.Info("buffer has room again: forward requests acknowledged")
	}
	p.fwdReqs.Add(1)
	p.fwdEvents.Add(uint64(len(recs)))
	p.mEvents.WithLabelValues("forward").Add(float64(len(recs)))
	if req.Chunk != "" {
		p.fwdAcks.Add(1)
		p.mAcks.Inc()
	}
	return nil
}

func (in *forwardInput) deadLetter(peer net.Addr, tag string, raw []byte, reason string) {
	p := in.p
	if err := p.dead.write(DeadLetter{Source: "forward", Reason: reason, Peer: peer.String(), Tag: tag}, raw); err != nil {
		p.log.Error("dead-letter write failed", "err", err)
		return
	}
	p.deadCount.Add(1)
	p.mDead.WithLabelValues("forward").Inc()
}

// rawRecords stores a request's events as the shipper sent them: the
// document and the id are made from these durable bytes at delivery
// (prepareRaw), so the ack waits only for the durable write.
// What protects the buffer was checked by the decoder before: framing,
// declared lengths, the event count, the size caps, and that every
// record is one complete msgpack map.
func rawRecords(recs []buffer.Record, req *forward.Request, ingest int64) []buffer.Record {
	for _, e := range req.Entries {
		recs = append(recs, buffer.Record{Tag: req.Tag, Sec: int64(e.Time.Sec), Nsec: e.Time.Nsec, Ingest: ingest, Doc: e.Record, Raw: true})
	}
	return recs
}

// documents buffers a request's events as documents with their ids. With
// --id-key the id comes from a field, so it is taken at intake, under the
// configuration the event arrived with, and stored with the event.
func (in *forwardInput) documents(ctx context.Context, peer net.Addr, req *forward.Request, ingest int64) ([]buffer.Record, error) {
	p := in.p
	bp, _ := in.scratch.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	docs := (*bp)[:0]
	var js []byte
	recs := make([]buffer.Record, 0, len(req.Entries))
	// Hashed ids go into one buffer, made a single string after the loop:
	// one allocation per request instead of one per event. hashed[i] is the
	// offset of recs[i]'s id there, or -1 when it came from --id-key.
	var ids idHasher
	idBuf := make([]byte, 0, idLen*len(req.Entries))
	hashed := make([]int32, 0, len(req.Entries))
	for _, e := range req.Entries {
		var err error
		js, err = forward.RecordToJSON(js[:0], e.Record)
		if err != nil {
			in.deadLetter(peer, req.Tag, e.Record, fmt.Sprintf("record not convertible to JSON: %v", err))
			continue
		}
		t := time.Unix(int64(e.Time.Sec), int64(e.Time.Nsec))
		start := len(docs)
		var id string
		docs, id, err = p.docs.build(docs, js, req.Tag, t)
		if err != nil {
			docs = docs[:start]
			in.deadLetter(peer, req.Tag, e.Record, fmt.Sprintf("record is not a map: %v", err))
			continue
		}
		at := int32(-1)
		if id == "" {
			at = int32(len(idBuf))
			idBuf = ids.appendID(idBuf, req.Tag, int64(e.Time.Sec), e.Time.Nsec, e.Record)
		}
		hashed = append(hashed, at)
		recs = append(recs, buffer.Record{ID: id, Tag: req.Tag, Sec: int64(e.Time.Sec), Nsec: e.Time.Nsec, Ingest: ingest, Doc: docs[start:len(docs):len(docs)]})
	}
	idStr := string(idBuf)
	for i, at := range hashed {
		if at >= 0 {
			recs[i].ID = idStr[at : at+idLen]
		}
	}
	err := p.buf.Append(ctx, recs)
	if cap(docs) <= maxPooledDocs {
		*bp = docs[:0]
		in.scratch.Put(bp)
	}
	return recs, err
}

// rawScratch is what prepareRaw reuses between records.
type rawScratch struct {
	js   []byte
	keys []forward.KeySpan
	ids  idHasher
}

// prepareRaw is the output's Prepare: the document and the _id of a
// record stored as the shipper sent it, made exactly as intake made them
// before they moved here. The id is eventID over the stored tag, event
// time and record bytes, whatever --id-key says now (a Raw record was
// stored without one), so a record delivered again after a crash or a
// bulk timeout gets the same id, and so does the same event resent by the
// shipper.
func (p *Pipeline) prepareRaw(dst []byte, r buffer.Record) ([]byte, string, error) {
	sc, _ := p.prep.Get().(*rawScratch)
	if sc == nil {
		sc = new(rawScratch)
	}
	defer func() {
		if cap(sc.js) <= maxPooledScratch {
			p.prep.Put(sc)
		}
	}()
	var err error
	sc.js, sc.keys, err = forward.RecordToJSONKeys(sc.js[:0], r.Doc, sc.keys[:0])
	if err != nil {
		return dst, "", fmt.Errorf("record not convertible to JSON: %w", err)
	}
	out := p.docs.buildKeys(dst, sc.js, sc.keys, r.Tag, time.Unix(r.Sec, int64(r.Nsec)))
	var id [idLen]byte
	return out, string(sc.ids.appendID(id[:0], r.Tag, r.Sec, r.Nsec, r.Doc)), nil
}
