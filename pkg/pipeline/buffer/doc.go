// Package buffer is the pipeline's durable on-disk queue: append-only
// segment files of checksummed records, group commit (one fdatasync covers
// every append that arrived while the previous one ran, and Append returns
// only once its records are on disk), recovery that truncates a torn tail,
// skips damaged records (keeping a copy of their bytes) without losing the
// intact ones around them, and replays what Elasticsearch has not
// acknowledged, a size limit that pushes back instead of growing, and
// deletion of a segment once every record in it is acknowledged.
//
// A memory-only mode keeps the same format in memory; it loses everything
// on a crash and exists for benchmarks.
//
// # On-disk format
//
// The buffer directory holds:
//
//	seg-NNNNNNNNNNNNNNNN.log   segment files, N the segment id in 16 decimal digits
//	checkpoint                 the acknowledged prefix, JSON (below)
//	checkpoint.tmp             a checkpoint being written (renamed over checkpoint)
//	corrupt/SEG.FROM-TO        copies of damaged bytes [FROM, TO) of segment file SEG
//
// Recovery ignores every other name, so the directory may also hold the
// pipeline's dead-letter file.
//
// A segment file is an 8-byte magic, then frames back to back, then
// zeros (the rest of a preallocated file) or, in a file that held an
// earlier segment, a terminator and that segment's leftover:
//
//	"LDBUF3\n\x00" | frame | frame | ... | 00 00 ...
//	"LDBUF3\n\x01" | frame | frame | ... | 16+ bytes 00 | leftover ...
//
// An LDBUF3 frame is a 16-byte header and the payload:
//
//	u32 sync marker FF 4C 44 FE | u32 payload length |
//	u32 CRC-32C(payload) | u32 CRC-32C(u64 segment id, then the 12 header bytes before it) | payload
//
// The segment id is the one in the file's name. Sealing the header
// checksum with it makes a frame intact only in the segment it was
// written to, so the frames a reused file still holds past the data read
// as nothing. Every commit writes zeros after its frames, a frame
// header's worth at least, up to a page boundary: in a reused file that
// is the terminator recovery stops at.
//
// Segments written by earlier versions start with "LDBUF2\n\x00" (the
// same frames, header checksum over the 12 bytes alone) or "LDBUF1\n\x00"
// (8-byte headers, no sync marker):
//
//	u32 payload length | u32 CRC-32C(payload) | payload
//
// The payload is the same in all three:
//
//	u8 version (1 or 2) | u8 id length | id | u16 tag length | tag |
//	i64 event seconds | u32 event nanoseconds | i64 ingest unix nanoseconds |
//	document (the rest: the JSON sent to Elasticsearch)
//
// Version 2 (Record.Raw, LDBUF2 and LDBUF3 only) has the same layout with
// an empty id and, as the document, the record as the shipper sent it
// (msgpack): the reader makes the JSON document and the id from those
// durable bytes.
//
// Version 3 (LDBUF3 only) is a group: the records of one append that
// share tag, ingest time and Raw (a forward request's events), as many
// as fit in 256 KiB, in one frame:
//
//	u8 version (3) | u8 flags (1: Raw) | u16 tag length | tag |
//	i64 ingest unix nanoseconds | u32 count | count times:
//	  u8 id length | id | i64 event seconds | u32 event nanoseconds |
//	  u32 document length | document
//
// A group's records are records like any other (an index each, acked one
// by one); they share the frame's end offset, which is how the segment's
// table of record ends tells a group (segment.offsetOf gives the frame's
// start for each). The checkpoint only ever covers whole frames: a group
// whose first records are acknowledged and the rest not is replayed
// whole. Damage to a group frame loses its records (the count it
// declares, if still readable, is the estimate). Logdoctor versions
// before groups read a version-3 payload as damage.
//
// All integers are little endian; CRC-32C is the Castagnoli polynomial.
// The header checksum is what lets recovery trust a payload length after
// damage: a damaged payload under an intact header is skipped by its
// length, and after a damaged header the next frame is found by searching
// for the marker and checking the header it starts. The marker's FF and FE
// bytes never occur in UTF-8 text, so JSON documents do not contain it;
// records stored as sent (msgpack, version 2) may, and a false marker is
// then refused by the header checksum it would need, at the cost of the
// estimate of records lost in damaged bytes, which counts markers; an
// LDBUF1 segment has no marker, so recovery tries every offset there, with
// a budget of checksummed bytes. Zeros hold no marker and no plausible
// length: they end a segment. The magic's version is not trusted blindly
// either: a damaged magic, or one under which the segment reads with
// damage, is read as every version and the one finding the most intact
// records wins (one flipped bit turns "LDBUF3" into "LDBUF2" or "LDBUF1").
//
// In a reused segment the data ends at the terminator, or where a commit
// a crash cut short runs into leftover: that torn tail is cut off like one
// that runs into zeros. A frame under an intact header that is complete
// and followed by a terminator was written whole, so its damage is
// corruption, as is damage between intact frames; a damaged header after
// the last intact frame cannot be told from a torn one there, and is cut
// as torn (in a fresh segment it is corruption).
//
// The checkpoint file is
//
//	{"segment": S, "index": I, "offset": O}
//
// meaning: every record of segments numbered below S, and the first I
// records of segment S (which end at byte offset O, a frame's end), were
// acknowledged.
// Recovery trusts O over I when O is present, because damage inside the
// prefix can remove a record from the scan and shift every index after it.
//
// # Invariants
//
//   - A record is on disk before it is acknowledged to a sender: Append
//     returns nil only after its bytes were written and fdatasync'd (or
//     written with RWF_DSYNC, which is the same guarantee), and a
//     segment file's directory entry was synced when the file was created.
//   - Only the newest segment (the active one) is written; every other is
//     sealed. A record never spans segments. A segment outgrows SegmentBytes
//     only by the one batch that opened it, and never reaches 4 GiB, since
//     record offsets are u32.
//   - Segment ids only grow, and a new segment is numbered above every
//     existing one and above the checkpoint's segment, or the next recovery
//     would take it for an acknowledged one and delete it.
//   - In memory, a segment's size and record ends cover committed bytes
//     only; readers never look past them. Past the size of the active
//     segment lie the last commit's terminator and zeros (its
//     preallocation) or leftover (a reused file), or the bytes of a failed
//     write that the next commit truncates away before writing
//     (Buffer.dirty).
//   - A segment file is deleted, or kept for reuse, only when it is sealed
//     and all its records are acknowledged, and never while it holds
//     damaged bytes that could not be copied to corrupt/ (segment.pinned).
//     A reused file gets its new header durably under its old name before
//     it takes the new one: after a crash it holds its old, acknowledged
//     segment or an empty one.
//   - The checkpoint may lag behind the acks (it is written every
//     CheckpointInterval, without fsync): that only replays records, which
//     their deterministic _id turns into 409s, never loses one.
//   - Bytes held (committed bytes of live segments plus appends waiting for
//     their commit) stay within MaxBytes: Append waits or returns ErrFull.
//     SegmentBytes is at most MaxBytes/8, so acknowledged segments can
//     always free room. Files kept for reuse fit in MaxBytes beside the
//     bytes held, and are given back as those grow. A preallocated spare
//     is not counted: disk use is up to MaxBytes plus two segments.
//
// # Operation
//
// Writing (writer.go). Append encodes its records into the pending batch
// under the lock and waits for the batch's commit. The committer goroutine
// takes the whole batch, leaving an empty one for the appends that arrive
// meanwhile, writes it at the end of the active segment in one write and
// one fdatasync (within the file's blocks the write goes on with zeros
// past a header's worth to a page boundary: the terminator, and the
// filesystem never reads a block back to merge a partial page), and only
// then publishes the records and answers the appenders. A batch's frames
// are sealed for the segment active at its first append; when it goes to
// the next one, the committer reseals their headers first. Within the
// file's reserved blocks the write goes around the page cache (O_DIRECT):
// whole blocks, from the start of the block the data ends in, whose
// committed bytes the committer keeps (segment.lastPage) and writes again
// with the batch and the zeros, in one pwritev2 with RWF_DSYNC that
// returns once the disk has them, as an fdatasync after it would (a
// kernel without the flag gets a plain write and the fdatasync); past
// them (a segment's last commits, a plain segment, a filesystem that
// refuses O_DIRECT) it goes through the page cache, and fdatasync
// follows. A failed write or fdatasync fails the whole batch
// (WriteError) and is truncated away, so a segment is always a clean
// sequence of frames. When a batch would take the active segment past
// SegmentBytes, the committer seals it and moves to the spare segment,
// prepared in the background once the active one was a quarter full
// (the file of a fully acknowledged segment when one is kept, else a new
// file with its blocks reserved with fallocate, or zeros written where the
// filesystem cannot reserve them), so a rotation costs no I/O and
// fdatasync has no file size to journal; a spare that is not ready is
// discarded and a plain segment created. The
// segment Open starts is made the same way (plain if that fails).
//
// Reading and acknowledging (reader.go). Next hands out records in order,
// each once per process (NextInto in the memory of the caller's previous
// batch); the caller acknowledges each with Ack, which keeps
// a bitmap per segment and the length of its acknowledged prefix. A sealed
// segment whose records are all acknowledged is unlinked in the
// background, or kept, as far as MaxBytes has room for it, to become a
// later spare (Close empties a few kept files, keptAtClose, and removes
// the others; Open keeps them again, with those of segments it finds
// fully acknowledged): reusing its file costs one small write and a rename, and commits
// into it overwrite blocks the disk holds, where a new file's blocks cost
// every fdatasync an extent update and an unlink discards them
// (segment.go has the figures). A record that fails its checksum when read is handed out
// with Record.Corrupt set, its bytes quarantined.
//
// Readers go through the page cache while the committer writes around
// it, and still read what was committed: Linux drops the cached pages a
// direct write covers before the write returns, so records published
// after it are read from the disk; a read racing the write can only
// cache the block it starts in, whose committed bytes the write rewrites
// unchanged and whose bytes past them no reader looks at before the
// commit publishes them. What would keep a stale page (a dirty or
// memory-mapped one) never happens: the segment's buffered writes (its
// header, a reused file's terminator) are fdatasync'd before its first
// direct write, and a segment written through the page cache once is
// never written directly again (past its blocks, or allocEnd cleared
// after a failed write).
//
// Checkpointing (checkpoint.go). A goroutine writes the acknowledged prefix
// of the oldest live segment every CheckpointInterval and at Close.
//
// Recovery (recover.go, scan.go). Open scans every segment before deciding
// anything, because damage at the end of a segment is a torn write (cut
// off silently: none of it was acknowledged) only at the end of the newest
// data and only when the frame stops before its declared end. Any other
// damage is corruption: copied to corrupt/ before its segment can be
// deleted, reported through Corruptions and Options.OnCorrupt, and every
// intact record around it kept. Recovered segments are sealed; new records
// go to a new segment. Files of segments below the checkpoint's, and of
// segments left with nothing to deliver and no damage, are kept for reuse
// as far as MaxBytes has room beside what is recovered, else removed.
//
// # Concurrency
//
// Goroutines: callers of Append, Next, Ack, Wait and Stats; one committer;
// one checkpointer; at most one spare segment being prepared (and one
// discarded spare being waited for); segment files being unlinked or
// kept for reuse.
//
// The locking rule: Buffer.mu guards every mutable field of the Buffer and
// of its segments (sizes, record ends, acks, the reader's position, the
// pending batch, statistics, spare bookkeeping), and it is never held
// across a write, fdatasync, segment creation, read, quarantine copy,
// checkpoint write or callback; the one disk call made under it is the
// ftruncate that undoes a failed write. Work is moved off the lock by
// ownership instead: after Open only the committer writes live segment
// files and adds segments, at offsets past every committed record (a
// direct write rewrites the committed bytes of its first block, with the
// same bytes), so it writes unlocked while readers ReadAt committed
// ranges, and only it uses Buffer.directBuf and a segment's allocEnd and
// lastPage; only the checkpointer touches
// Buffer.ckLast; Options, Recovery and a segment's id, path, format, seal,
// reused, starts and pinned are fixed once Open or segment creation
// returns. A file kept for reuse (Buffer.reusable) belongs to whoever
// took it from the list under the lock. The only
// other lock is memStorage.mu, a leaf inside the memory-only storage's
// methods: lock order is Buffer.mu, then memStorage.mu, never the reverse.
// Waiters take Buffer.notify under the lock and wait on it unlocked; it is
// closed and replaced under the lock once a batch was written (or its
// write failed), on acks that free a segment or empty the buffer, and at
// Close.
package buffer
