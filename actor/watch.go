package actor

import (
	"fmt"
	"runtime/debug"
)

// Watch asks for a Terminated message when pid stops, with its Reason. The
// actor may be on any node. Watching an actor that does not exist delivers
// Terminated (ReasonNotFound) at once. For an actor on another node,
// Terminated also comes when that node leaves the cluster or dies
// (ReasonNodeDown; at once when it is not a member), or cannot be reached
// for longer than the cluster's link timeout (ReasonLinkLost); a
// connection that drops and comes back meanwhile changes nothing. Either
// way a watch delivers at most one Terminated, and watching the same actor
// twice is one watch.
func (c *Context) Watch(pid PID) {
	n := c.p.node
	if n.isRemote(pid) {
		x := c.p.extra()
		if x.watching == nil {
			x.watching = make(map[PID]struct{})
		}
		x.watching[pid] = struct{}{}
		if err := n.sendControl(RemoteWatch, pid, c.p.pid, nil); err != nil {
			delete(x.watching, pid)
			n.schedulePush(c.p, envelope{msg: Terminated{PID: pid, Reason: ReasonNodeDown}, sender: pid}, false)
		}
		return
	}
	if err := n.pushSys(pid, sysWatch{watcher: c.p.pid}); err != nil {
		n.schedulePush(c.p, envelope{msg: Terminated{PID: pid, Reason: ReasonNotFound}, sender: pid}, false)
	}
}

// Unwatch cancels a Watch. A Terminated already on its way may still arrive.
func (c *Context) Unwatch(pid PID) {
	n := c.p.node
	if n.isRemote(pid) {
		if c.p.x != nil {
			delete(c.p.x.watching, pid)
		}
		_ = n.sendControl(RemoteUnwatch, pid, c.p.pid, nil)
		return
	}
	_ = n.pushSys(pid, sysUnwatch{watcher: c.p.pid})
}

// notifyTerminated tells a watcher, on this node or another, that an actor
// of this node has ended.
func (n *Node) notifyTerminated(watcher PID, t Terminated) {
	if n.isRemote(watcher) {
		if err := n.sendControl(RemoteTerminated, watcher, t.PID, t); err != nil {
			n.log.Debug("actor: cannot tell a remote watcher", "watcher", watcher, "pid", t.PID, "err", err)
		}
		return
	}
	n.deliverForce(watcher, envelope{msg: t, sender: t.PID})
}

// Watch lets code outside any actor watch the actor pid, on any node, as
// Context.Watch does: fn runs once, on a goroutine of the node, with the
// Terminated. cancel ends the watch; fn does not run after cancel has
// returned, unless it was already running. Watch fails with ErrNodeClosed
// once the node is shutting down; the watch then ends with it, without
// calling fn.
func (n *Node) Watch(pid PID, fn func(Terminated)) (cancel func(), err error) {
	if fn == nil {
		return nil, fmt.Errorf("actor: Watch needs a function")
	}
	if n.state.Load() != nodeRunning {
		return nil, ErrNodeClosed
	}
	w, err := n.spawn(nil, funcProducer(func(c *Context) {
		if m, ok := c.Message().(Terminated); ok && m.PID == pid {
			_ = c.Stop(c.Self())
			n.runWatchFunc(fn, m)
		}
	}), nil)
	if err != nil {
		return nil, err
	}
	// The watch is placed from this goroutine, before Watch returns, so it
	// is ordered before anything the caller does next (a Stop of pid, say).
	if n.isRemote(pid) {
		if err := n.sendControl(RemoteWatch, pid, w, nil); err != nil {
			n.deliverForce(w, envelope{msg: Terminated{PID: pid, Reason: ReasonNodeDown}, sender: pid})
		}
	} else if err := n.pushSys(pid, sysWatch{watcher: w}); err != nil {
		n.deliverForce(w, envelope{msg: Terminated{PID: pid, Reason: ReasonNotFound}, sender: pid})
	}
	return func() {
		if n.isRemote(pid) {
			_ = n.sendControl(RemoteUnwatch, pid, w, nil)
		} else {
			_ = n.pushSys(pid, sysUnwatch{watcher: w})
		}
		_ = n.Stop(w)
	}, nil
}

// runWatchFunc runs the function of an outside watch, logging a panic
// rather than letting supervision restart the watch.
func (n *Node) runWatchFunc(fn func(Terminated), t Terminated) {
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			n.log.Error("actor: Watch function panicked", "pid", t.PID, "panic", r, "stack", string(stack))
			n.reportPanic(PID{}, WhereWatch, t, r, stack)
		}
	}()
	fn(t)
}
