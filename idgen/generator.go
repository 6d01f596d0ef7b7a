package idgen

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

var (
	// ErrClockRollback is returned by Next when the clock has gone back
	// further than the rollback wait, or does not catch up within it.
	ErrClockRollback = errors.New("idgen: clock moved backwards")
	// ErrTimeRange is returned by Next when the clock is before the epoch
	// or more than 2^41 ms (about 69 years) after it.
	ErrTimeRange = errors.New("idgen: clock outside the range of the epoch")
	// ErrLeaseLost is returned by Next once the etcd lease holding the
	// machine ID has been lost; the Generator never issues again.
	ErrLeaseLost = errors.New("idgen: machine ID lease lost")
	// ErrReleased is returned by Next after Leased.Release.
	ErrReleased = errors.New("idgen: machine ID released")
	// ErrBadMachine is returned by New for a machine ID above MaxMachine.
	ErrBadMachine = errors.New("idgen: machine ID out of range")
	// ErrBadOption is returned by New and Lease for an invalid Option.
	ErrBadOption = errors.New("idgen: invalid option")
)

// The state word of a Generator: the millisecond and sequence of the last
// ID issued, laid out as in the ID, and a stopped bit.
const (
	stateSeqMask = MaxSeq
	stoppedBit   = 1 << 63
)

// A Generator issues unique, increasing IDs for one machine ID. Create it
// with New or Lease. It is safe for concurrent use.
type Generator struct {
	machine  uint16
	epoch    time.Time
	epochMs  int64 // epoch in Unix milliseconds
	clock    func() time.Time
	maxWait  time.Duration
	realTime bool // clock is time.Now, so its readings carry a monotonic clock

	// state is ms<<SeqBits | seq of the last ID issued, plus stoppedBit.
	// Next changes it only by compare-and-swap, so no ID is issued after
	// stop has set stoppedBit.
	state   atomic.Uint64
	stopErr atomic.Pointer[error] // set before stoppedBit

	fence fence // nil unless leased
}

// fence tells whether a leased machine ID is surely still this
// generator's: cluster/etcd's Keeper, the one lease fence of the project.
type fence interface{ Valid() bool }

// New returns a Generator with a fixed machine ID, 0..MaxMachine. Use it
// for a single node, or when machine IDs are assigned by configuration; two
// live generators with the same machine ID and epoch issue duplicates.
func New(machine uint16, opts ...Option) (*Generator, error) {
	if machine > MaxMachine {
		return nil, fmt.Errorf("%w: %d (want 0..%d)", ErrBadMachine, machine, MaxMachine)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return newGenerator(machine, cfg), nil
}

func newGenerator(machine uint16, cfg config) *Generator {
	return &Generator{
		machine:  machine,
		epoch:    cfg.epoch,
		epochMs:  cfg.epoch.UnixMilli(),
		clock:    cfg.clock,
		maxWait:  cfg.maxRollbackWait,
		realTime: !cfg.customClock,
	}
}

// Machine returns the generator's machine ID.
func (g *Generator) Machine() uint16 { return g.machine }

// Epoch returns the generator's epoch; see ID.TimeFrom.
func (g *Generator) Epoch() time.Time { return g.epoch }

// Next returns a new ID, greater than every ID this Generator issued
// before. When 4096 IDs have been issued in the current millisecond it
// waits for the next one, yielding the processor meanwhile; when the clock has gone back by at most the
// rollback wait it waits for the clock to catch up. It fails, issuing
// nothing, with ErrClockRollback, ErrTimeRange, ErrLeaseLost or ErrReleased.
func (g *Generator) Next() (ID, error) {
	var waited time.Duration // total sleep for a rollback in this call
	for {
		old := g.state.Load()
		if old&stoppedBit != 0 {
			return 0, *g.stopErr.Load()
		}
		now := g.clock()
		if g.fence != nil {
			if err := g.checkFence(); err != nil {
				return 0, err
			}
		}
		ms := now.UnixMilli() - g.epochMs
		if ms < 0 || ms > maxMillis {
			return 0, fmt.Errorf("%w: %v with epoch %v", ErrTimeRange, now, g.epoch)
		}
		lastMs := int64(old >> SeqBits)
		var next uint64
		switch {
		case ms > lastMs:
			next = uint64(ms) << SeqBits
		case ms == lastMs && old&stateSeqMask < MaxSeq:
			next = old + 1
		case ms == lastMs:
			// Sequence exhausted: yield until the next millisecond, less
			// than 1 ms away. (A sub-millisecond time.Sleep often lasts a
			// whole millisecond or more, wasting up to a quarter of the
			// 4096 IDs per millisecond.)
			runtime.Gosched()
			continue
		default:
			d := g.until(lastMs, now)
			if d > g.maxWait || waited+d > g.maxWait {
				return 0, fmt.Errorf("%w: by %v (waited %v, max %v)", ErrClockRollback, d, waited, g.maxWait)
			}
			time.Sleep(d)
			waited += d
			continue
		}
		if g.state.CompareAndSwap(old, next) {
			return makeID(ms, g.machine, int64(next&stateSeqMask)), nil
		}
	}
}

// until returns how long from now until the clock reaches millisecond ms.
func (g *Generator) until(ms int64, now time.Time) time.Duration {
	return time.UnixMilli(g.epochMs + ms).Sub(now)
}

// checkFence stops g if its lease may have expired.
func (g *Generator) checkFence() error {
	if g.fence.Valid() {
		return nil
	}
	g.stop(fmt.Errorf("%w: machine %d: not renewed before its TTL ran out", ErrLeaseLost, g.machine))
	return *g.stopErr.Load()
}

// stop makes every later Next fail with err (or with the error of an
// earlier stop) and returns the state it stopped at. Once it returns, no
// Next can issue an ID.
func (g *Generator) stop(err error) uint64 {
	g.stopErr.CompareAndSwap(nil, &err)
	for {
		old := g.state.Load()
		if old&stoppedBit != 0 || g.state.CompareAndSwap(old, old|stoppedBit) {
			return old &^ stoppedBit
		}
	}
}

// floor makes g issue only IDs in milliseconds after unixMs, as if it had
// used up that millisecond. Called before g is shared.
func (g *Generator) floor(unixMs int64) {
	ms := unixMs - g.epochMs
	if ms < 0 {
		return
	}
	g.state.Store(uint64(min(ms, maxMillis))<<SeqBits | MaxSeq)
}
