package store

// idTable finds documents by _id in 8 bytes a slot: an open-addressing
// table (linear probing, backward-shift deletion, so no tombstones) whose
// slots hold a 32-bit hash of the id and the document's position. It keeps
// no id: a hash match is only a candidate, which the caller confirms by
// reading the id back, so two ids sharing a hash are told apart at the
// cost of a read. At 1.5 million documents the table is 16 MiB and holds
// no pointer; a map[string]int32 with the id strings took about 90 bytes
// a document and gave the garbage collector millions of objects to scan.
//
// The table grows by half when it is three quarters full, not by double:
// its size need not be a power of two (a slot's home is the scrambled
// hash scaled to the size). Doubling made its step the largest single
// allocation of a pipeline embedding essim, at the sizes that reaches
// (32 to 64 MiB at 3.15M documents, both alive while the entries move).
type idTable struct {
	slots []uint64 // 0 = empty, else hash<<32 | (pos+1)
	n     int
}

const idTableMin = 16

func (t *idTable) home(h uint32) int {
	// Fibonacci hashing spreads a hash whose low bits repeat (tests mask
	// them) over the whole word, and the multiply-shift maps the word
	// onto the slots by its high bits.
	return int(uint64(h*0x9E3779B1) * uint64(len(t.slots)) >> 32)
}

// next is the slot after i, wrapping at the end.
func (t *idTable) next(i int) int {
	if i++; i == len(t.slots) {
		return 0
	}
	return i
}

// lookup calls same for each position whose hash is h until it reports
// true, and returns that slot, or -1.
func (t *idTable) lookup(h uint32, same func(pos int32) (bool, error)) (int, error) {
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

// touch loads the slots where lookups of the hashes hs start, and folds
// them into a word the caller keeps (so the loads are not optimised
// away). Each load is independent of the others: in a tight loop the CPU
// overlaps their cache misses, where lookups one at a time, each between
// a bulk item's other work, wait for them one after the other.
func (t *idTable) touch(hs []uint32) uint64 {
	if t.n == 0 {
		return 0
	}
	var x uint64
	for _, h := range hs {
		x ^= t.slots[t.home(h)]
	}
	return x
}

func (t *idTable) pos(slot int) int32 { return int32(uint32(t.slots[slot]) - 1) }

// insert adds pos under h; the caller knows the id is not there yet.
func (t *idTable) insert(h uint32, pos int32) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(max(len(t.slots)+len(t.slots)/2, idTableMin))
	}
	t.place(uint64(h)<<32 | uint64(uint32(pos)+1))
	t.n++
}

func (t *idTable) place(e uint64) {
	i := t.home(uint32(e >> 32))
	for t.slots[i] != 0 {
		i = t.next(i)
	}
	t.slots[i] = e
}

func (t *idTable) resize(size int) {
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
func (t *idTable) remove(i int) {
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

// renumber maps every position through remap (after compaction).
func (t *idTable) renumber(remap []int32) {
	for i, e := range t.slots {
		if e != 0 {
			t.slots[i] = e&^0xFFFFFFFF | uint64(uint32(remap[uint32(e)-1])+1)
		}
	}
}
