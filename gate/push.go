package gate

import (
	"context"
	"errors"

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

// UserSession returns the ID of the session userID is bound to, wherever
// it is connected, from the directory (one request to the user's shard:
// no etcd). It fails with NotFound when the user has no session.
func UserSession(ctx context.Context, n *actor.Node, userID string) (string, error) {
	pid, err := userSession(ctx, n, userID)
	if err != nil {
		return "", err
	}
	return pid.String(), nil
}

// userSession returns the PID of the session userID is bound to.
func userSession(ctx context.Context, n *actor.Node, userID string) (actor.PID, error) {
	shard, err := lookupShard(ctx, n, userShard(userID))
	if errors.Is(err, actor.ErrNameNotFound) {
		return actor.PID{}, rpc.Errorf(rpc.NotFound, "user %q has no session", userID)
	}
	if err != nil {
		return actor.PID{}, rpc.Errorf(rpc.Unavailable, "user %q: the directory: %v", userID, err)
	}
	reply, err := n.Call(ctx, shard, &nodepb.DirLookup{User: userID})
	if err != nil {
		return actor.PID{}, rpc.Errorf(rpc.Unavailable, "user %q: the directory: %v", userID, err)
	}
	e, ok := reply.(*nodepb.DirEntry)
	if !ok {
		return actor.PID{}, rpc.Errorf(rpc.Internal, "user %q: the directory answered a %T", userID, reply)
	}
	if e.GetSerial() == 0 {
		return actor.PID{}, rpc.Errorf(rpc.NotFound, "user %q has no session", userID)
	}
	return sessionPID(e), nil
}

// PushUser sends a push to the session bound to userID, wherever it is
// connected. It fails with NotFound when the user has no session. A
// session that is bound to another user by the time the push reaches it
// (it logged in as someone else meanwhile) drops it: a push for one user
// never reaches another's client.
func PushUser(ctx context.Context, n *actor.Node, userID, route string, msg proto.Message) error {
	pid, err := userSession(ctx, n, userID)
	if err != nil {
		return err
	}
	body, err := proto.Marshal(msg)
	if err != nil {
		return rpc.Errorf(rpc.InvalidArgument, "push %s: %v", route, err)
	}
	return status(n.Send(pid, &nodepb.Push{Route: route, Body: body, User: userID}))
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
// has no session. A session that is bound to another user by the time the
// kick reaches it ignores it.
func KickUser(ctx context.Context, n *actor.Node, userID, reason string) error {
	pid, err := userSession(ctx, n, userID)
	if err != nil {
		return err
	}
	return status(n.Send(pid, &nodepb.Kick{Code: uint32(rpc.PermissionDenied), Reason: reason, User: userID}))
}

// SessionState returns a copy of session sessionID's state, from any
// node: the key/values its services set (Session.Set) and SetSessionState
// changed.
func SessionState(ctx context.Context, n *actor.Node, sessionID string) (map[string]string, error) {
	return sessionState(ctx, n, sessionID, &nodepb.SessionState{})
}

// SetSessionState changes session sessionID's state from any node (a
// matchmaker, a timer, an admin tool): it sets the keys of set, then
// deletes the keys of del. The session's next requests carry the new
// state. It fails with NotFound when the session has ended.
func SetSessionState(ctx context.Context, n *actor.Node, sessionID string, set map[string]string, del ...string) error {
	_, err := sessionState(ctx, n, sessionID, &nodepb.SessionState{Set: set, Delete: del})
	return err
}

func sessionState(ctx context.Context, n *actor.Node, sessionID string, op *nodepb.SessionState) (map[string]string, error) {
	pid, err := ParseSessionID(sessionID)
	if err != nil {
		return nil, err
	}
	reply, err := n.Call(ctx, pid, op)
	if err != nil {
		if errors.Is(err, actor.ErrActorNotFound) {
			return nil, rpc.Errorf(rpc.NotFound, "session %s has ended", sessionID)
		}
		return nil, status(err)
	}
	st, ok := reply.(*nodepb.SessionState)
	if !ok {
		return nil, rpc.Errorf(rpc.Internal, "session %s answered a %T", sessionID, reply)
	}
	return st.GetState(), nil
}

// JoinGroup adds session sessionID to the named group (a chat room, a
// match lobby). A group spans gateways and belongs to none: each gateway
// keeps its own members, and the group's directory shard which gateways
// have some (see the package doc). JoinGroup returns once a broadcast
// would reach the session. A session leaves its groups when it closes.
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
// broadcasts a second (bursts of GroupBurst, the limits of the first
// gateway that told the group's directory shard it has members): a
// broadcast beyond them is dropped, counted in the PushStats of the
// gateway that runs the shard, so that a flood of broadcasts cannot
// overwhelm the members. A group without members takes the broadcast and
// does nothing; NotFound means that no gateway has told the group's shard
// anything since it started (no member since, or the shard is moving to
// another gateway: see the package doc).
func Broadcast(ctx context.Context, n *actor.Node, group, route string, msg proto.Message) error {
	return BroadcastWith(ctx, n, group, route, msg, PushOptions{})
}

// BroadcastWith is Broadcast with options, which apply to each member's
// push.
func BroadcastWith(ctx context.Context, n *actor.Node, group, route string, msg proto.Message, opts PushOptions) error {
	shard, err := groupDir(ctx, n, group)
	if err != nil {
		return err
	}
	body, err := proto.Marshal(msg)
	if err != nil {
		return rpc.Errorf(rpc.InvalidArgument, "broadcast %s: %v", route, err)
	}
	return status(n.Send(shard, &nodepb.GroupBroadcast{Group: group, Route: route, Body: body, Coalesce: opts.Coalesce, Droppable: opts.Droppable}))
}

// groupDir returns the PID of the group's directory shard.
func groupDir(ctx context.Context, n *actor.Node, group string) (actor.PID, error) {
	shard, err := lookupShard(ctx, n, groupShard(group))
	if errors.Is(err, actor.ErrNameNotFound) {
		return actor.PID{}, rpc.Errorf(rpc.NotFound, "group %q: no gateway has members", group)
	}
	if err != nil {
		return actor.PID{}, rpc.Errorf(rpc.Unavailable, "group %q: the directory: %v", group, err)
	}
	return shard, nil
}

// GroupSize returns how many sessions the group has, across gateways: it
// asks the group's directory shard for the gateways with members, then
// each of them. A group without members has size 0.
func GroupSize(ctx context.Context, n *actor.Node, group string) (int, error) {
	shard, err := groupDir(ctx, n, group)
	if rpc.CodeOf(err) == rpc.NotFound {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	reply, err := n.Call(ctx, shard, &nodepb.DirGates{Group: group})
	if err != nil {
		return 0, status(err)
	}
	gates, ok := reply.(*nodepb.DirGates)
	if !ok {
		return 0, rpc.Errorf(rpc.Internal, "group %q: the directory answered a %T", group, reply)
	}
	count := 0
	for _, hub := range gates.GetHubs() {
		reply, err := n.Call(ctx, sessionPID(hub), &nodepb.GroupMembers{Group: group})
		if err != nil {
			return 0, status(err)
		}
		m, ok := reply.(*nodepb.GroupMembers)
		if !ok {
			return 0, rpc.Errorf(rpc.Internal, "group %q: a gateway answered a %T", group, reply)
		}
		count += int(m.GetCount())
	}
	return count, nil
}

// status turns a runtime error into an *rpc.Status, and nil into nil.
func status(err error) error {
	if err == nil {
		return nil
	}
	return rpc.StatusOf(err)
}
