package buffer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// checkpoint is the checkpoint file (doc.go): the acknowledged prefix.
type checkpoint struct {
	Segment uint64 `json:"segment"`
	Index   int    `json:"index"`
	// Offset is the end of the acknowledged prefix in the segment. Recovery
	// prefers it to Index: if damage removes a record from the prefix, the
	// index would reach one record too far.
	Offset int64 `json:"offset,omitempty"`
}

// readCheckpoint reads dir's checkpoint file. A missing one acknowledges
// nothing; one that does not parse only costs replays (409s).
func readCheckpoint(dir string) checkpoint {
	var ck checkpoint
	if data, err := os.ReadFile(filepath.Join(dir, "checkpoint")); err == nil {
		_ = json.Unmarshal(data, &ck)
	}
	return ck
}

// checkpointer persists the acknowledged prefix every CheckpointInterval,
// off the committer's path so that group commits never wait for it.
func (b *Buffer) checkpointer() {
	defer b.wg.Done()
	tick := time.NewTicker(b.opts.CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			b.writeCheckpoint()
		case <-b.stop:
			b.writeCheckpoint()
			return
		}
	}
}

// writeCheckpoint persists the acknowledged prefix of the oldest live
// segment so a restart does not replay what Elasticsearch already has.
// Losing it only means more replays, answered with 409.
func (b *Buffer) writeCheckpoint() {
	if b.opts.Memory {
		return
	}
	b.mu.Lock()
	if !b.ckDirty || len(b.segs) == 0 {
		b.mu.Unlock()
		return
	}
	b.ckDirty = false
	seg := b.segs[0]
	ck := checkpoint{Segment: seg.id, Index: seg.prefix}
	if ck.Index < len(seg.ends) {
		// Only whole frames: recovery acknowledges every record of a
		// frame that ends by Offset, and the rest of a group whose first
		// records were acknowledged is still to deliver.
		ck.Index = frameFirst(seg.ends, ck.Index)
	}
	if ck.Index > 0 {
		ck.Offset = int64(seg.ends[ck.Index-1])
	}
	b.mu.Unlock()
	data, _ := json.Marshal(ck)
	if string(data) == b.ckLast {
		return
	}
	tmp := filepath.Join(b.opts.Dir, "checkpoint.tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return
	}
	if err := os.Rename(tmp, filepath.Join(b.opts.Dir, "checkpoint")); err != nil {
		return
	}
	b.ckLast = string(data)
}
