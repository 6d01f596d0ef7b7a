package actor

import (
	"context"
	"log/slog"
	"time"
)

// Context is an actor's view of the message it is handling and its handle on
// the runtime. The runtime passes it to Receive; it is valid during that call
// and during this actor's later Request callbacks and timer messages, which
// run in the actor's own turns (so a callback may use the Context captured
// by the Receive that issued the Request). It is not valid on other
// goroutines: hand them the values it returns (Self, Sender, a Responder).
type Context struct {
	p        *process
	msg      any
	sender   PID
	fut      *future
	corr     uint64
	deadline int64
	via      Addr
	replied  bool
	md       Metadata
}

func (c *Context) reset() {
	c.msg, c.sender, c.fut, c.corr, c.deadline, c.via, c.replied = nil, PID{}, nil, 0, 0, 0, false
	c.md = Metadata{}
}

// set prepares the Context for a message that is not a request: a lifecycle
// message, a timer message or a Request callback.
func (c *Context) set(msg any, sender PID) {
	msg, c.md = SplitMetadata(msg)
	c.msg, c.sender, c.fut, c.corr, c.deadline, c.via, c.replied = msg, sender, nil, 0, 0, 0, false
}

// Message returns the message being handled.
func (c *Context) Message() any { return c.msg }

// Metadata returns the metadata the current message carries (see
// WithMetadata): empty for a message sent without any.
func (c *Context) Metadata() Metadata { return c.md }

// Sender returns the sending actor, or the zero PID when the message came
// from outside any actor (or from a timer, whose sender is Self).
func (c *Context) Sender() PID { return c.sender }

// Self returns this actor's PID.
func (c *Context) Self() PID { return c.p.pid }

// Parent returns the parent's PID, or the zero PID for a top-level actor.
func (c *Context) Parent() PID {
	if c.p.parent == nil {
		return PID{}
	}
	return c.p.parent.pid
}

// Node returns the node the actor runs on.
func (c *Context) Node() *Node { return c.p.node }

// Logger returns the node's logger with this actor's PID attached.
func (c *Context) Logger() *slog.Logger { return c.p.node.log.With("pid", c.p.pid) }

// IsRequest reports whether the current message waits for a reply (it came
// from Request or Call).
func (c *Context) IsRequest() bool { return c.corr != 0 }

// Deadline returns the deadline the requester set, if the current message is
// a request whose caller had one.
func (c *Context) Deadline() (time.Time, bool) {
	if c.deadline == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, c.deadline), true
}

// Send sends msg one-way to another actor, with this actor as the sender.
func (c *Context) Send(to PID, msg any) error {
	return c.p.node.send(c.p.pid, to, msg)
}

// ReplyFunc receives the answer to a Request: the reply, or an error
// (ErrTimeout, ErrActorStopped, ErrNoReply, ErrPanicked, or an error value
// the responder sent).
type ReplyFunc func(reply any, err error)

// Request sends msg to another actor and returns at once. cb runs later
// inside this actor's own turn, never concurrently with Receive, exactly once:
// with the reply, or with an error when timeout (0 means the node's
// Config.RequestTimeout) passes first. The exceptions: when this actor stops
// or restarts first, the callback is dropped. Request returns an error, and cb
// never runs, when msg could not be queued at all.
func (c *Context) Request(to PID, msg any, timeout time.Duration, cb ReplyFunc) error {
	return c.request(to, "", msg, timeout, cb)
}

func (c *Context) request(to PID, name string, msg any, timeout time.Duration, cb ReplyFunc) error {
	p := c.p
	n := p.node
	if timeout <= 0 {
		timeout = n.cfg.RequestTimeout
	}
	x := p.extra()
	if x.pending == nil {
		x.pending = make(map[uint64]*pendingRequest)
	}
	x.nextCorr++
	corr := x.nextCorr
	r := &pendingRequest{cb: cb}
	r.tm = n.clock.timeout(timeout, func() {
		n.schedulePush(p, envelope{msg: &replyMsg{corr: corr, res: result{err: ErrTimeout}}}, false)
	})
	x.pending[corr] = r
	e := Envelope{Sender: p.pid, Target: to, TargetName: name, Message: msg, corr: corr, deadline: time.Now().Add(timeout).UnixNano()}
	if err := n.sendEnvelope(&e); err != nil {
		delete(x.pending, corr)
		r.tm.Stop()
		return err
	}
	return nil
}

// Call sends msg and blocks this actor until the reply comes or ctx ends. The
// actor handles nothing else meanwhile, so prefer Request inside actors;
// Call suits sequential logic that is simpler written straight. A reply that
// is an error value comes back as the error. Calling Self returns
// ErrCallToSelf.
func (c *Context) Call(ctx context.Context, to PID, msg any) (any, error) {
	if to == c.p.pid {
		return nil, ErrCallToSelf
	}
	return c.p.node.call(ctx, c.p.pid, to, "", msg)
}

// Respond answers the current request. Responding with an error value makes
// the requester's Call return that error. Only the first answer counts. When
// the current message is not a request, Respond sends msg to the Sender, or
// to dead letters when there is none.
func (c *Context) Respond(msg any) {
	if c.corr != 0 {
		if !c.replied {
			c.replied = true
			c.p.node.reply(c.p.pid, c.sender, c.fut, c.corr, c.via, msg)
		}
		return
	}
	if !c.sender.IsZero() {
		_ = c.p.node.send(c.p.pid, c.sender, msg)
		return
	}
	c.p.node.deadLetter(DeadLetter{Target: PID{}, Sender: c.p.pid, Message: msg, Reason: ErrNoReply})
}

// Responder lets the actor answer the current request later, from any
// goroutine, after Receive has returned: for example when the answer needs
// another actor's reply first. Taking a Responder tells the runtime not to
// fail the request with ErrNoReply when Receive returns. A node that shuts
// down gracefully (Shutdown) waits for the answers of the Responders its
// actors took, until their requesters' deadlines, before it ends.
func (c *Context) Responder() Responder {
	if c.corr == 0 {
		return Responder{}
	}
	c.replied = true
	n := c.p.node
	return Responder{n: n, from: c.p.pid, to: c.sender, fut: c.fut, corr: c.corr, via: c.via, owed: n.owe(c.fut, c.via, c.deadline)}
}

// Forward passes the current message on to another actor with its original
// sender, so that the other actor's Respond answers the original requester,
// with the requester's deadline. It works across nodes and through any
// chain of forwards: an answer from another node travels back along the
// path the request took (each node matches it against its own pending
// requests), so it always reaches the request it answers. A node that
// forwarded a request stays on its path until the answer passes: if it dies
// first, the requester fails at once with an error matching
// transport.ErrPeerLost; a node that shuts down gracefully
// (cluster.Node.Shutdown) waits for the answers it relays.
func (c *Context) Forward(to PID) error {
	e := Envelope{Sender: c.sender, Target: to, Message: WithMetadata(c.msg, c.md), fut: c.fut, corr: c.corr, deadline: c.deadline, via: c.via}
	if err := c.p.node.sendEnvelope(&e); err != nil {
		return err
	}
	c.replied = true
	return nil
}

// Spawn starts a child of this actor. The child stops when this actor stops,
// before this actor's Stopped. This actor's WithSupervisor strategy (or the
// node's) handles the child's failures.
func (c *Context) Spawn(prod Producer, opts ...SpawnOption) (PID, error) {
	return c.p.node.spawn(c.p, prod, opts)
}

// SpawnFunc starts a child whose Receive is f.
func (c *Context) SpawnFunc(f func(c *Context), opts ...SpawnOption) (PID, error) {
	return c.p.node.spawn(c.p, funcProducer(f), opts)
}

// Children returns the PIDs of this actor's live children.
func (c *Context) Children() []PID {
	if c.p.x == nil {
		return nil
	}
	out := make([]PID, 0, len(c.p.x.children))
	for pid := range c.p.x.children {
		out = append(out, pid)
	}
	return out
}

// Stop stops an actor (this one, a child, or any other, on any node) at
// once: it finishes its current message, skips its backlog, and goes
// through Stopping and Stopped.
func (c *Context) Stop(pid PID) error { return c.p.node.Stop(pid) }

// Poison stops an actor after it has handled the messages already queued.
func (c *Context) Poison(pid PID) error { return c.p.node.Poison(pid) }

// TimerID names one of an actor's timers.
type TimerID uint32

// After delivers msg to this actor once, d from now, with Self as the sender.
// The timer is cancelled when the actor stops or restarts.
func (c *Context) After(d time.Duration, msg any) TimerID {
	return c.p.addTimer(d, msg, false)
}

// Every delivers msg to this actor every d, the first time d from now, until
// it is cancelled or the actor stops or restarts. Ticks do not pile up: while
// one is still queued, the next is skipped.
func (c *Context) Every(d time.Duration, msg any) TimerID {
	return c.p.addTimer(d, msg, true)
}

// CancelTimer cancels a timer of this actor. It reports whether the timer was
// still active; a one-shot timer that already fired returns false.
func (c *Context) CancelTimer(id TimerID) bool {
	x := c.p.x
	if x == nil {
		return false
	}
	t, ok := x.timers[id]
	if !ok {
		return false
	}
	delete(x.timers, id)
	t.t.Stop()
	return true
}

// Responder answers one request, once, from any goroutine. The zero
// Responder (taken when the message was not a request) does nothing.
type Responder struct {
	n    *Node
	from PID
	to   PID
	fut  *future
	corr uint64
	via  Addr
	owed *owedAnswer // what Shutdown waits for; nil when nobody outside the node's actors waits
}

// Respond sends the answer. Responding with an error value makes the
// requester's Call return that error. Later calls are ignored by the
// requester.
func (r Responder) Respond(msg any) {
	if r.n == nil {
		return
	}
	r.n.reply(r.from, r.to, r.fut, r.corr, r.via, msg)
	if r.owed != nil {
		r.n.owed.pay(r.owed)
	}
}
