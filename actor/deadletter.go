package actor

import (
	"runtime/debug"
	"slices"
)

// maxDeadLetterDepth bounds the dead-letter deliveries in progress at once.
const maxDeadLetterDepth = 64

// deadLetterSub is one subscriber of the dead-letter stream.
type deadLetterSub struct {
	fn func(DeadLetter)
}

// SubscribeDeadLetters calls fn for every message this node could not
// deliver: to an unknown or stopped actor, into a full mailbox, left in the
// mailbox of an actor that stopped, or a reply that came after its requester
// gave up. fn runs on the goroutine that failed to deliver, so it must be
// quick and must not block; hand the letter to an actor with Send if there is
// work to do (a DeadLetter that cannot be delivered in turn is counted, not
// published again). Deliveries are capped at 64 in progress at once; past
// that, letters are counted only. The returned function unsubscribes; it is
// safe to call twice.
func (n *Node) SubscribeDeadLetters(fn func(DeadLetter)) (unsubscribe func()) {
	s := &deadLetterSub{fn: fn}
	n.deadMu.Lock()
	var next []*deadLetterSub
	if cur := n.deadSubs.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, s)
	n.deadSubs.Store(&next)
	n.deadMu.Unlock()
	return func() {
		n.deadMu.Lock()
		defer n.deadMu.Unlock()
		cur := n.deadSubs.Load()
		if cur == nil {
			return
		}
		next := slices.DeleteFunc(slices.Clone(*cur), func(x *deadLetterSub) bool { return x == s })
		n.deadSubs.Store(&next)
	}
}

// deadLetter counts a dead letter and hands it to the subscribers. A
// DeadLetter that itself cannot be delivered (a subscriber forwarding to an
// actor that has stopped) is counted but not published again, and at most
// maxDeadLetterDepth deliveries run at once, so a subscriber whose sends
// fail cannot recurse until the stack overflows.
func (n *Node) deadLetter(d DeadLetter) {
	n.deadCount.Add(1)
	subs := n.deadSubs.Load()
	if subs == nil {
		return
	}
	switch d.Message.(type) {
	case DeadLetter, *DeadLetter:
		return
	}
	if n.deadDepth.Add(1) > maxDeadLetterDepth {
		n.deadDepth.Add(-1)
		return
	}
	defer n.deadDepth.Add(-1)
	for _, s := range *subs {
		n.callDeadLetterSub(s, d)
	}
}

func (n *Node) callDeadLetterSub(s *deadLetterSub, d DeadLetter) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("dead-letter subscriber panicked", "panic", r)
			if n.reporter != nil {
				n.reportPanic(PID{}, WhereDeadLetter, d.Message, r, debug.Stack())
			}
		}
	}()
	s.fn(d)
}
