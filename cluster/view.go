package cluster

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/wire"
)

// View returns the node's membership as seen for picking: Members holds
// the members of its own membership and, after them, the exported
// members of other clusters that its cluster's harbors reach, as records
// of their address only (Available and Export set, no endpoint: they are
// reached through the harbors). Pass it to rpc.WithMembership or
// Selector.Pick so that lookups by type see other clusters' exported
// nodes (clustergo's rule). Its other methods are those of
// NodeConfig.Membership, but Subscribe, which follows the membership
// only, and Close, which does nothing. It also resolves a name held by a
// node of another cluster (LookupAt).
func (n *Node) View() *View { return &View{n: n} }

// View is a Node's membership with other clusters' exported members; see
// Node.View.
type View struct{ n *Node }

// Join is the membership's Join.
func (v *View) Join(ctx context.Context, m Member) error { return v.n.cfg.Membership.Join(ctx, m) }

// Update is the membership's Update.
func (v *View) Update(ctx context.Context, m Member) error {
	return v.n.cfg.Membership.Update(ctx, m)
}

// Leave is the membership's Leave.
func (v *View) Leave(ctx context.Context) error { return v.n.cfg.Membership.Leave(ctx) }

// Subscribe is the membership's Subscribe: the exported members of other
// clusters cause no events.
func (v *View) Subscribe(fn func(Event)) func() { return v.n.cfg.Membership.Subscribe(fn) }

// Close does nothing: the membership is its owner's to close.
func (v *View) Close() error { return nil }

// Members returns the membership's members, then the exported members of
// other clusters reached through this node's harbors.
func (v *View) Members() []Member {
	ms := v.n.cfg.Membership.Members()
	for _, a := range v.n.remote.exported() {
		ms = append(ms, Member{Addr: a, Available: true, Export: true})
	}
	return ms
}

// LookupAt returns the PID of the actor that the node at addr holds the
// global name for, asking that node (through the harbors, for a node of
// another cluster, whose names this cluster's registry does not hold).
// It fails with an error matching actor.ErrNameNotFound when that node
// does not hold the name, and as a request to addr fails otherwise.
func (v *View) LookupAt(ctx context.Context, addr actor.Addr, name string) (actor.PID, error) {
	return v.n.remote.lookupAt(ctx, addr, name)
}

// lookupType is the payload type of a name lookup (the request to a
// node's PID of serial 0 that LookupAt sends).
var lookupType = string(proto.MessageName(&wrapperspb.StringValue{}))

// lookupAt asks the node at addr for the PID of the name it holds.
func (r *remote) lookupAt(ctx context.Context, addr actor.Addr, name string) (actor.PID, error) {
	if addr == r.self {
		if n := r.node.Load(); n != nil {
			if pid, ok := n.HeldName(name); ok {
				return pid, nil
			}
		}
		return actor.PID{}, fmt.Errorf("%w: %q on %v", actor.ErrNameNotFound, name, addr)
	}
	tr := r.transport()
	if tr == nil {
		return actor.PID{}, actor.ErrNodeClosed
	}
	peer, err := r.route(addr)
	if err != nil {
		return actor.PID{}, fmt.Errorf("cluster: look up %q on %v: %w", name, addr, err)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(r.requestTimeout)
	}
	payload, err := proto.Marshal(wrapperspb.String(name))
	if err != nil {
		return actor.PID{}, err
	}
	ch := make(chan any, 1)
	id := r.next.Add(1)
	env := &wire.Envelope{
		Kind: wire.KindRequest, Target: wire.PID{Node: uint32(addr)}, Sender: wire.PID{Node: uint32(r.self)},
		CorrelationID: id, Deadline: dl.UnixNano(), PayloadType: lookupType, Payload: payload,
	}
	r.mu.Lock()
	if lost := r.down[peer]; lost != nil {
		r.mu.Unlock()
		return actor.PID{}, fmt.Errorf("cluster: look up %q on %v: %w", name, addr, lost)
	}
	r.pending[id] = pendingReq{peer: peer, deadline: dl, lookup: ch}
	r.mu.Unlock()
	if err := tr.Send(peer, env); err != nil {
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
		return actor.PID{}, fmt.Errorf("cluster: look up %q on %v: %w", name, addr, err)
	}
	t := time.NewTimer(time.Until(dl))
	defer t.Stop()
	var got any
	select {
	case got = <-ch:
	case <-ctx.Done():
		got = ctx.Err()
	case <-t.C:
		got = fmt.Errorf("%w: look up %q on %v", actor.ErrTimeout, name, addr)
	}
	switch v := got.(type) {
	case *wrapperspb.UInt64Value:
		return actor.PID{Node: addr, Serial: v.GetValue()}, nil
	case error:
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
		return actor.PID{}, fmt.Errorf("cluster: look up %q on %v: %w", name, addr, v)
	}
	return actor.PID{}, fmt.Errorf("cluster: look up %q on %v: unexpected answer %T", name, addr, got)
}

// answerLookup answers a name lookup from peer: the serial of the actor
// this node holds the name for, or CodeNameNotFound.
func (r *remote) answerLookup(peer actor.Addr, env *wire.Envelope) {
	tr := r.transport()
	if tr == nil {
		return
	}
	out := &wire.Envelope{Kind: wire.KindResponse, Target: env.Sender, Sender: env.Target, CorrelationID: env.CorrelationID}
	var name wrapperspb.StringValue
	err := proto.Unmarshal(env.Payload, &name)
	var pid actor.PID
	held := false
	if n := r.node.Load(); err == nil && n != nil {
		pid, held = n.HeldName(name.GetValue())
	}
	switch {
	case err != nil:
		out.Kind, out.ErrorCode, out.ErrorMessage = wire.KindError, wire.CodeBadPayload, fmt.Sprintf("cluster: name lookup: %v", err)
	case !held || pid.Node != r.self:
		out.Kind, out.ErrorCode = wire.KindError, wire.CodeNameNotFound
		out.ErrorMessage = fmt.Sprintf("%v: %q on %v", actor.ErrNameNotFound, name.GetValue(), r.self)
	default:
		b, _ := proto.Marshal(wrapperspb.UInt64(pid.Serial))
		out.PayloadType, out.Payload = string(proto.MessageName(&wrapperspb.UInt64Value{})), b
	}
	if err := tr.Send(peer, out); err != nil {
		r.log.Debug("cluster: cannot answer a name lookup", "peer", peer, "err", err)
	}
}
