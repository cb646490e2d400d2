package buffer

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Errors returned by Append and Next.
var (
	ErrFull   = errors.New("buffer: full")
	ErrClosed = errors.New("buffer: closed")
)

// Options configure a Buffer.
type Options struct {
	// Dir holds the segment files and the checkpoint. Ignored in memory mode.
	Dir string
	// Memory keeps everything in memory: no fsync, nothing survives a crash.
	Memory bool
	// MaxBytes caps the bytes held (segments on disk plus appends waiting to
	// be written). Default 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size at which the active segment is sealed and a
	// new one started. Default 32 MiB, and at most MaxBytes/8 so that
	// deleting acknowledged segments can always make room.
	SegmentBytes int64
	// MaxRecordBytes caps one record (and what recovery believes a header).
	// Default 16 MiB.
	MaxRecordBytes int
	// FullWait is how long Append waits for space before returning ErrFull.
	// While it waits the caller is not reading its connection, which is the
	// backpressure. Default 0: fail at once.
	FullWait time.Duration
	// CheckpointInterval is how often the acknowledged prefix is persisted.
	// Default 1s.
	CheckpointInterval time.Duration
	// OnCorrupt, when set, is told about each run of damaged bytes: during
	// Open for what recovery found, and from Next when a record fails its
	// checksum as it is read. It must not call back into the Buffer.
	OnCorrupt func(Corruption)
	// OnWriteError, when set, is called for every group commit that failed
	// on the disk (before its appenders get the error), and with nil for
	// the first commit that succeeds after one. It runs on the committer:
	// it must be quick and must not call back into the Buffer.
	OnWriteError func(*WriteError)
	// OnCommit, when set, is told how long each durable group commit took
	// (its write and fdatasync, what every ack in it waited for at the
	// least) and how many bytes it made durable. It runs on the
	// committer: it must be quick and must not call back into the Buffer.
	OnCommit func(d time.Duration, bytes int)

	fs fileSystem // segment files; tests inject faults here
}

func (o *Options) defaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 32 << 20
	}
	if lim := o.MaxBytes / 8; o.SegmentBytes > lim {
		o.SegmentBytes = max(lim, 4096)
	}
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = 16 << 20
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Second
	}
	if o.fs == nil {
		o.fs = osFS{}
	}
}

// Stats is a snapshot of the buffer.
type Stats struct {
	Bytes          int64  // bytes held, segments plus pending appends
	Segments       int    // live segments
	Records        int64  // records appended and not yet acknowledged
	Appended       uint64 // records made durable since Open
	AppendedBytes  uint64 // their bytes
	Acked          uint64 // records acknowledged since Open
	Commits        uint64 // fsyncs (group commits) since Open
	Full           uint64 // appends refused for lack of space
	Undelivered    int64  // records durable but not yet handed out by Next
	CorruptRecords uint64 // records lost to damaged bytes (estimated), at recovery or when read
	WriteErrors    uint64 // group commits that failed (a WriteError to each of their appenders)
	// PlainSegments counts segments started without preallocated blocks:
	// the spare was not ready at a rotation, or preallocating failed (a
	// full disk). Every commit to one extends the file, and its
	// fdatasync journals the new size: slower acks until the next one.
	PlainSegments uint64
	// ReusedSegments counts segments started in the file of a fully
	// acknowledged one instead of a new file (segment.go): commits there
	// overwrite blocks the disk already holds.
	ReusedSegments uint64
	// DirectCommits counts group commits written around the page cache
	// (writeBatch): all of them but those past a segment's preallocated
	// blocks, unless the filesystem refuses O_DIRECT.
	DirectCommits uint64
}

// Buffer is the durable queue. Append, Next and Ack are safe for concurrent
// use.
type Buffer struct {
	opts Options

	mu       sync.Mutex
	segs     []*segment // ordered by id; the last one is active
	nextID   uint64
	bytes    int64 // committed segment bytes
	reserved int64 // bytes in pending batches
	cur      *pendingBatch
	kick     chan struct{}
	notify   chan struct{} // closed and replaced on every commit and ack
	readSeg  int           // index into segs of the reader
	readIdx  int           // next record index in segs[readSeg]
	closed   bool
	// dirty: a failed write left bytes past the active segment's committed
	// size and truncating them failed too; the next commit retries that
	// before writing.
	dirty        bool
	writeFailing bool // the last commit failed
	stats        Stats
	ckDirty      bool
	ckLast       string
	recovery     Recovery
	corrupt      []Corruption

	wg        sync.WaitGroup
	stop      chan struct{}
	closeOnce sync.Once

	// The next segment is created and preallocated ahead of time, so that
	// a rotation costs no I/O and fdatasync on a preallocated file has no
	// file size to journal.
	spare        chan spareResult
	spareOut     bool // a spare is being prepared or waits in spare
	spareDiscard bool // ... and will be removed when it arrives

	// reusable holds files of fully acknowledged segments kept for the
	// next spares, under their old names; they fit in MaxBytes beside the
	// bytes held (keepForReuse).
	reusable []storage

	removeWG sync.WaitGroup // segment files being deleted or kept for reuse
	freeBuf  []byte         // a written batch's buffer, for the next batch
	freeEnds []int          // ... and its record ends
	// directBuf is the aligned buffer the committer's direct writes go
	// through; only the committer uses it.
	directBuf []byte
}

// keptAtClose bounds the files kept for reuse that Close leaves for the
// next Open: enough for its first segments, until delivery frees more.
const keptAtClose = 4

// Open opens (or creates) the buffer, recovering what is on disk.
func Open(opts Options) (*Buffer, error) {
	opts.defaults()
	b := &Buffer{
		opts:   opts,
		kick:   make(chan struct{}, 1),
		notify: make(chan struct{}),
		stop:   make(chan struct{}),
		cur:    &pendingBatch{done: make(chan struct{})},
		nextID: 1,
		spare:  make(chan spareResult, 1),
	}
	if !opts.Memory {
		if opts.Dir == "" {
			return nil, errors.New("buffer: no directory given")
		}
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("buffer: %w", err)
		}
		if err := b.recover(); err != nil {
			b.closeSegments()
			return nil, err
		}
		if opts.OnCorrupt != nil {
			for _, c := range b.corrupt {
				opts.OnCorrupt(c)
			}
		}
	}
	if len(b.segs) == 0 || b.segs[len(b.segs)-1].sealed {
		if err := b.newSegment(); err != nil {
			b.closeSegments()
			return nil, err
		}
	}
	b.wg.Add(2)
	go b.committer()
	go b.checkpointer()
	return b, nil
}

// Recovery reports what Open found.
func (b *Buffer) Recovery() Recovery { return b.recovery }

// Corruptions lists the damaged bytes found since Open: by recovery, and
// in records that failed their checksum when read.
func (b *Buffer) Corruptions() []Corruption {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Corruption(nil), b.corrupt...)
}

// Dir is the buffer directory ("" in memory mode).
func (b *Buffer) Dir() string {
	if b.opts.Memory {
		return ""
	}
	return b.opts.Dir
}

func (b *Buffer) broadcastLocked() {
	close(b.notify)
	b.notify = make(chan struct{})
}

// Stats returns a snapshot.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.Bytes = b.bytes + b.reserved
	s.Segments = len(b.segs)
	var undelivered int64
	for i := b.readSeg; i < len(b.segs); i++ {
		n := len(b.segs[i].ends)
		if i == b.readSeg {
			n -= b.readIdx
		}
		undelivered += int64(n)
	}
	s.Undelivered = undelivered
	return s
}

// Close flushes pending appends, persists the checkpoint and closes the
// files. Unacknowledged records stay on disk for the next Open.
func (b *Buffer) Close() error {
	b.closeOnce.Do(b.close)
	return nil
}

func (b *Buffer) close() {
	close(b.stop)
	b.wg.Wait()
	b.mu.Lock()
	b.closed = true
	// An append that slipped in after the committer's last round.
	if p := b.cur; len(p.ends) > 0 {
		b.reserved -= int64(len(p.buf))
		p.err = ErrClosed
		b.cur = &pendingBatch{done: make(chan struct{})}
		close(p.done)
	}
	b.broadcastLocked()
	spareOut := b.spareOut && !b.spareDiscard
	b.spareOut = false
	b.mu.Unlock()
	if spareOut {
		// An unused spare holds no records: remove it rather than leave a
		// preallocated file for recovery to clear.
		if r := <-b.spare; r.seg != nil {
			r.seg.st.Remove()
		}
	}
	b.removeWG.Wait()
	// Files kept for reuse hold only acknowledged records, but some may
	// be numbered past the checkpoint (their segments were acknowledged
	// out of order): emptied, the next Open keeps them for reuse instead
	// of delivering their records again. Only a few stay: a stopped
	// pipeline should not hold a buffer's worth of empty files.
	b.mu.Lock()
	reusable := b.reusable
	b.reusable = nil
	b.mu.Unlock()
	for i, st := range reusable {
		if i >= keptAtClose || emptySegment(st) != nil {
			st.Remove()
			continue
		}
		st.Close()
	}
	b.closeSegments()
}

func (b *Buffer) closeSegments() {
	for _, s := range b.segs {
		s.st.Close()
	}
}
