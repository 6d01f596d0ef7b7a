package gate

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/gate/internal/nodepb"
	"github.com/guildkit/guild/rpc"
)

// These functions reach sessions from any node of the cluster: a backend
// handler, a timer in a game actor, an admin tool. Session IDs come from
// Session.ID or SessionInfo.ID.

// Push sends the client of session sessionID a push on route. msg is
// encoded here, once.
func Push(n *actor.Node, sessionID, route string, msg proto.Message) error {
	return PushWith(n, sessionID, route, msg, PushOptions{})
}

// PushOptions say what a client's write queue may do with a push that the
// client is slow to take, before the client is cut off as too slow (see
// Limits.WriteQueueBytes). The zero value: the push is queued, and a
// client whose queue is over its bounds is cut off.
type PushOptions struct {
	// Coalesce, when set, makes the push latest-wins under this key: it
	// takes the place of the push of the same key still waiting in the
	// client's write queue, which is then never sent (counted in
	// Gateway.PushStats). For state that a newer push makes obsolete, such
	// as world updates or a score; pushes of one key keep their order.
	Coalesce string
	// Droppable lets the gateway drop the push, rather than queue it, once
	// the client's write queue holds half of Limits.WriteQueueBytes
	// (counted in Gateway.PushStats). For pushes a client can do without:
	// chat lines under a flood, cosmetic effects.
	Droppable bool
}

// PushWith is Push with options.
func PushWith(n *actor.Node, sessionID, route string, msg proto.Message, opts PushOptions) error {
	pid, err := ParseSessionID(sessionID)
	if err != nil {
		return err
	}
	body, err := proto.Marshal(msg)
	if err != nil {
		return rpc.Errorf(rpc.InvalidArgument, "push %s: %v", route, err)
	}
	return status(n.Send(pid, &nodepb.Push{Route: route, Body: body, Coalesce: opts.Coalesce, Droppable: opts.Droppable}))
}

// PushMany sends one push on route to the clients of every session in
// sessionIDs, wherever they are connected, encoding it once: msg once here,
// and the push frame once per gateway node, whose sessions share its
// bytes. Sessions on n itself get the frame directly; those of each other
// gateway node through that gateway, in one message. It is for pushes to
// sets of sessions that are not groups, such as the players near an area
// of the world.
//
// A session that has gone is skipped: watch sessions (actor.Context.Watch
// on the PID of ParseSessionID) to learn that they end. PushMany fails with
// InvalidArgument, before sending anything, when a session ID does not
// parse or msg does not encode; with the error of the first gateway node
// it could not reach (NotFound: no gateway there), after pushing to the
// others.
func PushMany(ctx context.Context, n *actor.Node, sessionIDs []string, route string, msg proto.Message, opts PushOptions) error {
	if len(sessionIDs) == 0 {
		return nil
	}
	body, err := proto.Marshal(msg)
	if err != nil {
		return rpc.Errorf(rpc.InvalidArgument, "push %s: %v", route, err)
	}
	self := n.Addr()
	var local []actor.PID
	var remote map[actor.Addr][]uint64
	for _, id := range sessionIDs {
		pid, err := ParseSessionID(id)
		if err != nil {
			return err
		}
		if pid.Node == self {
			local = append(local, pid)
			continue
		}
		if remote == nil {
			remote = make(map[actor.Addr][]uint64)
		}
		remote[pid.Node] = append(remote[pid.Node], pid.Serial)
	}
	if len(local) > 0 {
		frame, err := pushFrameOf(route, body)
		if err != nil {
			return err
		}
		m := pushFrame{frame: frame, coalesce: opts.Coalesce, droppable: opts.Droppable}
		for _, pid := range local {
			_ = n.Send(pid, m) // a session that has gone is skipped
		}
	}
	var first error
	for gate, serials := range remote {
		hub, err := lookup(ctx, n, hubName(gate))
		if err == nil {
			err = n.Send(hub, &nodepb.GatePush{Route: route, Body: body, Serials: serials, Coalesce: opts.Coalesce, Droppable: opts.Droppable})
		}
		if err != nil && first == nil {
			first = rpc.Errorf(rpc.NotFound, "push %s: gateway %v: %v", route, gate, err)
		}
	}
	return first
}

// pushFrameOf encodes the client frame of a push.
func pushFrameOf(route string, body []byte) ([]byte, error) {
	frame, err := gatepb.Encode(&gatepb.Frame{Body: &gatepb.Frame_Push{Push: &gatepb.Push{Route: route, Body: body}}})
	if err != nil {
		return nil, rpc.Errorf(rpc.InvalidArgument, "push %s: %v", route, err)
	}
	return frame, nil
}

// PushUser sends a push to the session bound to userID, wherever it is
// connected. It fails with NotFound when the user has no session.
func PushUser(ctx context.Context, n *actor.Node, userID, route string, msg proto.Message) error {
	pid, err := lookup(ctx, n, userName(userID))
	if err != nil {
		return rpc.Errorf(rpc.NotFound, "user %q has no session: %v", userID, err)
	}
	return Push(n, pid.String(), route, msg)
}

// Kick closes session sessionID with a Close frame giving reason.
func Kick(n *actor.Node, sessionID, reason string) error {
	pid, err := ParseSessionID(sessionID)
	if err != nil {
		return err
	}
	return status(n.Send(pid, &nodepb.Kick{Code: uint32(rpc.PermissionDenied), Reason: reason}))
}

// KickUser closes the session bound to userID, wherever it is connected,
// with a Close frame giving reason. It fails with NotFound when the user
// has no session.
func KickUser(ctx context.Context, n *actor.Node, userID, reason string) error {
	pid, err := lookup(ctx, n, userName(userID))
	if err != nil {
		return rpc.Errorf(rpc.NotFound, "user %q has no session: %v", userID, err)
	}
	return Kick(n, pid.String(), reason)
}

// JoinGroup adds session sessionID to the named group (a chat room, a
// match lobby), creating the group on n when it does not exist. A group
// spans gateways; a session leaves its groups when it closes.
func JoinGroup(ctx context.Context, n *actor.Node, group, sessionID string) error {
	return sessionGroupOp(ctx, n, group, sessionID, true)
}

// LeaveGroup removes session sessionID from the group.
func LeaveGroup(ctx context.Context, n *actor.Node, group, sessionID string) error {
	return sessionGroupOp(ctx, n, group, sessionID, false)
}

func sessionGroupOp(ctx context.Context, n *actor.Node, group, sessionID string, join bool) error {
	pid, err := ParseSessionID(sessionID)
	if err != nil {
		return err
	}
	_, err = n.Call(ctx, pid, &nodepb.SessionGroup{Group: group, Join: join})
	return status(err)
}

// Broadcast pushes msg on route to every session of the group. msg is
// encoded once here, and the push frame once per gateway, however many
// members the gateway has. A group sends at most Limits.GroupRate
// broadcasts a second (bursts of GroupBurst), the limits of the gateway
// whose session started it: a broadcast beyond them is dropped, counted
// in Gateway.PushStats, so that a flood of broadcasts cannot overwhelm
// the members.
func Broadcast(ctx context.Context, n *actor.Node, group, route string, msg proto.Message) error {
	return BroadcastWith(ctx, n, group, route, msg, PushOptions{})
}

// BroadcastWith is Broadcast with options, which apply to each member's
// push.
func BroadcastWith(ctx context.Context, n *actor.Node, group, route string, msg proto.Message, opts PushOptions) error {
	pid, err := lookup(ctx, n, groupName(group))
	if err != nil {
		return rpc.Errorf(rpc.NotFound, "group %q: %v", group, err)
	}
	body, err := proto.Marshal(msg)
	if err != nil {
		return rpc.Errorf(rpc.InvalidArgument, "broadcast %s: %v", route, err)
	}
	return status(n.Send(pid, &nodepb.GroupBroadcast{Route: route, Body: body, Coalesce: opts.Coalesce, Droppable: opts.Droppable}))
}

// GroupSize returns how many sessions the group has.
func GroupSize(ctx context.Context, n *actor.Node, group string) (int, error) {
	pid, err := lookup(ctx, n, groupName(group))
	if err != nil {
		return 0, rpc.Errorf(rpc.NotFound, "group %q: %v", group, err)
	}
	reply, err := n.Call(ctx, pid, &nodepb.GroupMembers{})
	if err != nil {
		return 0, status(err)
	}
	m, ok := reply.(*nodepb.GroupMembers)
	if !ok {
		return 0, rpc.Errorf(rpc.Internal, "group %q answered a %T", group, reply)
	}
	return int(m.GetCount()), nil
}

// status turns a runtime error into an *rpc.Status, and nil into nil.
func status(err error) error {
	if err == nil {
		return nil
	}
	return rpc.StatusOf(err)
}

// group is the actor of one group: its members, by gateway, and its
// broadcast budget (Limits.GroupRate and GroupBurst of the gateway that
// started it).
type group struct {
	name    string
	members map[actor.Addr]map[uint64]struct{}
	budget  groupBudget
	tokens  float64   // broadcasts it may send now
	at      time.Time // when tokens was last refilled
}

// groupBudget bounds a group's broadcasts: rate a second, bursts of burst.
type groupBudget struct {
	rate  float64
	burst int
	stats *pushStats // where the broadcasts over it are counted
}

// allow reports whether a broadcast at now is within the group's budget,
// and takes its token.
func (gr *group) allow(now time.Time) bool {
	if !gr.at.IsZero() {
		gr.tokens = min(float64(gr.budget.burst), gr.tokens+now.Sub(gr.at).Seconds()*gr.budget.rate)
	}
	gr.at = now
	if gr.tokens < 1 {
		return false
	}
	gr.tokens--
	return true
}

func (gr *group) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case *nodepb.GroupJoin:
		if gr.members == nil {
			gr.members = make(map[actor.Addr]map[uint64]struct{})
		}
		gate := actor.Addr(m.GetGate())
		if gr.members[gate] == nil {
			gr.members[gate] = make(map[uint64]struct{})
		}
		gr.members[gate][m.GetSerial()] = struct{}{}
		c.Respond(&nodepb.Ack{})
	case *nodepb.GroupLeave:
		gate := actor.Addr(m.GetGate())
		delete(gr.members[gate], m.GetSerial())
		if len(gr.members[gate]) == 0 {
			delete(gr.members, gate)
		}
		c.Respond(&nodepb.Ack{})
	case *nodepb.GroupMembers:
		count := 0
		for _, s := range gr.members {
			count += len(s)
		}
		c.Respond(&nodepb.GroupMembers{Count: uint32(count)})
	case *nodepb.GroupBroadcast:
		if !gr.allow(time.Now()) {
			gr.budget.stats.throttled.Add(1)
			return
		}
		gr.broadcast(c, m)
	}
}

// broadcast sends each gateway one GatePush for all its members.
func (gr *group) broadcast(c *actor.Context, m *nodepb.GroupBroadcast) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultRequestTimeout)
	defer cancel()
	for gate, sessions := range gr.members {
		hub, err := lookup(ctx, c.Node(), hubName(gate))
		if err != nil {
			c.Logger().Warn("gate: group broadcast: no gateway", "group", gr.name, "gate", gate, "err", err)
			continue
		}
		serials := make([]uint64, 0, len(sessions))
		for s := range sessions {
			serials = append(serials, s)
		}
		if err := c.Send(hub, &nodepb.GatePush{Route: m.GetRoute(), Body: m.GetBody(), Serials: serials, Coalesce: m.GetCoalesce(), Droppable: m.GetDroppable()}); err != nil {
			c.Logger().Warn("gate: group broadcast", "group", gr.name, "gate", gate, "err", err)
		}
	}
}

// hub is a gateway's actor for pushes to several of its sessions: it
// encodes the push frame once and hands the same bytes to each session.
type hub struct {
	log *slog.Logger
}

// startHub starts the gateway's hub and registers it under hubName.
func startHub(ctx context.Context, g *Gateway) (actor.PID, error) {
	pid, err := g.node.Spawn(func() actor.Actor { return &hub{log: g.log} })
	if err != nil {
		return actor.PID{}, fmt.Errorf("gate: %w", err)
	}
	if err := register(ctx, g.node, hubName(g.node.Addr()), pid); err != nil {
		_ = g.node.Stop(pid)
		return actor.PID{}, fmt.Errorf("gate: register the gateway: %w", err)
	}
	return pid, nil
}

func (h *hub) Receive(c *actor.Context) {
	m, ok := c.Message().(*nodepb.GatePush)
	if !ok {
		return
	}
	frame, err := pushFrameOf(m.GetRoute(), m.GetBody())
	if err != nil {
		h.log.Error("gate: cannot encode a push", "route", m.GetRoute(), "err", err)
		return
	}
	self := c.Self().Node
	pf := pushFrame{frame: frame, coalesce: m.GetCoalesce(), droppable: m.GetDroppable()}
	for _, serial := range m.GetSerials() {
		_ = c.Send(actor.PID{Node: self, Serial: serial}, pf)
	}
}
