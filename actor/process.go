package actor

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/guildkit/guild/timer"
)

// Process states. Only the actor's turn goroutine writes them; others read
// them atomically.
const (
	stateAlive    uint32 = iota
	stateStopping        // Stopping delivered; waiting for children to stop
	stateStopped         // finalised: gone from the registry, mailbox closed
)

// process is the runtime side of one actor.
//
// Ownership: mb is shared (it has its own lock). Everything else except state
// is owned by the actor's turn goroutine, of which there is at most one at a
// time (see mailbox). pid, node, parent, sup, recv and prod are set at spawn
// and read-only afterwards.
type process struct {
	mb      mailbox
	bound   int32       // user mailbox bound; 0 is unbounded
	sysFlag atomic.Bool // system messages are waiting; polled between user messages
	pid     PID
	node    *Node
	parent  *process    // nil for a top-level actor
	sup     *Supervisor // the strategy that applies to this actor (its parent's)
	recv    ReceiveFunc // interceptor chain; nil when there is none
	actor   Actor
	prod    Producer
	state   atomic.Uint32
	ctx     Context
	x       *processExtra // allocated on first use: most actors never need it
}

// childRef is a parent's record of a child: the process, and the parent's
// incarnation that spawned it (an escalation from a child of an earlier
// incarnation is stale).
type childRef struct {
	p   *process
	gen uint32
}

// processExtra holds what only some actors use.
type processExtra struct {
	supervisor  *Supervisor // strategy for this actor's children
	children    map[PID]childRef
	incarnation uint32 // restarts so far; children record the one that spawned them
	watchers    map[PID]struct{}
	watching    map[PID]struct{} // actors on other nodes this one watches, to unwatch when it stops
	timers      map[TimerID]*actorTimer
	nextTimer   TimerID
	pending     map[uint64]*pendingRequest
	nextCorr    uint64
	restarts    []int64
}

func (p *process) extra() *processExtra {
	if p.x == nil {
		p.x = &processExtra{}
	}
	return p.x
}

// Internal messages. System-lane ones skip the user backlog; the others ride
// the user lane (forced past the bound) so that they keep their order relative
// to the user messages of the same sender.
type (
	sysStart     struct{}
	sysStop      struct{}
	sysWatch     struct{ watcher PID }
	sysUnwatch   struct{ watcher PID }
	sysChildGone struct{ child *process }
	sysEscalate  struct {
		child  PID
		reason any
	}
	poison   struct{}
	replyMsg struct {
		corr uint64
		res  result
	}
)

type pendingRequest struct {
	cb ReplyFunc
	tm *timer.Timer
}

type actorTimer struct {
	id     TimerID
	msg    any
	every  bool
	t      *timer.Timer
	queued atomic.Bool // a tick is in the mailbox; periodic ticks coalesce behind it
}

// run is one turn: it drains the mailbox in batches and returns when the
// mailbox is empty. It runs on a worker (see workers) handed the turn by the
// goroutine that set the mailbox's scheduled flag.
func (p *process) run() {
	var sysSpare, userSpare []envelope
	n := 0
	for {
		sys, full, user, idle := p.mb.take(sysSpare, userSpare, &p.sysFlag)
		if idle {
			return
		}
		sysSpare, n = p.handleBatch(sys, full, user, n)
		clear(user)
		userSpare = user[:0]
		if p.state.Load() == stateStopped {
			return // the mailbox is closed: nobody will schedule it again
		}
	}
}

// handleBatch handles one batch taken from the mailbox, yielding the
// goroutine every Config.Throughput messages (n counts them across batches).
// It returns the emptied system-lane buffer for reuse.
func (p *process) handleBatch(sys []envelope, full [][]envelope, user []envelope, n int) ([]envelope, int) {
	taken := len(user)
	for _, chunk := range full {
		taken += len(chunk)
	}
	if taken > 0 {
		p.node.handled.Add(uint64(taken)) // once per batch: Stats.Messages
	}
	sys = p.handleSysBatch(sys)
	for _, chunk := range full {
		for i := 0; i < len(chunk); {
			i, n, sys = p.handleUsers(chunk, i, n, sys)
		}
		recycleChunk(chunk, &p.node.chunks)
	}
	for i := 0; i < len(user); {
		i, n, sys = p.handleUsers(user, i, n, sys)
	}
	p.ctx.reset()
	return sys, n
}

// handleUsers handles user[i:] and returns the index after the last message
// it handled. One deferred recover guards the whole run, so the common path
// pays for it once per batch, not once per message: after a panic it applies
// the supervisor and returns, and handleBatch resumes with the next message.
func (p *process) handleUsers(user []envelope, i, n int, sys []envelope) (next, count int, sysOut []envelope) {
	cur := i
	var sends, reqs, replies, timers uint64 // Stats by kind, added once per run
	defer func() {
		if sends != 0 {
			p.node.handledSend.Add(sends)
		}
		if reqs != 0 {
			p.node.handledReq.Add(reqs)
		}
		if replies != 0 {
			p.node.handledReply.Add(replies)
		}
		if timers != 0 {
			p.node.handledTimer.Add(timers)
		}
		if r := recover(); r != nil {
			stack := debug.Stack()
			next, count, sysOut = cur+1, n, sys
			p.onPanic(r, stack, WhereReceive)
		}
	}()
	throughput := p.node.cfg.Throughput
	c := &p.ctx
	for ; i < len(user); i++ {
		cur = i
		if p.sysFlag.Load() {
			sys = p.handleSysBatch(p.mb.takeSys(sys, &p.sysFlag))
		}
		if p.bound > 0 {
			p.mb.count.Add(-1)
		}
		e := &user[i]
		switch m := e.msg.(type) {
		case *replyMsg:
			replies++
			p.onReply(m, e.sender)
			continue
		case *actorTimer:
			timers++
			p.onTimer(m)
			continue
		case poison:
			sends++
			p.beginStop(true)
			continue
		}
		if p.state.Load() != stateAlive {
			p.node.bounce(p.pid, e, ErrActorStopped)
			continue
		}
		if e.corr != 0 {
			reqs++
		} else {
			sends++
		}
		c.msg, c.sender, c.fut, c.corr, c.deadline, c.via, c.replied = e.msg, e.sender, e.fut, e.corr, e.deadline, e.via, false
		if w, ok := e.msg.(*withMetadata); ok {
			c.msg, c.md = w.msg, w.md
		} else if c.md.kv != nil {
			c.md = Metadata{}
		}
		if p.recv != nil {
			p.recv(c)
		} else {
			p.actor.Receive(c)
		}
		if c.corr != 0 && !c.replied {
			p.node.reply(p.pid, c.sender, c.fut, c.corr, c.via, ErrNoReply)
		}
		if n++; n >= throughput {
			n = 0
			runtime.Gosched()
		}
	}
	return i, n, sys
}

// runInline runs one batch of a turn on the calling goroutine (see
// startCall), then hands the turn to a worker if more work has arrived.
func (p *process) runInline() {
	sys, full, user, idle := p.mb.take(nil, nil, &p.sysFlag)
	if idle {
		return
	}
	p.handleBatch(sys, full, user, 0)
	clear(user)
	if p.state.Load() == stateStopped || p.mb.tryIdle(user[:0]) {
		return
	}
	p.node.schedule(p) // more work arrived meanwhile: a worker takes the turn over
}

func (p *process) handleSysBatch(sys []envelope) []envelope {
	if len(sys) > 0 {
		p.node.handledSys.Add(uint64(len(sys))) // Stats.SystemMessages
	}
	for i := range sys {
		p.handleSys(sys[i].msg)
	}
	clear(sys)
	return sys[:0]
}

func (p *process) handleSys(msg any) {
	if p.state.Load() == stateStopped {
		if m, ok := msg.(sysWatch); ok {
			p.node.notifyTerminated(m.watcher, Terminated{PID: p.pid, Reason: ReasonNotFound})
		}
		return
	}
	switch m := msg.(type) {
	case sysStart:
		p.invokeLifecycle(Started{})
	case sysStop:
		p.beginStop(false)
	case sysWatch:
		x := p.extra()
		if x.watchers == nil {
			x.watchers = make(map[PID]struct{})
		}
		x.watchers[m.watcher] = struct{}{}
	case sysUnwatch:
		if p.x != nil {
			delete(p.x.watchers, m.watcher)
		}
	case sysChildGone:
		if p.x != nil {
			delete(p.x.children, m.child.pid)
		}
		if p.state.Load() == stateStopping && (p.x == nil || len(p.x.children) == 0) {
			p.finalize()
		}
	case sysEscalate:
		if p.x == nil {
			return
		}
		if ref, ok := p.x.children[m.child]; !ok || ref.gen != p.x.incarnation {
			return // from a child of an instance that has already been replaced
		}
		p.fail(m.reason)
	}
}

// invoke runs one Receive with panic recovery.
func (p *process) invoke(c *Context) (reason any, stack []byte, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			reason, stack, panicked = r, debug.Stack(), true
		}
	}()
	if p.recv != nil {
		p.recv(c)
	} else {
		p.actor.Receive(c)
	}
	return nil, nil, false
}

// invokeLifecycle delivers a lifecycle message. A panic in Started fails the
// actor like any other; a panic in Stopping, Stopped or Restarting is logged
// and the lifecycle carries on.
func (p *process) invokeLifecycle(msg any) {
	c := &p.ctx
	c.set(msg, p.pid)
	reason, stack, panicked := p.invoke(c)
	c.reset()
	if !panicked {
		return
	}
	if _, ok := msg.(Started); ok {
		c.set(msg, p.pid) // for the report
		p.onPanic(reason, stack, WhereReceive)
		return
	}
	p.node.panics.Add(1)
	p.node.log.Error("actor panicked in lifecycle message", "pid", p.pid, "message", fmt.Sprintf("%T", msg), "panic", reason, "stack", string(stack))
	p.node.reportPanic(p.pid, WhereReceive, msg, reason, stack)
}

// onPanic reports a panic (logs it, and hands it to the Reporter), fails
// a pending request at once, and applies the supervisor.
func (p *process) onPanic(reason any, stack []byte, where string) {
	p.node.panics.Add(1)
	c := &p.ctx
	p.node.log.Error("actor panicked", "pid", p.pid, "message", fmt.Sprintf("%T", c.msg), "panic", reason, "stack", string(stack))
	p.node.reportPanic(p.pid, where, c.msg, reason, stack)
	if c.corr != 0 && !c.replied {
		c.replied = true
		p.node.reply(p.pid, c.sender, c.fut, c.corr, c.via, fmt.Errorf("%w: %v", ErrPanicked, reason))
	}
	c.reset()
	p.fail(reason)
}

// fail applies the supervising strategy to this actor.
func (p *process) fail(reason any) {
	if p.state.Load() != stateAlive {
		return
	}
	d, dp, dstack := p.sup.decide(reason)
	if dstack != nil {
		p.node.log.Error("actor: Supervisor.Decide panicked; stopping the actor", "pid", p.pid, "panic", dp, "stack", string(dstack))
		p.node.reportPanic(p.pid, WhereDecide, nil, dp, dstack)
	}
	if d == Restart {
		x := p.extra()
		var ok bool
		x.restarts, ok = p.sup.allowRestart(x.restarts, time.Now().UnixNano())
		if !ok {
			max, window := p.sup.budget()
			p.node.log.Error("actor restart budget exhausted; stopping it", "pid", p.pid, "max_restarts", max, "window", window)
			p.reportBudget(reason, max, window)
			d = Stop
		}
	}
	switch d {
	case Resume:
	case Restart:
		p.restart(reason)
	case Escalate:
		p.reportEscalation(reason)
		// Tell the parent first: once this child is gone (sysChildGone),
		// the parent no longer knows it and would ignore the escalation.
		if p.parent != nil {
			p.node.schedulePush(p.parent, envelope{msg: sysEscalate{child: p.pid, reason: reason}}, true)
		}
		p.beginStop(false)
	default:
		p.beginStop(false)
	}
}

// reportBudget hands the Reporter an actor stopped because its restart
// budget (max restarts within window) is spent.
func (p *process) reportBudget(reason any, max int, window time.Duration) {
	n := p.node
	if n.reporter == nil {
		return
	}
	why := fmt.Sprintf("restart budget spent (%d restarts within %v): stopped; the last failure: %s", max, window, reasonText(reason))
	if max < 0 {
		why = "restarts are off (MaxRestarts < 0): stopped; the failure: " + reasonText(reason)
	}
	f := Failure{Kind: FailureBudget, PID: p.pid, Where: WhereSupervisor, Reason: why}
	if p.parent != nil {
		f.Parent = p.parent.pid
	}
	n.Report(f)
}

// reportEscalation hands an escalation to the Reporter, if there is one.
func (p *process) reportEscalation(reason any) {
	n := p.node
	if n.reporter == nil {
		return
	}
	f := Failure{Kind: FailureEscalation, PID: p.pid, Where: WhereSupervisor, Reason: reasonText(reason)}
	if p.parent != nil {
		f.Parent = p.parent.pid
	}
	n.Report(f)
}

func (p *process) restart(reason any) {
	p.node.restarts.Add(1)
	p.invokeLifecycle(Restarting{Reason: reason})
	p.dropTimersAndRequests()
	p.stopChildren(false)
	p.extra().incarnation++
	a, err := p.node.produce(p.pid, p.prod)
	if err != nil {
		p.node.log.Error("actor producer failed on restart; stopping it", "pid", p.pid, "err", err)
		p.beginStop(false)
		return
	}
	p.actor = a
	p.invokeLifecycle(Started{})
}

// beginStop starts stopping: Stopping, then children, then finalize once the
// last child is gone. graceful (poison) lets the children drain too.
func (p *process) beginStop(graceful bool) {
	if p.state.Load() != stateAlive {
		return
	}
	p.state.Store(stateStopping)
	p.invokeLifecycle(Stopping{})
	p.dropTimersAndRequests()
	if p.stopChildren(graceful) == 0 {
		p.finalize()
	}
}

// stopChildren asks every child to stop and returns how many there are.
func (p *process) stopChildren(graceful bool) int {
	if p.x == nil {
		return 0
	}
	for _, ch := range p.x.children {
		if graceful {
			p.node.schedulePush(ch.p, envelope{msg: poison{}}, false)
		} else {
			p.node.schedulePush(ch.p, envelope{msg: sysStop{}}, true)
		}
	}
	return len(p.x.children)
}

func (p *process) dropTimersAndRequests() {
	if p.x == nil {
		return
	}
	for id, t := range p.x.timers {
		t.t.Stop()
		delete(p.x.timers, id)
	}
	for corr, r := range p.x.pending {
		r.tm.Stop()
		delete(p.x.pending, corr)
	}
}

// finalize ends the actor: Stopped, out of the registry and the name table,
// mailbox closed (what is left goes to dead letters), watchers and parent
// told.
func (p *process) finalize() {
	p.invokeLifecycle(Stopped{})
	p.state.Store(stateStopped)
	n := p.node
	n.procs.remove(p.pid.Serial)
	n.names.release(p.pid)
	n.releaseGlobal(p.pid)
	sys, user := p.mb.close()
	for i := range sys {
		p.handleSys(sys[i].msg) // answers late watches with Terminated
	}
	for i := range user {
		n.bounce(p.pid, &user[i], ErrActorStopped)
	}
	if p.x != nil {
		for w := range p.x.watchers {
			n.notifyTerminated(w, Terminated{PID: p.pid, Reason: ReasonStopped})
		}
		for t := range p.x.watching {
			_ = n.sendControl(RemoteUnwatch, t, p.pid, nil)
		}
	}
	p.actor = nil
	if p.parent != nil {
		n.schedulePush(p.parent, envelope{msg: sysChildGone{child: p}}, true)
	}
	n.processGone()
}

func (p *process) onReply(m *replyMsg, from PID) {
	var r *pendingRequest
	ok := false
	if p.x != nil {
		r, ok = p.x.pending[m.corr]
	}
	if !ok { // timed out earlier, or dropped by a restart
		if m.res.err != ErrTimeout {
			msg := m.res.msg
			if m.res.err != nil {
				msg = m.res.err
			}
			p.node.deadLetter(DeadLetter{Target: p.pid, Sender: from, Message: msg, Reason: ErrTimeout})
		}
		return
	}
	delete(p.x.pending, m.corr)
	r.tm.Stop()
	if p.state.Load() != stateAlive {
		return
	}
	c := &p.ctx
	c.set(m.res.msg, from)
	reason, stack, panicked := p.invokeCallback(c, r.cb, m.res)
	if panicked {
		p.onPanic(reason, stack, WhereCallback)
		return
	}
	c.reset()
}

func (p *process) invokeCallback(c *Context, cb ReplyFunc, res result) (reason any, stack []byte, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			reason, stack, panicked = r, debug.Stack(), true
		}
	}()
	cb(res.msg, res.err)
	return nil, nil, false
}

func (p *process) onTimer(t *actorTimer) {
	if p.x == nil || p.x.timers[t.id] != t {
		return // cancelled
	}
	if t.every {
		t.queued.Store(false)
	} else {
		delete(p.x.timers, t.id)
	}
	if p.state.Load() != stateAlive {
		return
	}
	c := &p.ctx
	c.set(t.msg, p.pid)
	if reason, stack, panicked := p.invoke(c); panicked {
		p.onPanic(reason, stack, WhereReceive)
		return
	}
	c.reset()
}

// addTimer arms an actor timer; period 0 means once.
func (p *process) addTimer(d time.Duration, msg any, every bool) TimerID {
	x := p.extra()
	if x.timers == nil {
		x.timers = make(map[TimerID]*actorTimer)
	}
	x.nextTimer++
	t := &actorTimer{id: x.nextTimer, msg: msg, every: every}
	fire := func() {
		if t.every && !t.queued.CompareAndSwap(false, true) {
			return // the previous tick is still queued: coalesce
		}
		p.node.schedulePush(p, envelope{msg: t, sender: p.pid}, false)
	}
	if every {
		t.t = p.node.clock.every(d, fire)
	} else {
		t.t = p.node.clock.after(d, fire)
	}
	x.timers[t.id] = t
	return t.id
}
