package actor

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// registry maps the serials of live local actors to their processes. It is a
// slab: a serial is slot+1 in its low 32 bits and the slot's generation (how
// often it has been reused) in its high 32 bits, so a lookup is two atomic
// loads with no lock, and a slot reused by a later actor never answers for a
// stopped one (its generation differs); a slot whose generation is exhausted
// is retired, so a serial is never issued twice. A slot's first generation
// is the registry's base, drawn when the node starts, so that a node
// restarted at the same address does not issue its previous incarnation's
// serials. Slots live in fixed chunks that never move; the chunk
// directory is replaced, never modified, when it grows.
//
// Spawns and stops take mu; lookups take nothing.
type registry struct {
	// base is the generation of a slot's first actor: drawn when the node
	// starts (newRegistryBase), so that a node restarted at the same
	// address does not issue the serials its previous incarnation did, and
	// a PID of an actor of that incarnation does not reach one of this.
	base uint32
	mu   sync.Mutex
	dir  atomic.Pointer[[]*slabChunk]
	gen  []uint32 // per slot, under mu
	free []uint32 // reusable slots, under mu
	used uint32   // slots handed out so far, under mu
}

const (
	slabChunkBits = 12
	slabChunkSize = 1 << slabChunkBits
)

type slabChunk [slabChunkSize]atomic.Pointer[process]

// add stores p in a free slot and returns its serial, never 0.
func (r *registry) add(p *process) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var slot uint32
	if n := len(r.free); n > 0 {
		slot = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		slot = r.used
		r.used++
		r.gen = append(r.gen, r.base)
		if int(slot>>slabChunkBits) >= r.chunks() {
			r.grow()
		}
	}
	serial := uint64(r.gen[slot])<<32 | (uint64(slot) + 1)
	p.pid.Serial = serial
	(*r.dir.Load())[slot>>slabChunkBits][slot&(slabChunkSize-1)].Store(p)
	return serial
}

func (r *registry) chunks() int {
	if d := r.dir.Load(); d != nil {
		return len(*d)
	}
	return 0
}

// grow adds one chunk; the caller holds mu.
func (r *registry) grow() {
	var next []*slabChunk
	if d := r.dir.Load(); d != nil {
		next = append(next, *d...)
	}
	next = append(next, new(slabChunk))
	r.dir.Store(&next)
}

// newRegistryBase draws a registry's base generation: random, from 1 to
// 2^31 (so that a slot is reused at least 2^31 times before it retires).
// Two incarnations of a node draw the same one with a chance of one in
// 2^31.
func newRegistryBase() uint32 { return 1 + rand.Uint32N(1<<31) }

// slotOf returns the slot of a serial; a serial of 0 maps past every slot.
func slotOf(serial uint64) uint32 { return uint32(serial) - 1 }

func (r *registry) get(serial uint64) *process {
	slot := slotOf(serial)
	d := r.dir.Load()
	if d == nil || int(slot>>slabChunkBits) >= len(*d) {
		return nil
	}
	p := (*d)[slot>>slabChunkBits][slot&(slabChunkSize-1)].Load()
	if p == nil || p.pid.Serial != serial {
		return nil
	}
	return p
}

// remove frees the slot of serial if it still holds that actor.
func (r *registry) remove(serial uint64) {
	slot := slotOf(serial)
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dir.Load()
	if d == nil || int(slot>>slabChunkBits) >= len(*d) {
		return
	}
	cell := &(*d)[slot>>slabChunkBits][slot&(slabChunkSize-1)]
	if p := cell.Load(); p != nil && p.pid.Serial == serial {
		cell.Store(nil)
		if r.gen[slot] == math.MaxUint32 {
			return // retired: reusing it would wrap the generation and repeat a serial
		}
		r.gen[slot]++
		r.free = append(r.free, slot)
	}
}

// each calls fn for every registered process.
func (r *registry) each(fn func(*process)) {
	d := r.dir.Load()
	if d == nil {
		return
	}
	for _, c := range *d {
		for i := range c {
			if p := c[i].Load(); p != nil {
				fn(p)
			}
		}
	}
}
