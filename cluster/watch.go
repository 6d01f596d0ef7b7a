package cluster

import (
	"sync"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/wire"
)

// DefaultWatchLinkTimeout is NodeConfig.WatchLinkTimeout's default.
const DefaultWatchLinkTimeout = 10 * time.Second

// systemOps names the KindSystem operation of each outgoing control kind.
var systemOps = map[actor.RemoteKind]string{
	actor.RemoteTerminated: wire.SystemTerminated,
	actor.RemoteStop:       wire.SystemStop,
	actor.RemotePoison:     wire.SystemPoison,
}

// watchTable holds the watches this node's actors keep on actors of other
// nodes, so that each watcher hears exactly one Terminated: the target's
// node says the target stopped, or the target's node left the membership
// (ReasonNodeDown), or it stayed unreachable longer than the link timeout
// (ReasonLinkLost). Whichever comes first removes the watch; anything
// later finds nothing to deliver.
//
// The watched node keeps its side in the watched actor itself (its
// watchers), so a connection that drops and comes back loses nothing: on
// PeerUp every watch of that peer is sent again (a watch is idempotent),
// which also answers at once for an actor that stopped while the
// Terminated could not be delivered.
type watchTable struct {
	r           *remote
	linkTimeout time.Duration

	mu       sync.Mutex
	byTarget map[actor.PID]map[actor.PID]struct{}  // target → its watchers here
	byNode   map[actor.Addr]map[actor.PID]struct{} // node → targets watched on it
	links    map[actor.Addr]*time.Timer            // nodes unreachable with watches on them: their link timers
	closed   bool
}

func newWatchTable(r *remote, linkTimeout time.Duration) *watchTable {
	if linkTimeout <= 0 {
		linkTimeout = DefaultWatchLinkTimeout
	}
	return &watchTable{
		r:           r,
		linkTimeout: linkTimeout,
		byTarget:    make(map[actor.PID]map[actor.PID]struct{}),
		byNode:      make(map[actor.Addr]map[actor.PID]struct{}),
		links:       make(map[actor.Addr]*time.Timer),
	}
}

// watch records that watcher watches target and tells target's node. A
// target on a node that is not a member ends the watch at once.
func (w *watchTable) watch(target, watcher actor.PID) {
	if !w.r.isMember(target.Node) {
		w.r.deliverTerminated(watcher, actor.Terminated{PID: target, Reason: actor.ReasonNodeDown})
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	ws := w.byTarget[target]
	if ws == nil {
		ws = make(map[actor.PID]struct{})
		w.byTarget[target] = ws
		ts := w.byNode[target.Node]
		if ts == nil {
			ts = make(map[actor.PID]struct{})
			w.byNode[target.Node] = ts
		}
		ts[target] = struct{}{}
	}
	ws[watcher] = struct{}{}
	w.mu.Unlock()
	// The node may have left between the check above and the add, and its
	// watches been ended (endNode) before this one was in the table: look
	// again. The view changes before the Leave event reaches endNode, so
	// one of the two ends this watch, and remove lets only one.
	if !w.r.isMember(target.Node) {
		if w.remove(target, watcher) {
			w.r.deliverTerminated(watcher, actor.Terminated{PID: target, Reason: actor.ReasonNodeDown})
		}
		return
	}
	// A watch that cannot be queued now is sent again when the peer comes
	// back (PeerUp), or ends with the node or the link.
	w.r.sendSystem(target.Node, wire.SystemWatch, target, watcher, 0)
}

// unwatch forgets a watch and tells the target's node.
func (w *watchTable) unwatch(target, watcher actor.PID) {
	if w.remove(target, watcher) {
		w.r.sendSystem(target.Node, wire.SystemUnwatch, target, watcher, 0)
	}
}

// remove forgets a watch and reports whether it was there.
func (w *watchTable) remove(target, watcher actor.PID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws, ok := w.byTarget[target]
	if !ok {
		return false
	}
	if _, ok := ws[watcher]; !ok {
		return false
	}
	delete(ws, watcher)
	if len(ws) == 0 {
		w.dropTargetLocked(target)
	}
	return true
}

func (w *watchTable) dropTargetLocked(target actor.PID) {
	delete(w.byTarget, target)
	if ts := w.byNode[target.Node]; ts != nil {
		delete(ts, target)
		if len(ts) == 0 {
			delete(w.byNode, target.Node)
			if t := w.links[target.Node]; t != nil {
				t.Stop()
				delete(w.links, target.Node)
			}
		}
	}
}

// terminated handles a target's node telling watcher that target ended.
func (w *watchTable) terminated(target, watcher actor.PID, reason actor.TerminationReason) {
	if w.remove(target, watcher) {
		w.r.deliverTerminated(watcher, actor.Terminated{PID: target, Reason: reason})
	}
}

// endNode ends every watch on node with reason.
func (w *watchTable) endNode(node actor.Addr, reason actor.TerminationReason) {
	type ended struct{ target, watcher actor.PID }
	var out []ended
	w.mu.Lock()
	for target := range w.byNode[node] {
		for watcher := range w.byTarget[target] {
			out = append(out, ended{target, watcher})
		}
		delete(w.byTarget, target)
	}
	delete(w.byNode, node)
	if t := w.links[node]; t != nil {
		t.Stop()
		delete(w.links, node)
	}
	w.mu.Unlock()
	for _, e := range out {
		w.r.deliverTerminated(e.watcher, actor.Terminated{PID: e.target, Reason: reason})
	}
}

// peerLost starts node's link timer if its actors are watched: the watches
// end with ReasonLinkLost unless the node comes back first.
func (w *watchTable) peerLost(node actor.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.byNode[node]) == 0 || w.links[node] != nil {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(w.linkTimeout, func() {
		w.mu.Lock()
		current := w.links[node] == t
		w.mu.Unlock()
		if current {
			w.endNode(node, actor.ReasonLinkLost)
		}
	})
	w.links[node] = t
}

// peerUp stops node's link timer and sends every watch on it again.
func (w *watchTable) peerUp(node actor.Addr) {
	type watch struct{ target, watcher actor.PID }
	var again []watch
	w.mu.Lock()
	if t := w.links[node]; t != nil {
		t.Stop()
		delete(w.links, node)
	}
	for target := range w.byNode[node] {
		for watcher := range w.byTarget[target] {
			again = append(again, watch{target, watcher})
		}
	}
	w.mu.Unlock()
	for _, a := range again {
		w.r.sendSystem(node, wire.SystemWatch, a.target, a.watcher, 0)
	}
}

// close stops the link timers; the watches end with the node.
func (w *watchTable) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for n, t := range w.links {
		t.Stop()
		delete(w.links, n)
	}
}

// count returns how many watches are held (for tests).
func (w *watchTable) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, ws := range w.byTarget {
		n += len(ws)
	}
	return n
}

// handleSystem handles a KindSystem envelope from peer.
func (r *remote) handleSystem(peer actor.Addr, env *wire.Envelope) {
	if env.PayloadType == wire.SystemExports {
		r.handleExports(peer, env)
		return
	}
	target, sender := fromWirePID(env.Target), fromWirePID(env.Sender)
	if target.Node != r.self && r.self.IsHarbor() {
		r.relay(peer, env)
		return
	}
	if env.PayloadType == wire.SystemTerminated {
		reason := actor.ReasonStopped
		if env.ErrorCode == wire.CodeNotFound {
			reason = actor.ReasonNotFound
		}
		// target is the watcher here; sender the actor that ended.
		r.watches.terminated(sender, target, reason)
		return
	}
	var kind actor.RemoteKind
	switch env.PayloadType {
	case wire.SystemWatch:
		kind = actor.RemoteWatch
	case wire.SystemUnwatch:
		kind = actor.RemoteUnwatch
	case wire.SystemStop:
		kind = actor.RemoteStop
	case wire.SystemPoison:
		kind = actor.RemotePoison
	default:
		r.log.Debug("cluster: dropping a system envelope of an unknown operation", "peer", peer, "op", env.PayloadType)
		return
	}
	n := r.node.Load()
	if n == nil {
		return
	}
	if err := n.ReceiveRemote(&actor.RemoteMessage{Kind: kind, Target: target, Sender: sender, Peer: peer}); err != nil {
		r.log.Debug("cluster: system envelope not applied", "peer", peer, "op", env.PayloadType, "target", target, "err", err)
	}
}

// sendSystem sends a KindSystem envelope of operation op to node.
func (r *remote) sendSystem(node actor.Addr, op string, target, sender actor.PID, code uint32) {
	tr := r.transport()
	if tr == nil {
		return
	}
	env := &wire.Envelope{Kind: wire.KindSystem, Target: toWirePID(target), Sender: toWirePID(sender), PayloadType: op, ErrorCode: code}
	peer, err := r.route(node)
	if err != nil {
		r.log.Debug("cluster: system envelope not sent", "peer", node, "op", op, "err", err)
		return
	}
	if err := tr.Send(peer, env); err != nil {
		r.log.Debug("cluster: system envelope not sent", "peer", node, "op", op, "err", err)
	}
}

// deliverTerminated hands a Terminated to a watcher of this node.
func (r *remote) deliverTerminated(watcher actor.PID, t actor.Terminated) {
	n := r.node.Load()
	if n == nil {
		return
	}
	_ = n.ReceiveRemote(&actor.RemoteMessage{Kind: actor.RemoteTerminated, Target: watcher, Sender: t.PID, Message: t})
}

// isMember reports whether node is in the membership's view.
func (r *remote) isMember(node actor.Addr) bool {
	if r.members == nil {
		return true
	}
	for _, m := range r.members.Members() {
		if m.Addr == node {
			return true
		}
	}
	return false
}
