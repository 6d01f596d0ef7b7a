package timer

import (
	"fmt"
	"testing"
)

// checkInvariants verifies the wheel's internal structure: list links,
// occupancy bits, counters, the free list, and that every linked timer sits
// in a slot that will be collected or cascaded no later than its expiry. It
// must not be called while callbacks of an Advance are running.
func checkInvariants(tb testing.TB, w *Wheel) {
	tb.Helper()
	if err := invariantError(w); err != nil {
		tb.Fatal(err)
	}
}

func invariantError(w *Wheel) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now
	linked := 0
	for i := range w.slots {
		s := w.slots[i]
		bit := w.occupied[i>>6]&(1<<(i&63)) != 0
		if bit != (s.head != nilIdx) {
			return fmt.Errorf("slot %d: occupied bit %v, head %d", i, bit, s.head)
		}
		prev := int32(nilIdx)
		for idx := s.head; idx != nilIdx; {
			n := w.node(idx)
			if n.idx != idx {
				return fmt.Errorf("node %d has idx %d", idx, n.idx)
			}
			if n.prev != prev {
				return fmt.Errorf("slot %d node %d: prev %d, want %d", i, idx, n.prev, prev)
			}
			if int(n.slot) != i {
				return fmt.Errorf("node %d in slot %d records slot %d", idx, i, n.slot)
			}
			if st := uint32(n.st & stateMask); st != statePending {
				return fmt.Errorf("linked node %d in state %d", idx, st)
			}
			if n.f == nil || n.w != w {
				return fmt.Errorf("linked node %d has nil f or wrong wheel", idx)
			}
			if err := checkPlacement(i, n.expires, now); err != nil {
				return fmt.Errorf("node %d: %v", idx, err)
			}
			linked++
			if linked > int(w.nodes) {
				return fmt.Errorf("slot %d: list cycle", i)
			}
			prev = idx
			idx = n.next
		}
		if s.tail != prev {
			return fmt.Errorf("slot %d: tail %d, want %d", i, s.tail, prev)
		}
	}
	if linked != w.inWheel {
		return fmt.Errorf("inWheel = %d, counted %d", w.inWheel, linked)
	}
	free := 0
	for idx := w.free; idx != nilIdx; idx = w.node(idx).next {
		n := w.node(idx)
		if st := uint32(n.st & stateMask); st != stateFree {
			return fmt.Errorf("free node %d in state %d", idx, st)
		}
		if n.f != nil {
			return fmt.Errorf("free node %d retains its callback", idx)
		}
		free++
		if free > int(w.nodes) {
			return fmt.Errorf("free list cycle")
		}
	}
	// Outside Advance no node is due or running, so every node is either
	// linked or free: nothing leaks.
	if linked+free != int(w.nodes) {
		return fmt.Errorf("nodes = %d, linked %d + free %d", w.nodes, linked, free)
	}
	if pending := w.n - int(w.fired.Load()); pending != linked {
		return fmt.Errorf("Len = %d, but %d timers linked", pending, linked)
	}
	return nil
}

// checkPlacement checks that a timer expiring at e, filed in slot i while
// the next tick to process is now, is reached in time: a level-0 slot must
// be the slot of its expiry tick (or of the current tick if overdue), and a
// higher-level slot must be cascaded at a tick c <= e, with e-c within the
// lower levels' range (below the last level).
func checkPlacement(i int, e, now uint64) error {
	if i < level0Size {
		if e < now {
			if i != int(now&level0Mask) {
				return fmt.Errorf("overdue (expires %d, now %d) in level-0 slot %d", e, now, i)
			}
			return nil
		}
		if e-now >= level0Size || int(e&level0Mask) != i {
			return fmt.Errorf("expires %d (now %d) in level-0 slot %d", e, now, i)
		}
		return nil
	}
	l := 1 + (i-level0Size)/levelNSize
	idx := uint64((i - level0Size) % levelNSize)
	shift := uint(level0Bits + (l-1)*levelNBits)
	base := (now + (1<<shift - 1)) >> shift
	c := (base + (idx-base)&levelNMask) << shift // next cascade of this slot
	if c > e {
		return fmt.Errorf("expires %d (now %d) in level %d slot %d cascaded late at %d", e, now, l, idx, c)
	}
	// Level 4 may hold timers parked beyond the span, which are re-filed
	// into level 4 when cascaded; below it a cascade must bring the timer
	// down a level.
	if l < numLevels-1 && e-c >= 1<<shift {
		return fmt.Errorf("expires %d (now %d) in level %d slot %d cascaded too early at %d", e, now, l, idx, c)
	}
	return nil
}
