package store

import (
	"math/rand/v2"
	"testing"
)

// TestIDTableAgainstMap drives the table and a map with the same random
// inserts and deletes over a few hashes (long probe runs that wrap around
// the table's end, many ids per hash) and checks every key after each
// step batch: backward-shift deletion must never strand an entry.
func TestIDTableAgainstMap(t *testing.T) {
	for _, hashes := range []uint32{1, 7, 64, 1 << 20} {
		rng := rand.New(rand.NewPCG(1, uint64(hashes)))
		var tab idTable
		want := map[int32]uint32{} // live position -> its hash
		hashOf := func(p int32) uint32 { return (uint32(p) * 2654435761) % hashes }
		find := func(p int32) int {
			slot, err := tab.lookup(hashOf(p), func(q int32) (bool, error) { return q == p, nil })
			if err != nil {
				t.Fatal(err)
			}
			return slot
		}
		next := int32(0)
		for step := 0; step < 20000; step++ {
			if len(want) == 0 || rng.IntN(3) > 0 {
				tab.insert(hashOf(next), next)
				want[next] = hashOf(next)
				next++
			} else {
				var p int32
				for p = range want {
					break
				}
				slot := find(p)
				if slot < 0 {
					t.Fatalf("hashes %d step %d: live %d not found", hashes, step, p)
				}
				tab.remove(slot)
				delete(want, p)
			}
			if step%997 == 0 || step > 19900 {
				if tab.n != len(want) {
					t.Fatalf("hashes %d: n %d, want %d", hashes, tab.n, len(want))
				}
				for p := int32(0); p < next; p++ {
					_, live := want[p]
					if got := find(p) >= 0; got != live {
						t.Fatalf("hashes %d step %d: position %d found %v, live %v", hashes, step, p, got, live)
					}
				}
			}
			if hashes == 1 && next > 600 { // one hash: every lookup walks the cluster
				break
			}
		}
		// Renumbering keeps every entry findable under its new position.
		remap := make([]int32, next)
		for p := range remap {
			remap[p] = int32(p) + 1000
		}
		tab.renumber(remap)
		for p := range want {
			slot, _ := tab.lookup(hashOf(p), func(q int32) (bool, error) { return q == p+1000, nil })
			if slot < 0 {
				t.Fatalf("hashes %d: %d lost in renumbering", hashes, p)
			}
		}
	}
}

func BenchmarkIDTableInsertLookup(b *testing.B) {
	var tab idTable
	for i := 0; i < b.N; i++ {
		h := uint32(i) * 2654435761
		tab.insert(h, int32(i))
		if s, _ := tab.lookup(h, func(q int32) (bool, error) { return q == int32(i), nil }); s < 0 {
			b.Fatal("lost")
		}
	}
}

// TestIDTableGrowsByHalf: each shard stays between half and three
// quarters full past its smallest size (growing by half, not doubling,
// which left it three eighths full and made the step at 3.15M documents
// 32 MiB), every entry is found after each growth to a size that is no
// power of two, and the shards share the entries evenly, so the largest
// single step is about a 64th of the table.
func TestIDTableGrowsByHalf(t *testing.T) {
	var tab idTable
	var prev [idShards]int
	const n = 400_000
	for p := int32(0); p < n; p++ {
		h := uint32(p) * 2654435761
		tab.insert(h, p)
		sh := &tab.shards[tab.shardOf(h)]
		if m := len(sh.slots); m != prev[tab.shardOf(h)] {
			if was := prev[tab.shardOf(h)]; was != 0 && m != was+was/2 {
				t.Fatalf("a shard grew from %d to %d slots, want %d", was, m, was+was/2)
			}
			prev[tab.shardOf(h)] = m
			for q := int32(0); q <= p; q += 97 {
				if slot, _ := tab.lookup(uint32(q)*2654435761, func(r int32) (bool, error) { return r == q, nil }); slot < 0 {
					t.Fatalf("%d slots: entry %d lost", m, q)
				}
			}
		}
		if sh.n > idTableMin && (sh.n*2 < len(sh.slots) || sh.n*4 > len(sh.slots)*3) {
			t.Fatalf("%d entries in %d slots: want between half and three quarters full", sh.n, len(sh.slots))
		}
	}
	total := 0
	for i := range tab.shards {
		sh := &tab.shards[i]
		total += sh.n
		if sh.n < n/idShards*3/4 || sh.n > n/idShards*5/4 {
			t.Errorf("shard %d holds %d of %d entries, want about %d", i, sh.n, n, n/idShards)
		}
	}
	if total != n || tab.n != n {
		t.Fatalf("shards hold %d, table counts %d, want %d", total, tab.n, n)
	}
	for q := int32(0); q < n; q++ {
		if slot, _ := tab.lookup(uint32(q)*2654435761, func(r int32) (bool, error) { return r == q, nil }); slot < 0 {
			t.Fatalf("entry %d lost", q)
		}
	}
}
