package store

// idTable finds documents by _id in 8 bytes a slot: open-addressing
// tables (linear probing, backward-shift deletion, so no tombstones) whose
// slots hold a 32-bit hash of the id and the document's position. It keeps
// no id: a hash match is only a candidate, which the caller confirms by
// reading the id back, so two ids sharing a hash are told apart at the
// cost of a read. At 1.5 million documents the table is 16 MiB and holds
// no pointer; a map[string]int32 with the id strings took about 90 bytes
// a document and gave the garbage collector millions of objects to scan.
//
// It is idShards tables, picked by the hash's scrambled top bits, each
// growing by half when it is three quarters full: one table growing by
// half still had the old and the new slots alive while the entries moved
// (37 and 55 MiB at 3.47M documents, the peak RSS of a pipeline embedding
// essim); a shard's step is a 64th of that. Doubling, before, made the
// step 32 to 64 MiB at 3.15M documents.
type idTable struct {
	shards [idShards]idShard
	n      int
}

// idShards is a power of two: a shard is the top idShardBits of the
// scrambled hash, and a slot's home in it is scaled from the bits below.
const (
	idShardBits = 6
	idShards    = 1 << idShardBits
)

// scramble spreads a hash whose low bits repeat (tests mask them) over
// the whole word (Fibonacci hashing).
func scramble(h uint32) uint32 { return h * 0x9E3779B1 }

// A slot handle names a slot in a shard, the shard in its low bits (a
// shard has fewer than 2^25 slots even where int is 32 bits: positions
// are int32).
func handle(shard, i int) int      { return i<<idShardBits | shard }
func unhandle(slot int) (int, int) { return slot & (idShards - 1), slot >> idShardBits }

func (t *idTable) shardOf(h uint32) int { return int(scramble(h) >> (32 - idShardBits)) }

// lookup calls same for each position whose hash is h until it reports
// true, and returns that slot's handle, or -1.
func (t *idTable) lookup(h uint32, same func(pos int32) (bool, error)) (int, error) {
	sh := t.shardOf(h)
	i, err := t.shards[sh].lookup(h, same)
	if i < 0 || err != nil {
		return -1, err
	}
	return handle(sh, i), nil
}

// touch loads the slots where lookups of the hashes hs start, and folds
// them into a word the caller keeps (so the loads are not optimised
// away). Each load is independent of the others: in a tight loop the CPU
// overlaps their cache misses, where lookups one at a time, each between
// a bulk item's other work, wait for them one after the other.
func (t *idTable) touch(hs []uint32) uint64 {
	var x uint64
	for _, h := range hs {
		if sh := &t.shards[t.shardOf(h)]; sh.n > 0 {
			x ^= sh.slots[sh.home(h)]
		}
	}
	return x
}

func (t *idTable) pos(slot int) int32 {
	sh, i := unhandle(slot)
	return t.shards[sh].pos(i)
}

// insert adds pos under h; the caller knows the id is not there yet.
func (t *idTable) insert(h uint32, pos int32) {
	t.shards[t.shardOf(h)].insert(h, pos)
	t.n++
}

// remove empties a slot lookup returned.
func (t *idTable) remove(slot int) {
	sh, i := unhandle(slot)
	t.shards[sh].remove(i)
	t.n--
}

// renumber maps every position through remap (after compaction).
func (t *idTable) renumber(remap []int32) {
	for i := range t.shards {
		t.shards[i].renumber(remap)
	}
}

// slotCount is the slots of every shard: the table's memory, 8 bytes each.
func (t *idTable) slotCount() int {
	n := 0
	for i := range t.shards {
		n += len(t.shards[i].slots)
	}
	return n
}

type idShard struct {
	slots []uint64 // 0 = empty, else hash<<32 | (pos+1)
	n     int
}

const idTableMin = 16

// home maps the scrambled hash's bits below the shard's onto the slots
// (multiply-shift by their high bits).
func (t *idShard) home(h uint32) int {
	return int(uint64(scramble(h)<<idShardBits) * uint64(len(t.slots)) >> 32)
}

// next is the slot after i, wrapping at the end.
func (t *idShard) next(i int) int {
	if i++; i == len(t.slots) {
		return 0
	}
	return i
}

// lookup is idTable.lookup inside the shard, returning the slot's index.
func (t *idShard) lookup(h uint32, same func(pos int32) (bool, error)) (int, error) {
	if t.n == 0 {
		return -1, nil
	}
	for i := t.home(h); ; i = t.next(i) {
		e := t.slots[i]
		if e == 0 {
			return -1, nil
		}
		if uint32(e>>32) == h {
			ok, err := same(int32(uint32(e) - 1))
			if err != nil {
				return -1, err
			}
			if ok {
				return i, nil
			}
		}
	}
}

func (t *idShard) pos(slot int) int32 { return int32(uint32(t.slots[slot]) - 1) }

func (t *idShard) insert(h uint32, pos int32) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(max(len(t.slots)+len(t.slots)/2, idTableMin))
	}
	t.place(uint64(h)<<32 | uint64(uint32(pos)+1))
	t.n++
}

func (t *idShard) place(e uint64) {
	i := t.home(uint32(e >> 32))
	for t.slots[i] != 0 {
		i = t.next(i)
	}
	t.slots[i] = e
}

func (t *idShard) resize(size int) {
	old := t.slots
	t.slots = make([]uint64, size)
	for _, e := range old {
		if e != 0 {
			t.place(e)
		}
	}
}

// remove empties slot i and shifts back the entries after it that would
// otherwise become unreachable.
func (t *idShard) remove(i int) {
	t.slots[i] = 0
	t.n--
	for j := t.next(i); t.slots[j] != 0; j = t.next(j) {
		k := t.home(uint32(t.slots[j] >> 32))
		// The entry at j stays if its home lies cyclically in (i, j].
		if (i < j && i < k && k <= j) || (i > j && (k > i || k <= j)) {
			continue
		}
		t.slots[i], t.slots[j] = t.slots[j], 0
		i = j
	}
}

func (t *idShard) renumber(remap []int32) {
	for i, e := range t.slots {
		if e != 0 {
			t.slots[i] = e&^0xFFFFFFFF | uint64(uint32(remap[uint32(e)-1])+1)
		}
	}
}
