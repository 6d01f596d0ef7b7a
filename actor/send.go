package actor

// Send sends msg one-way to the actor pid, from outside any actor. It returns
// ErrActorNotFound, ErrMailboxFull or ErrNodeClosed (once the node is
// closed; it still sends while Shutdown drains) when msg could not be
// queued; apart from those refused because the node is closed, they also
// go to dead letters.
func (n *Node) Send(to PID, msg any) error {
	if n.state.Load() == nodeClosed {
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
	env := envelope{msg: e.Message, sender: e.Sender, fut: e.fut, corr: e.corr, deadline: e.deadline, via: e.via}
	if n.isRemote(e.Target) {
		return n.sendRemoteNamed(e.Target, e.TargetName, &env)
	}
	if e.fut == nil {
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

func (n *Node) bounce(target PID, e *envelope, err error) {
	n.undeliverable(target, e, err) // counted before the requester wakes
	if e.corr != 0 {
		n.reply(target, e.sender, e.fut, e.corr, e.via, err)
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
	msg, _ := SplitMetadata(e.msg)
	n.deadLetter(DeadLetter{Target: target, Sender: e.sender, Message: msg, Reason: err})
}

// Stop stops the actor pid at once: it finishes its current message, skips
// its backlog (whose requesters get ErrActorStopped), stops its children and
// goes through Stopping and Stopped. For an actor on another node, Stop
// returns once the order is on its way (an error when it cannot be sent);
// watch the actor to learn when it has stopped.
func (n *Node) Stop(pid PID) error {
	if n.isRemote(pid) {
		return n.sendControl(RemoteStop, pid, PID{}, nil)
	}
	return n.pushSys(pid, sysStop{})
}

// Poison stops the actor pid after it has handled the messages queued before
// the poison. For an actor on another node, the poison is ordered after the
// messages this node sent it before.
func (n *Node) Poison(pid PID) error {
	if n.isRemote(pid) {
		return n.sendControl(RemotePoison, pid, PID{}, nil)
	}
	return n.pushControl(pid, envelope{msg: poison{}}, false)
}
