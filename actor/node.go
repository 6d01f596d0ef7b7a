package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guildkit/guild/timer"
)

// Node states.
const (
	nodeRunning  int32 = iota
	nodeDraining       // Shutdown: no new top-level spawns or outside sends; actors drain
	nodeClosed         // Close: everything refused
)

// Node hosts actors. All runtime state hangs off a Node, so one process can
// run several nodes side by side (a whole test cluster, say). Its methods are
// safe for concurrent use.
//
// Goroutines: a node owns one clock goroutine and a pool of workers that run
// the turns of actors with work (an idle actor holds none). Shutdown and
// Close wait for all of them, and end every wait still in progress on the
// node (a Call or Request) with ErrNodeClosed.
type Node struct {
	cfg        Config
	log        *slog.Logger
	procs      registry
	names      localNames
	clock      *clock
	corr       atomic.Uint64
	live       atomic.Int64
	spawned    atomic.Uint64
	restarts   atomic.Uint64
	state      atomic.Int32
	wg         sync.WaitGroup
	futures    sync.Pool
	remoteMsgs sync.Pool // of *RemoteMessage, reused by sendRemote
	chunks     sync.Pool // *laneChunk buffers for deep user lanes
	workers    workers
	sendHook   SendFunc // the SendInterceptors chain; nil when there are none
	closedTurn *process // sentinel of a closed turn gate (see future.openTurnGate); never runs
	recvIcs    []ReceiveInterceptor

	deadSubs  atomic.Pointer[[]*deadLetterSub]
	deadMu    sync.Mutex
	deadCount atomic.Uint64
	deadDepth atomic.Int32

	empty     chan struct{} // closed when no actor is left during shutdown
	quit      chan struct{} // closed by Close and at teardown: ends every wait on a reply
	quitOnce  sync.Once
	emptyOnce sync.Once
	stopMu    sync.Mutex // serialises Shutdown and Close
	stopped   bool
}

// NewNode validates cfg, fills its defaults and starts a node.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:        cfg,
		log:        cfg.Logger.With("node", cfg.Addr.String()),
		clock:      newClock(cfg.TimerResolution),
		recvIcs:    cfg.ReceiveInterceptors,
		empty:      make(chan struct{}),
		quit:       make(chan struct{}),
		closedTurn: &process{},
	}
	n.futures.New = func() any { return newFuture() }
	n.chunks.New = func() any { return new(laneChunk) }
	n.workers = workers{maxIdle: maxIdleWorkers, wg: &n.wg}
	if len(cfg.SendInterceptors) > 0 {
		n.sendHook = chainSend(n.deliverEnvelope, cfg.SendInterceptors)
	}
	go n.clock.run()
	return n, nil
}

// Addr returns the node's logical address.
func (n *Node) Addr() Addr { return n.cfg.Addr }

// Logger returns the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// Spawn starts a top-level actor made by prod and returns its PID. It fails
// with ErrNodeClosed once shutdown has begun, and with ErrNameTaken when
// WithName asks for a name that is held.
func (n *Node) Spawn(prod Producer, opts ...SpawnOption) (PID, error) {
	return n.spawn(nil, prod, opts)
}

// SpawnFunc starts a top-level actor whose Receive is f. State captured by f
// survives restarts; use Spawn with a Producer for state that should not.
func (n *Node) SpawnFunc(f func(c *Context), opts ...SpawnOption) (PID, error) {
	return n.spawn(nil, funcProducer(f), opts)
}

func funcProducer(f func(c *Context)) Producer {
	return func() Actor { return ReceiveFunc(f) }
}

func (n *Node) spawn(parent *process, prod Producer, opts []SpawnOption) (PID, error) {
	if prod == nil {
		return PID{}, errors.New("actor: Spawn needs a Producer")
	}
	if st := n.state.Load(); st == nodeClosed || (st == nodeDraining && parent == nil) {
		return PID{}, ErrNodeClosed
	}
	if parent != nil && parent.state.Load() != stateAlive {
		return PID{}, fmt.Errorf("%w: the parent %v is stopping", ErrActorStopped, parent.pid)
	}
	var o spawnOptions
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return PID{}, err
	}
	a, err := n.produce(prod)
	if err != nil {
		return PID{}, err
	}
	p := &process{node: n, parent: parent, actor: a, prod: prod}
	p.pid.Node = n.cfg.Addr
	p.bound = int32(o.bound)
	p.ctx.p = p
	p.sup = &n.cfg.Supervisor
	if parent != nil && parent.x != nil && parent.x.supervisor != nil {
		p.sup = parent.x.supervisor
	}
	if o.supervisor != nil {
		p.extra().supervisor = o.supervisor
	}
	if ics := append(n.recvIcs[:len(n.recvIcs):len(n.recvIcs)], o.interceptors...); len(ics) > 0 {
		p.recv = chainReceive(func(c *Context) { c.p.actor.Receive(c) }, ics)
	}
	// Started goes in first, while this goroutine holds the mailbox's
	// scheduled flag: nothing queued by others (a Send to a name, a stop
	// from Close) can run before it, and the actor runs only once spawn
	// has decided it exists.
	_, _ = p.mb.pushSys(envelope{msg: sysStart{}}, &p.sysFlag)
	n.live.Add(1)
	n.procs.add(p) // sets p.pid.Serial
	if st := n.state.Load(); st == nodeClosed || (st == nodeDraining && parent == nil) {
		// Shutdown or Close began meanwhile and may have missed p.
		n.unspawn(p)
		return PID{}, ErrNodeClosed
	}
	if o.name != "" {
		if err := n.names.register(o.name, p.pid, p.alive); err != nil {
			n.unspawn(p)
			return PID{}, err
		}
	}
	if parent != nil {
		x := parent.extra()
		if x.children == nil {
			x.children = make(map[PID]childRef)
		}
		x.children[p.pid] = childRef{p: p, gen: x.incarnation}
	}
	n.spawned.Add(1)
	n.schedule(p)
	return p.pid, nil
}

// unspawn undoes a spawn that has not scheduled its actor: the actor never
// ran, so it is removed without a lifecycle, and whatever others queued for
// it meanwhile is dropped.
func (n *Node) unspawn(p *process) {
	n.procs.remove(p.pid.Serial)
	p.state.Store(stateStopped)
	p.mb.close()
	n.processGone()
}

// produce calls a Producer, turning a panic or a nil actor into an error.
func (n *Node) produce(prod Producer) (a Actor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("actor: Producer panicked: %v", r)
		}
	}()
	if a = prod(); a == nil {
		return nil, errors.New("actor: Producer returned nil")
	}
	return a, nil
}

func (p *process) alive() bool { return p.state.Load() != stateStopped }

// Send sends msg one-way to the actor pid, from outside any actor. It returns
// ErrActorNotFound, ErrMailboxFull or ErrNodeClosed when msg could not be
// queued; apart from those refused because the node is closing, they also go
// to dead letters.
func (n *Node) Send(to PID, msg any) error {
	if n.state.Load() != nodeRunning {
		return ErrNodeClosed
	}
	return n.send(PID{}, to, msg)
}

func (n *Node) send(from, to PID, msg any) error {
	if n.sendHook != nil {
		return n.sendHook(&Envelope{Sender: from, Target: to, Message: msg})
	}
	return n.deliver(to, envelope{msg: msg, sender: from}, false)
}

// sendEnvelope sends a request or forward through the interceptors.
func (n *Node) sendEnvelope(e *Envelope) error {
	if n.sendHook != nil {
		return n.sendHook(e)
	}
	return n.deliverEnvelope(e)
}

func (n *Node) deliverEnvelope(e *Envelope) error {
	env := envelope{msg: e.Message, sender: e.Sender, fut: e.fut, corr: e.corr, deadline: e.deadline}
	if e.fut == nil || n.isRemote(e.Target) {
		return n.deliver(e.Target, env, false)
	}
	p, err := n.lookup(e.Target, &env)
	if err != nil {
		return err
	}
	schedule, err := p.mb.push(env, p.bound, false, &n.chunks)
	if err != nil {
		n.undeliverable(e.Target, &env, err)
		return err
	}
	if schedule && !e.fut.offerTurn(p) {
		n.schedule(p)
	}
	return nil
}

// lookup finds a local target, sending e to dead letters when there is none.
func (n *Node) lookup(to PID, e *envelope) (*process, error) {
	if to.Serial == 0 {
		n.undeliverable(to, e, ErrActorNotFound)
		return nil, ErrActorNotFound
	}
	if to.Node != n.cfg.Addr {
		n.undeliverable(to, e, ErrRemote)
		return nil, ErrRemote
	}
	p := n.procs.get(to.Serial)
	if p == nil {
		n.undeliverable(to, e, ErrActorNotFound)
		return nil, ErrActorNotFound
	}
	return p, nil
}

// isRemote reports whether to names an actor on another node.
func (n *Node) isRemote(to PID) bool { return to.Node != n.cfg.Addr && to.Serial != 0 }

// deliver queues e in to's user lane, or hands it to Config.Remote when to
// is on another node. force skips the bound.
func (n *Node) deliver(to PID, e envelope, force bool) error {
	if n.isRemote(to) {
		return n.sendRemote(to, &e)
	}
	p, err := n.lookup(to, &e)
	if err != nil {
		return err
	}
	schedule, err := p.mb.push(e, p.bound, force, &n.chunks)
	if err != nil {
		n.undeliverable(to, &e, err)
		return err
	}
	if schedule {
		n.schedule(p)
	}
	return nil
}

// deliverForce queues a runtime message (Terminated, a reply) past the bound.
func (n *Node) deliverForce(to PID, e envelope) {
	_ = n.deliver(to, e, true)
}

// schedulePush queues a runtime message for a process the caller holds,
// in the system lane or (forced) in the user lane. A user-lane message that
// finds the actor gone goes to dead letters.
func (n *Node) schedulePush(p *process, e envelope, sys bool) error {
	var schedule bool
	var err error
	if sys {
		schedule, err = p.mb.pushSys(e, &p.sysFlag)
	} else {
		schedule, err = p.mb.push(e, p.bound, true, &n.chunks)
	}
	if err != nil {
		if !sys {
			n.undeliverable(p.pid, &e, err)
		}
		return err
	}
	if schedule {
		n.schedule(p)
	}
	return nil
}

// pushSys queues a system message for a local actor by PID.
func (n *Node) pushSys(to PID, msg any) error {
	return n.pushControl(to, envelope{msg: msg}, true)
}

// pushControl queues a runtime message (a system message, or a forced
// user-lane one such as poison) for a local actor by PID.
func (n *Node) pushControl(to PID, e envelope, sys bool) error {
	if to.Serial == 0 {
		return ErrActorNotFound
	}
	if to.Node != n.cfg.Addr {
		return ErrRemote
	}
	p := n.procs.get(to.Serial)
	if p == nil {
		return ErrActorNotFound
	}
	return n.schedulePush(p, e, sys)
}

// schedule starts a turn for p. The caller won the mailbox's scheduled flag.
func (n *Node) schedule(p *process) {
	n.workers.schedule(p)
}

// maxIdleWorkers bounds the goroutines a node keeps parked for future turns.
const maxIdleWorkers = 256

// Request sends msg to the actor pid from outside any actor and returns at
// once. cb runs exactly once, on a goroutine of its own, with the reply or an
// error (ErrTimeout after timeout, 0 meaning Config.RequestTimeout;
// ErrNodeClosed when the node closes first). A panic in cb is recovered and
// logged. Request returns an error, and cb never runs, when msg could not be
// queued.
func (n *Node) Request(to PID, msg any, timeout time.Duration, cb ReplyFunc) error {
	if n.state.Load() != nodeRunning {
		return ErrNodeClosed
	}
	if timeout <= 0 {
		timeout = n.cfg.RequestTimeout
	}
	if !n.workers.track() { // before the send, so that Close's wait covers the callback
		return ErrNodeClosed
	}
	f, id, tm, err := n.startCall(PID{}, to, msg, time.Now().Add(timeout), true, false)
	if err != nil {
		n.wg.Done()
		return err
	}
	go func() {
		defer n.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				n.log.Error("Request callback panicked", "target", to, "panic", r, "stack", string(debug.Stack()))
			}
		}()
		var r result
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
	if n.state.Load() != nodeRunning {
		return nil, ErrNodeClosed
	}
	return n.call(ctx, PID{}, to, msg)
}

func (n *Node) call(ctx context.Context, from, to PID, msg any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dl, hasDeadline := ctx.Deadline()
	done := ctx.Done()
	f, id, tm, err := n.startCall(from, to, msg, dl, !hasDeadline, done == nil)
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
func (n *Node) startCall(from, to PID, msg any, deadline time.Time, withTimer, inline bool) (*future, uint64, *timer.Timer, error) {
	f := n.futures.Get().(*future)
	id := n.corr.Add(1)
	f.id.Store(id)
	f.openTurnGate(inline, n.closedTurn)
	e := Envelope{Sender: from, Target: to, Message: msg, fut: f, corr: id}
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
	err := n.sendEnvelope(&e)
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

// reply answers a request: through the future of a Call, or as a reply
// message to the requesting actor.
func (n *Node) reply(from, to PID, fut *future, corr uint64, msg any) {
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
	if to.Node != n.cfg.Addr && to.Node != 0 { // a remote requester, perhaps outside any actor (serial 0)
		n.replyRemote(from, to, corr, msg)
		return
	}
	n.deliverForce(to, envelope{msg: &replyMsg{corr: corr, res: r}, sender: from})
}

// bounce handles a queued message that can no longer be handled (its
// target stopped): a waiting requester is answered with err at once, and the
// message goes to dead letters.
func (n *Node) bounce(target PID, e *envelope, err error) {
	n.undeliverable(target, e, err) // counted before the requester wakes
	if e.corr != 0 {
		n.reply(target, e.sender, e.fut, e.corr, err)
	}
}

// undeliverable sends a message that cannot reach its target to dead
// letters. The sender learns of it from the error it got back, or from
// bounce.
func (n *Node) undeliverable(target PID, e *envelope, err error) {
	switch m := e.msg.(type) {
	case *replyMsg: // a reply whose requester has gone
		msg := m.res.msg
		if m.res.err != nil {
			msg = m.res.err
		}
		n.deadLetter(DeadLetter{Target: target, Sender: e.sender, Message: msg, Reason: err})
		return
	case *actorTimer, poison, sysStart, sysStop, sysWatch, sysUnwatch, sysChildGone, sysEscalate:
		return // runtime traffic to a stopped actor is dropped silently
	}
	n.deadLetter(DeadLetter{Target: target, Sender: e.sender, Message: e.msg, Reason: err})
}

// Stop stops the actor pid at once: it finishes its current message, skips
// its backlog (whose requesters get ErrActorStopped), stops its children and
// goes through Stopping and Stopped.
func (n *Node) Stop(pid PID) error {
	return n.pushSys(pid, sysStop{})
}

// Poison stops the actor pid after it has handled the messages queued before
// the poison.
func (n *Node) Poison(pid PID) error {
	return n.pushControl(pid, envelope{msg: poison{}}, false)
}

// Register binds a name to pid. Local names start with "." and are seen by
// this node only; they are released when the actor stops. Other names are
// global and need Config.Names (a cluster); without it they fail with
// ErrNoGlobalNames.
func (n *Node) Register(ctx context.Context, name string, pid PID) error {
	if err := checkName(name); err != nil {
		return err
	}
	if !IsLocalName(name) {
		if n.cfg.Names == nil {
			return ErrNoGlobalNames
		}
		return n.cfg.Names.Register(ctx, name, pid)
	}
	if pid.Node != n.cfg.Addr {
		return fmt.Errorf("%w: local name %q for %v, which is on another node", ErrBadName, name, pid)
	}
	return n.names.register(name, pid, func() bool {
		p := n.procs.get(pid.Serial)
		return p != nil && p.alive()
	})
}

// Unregister releases a name. Unregistering a name that is not held returns
// ErrNameNotFound.
func (n *Node) Unregister(ctx context.Context, name string) error {
	if !IsLocalName(name) {
		if n.cfg.Names == nil {
			return ErrNoGlobalNames
		}
		pid, err := n.cfg.Names.Lookup(ctx, name)
		if err != nil {
			return err
		}
		return n.cfg.Names.Unregister(ctx, name, pid)
	}
	if !n.names.unregister(name) {
		return fmt.Errorf("%w: %q", ErrNameNotFound, name)
	}
	return nil
}

// Lookup resolves a name to a PID, returning ErrNameNotFound when nobody
// holds it. A local lookup is one map read under a read lock.
func (n *Node) Lookup(ctx context.Context, name string) (PID, error) {
	if !IsLocalName(name) {
		if n.cfg.Names == nil {
			return PID{}, ErrNoGlobalNames
		}
		return n.cfg.Names.Lookup(ctx, name)
	}
	if pid, ok := n.names.lookup(name); ok {
		return pid, nil
	}
	return PID{}, fmt.Errorf("%w: %q", ErrNameNotFound, name)
}

// Stats is a snapshot of a node's counters.
type Stats struct {
	Actors      int64  // live actors
	Spawned     uint64 // actors spawned since start
	Restarts    uint64 // supervisor restarts since start
	DeadLetters uint64 // messages that could not be delivered, since start
	Timers      int    // pending timers and timeouts
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{
		Actors:      n.live.Load(),
		Spawned:     n.spawned.Load(),
		Restarts:    n.restarts.Load(),
		DeadLetters: n.deadCount.Load(),
		Timers:      n.clock.wheel.Len(),
	}
}

func (n *Node) processGone() {
	if n.live.Add(-1) == 0 && n.state.Load() != nodeRunning {
		n.emptyOnce.Do(func() { close(n.empty) })
	}
}

// Shutdown stops the node gracefully. It refuses new top-level spawns and
// outside sends, lets every top-level actor handle the messages already
// queued (actors keep messaging each other meanwhile), then stops them,
// children before parents. When ctx ends first it falls back to Close and
// returns ctx's error. Safe to call twice, and together with Close.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopMu.Lock()
	if n.stopped {
		n.stopMu.Unlock()
		return nil
	}
	if n.state.CompareAndSwap(nodeRunning, nodeDraining) {
		n.stopAll(func(p *process) { _ = n.Poison(p.pid) })
	}
	n.stopMu.Unlock() // a Close may overtake the drain
	select {
	case <-n.empty:
		n.stopMu.Lock()
		defer n.stopMu.Unlock()
		if !n.stopped {
			n.teardown()
		}
		return nil
	case <-ctx.Done():
		_ = n.Close()
		return ctx.Err()
	}
}

// Close stops every actor at once, children before parents, waiting at most
// Config.StopTimeout for actors still inside Receive. It returns an error
// naming how many actors did not stop in time. Safe to call twice.
func (n *Node) Close() error {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	if n.stopped {
		return nil
	}
	return n.close()
}

func (n *Node) close() error {
	n.state.Store(nodeClosed)
	n.endWaits() // actors blocked in Call return, so they can stop
	n.stopAll(func(p *process) { _ = n.pushSys(p.pid, sysStop{}) })
	t := time.NewTimer(n.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-n.empty:
	case <-t.C:
		left := n.live.Load()
		n.log.Error("actors did not stop in time", "left", left, "timeout", n.cfg.StopTimeout)
		n.clock.stop()
		n.workers.close() // busy workers exit when their turn ends
		n.stopped = true
		return fmt.Errorf("actor: %d actors did not stop within %v", left, n.cfg.StopTimeout)
	}
	n.teardown()
	return nil
}

// endWaits ends every Call and Request still waiting on this node with
// ErrNodeClosed.
func (n *Node) endWaits() {
	n.quitOnce.Do(func() { close(n.quit) })
}

// stopAll applies stop to every top-level actor; when there is none, it marks
// the node empty.
func (n *Node) stopAll(stop func(*process)) {
	n.procs.each(func(p *process) {
		if p.parent == nil {
			stop(p)
		}
	})
	if n.live.Load() == 0 {
		n.emptyOnce.Do(func() { close(n.empty) })
	}
}

// teardown runs once every actor has stopped.
func (n *Node) teardown() {
	n.state.Store(nodeClosed)
	n.endWaits()
	n.clock.stop()
	n.workers.close()
	n.wg.Wait() // only workers finishing their last turn, and Request callbacks
	n.stopped = true
}
