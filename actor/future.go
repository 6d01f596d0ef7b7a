package actor

import "sync/atomic"

// result is what a Call receives.
type result struct {
	msg any
	err error
}

// future is the waiting side of one Call. Futures are pooled per node: the
// id field holds the correlation of the Call in progress, and whoever moves it
// from that value to 0 (the responder, the timeout timer or the caller giving
// up) owns the single slot of ch. That makes a late reply to a future that
// has been reused harmless: its CompareAndSwap fails and the reply is dropped.
type future struct {
	ch        chan result
	id        atomic.Uint64
	turn      atomic.Pointer[process] // the turn gate; see openTurnGate
	onTimeout func()                  // allocated once per future: completes the current id with ErrTimeout
}

func newFuture() *future {
	f := &future{ch: make(chan result, 1)}
	f.onTimeout = func() {
		if id := f.id.Load(); id != 0 {
			f.complete(id, result{err: ErrTimeout})
		}
	}
	return f
}

// The turn gate lets the delivery of a Call hand the target's turn to the
// blocked caller (see Node.startCall). future.turn is nil while the caller
// still takes a turn, the handed-over process once one was handed, and the
// node's closedTurn sentinel once the caller stopped looking. Each step is
// one atomic operation, so a turn is never lost, whatever the interceptors
// do with the envelope or when.

// openTurnGate prepares the future for a call; inline says whether the
// caller may run the target's turn itself.
func (f *future) openTurnGate(inline bool, closed *process) {
	if inline {
		f.turn.Store(nil)
	} else {
		f.turn.Store(closed)
	}
}

// offerTurn hands the turn of p, whose scheduled flag the delivery won, to
// the caller. It reports false when the caller is not taking a turn; the
// delivery must then schedule p itself.
func (f *future) offerTurn(p *process) bool {
	return f.turn.CompareAndSwap(nil, p)
}

// closeTurnGate stops further hand-overs and returns the turn handed over,
// if any; the caller must run or schedule it.
func (f *future) closeTurnGate(closed *process) *process {
	if p := f.turn.Swap(closed); p != closed {
		return p
	}
	return nil
}

// complete delivers r if the future still waits for correlation id. It never
// blocks.
func (f *future) complete(id uint64, r result) bool {
	if !f.id.CompareAndSwap(id, 0) {
		return false
	}
	f.ch <- r
	return true
}

// abandon is called by the waiting caller when it stops waiting (ctx done). It
// reports whether the future can go back to the pool: if a completion raced
// with the abandon, its result is drained first.
func (f *future) abandon(id uint64) {
	if !f.id.CompareAndSwap(id, 0) {
		<-f.ch
	}
}
