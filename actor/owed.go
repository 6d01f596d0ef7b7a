package actor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// owedAnswer is an answer a Responder owes to a requester that waits for
// it outside this node's actors: a Call or an outside Request on this
// node, or a request from another node. Shutdown waits for such answers
// before it ends the node's waits and lets its cluster node leave.
type owedAnswer struct {
	deadline int64 // unix nanoseconds: the requester has given up by then
	paid     atomic.Bool
}

// owedAnswers are the answers a node's Responders still owe.
type owedAnswers struct {
	mu sync.Mutex
	m  map[*owedAnswer]struct{}
}

// add records an answer owed until deadline (unix nanoseconds).
func (o *owedAnswers) add(deadline int64) *owedAnswer {
	a := &owedAnswer{deadline: deadline}
	o.mu.Lock()
	if o.m == nil {
		o.m = make(map[*owedAnswer]struct{})
	}
	o.m[a] = struct{}{}
	o.mu.Unlock()
	return a
}

// pay records that a has been answered; later calls do nothing.
func (o *owedAnswers) pay(a *owedAnswer) {
	if !a.paid.CompareAndSwap(false, true) {
		return
	}
	o.mu.Lock()
	delete(o.m, a)
	o.mu.Unlock()
}

// due reports whether an answer is still owed to a requester that has not
// given up at now, dropping those whose requesters have.
func (o *owedAnswers) due(now int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for a := range o.m {
		if a.deadline <= now {
			delete(o.m, a)
		}
	}
	return len(o.m) > 0
}

// owe records the answer a Responder taken now owes, if its requester
// waits outside this node's actors; nil otherwise (an actor of this node
// that asked stops with the node, and its callback with it).
func (n *Node) owe(fut *future, via Addr, deadline int64) *owedAnswer {
	if fut == nil && (via == 0 || via == n.cfg.Addr) {
		return nil
	}
	if deadline == 0 {
		deadline = time.Now().Add(n.cfg.RequestTimeout).UnixNano()
	}
	return n.owed.add(deadline)
}

// awaitOwed waits until every owed answer has been given or its requester
// has given up, ctx ends (returning its error), or the node is closed.
func (n *Node) awaitOwed(ctx context.Context) error {
	for n.owed.due(time.Now().UnixNano()) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.quit:
			return nil
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}
