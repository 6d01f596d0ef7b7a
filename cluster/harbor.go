package cluster

import (
	"errors"
	"fmt"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/wire"
)

// ErrNoRoute: no live harbor leads to the target's cluster (this node's
// cluster has no harbor, or the harbors know none of the target's
// cluster), or the message cannot cross clusters (a name: names are per
// cluster).
var ErrNoRoute = errors.New("cluster: no route to the cluster")

// Harbors: how a message reaches a node of another cluster.
//
// Every cluster has its own membership (its own etcd). A harbor node
// (address type actor.HarborType) is a member of its cluster's membership
// and of the harbors' membership (NodeConfig.Harbors), which every harbor
// of every cluster joins. A node learns its cluster's harbors from its
// own view (the members of type 255); a harbor learns every cluster's
// harbors from the harbors' view. A message for a node of another
// cluster then travels
//
//	sender → harbor of the sender's cluster → harbor of the target's cluster → target
//
// as the same envelope: only the correlation of a request changes at each
// harbor, which keeps the request it relays as pending (remote.relay),
// with the peer and correlation it came with, and sends the answer back
// there (remote.relayBack). So an answer retraces the request's path as
// a forwarded request's does, and a node accepts it only from the peer it
// sent the request to. When a harbor loses the next node on a request's
// path, it answers the request at once with wire.CodePeerLost; when the
// requester loses its harbor, its own PeerLost fails the request.
//
// The harbor on each hop is chosen by rendezvous hashing of the target
// node's address (and, at the sender, the sender's) over the live
// harbors, skipping those whose connection is down: the messages of one
// node to another follow one path while the harbors stay the same, so
// they keep their order, and the targets spread over the harbors.

// harborMap is the live harbors a node knows, by cluster (each list
// sorted by address, this node excluded), and the members of other
// clusters that are in the node's own views, which it reaches directly
// (several clusters sharing one membership, and on a harbor the other
// clusters' harbors). It is replaced whole, never changed in place.
type harborMap struct {
	byCluster map[int][]actor.Addr
	direct    map[actor.Addr]bool
}

// buildHarborMap collects the available harbors of views, self excluded,
// and the members of other clusters than self's.
func buildHarborMap(self actor.Addr, views ...[]Member) harborMap {
	hm := harborMap{byCluster: make(map[int][]actor.Addr), direct: make(map[actor.Addr]bool)}
	seen := make(map[actor.Addr]bool)
	for _, view := range views {
		for _, m := range view {
			if m.Addr.Cluster() != self.Cluster() {
				hm.direct[m.Addr] = true
			}
			if !m.Addr.IsHarbor() || !m.Available || m.Addr == self || seen[m.Addr] {
				continue
			}
			seen[m.Addr] = true
			hm.byCluster[m.Addr.Cluster()] = append(hm.byCluster[m.Addr.Cluster()], m.Addr)
		}
	}
	for _, hs := range hm.byCluster {
		sortAddrs(hs)
	}
	return hm
}

func sortAddrs(as []actor.Addr) {
	for i := 1; i < len(as); i++ {
		for j := i; j > 0 && as[j] < as[j-1]; j-- {
			as[j], as[j-1] = as[j-1], as[j]
		}
	}
}

// setHarbors replaces the harbors the remote routes through.
func (r *remote) setHarbors(hm harborMap) { r.harbors.Store(&hm) }

// route returns the peer a message for a node at dst goes to: dst itself
// in this node's cluster or in its views; otherwise one of this cluster's harbors, or, on
// a harbor, one of dst's cluster's harbors. It fails with ErrNoRoute when
// there is none. A harbor whose connection is down is skipped while
// another is up; when all are down it still returns one, so that a
// request fails at once with the lost connection's error and a send is
// queued for the reconnect, as for a direct peer.
func (r *remote) route(dst actor.Addr) (actor.Addr, error) {
	if dst.Cluster() == r.self.Cluster() {
		return dst, nil
	}
	p := r.harbors.Load()
	if p != nil && p.direct[dst] {
		return dst, nil
	}
	via := r.self.Cluster()
	if r.self.IsHarbor() {
		via = dst.Cluster()
	}
	var hs []actor.Addr
	if p != nil {
		hs = p.byCluster[via]
	}
	if len(hs) == 0 {
		return 0, fmt.Errorf("%w %d: %v knows no live harbor of cluster %d", ErrNoRoute, dst.Cluster(), r.self, via)
	}
	if len(hs) == 1 {
		return hs[0], nil
	}
	h := uint64(dst)<<32 | uint64(r.self)
	h ^= h >> 29
	best, bestUp := -1, false
	var bestW uint64
	r.mu.Lock()
	for i, a := range hs {
		up := r.down[a] == nil
		w := RendezvousWeight(h, a)
		if best < 0 || (up && !bestUp) || (up == bestUp && w > bestW) {
			best, bestUp, bestW = i, up, w
		}
	}
	r.mu.Unlock()
	return hs[best], nil
}

// relay passes on an envelope that came from peer for a node other than
// this harbor: a send or system envelope as it is, a request as a pending
// request of this node's whose answer relayBack returns to peer with the
// request's own correlation.
func (r *remote) relay(peer actor.Addr, env *wire.Envelope) {
	tr := r.transport()
	if tr == nil {
		return
	}
	dst := actor.Addr(env.Target.Node)
	isReq := env.Kind == wire.KindRequest
	corr := env.CorrelationID
	fail := func(code uint32, err error) {
		if !isReq {
			r.log.Warn("cluster: harbor dropping message", "peer", peer, "target", dst, "err", err)
			return
		}
		out := &wire.Envelope{
			Kind: wire.KindError, Target: env.Sender, Sender: env.Target,
			CorrelationID: corr, ErrorCode: code, ErrorMessage: err.Error(),
		}
		if serr := tr.Send(peer, out); serr != nil {
			r.log.Warn("cluster: harbor cannot answer request", "peer", peer, "err", serr)
		}
	}
	if dst == 0 {
		fail(wire.CodeNotFound, fmt.Errorf("%w: harbor %v relays only to a PID", actor.ErrActorNotFound, r.self))
		return
	}
	// A harbor relays what another cluster's harbor hands it only within
	// its own cluster: no envelope goes round between harbors.
	if peer.IsHarbor() && peer.Cluster() != r.self.Cluster() && dst.Cluster() != r.self.Cluster() {
		fail(wire.CodeNoRoute, fmt.Errorf("%w %d: harbor %v relays %v's envelopes only within cluster %d", ErrNoRoute, dst.Cluster(), r.self, peer, r.self.Cluster()))
		return
	}
	next, err := r.route(dst)
	if err != nil {
		fail(wire.CodeNoRoute, err)
		return
	}
	if !isReq {
		if err := tr.Send(next, env); err != nil {
			r.log.Debug("cluster: harbor could not relay", "peer", peer, "next", next, "target", dst, "err", err)
		}
		return
	}
	dl := r.requestTimeoutFrom(env.Deadline)
	id := r.next.Add(1)
	r.mu.Lock()
	if lost := r.down[next]; lost != nil {
		r.mu.Unlock()
		fail(wire.CodePeerLost, fmt.Errorf("cluster: harbor %v: request to %v via %v: %w", r.self, dst, next, lost))
		return
	}
	r.pending[id] = pendingReq{peer: next, deadline: dl, relayTo: peer, relayCorr: corr}
	r.mu.Unlock()
	env.CorrelationID = id
	err = tr.Send(next, env)
	env.CorrelationID = corr
	if err != nil {
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
		fail(errorCode(err), fmt.Errorf("cluster: harbor %v: request to %v via %v: %w", r.self, dst, next, err))
	}
}

// relayBack sends an answer to a request this harbor relayed back to the
// peer it came from, with that peer's correlation.
func (r *remote) relayBack(p pendingReq, env *wire.Envelope) {
	tr := r.transport()
	if tr == nil {
		return
	}
	env.CorrelationID = p.relayCorr
	if err := tr.Send(p.relayTo, env); err != nil {
		r.log.Debug("cluster: harbor could not relay an answer back", "to", p.relayTo, "err", err)
	}
}

// failRelayed answers requests this harbor relayed to peer, which is
// lost, with wire.CodePeerLost.
func (r *remote) failRelayed(peer actor.Addr, lost []pendingReq, err error) {
	tr := r.transport()
	if tr == nil {
		return
	}
	for _, p := range lost {
		out := &wire.Envelope{
			Kind: wire.KindError, CorrelationID: p.relayCorr, ErrorCode: wire.CodePeerLost,
			ErrorMessage: fmt.Sprintf("cluster: harbor %v lost %v: %v", r.self, peer, err),
		}
		if serr := tr.Send(p.relayTo, out); serr != nil {
			r.log.Debug("cluster: harbor could not fail a relayed request", "to", p.relayTo, "err", serr)
		}
	}
}
