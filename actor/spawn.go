package actor

import (
	"errors"
	"fmt"
	"runtime/debug"
)

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
	a, err := n.produce(PID{}, prod)
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
// A panic is also reported, for the actor pid (zero at spawn).
func (n *Node) produce(pid PID, prod Producer) (a Actor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("actor: Producer panicked: %v", r)
			n.reportPanic(pid, WhereProducer, nil, r, debug.Stack())
		}
	}()
	if a = prod(); a == nil {
		return nil, errors.New("actor: Producer returned nil")
	}
	return a, nil
}

func (p *process) alive() bool { return p.state.Load() != stateStopped }
