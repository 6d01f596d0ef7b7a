package actor

import "slices"

// deadLetterSub is one subscriber of the dead-letter stream.
type deadLetterSub struct {
	fn func(DeadLetter)
}

// SubscribeDeadLetters calls fn for every message this node could not
// deliver: to an unknown or stopped actor, into a full mailbox, left in the
// mailbox of an actor that stopped, or a reply that came after its requester
// gave up. fn runs on the goroutine that failed to deliver, so it must be
// quick and must not block; hand the letter to an actor with Send if there is
// work to do. The returned function unsubscribes; it is safe to call twice.
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

// deadLetter counts a dead letter and hands it to the subscribers.
func (n *Node) deadLetter(d DeadLetter) {
	n.deadCount.Add(1)
	subs := n.deadSubs.Load()
	if subs == nil {
		return
	}
	for _, s := range *subs {
		n.callDeadLetterSub(s, d)
	}
}

func (n *Node) callDeadLetterSub(s *deadLetterSub, d DeadLetter) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("dead-letter subscriber panicked", "panic", r)
		}
	}()
	s.fn(d)
}
