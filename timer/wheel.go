package timer

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
)

// Wheel geometry. Level 0 has 256 slots of one tick each; levels 1..4 have
// 64 slots each, every slot of level L spanning 2^(8+6(L-1)) ticks. Together
// they cover 2^32 ticks ahead of the current tick.
const (
	level0Bits = 8
	levelNBits = 6
	level0Size = 1 << level0Bits
	level0Mask = level0Size - 1
	levelNSize = 1 << levelNBits
	levelNMask = levelNSize - 1
	numLevels  = 5
	numSlots   = level0Size + (numLevels-1)*levelNSize

	// maxSpan is the largest distance (in ticks) from the current tick that
	// the wheel can represent; timers further out are parked at this
	// distance and re-cascaded, with their true expiry, until in range.
	maxSpan = 1<<(level0Bits+(numLevels-1)*levelNBits) - 1
)

// Memory layout. The wheel's timer records (nodes) live in a pool of
// fixed-size chunks that never move, so the goroutine running callbacks can
// hold pointers to them without the lock, and the garbage collector sees a
// few large objects instead of one small object per pending timer linked
// into long lists (with a million timers pending, marking those made the
// garbage collector, not the wheel, dominate the cost of scheduling). Nodes
// are recycled through a free list. The *Timer handles given to callers are
// never recycled, so a stale handle cannot affect a later timer; they are
// carved out of small blocks to amortize their allocation.
const (
	chunkBits   = 7
	chunkSize   = 1 << chunkBits
	chunkMask   = chunkSize - 1
	maxNodes    = math.MaxInt32
	handleBlock = 16 // Timer handles per allocation
	nilIdx      = -1
)

// Node states, kept in the low stateBits bits of node.st; the other bits
// hold the node's generation, incremented each time the node is recycled,
// so a stale *Timer can never affect a later timer reusing its node.
//
// Transitions happen under the wheel's lock, except due->fired and
// due->running, which the goroutine running callbacks performs with a
// compare-and-swap so that a concurrent Stop (also a compare-and-swap)
// decides unambiguously who won.
const (
	stateFree    uint32 = iota // on the free list
	statePending               // linked into a slot of the wheel
	stateDue                   // collected for running, callback not started
	stateRunning               // periodic callback started, not yet re-armed
	stateFired                 // one-shot callback started
	stateStopped               // stopped before firing

	stateBits = 3
	stateMask = 1<<stateBits - 1
)

// node is the wheel's record of a scheduled timer. Nodes are linked into
// per-slot intrusive doubly-linked lists by index.
type node struct {
	// st is generation<<stateBits | state. Apart from the goroutine
	// running callbacks, which compare-and-swaps due nodes of its batch to
	// fired or running without the lock, st is only accessed with the
	// wheel's lock held. Accesses that may race with that goroutine (those
	// to due or running nodes) are atomic; the others are plain.
	st         uint64
	w          *Wheel
	f          func()
	expires    uint64 // tick whose processing runs f
	period     uint64 // 0 for one-shot timers
	seq        uint64 // scheduling order, for ties on the same tick
	next, prev int32  // list links (next also links the free list)
	idx        int32  // own index
	slot       uint16
}

// slotList is the head of an intrusive doubly-linked list of nodes.
type slotList struct {
	head, tail int32
}

// Wheel is a hierarchical timing wheel driven by explicit ticks.
//
// The zero value is not usable; create wheels with New. A Wheel is safe for
// concurrent use by multiple goroutines: timers may be scheduled and stopped
// from any goroutine, including from inside callbacks. Callbacks run on the
// goroutine calling Advance or AdvanceTo, without the wheel's lock held.
//
// Scheduling a timer allocates at most its *Timer handle, and handles are
// allocated in blocks of 16 (so a handle kept alive keeps its block of 256
// bytes alive). The wheel's own timer records live in an internal pool that
// grows to the peak number of simultaneously pending timers (64 bytes each)
// and is reused, not shrunk.
type Wheel struct {
	mu      sync.Mutex
	now     uint64 // next tick to process; its cascade has not run yet
	seq     uint64 // sequence number of the last timer scheduled
	n       int    // timers scheduled minus timers stopped
	inWheel int    // nodes currently linked into slots

	// fired counts one-shot timers whose callback has been started. It is
	// incremented without the lock by the goroutine running callbacks;
	// Len is n - fired.
	fired atomic.Int64

	// scratch is the reusable due list; nil while a batch is running.
	scratch []*node

	// handles is the unused rest of the current block of Timer handles.
	handles []Timer

	// chunks is the node pool, chunkSize nodes per chunk. Chunks are
	// slices rather than array pointers so that indexing one does not load
	// its first element for a nil check (a cache miss per access).
	chunks [][]node
	nodes  int32 // nodes created so far
	free   int32 // head of the node free list, or nilIdx

	// occupied has one bit per slot, set when the slot's list is non-empty.
	// Words 0..3 cover level 0, word 3+L covers level L (L = 1..4).
	occupied [numSlots / 64]uint64
	slots    [numSlots]slotList
}

// Timer is a handle to a callback scheduled by Wheel.After, Wheel.At or
// Wheel.Every. Its methods are safe for concurrent use. The zero Timer is
// not pending and Stop on it returns false.
type Timer struct {
	n   *node
	gen uint64 // generation of n this handle refers to
}

// New returns an empty wheel whose current tick (Now) is 0.
func New() *Wheel {
	w := &Wheel{free: nilIdx}
	for i := range w.slots {
		w.slots[i] = slotList{nilIdx, nilIdx}
	}
	return w
}

// Now returns the current tick: the next tick that Advance will process.
// A new wheel starts at 0 and every processed tick increments it by one, so
// inside a callback for a timer due on tick T, Now returns T+1.
func (w *Wheel) Now() uint64 {
	w.mu.Lock()
	now := w.now
	w.mu.Unlock()
	return now
}

// Len returns the number of pending timers: timers that will still run
// their callback unless stopped. A periodic timer counts until it is
// stopped; a one-shot timer stops counting when its callback starts.
func (w *Wheel) Len() int {
	w.mu.Lock()
	n := w.n - int(w.fired.Load())
	w.mu.Unlock()
	return n
}

// After schedules f to run once ticks more ticks have been processed: f runs
// while the ticks-th tick from now is processed, so Advance(ticks) runs it
// and Advance(ticks-1) does not. For ticks >= 1 this is the same as
// At(Now()+ticks-1). After(0, f) behaves like After(1, f): f runs on the next
// processed tick. f must not be nil.
func (w *Wheel) After(ticks uint64, f func()) *Timer {
	checkFunc(f)
	w.mu.Lock()
	t := w.start(w.afterTick(ticks), 0, f)
	w.mu.Unlock()
	return t
}

// At schedules f to run once, while tick is processed (that is, during the
// Advance that moves Now from tick to tick+1). If tick has already been
// processed (tick < Now()), f runs on the next processed tick. f must not be
// nil.
func (w *Wheel) At(tick uint64, f func()) *Timer {
	checkFunc(f)
	w.mu.Lock()
	t := w.start(tick, 0, f)
	w.mu.Unlock()
	return t
}

// Every schedules f to run periodically. The first run happens as for
// After(first, f); after that f runs every period ticks, so for first >= 1,
// Advance(first) runs it once and Advance(first+k*period) runs it k+1 times.
// A period of 0 is treated as 1. The wheel re-arms the same *Timer after each run, so Stop
// works at any time, including from inside f. f must not be nil.
func (w *Wheel) Every(first, period uint64, f func()) *Timer {
	if period == 0 {
		period = 1
	}
	checkFunc(f)
	w.mu.Lock()
	t := w.start(w.afterTick(first), period, f)
	w.mu.Unlock()
	return t
}

// Advance processes n ticks, running the callbacks of the timers that fall
// due, and returns the number of callbacks run. It is AdvanceTo(Now()+n);
// see AdvanceTo for how callbacks are run.
func (w *Wheel) Advance(n uint64) int {
	w.mu.Lock()
	target := w.now + n
	if target < w.now {
		target = math.MaxUint64
	}
	return w.advance(target)
}

// AdvanceTo processes ticks until Now() == tick, running the callbacks of
// the timers that fall due, and returns the number of callbacks run. It is a
// no-op if tick <= Now(). Stretches of ticks on which nothing happens are
// skipped; in particular, if no timer is pending the wheel jumps straight
// to tick in constant time.
//
// Callbacks run on the calling goroutine, without the wheel's lock held, in
// expiry order; callbacks due on the same tick run in the order their timers
// were scheduled. The callbacks of one tick run before the next tick is
// processed, so a timer scheduled by a callback for a later tick runs during
// the same call if that tick is reached.
//
// A panic in a callback is not recovered: it propagates to the caller, with
// the wheel left consistent and unlocked. The tick whose callback panicked
// counts as processed; callbacks of that tick that had not started yet run
// on the next processed tick, before that tick's own callbacks. A periodic
// timer whose callback panicked is re-armed as usual.
func (w *Wheel) AdvanceTo(tick uint64) int {
	w.mu.Lock()
	return w.advance(tick)
}

// advance is called with w.mu held and returns with it released.
func (w *Wheel) advance(target uint64) int {
	ran := 0
	for {
		buf := w.scratch
		w.scratch = nil
		batch := w.collect(buf[:0], target)
		if len(batch) == 0 {
			w.scratch = batch
			w.mu.Unlock()
			return ran
		}
		w.mu.Unlock()
		ran += w.run(batch)
		w.mu.Lock()
		w.finish(batch, len(batch))
	}
}

// run starts the callbacks of batch in order, skipping timers stopped in the
// meantime, and returns how many it started. It runs without the lock; the
// nodes of batch cannot be recycled until finish is called for them.
func (w *Wheel) run(batch []*node) int {
	ran := 0
	i := 0
	defer func() {
		if i < len(batch) {
			// batch[i] panicked (or called runtime.Goexit).
			w.mu.Lock()
			w.finish(batch, i+1)
			w.mu.Unlock()
		}
	}()
	for ; i < len(batch); i++ {
		n := batch[i]
		gen := atomic.LoadUint64(&n.st) &^ stateMask // constant while in batch
		if n.period == 0 {
			if !atomic.CompareAndSwapUint64(&n.st, gen|uint64(stateDue), gen|uint64(stateFired)) {
				continue
			}
			w.fired.Add(1)
		} else if !atomic.CompareAndSwapUint64(&n.st, gen|uint64(stateDue), gen|uint64(stateRunning)) {
			continue
		}
		ran++
		n.f()
	}
	return ran
}

// finish is called with the lock held once the callbacks of batch[:done]
// have been started or skipped. It recycles nodes that are finished,
// re-arms periodic timers that were not stopped, puts due timers of
// batch[done:] back into the wheel so they run on the next processed tick,
// and keeps batch as the scratch due list.
func (w *Wheel) finish(batch []*node, done int) {
	for i, n := range batch {
		st := n.st
		switch uint32(st & stateMask) {
		case stateFired, stateStopped:
			w.freeNode(n)
		case stateRunning:
			e := n.expires + n.period
			if e < n.expires {
				e = math.MaxUint64
			}
			n.expires = max(e, w.now)
			n.st = st&^stateMask | uint64(statePending)
			w.add(n)
		case stateDue:
			if i >= done {
				// Keep the old expiry: add files the node under the
				// current tick, and sorting by expiry runs it before
				// that tick's own timers.
				n.st = st&^stateMask | uint64(statePending)
				w.add(n)
			}
		}
	}
	clear(batch)
	if cap(batch) > cap(w.scratch) {
		w.scratch = batch[:0]
	}
}

// collect processes ticks from w.now towards target until it has processed
// a tick with due timers, which it appends to dst (state due) in run order,
// or until w.now == target. Called with the lock held.
func (w *Wheel) collect(dst []*node, target uint64) []*node {
	for w.now < target {
		if w.inWheel == 0 {
			w.now = target
			break
		}
		tick := w.nextEvent()
		if tick >= target {
			w.now = target
			break
		}
		w.now = tick
		if tick&level0Mask == 0 {
			w.cascade()
		}
		w.now = tick + 1
		i := int(tick & level0Mask)
		s := &w.slots[i]
		if s.head == nilIdx {
			continue
		}
		for idx := s.head; idx != nilIdx; {
			n := w.node(idx)
			idx = n.next
			n.next, n.prev = nilIdx, nilIdx
			n.st = n.st&^stateMask | uint64(stateDue)
			dst = append(dst, n)
			w.inWheel--
		}
		*s = slotList{nilIdx, nilIdx}
		w.occupied[i>>6] &^= 1 << (i & 63)
		if !slices.IsSortedFunc(dst, compareNodes) {
			slices.SortFunc(dst, compareNodes)
		}
		return dst
	}
	return dst
}

// compareNodes orders nodes by expiry, then by scheduling order.
func compareNodes(a, b *node) int {
	if c := cmp.Compare(a.expires, b.expires); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// cascade re-files the timers of the higher-level slots that become current
// at tick w.now, which must be a multiple of 256.
func (w *Wheel) cascade() {
	for l := 1; l < numLevels; l++ {
		shift := level0Bits + (l-1)*levelNBits
		idx := int(w.now>>shift) & levelNMask
		i := level0Size + (l-1)*levelNSize + idx
		s := &w.slots[i]
		if s.head != nilIdx {
			next := s.head
			*s = slotList{nilIdx, nilIdx}
			w.occupied[i>>6] &^= 1 << (i & 63)
			for next != nilIdx {
				n := w.node(next)
				next = n.next
				w.inWheel--
				w.add(n)
			}
		}
		if idx != 0 {
			return
		}
	}
}

// nextEvent returns the first tick >= w.now at which processing does
// something: a non-empty level-0 slot falls due, or a non-empty slot of a
// higher level is cascaded. There must be at least one node in the wheel.
func (w *Wheel) nextEvent() uint64 {
	now := w.now
	best := uint64(math.MaxUint64)
	if d, ok := w.nextLevel0(int(now & level0Mask)); ok {
		best = now + uint64(d)
	}
	for l := 1; l < numLevels; l++ {
		occ := w.occupied[3+l]
		if occ == 0 {
			continue
		}
		shift := uint(level0Bits + (l-1)*levelNBits)
		// First slot boundary of this level at or after now (the cascade
		// of a boundary at now itself has not happened yet), then the
		// first occupied slot from there on, cyclically. Written so that
		// it cannot overflow near the end of the tick range.
		base := now >> shift
		if now&(1<<shift-1) != 0 {
			base++
		}
		k := uint64(bits.TrailingZeros64(bits.RotateLeft64(occ, -int(base&levelNMask))))
		if base+k <= math.MaxUint64>>shift {
			best = min(best, (base+k)<<shift)
		}
	}
	return best
}

// nextLevel0 returns the distance from level-0 slot p to the first non-empty
// level-0 slot at or after p, cyclically.
func (w *Wheel) nextLevel0(p int) (int, bool) {
	wi, off := p>>6, p&63
	if m := w.occupied[wi] >> off; m != 0 {
		return bits.TrailingZeros64(m), true
	}
	// The last iteration wraps around to word wi, whose bits >= off are
	// known to be clear.
	for i := 1; i <= 4; i++ {
		if m := w.occupied[(wi+i)&3]; m != 0 {
			return i*64 - off + bits.TrailingZeros64(m), true
		}
	}
	return 0, false
}

// add links n into the slot matching n.expires relative to w.now. A node
// whose expiry has passed goes into the slot of the current tick. Called
// with the lock held.
func (w *Wheel) add(n *node) {
	e, now := n.expires, w.now
	var i int
	if e < now {
		i = int(now & level0Mask)
	} else {
		switch d := e - now; {
		case d < 1<<8:
			i = int(e & level0Mask)
		case d < 1<<14:
			i = level0Size + int(e>>8&levelNMask)
		case d < 1<<20:
			i = level0Size + levelNSize + int(e>>14&levelNMask)
		case d < 1<<26:
			i = level0Size + 2*levelNSize + int(e>>20&levelNMask)
		default:
			if d > maxSpan {
				e = now + maxSpan // park at the edge; re-filed on cascade
			}
			i = level0Size + 3*levelNSize + int(e>>26&levelNMask)
		}
	}
	n.slot = uint16(i)
	s := &w.slots[i]
	n.next = nilIdx
	n.prev = s.tail
	if s.tail != nilIdx {
		w.node(s.tail).next = n.idx
	} else {
		s.head = n.idx
		w.occupied[i>>6] |= 1 << (i & 63)
	}
	s.tail = n.idx
	w.inWheel++
}

// unlink removes n from its slot. Called with the lock held.
func (w *Wheel) unlink(n *node) {
	i := int(n.slot)
	s := &w.slots[i]
	if n.prev != nilIdx {
		w.node(n.prev).next = n.next
	} else {
		s.head = n.next
	}
	if n.next != nilIdx {
		w.node(n.next).prev = n.prev
	} else {
		s.tail = n.prev
	}
	n.next, n.prev = nilIdx, nilIdx
	if s.head == nilIdx {
		w.occupied[i>>6] &^= 1 << (i & 63)
	}
	w.inWheel--
}

// node returns the node with index idx.
func (w *Wheel) node(idx int32) *node {
	return &w.chunks[idx>>chunkBits][idx&chunkMask]
}

// allocNode takes a node from the free list, growing the pool if needed.
// Called with the lock held.
func (w *Wheel) allocNode() *node {
	if idx := w.free; idx != nilIdx {
		n := w.node(idx)
		w.free = n.next
		return n
	}
	if w.nodes == maxNodes {
		panic("timer: too many pending timers")
	}
	idx := w.nodes
	if idx&chunkMask == 0 {
		w.chunks = append(w.chunks, make([]node, chunkSize))
	}
	w.nodes++
	n := w.node(idx)
	n.idx = idx
	n.w = w
	return n
}

// freeNode recycles n, bumping its generation so that Timer handles to it
// go stale. Called with the lock held.
func (w *Wheel) freeNode(n *node) {
	n.st = (n.st>>stateBits+1)<<stateBits | uint64(stateFree)
	n.f = nil
	n.next = w.free
	w.free = n.idx
}

// afterTick converts a relative delay to the tick on which it falls due.
// Called with the lock held.
func (w *Wheel) afterTick(ticks uint64) uint64 {
	if ticks == 0 {
		return w.now
	}
	e := w.now + (ticks - 1)
	if e < w.now {
		return math.MaxUint64
	}
	return e
}

// start schedules f on a fresh node due on tick e (clamped to the current
// tick) and returns a new handle bound to it. Called with the lock held.
func (w *Wheel) start(e, period uint64, f func()) *Timer {
	if len(w.handles) == 0 {
		w.handles = make([]Timer, handleBlock)
	}
	t := &w.handles[0]
	w.handles = w.handles[1:]
	n := w.allocNode()
	n.f = f
	n.expires = max(e, w.now)
	n.period = period
	w.seq++
	n.seq = w.seq
	st := n.st&^stateMask | uint64(statePending)
	n.st = st
	t.n = n
	t.gen = st >> stateBits
	w.n++
	w.add(n)
	return t
}

// checkFunc rejects nil callbacks at scheduling time rather than when they
// would run.
func checkFunc(f func()) {
	if f == nil {
		panic("timer: nil callback")
	}
}

// Stop prevents the timer from firing. It returns true if this call
// prevented the callback from running; for a periodic timer, true if it
// prevented any further run. It returns false if a one-shot timer's
// callback has already started or the timer was already stopped. Stop is
// O(1), may be called any number of times from any goroutine, and may be
// called from inside the timer's own callback: a periodic timer stopping
// itself is not re-armed. A timer due on the tick being processed whose
// callback has not started yet can still be stopped.
func (t *Timer) Stop() bool {
	n := t.n
	if n == nil {
		return false
	}
	w := n.w
	w.mu.Lock()
	for {
		st := atomic.LoadUint64(&n.st)
		if st>>stateBits != t.gen {
			// The node was recycled: the timer finished long ago.
			w.mu.Unlock()
			return false
		}
		switch s := uint32(st & stateMask); s {
		case statePending:
			w.unlink(n)
			w.freeNode(n)
			w.n--
			w.mu.Unlock()
			return true
		case stateDue, stateRunning:
			// The goroutine running callbacks may move the node from due
			// to fired or running concurrently; retry if it won.
			if atomic.CompareAndSwapUint64(&n.st, st, st&^stateMask|uint64(stateStopped)) {
				w.n--
				w.mu.Unlock()
				return true
			}
		default:
			w.mu.Unlock()
			return false
		}
	}
}

// Pending reports whether the timer will still run its callback unless
// stopped: a one-shot timer until its callback starts, a periodic timer
// until it is stopped.
func (t *Timer) Pending() bool {
	if t.n == nil {
		return false
	}
	w := t.n.w
	w.mu.Lock()
	st := atomic.LoadUint64(&t.n.st)
	w.mu.Unlock()
	if st>>stateBits != t.gen {
		return false
	}
	switch uint32(st & stateMask) {
	case statePending, stateDue, stateRunning:
		return true
	}
	return false
}
