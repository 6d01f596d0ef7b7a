package actor

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/guildkit/guild/timer"
)

// Request sends msg to the actor pid from outside any actor and returns at
// once. cb runs exactly once, on a goroutine of its own, with the reply or an
// error (ErrTimeout after timeout, 0 meaning Config.RequestTimeout;
// ErrNodeClosed when the node closes first). A panic in cb is recovered and
// logged. Request returns an error, and cb never runs, when msg could not be
// queued.
func (n *Node) Request(to PID, msg any, timeout time.Duration, cb ReplyFunc) error {
	return n.request(to, "", msg, timeout, cb)
}

func (n *Node) request(to PID, name string, msg any, timeout time.Duration, cb ReplyFunc) error {
	if n.state.Load() == nodeClosed {
		return ErrNodeClosed
	}
	if timeout <= 0 {
		timeout = n.cfg.RequestTimeout
	}
	if !n.workers.track() { // before the send, so that Close's wait covers the callback
		return ErrNodeClosed
	}
	f, id, tm, err := n.startCall(PID{}, to, name, msg, time.Now().Add(timeout), true, false)
	if err != nil {
		n.wg.Done()
		return err
	}
	go func() {
		defer n.wg.Done()
		var r result
		defer func() {
			if p := recover(); p != nil {
				stack := debug.Stack()
				n.log.Error("Request callback panicked", "target", to, "panic", p, "stack", string(stack))
				n.reportPanic(PID{}, WhereRequest, r.msg, p, stack)
			}
		}()
		select {
		case r = <-f.ch: // the timeout timer guarantees an answer while the node runs
		case <-n.quit:
			f.abandon(id)
			r = result{err: ErrNodeClosed}
		}
		n.endCall(f, id, tm)
		cb(r.msg, r.err)
	}()
	return nil
}

// Call sends msg to the actor pid and waits for the reply. It returns the
// reply; a reply that is an error value comes back as the error. When ctx
// has no deadline, Config.RequestTimeout applies and ends the wait with
// ErrTimeout; when ctx ends first, Call returns ctx's error. A target that
// stops before answering yields ErrActorStopped at once.
func (n *Node) Call(ctx context.Context, to PID, msg any) (any, error) {
	if n.state.Load() == nodeClosed {
		return nil, ErrNodeClosed
	}
	return n.call(ctx, PID{}, to, "", msg)
}

func (n *Node) call(ctx context.Context, from, to PID, name string, msg any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dl, hasDeadline := ctx.Deadline()
	done := ctx.Done()
	f, id, tm, err := n.startCall(from, to, name, msg, dl, !hasDeadline, done == nil)
	if err != nil {
		return nil, err
	}
	select {
	case r := <-f.ch: // usually ready already when the turn ran inline
		n.endCall(f, id, tm)
		return r.msg, r.err
	default:
	}
	select {
	case r := <-f.ch:
		n.endCall(f, id, tm)
		return r.msg, r.err
	case <-done: // nil, so never, for a ctx that cannot end: the timeout timer bounds the wait
		f.abandon(id)
		n.endCall(f, id, tm)
		return nil, ctx.Err()
	case <-n.quit:
		f.abandon(id)
		n.endCall(f, id, tm)
		return nil, ErrNodeClosed
	}
}

// startCall queues a request answered through a pooled future. With
// withTimer, the node's clock fails it with ErrTimeout at deadline (or after
// RequestTimeout when deadline is zero).
//
// With inline, a caller that is going to block until the reply anyway runs
// the target's turn itself when the target was idle, instead of waking a
// worker and then sleeping: that saves two goroutine switches per Call. The
// inline turn handles one batch (normally just this request) and hands
// whatever arrives meanwhile to a worker. It is used only when the caller's
// ctx can never be cancelled, because a caller busy running the target's
// handler cannot stop waiting early.
func (n *Node) startCall(from, to PID, name string, msg any, deadline time.Time, withTimer, inline bool) (*future, uint64, *timer.Timer, error) {
	f := n.futures.Get().(*future)
	id := n.corr.Add(1)
	f.id.Store(id)
	f.openTurnGate(inline, n.closedTurn)
	e := Envelope{Sender: from, Target: to, TargetName: name, Message: msg, fut: f, corr: id}
	if !deadline.IsZero() {
		e.deadline = deadline.UnixNano()
	}
	var tm *timer.Timer
	if withTimer {
		d := n.cfg.RequestTimeout
		if !deadline.IsZero() {
			d = time.Until(deadline)
		}
		tm = n.clock.afterCoarse(d, f.onTimeout)
	}
	var err error
	if n.sendHook != nil {
		ep := new(Envelope) // the interceptors may keep it
		*ep = e
		err = n.sendHook(ep)
	} else {
		err = n.deliverEnvelope(&e) // e stays on the stack
	}
	// Whatever the interceptors did (copied the envelope, called next twice
	// or later, or failed after next), the turn handed over is run here or by
	// a worker, never lost.
	if p := f.closeTurnGate(n.closedTurn); p != nil {
		if err == nil {
			p.runInline()
		} else {
			n.schedule(p)
		}
	}
	if err != nil {
		f.abandon(id) // a reply may already have claimed the future
		n.endCall(f, id, tm)
		return nil, 0, nil, err
	}
	return f, id, tm, nil
}

// endCall recycles a future once nothing can touch it any more: a timeout
// timer that could not be stopped may still be running, so such a future is
// left to the garbage collector instead.
func (n *Node) endCall(f *future, id uint64, tm *timer.Timer) {
	if tm != nil && !tm.Stop() {
		return
	}
	n.futures.Put(f)
}

// reply answers a request: through the future of a Call, back to the node
// the request came from (via), or as a reply message to the requesting
// actor.
func (n *Node) reply(from, to PID, fut *future, corr uint64, via Addr, msg any) {
	if w, ok := msg.(*withMetadata); ok {
		msg = w.msg // replies carry no metadata
	}
	r := result{msg: msg}
	if err, ok := msg.(error); ok {
		r = result{err: err}
	}
	if fut != nil {
		if !fut.complete(corr, r) {
			n.deadLetter(DeadLetter{Target: to, Sender: from, Message: msg, Reason: ErrTimeout})
		}
		return
	}
	if via != 0 && via != n.cfg.Addr { // a request from another node: the answer retraces its path
		n.replyRemote(from, to, corr, via, msg)
		return
	}
	n.deliverForce(to, envelope{msg: &replyMsg{corr: corr, res: r}, sender: from})
}

// bounce handles a queued message that can no longer be handled (its
// target stopped): a waiting requester is answered with err at once, and the
// message goes to dead letters.
