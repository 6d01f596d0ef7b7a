package grain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain/grainpb"
	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// SyncOptions make a kind's state synced (package propsync): clients
// subscribe to a grain, get a snapshot of its state, then after each turn
// that changed what they may see a delta, pushed to their session, in
// order, with a version. The state must be a proto.Message.
//
// A client subscribes with a request of the service propsync.Service,
// routed to the grain: through a gateway, the route
// gate.UserGrain(kind, propsync.Service) ("sync.Subscribe" for a route
// named "sync"), with a propsyncpb.Subscribe, or for any grain of a kind
// (another player's) gate.SyncGrain(kind), with the Subscribe's entity
// naming the grain; or from a node (a
// gate.Service of the game's, for grains that are not the caller's own),
// System.Subscribe with the session's and the user's IDs. The grain runtime
// answers it, with the snapshot (a propsyncpb.Delta): the grain's
// behaviour never sees Subscribe nor Unsubscribe.
//
// Subscriptions live as long as the activation. While a grain has
// subscribers it is not deactivated for idleness. A subscriber is dropped
// when its session is known gone: the session ended (the grain watches
// it), its node left the cluster, or a push says NotFound. A push that
// fails otherwise (back-pressure: a full queue to the gateway node) keeps
// it, and so does a watch that ends with actor.ReasonLinkLost (the
// gateway's node unreachable for a while; the grain watches the session
// again): the client misses that delta, and finds the gap with the next
// delta that reaches it, which it cannot apply (Replica.Apply returns
// ErrGap), so it subscribes again. A client learns of a lost delta only
// with the next change. When the activation
// stops anyway (a handover, Context.Deactivate, Close), it pushes each
// subscriber propsync's end notice (Tracker.Ended), which a
// propsync.Replica reports as ErrGap: the client subscribes again, to the
// grain's next activation. Versions start at 1 with each activation's
// first subscriber and only grow within it, across subscribers that
// come and go (when the last one leaves, the grain stops diffing its
// state, and the next subscriber's snapshot takes the next version); the
// snapshot of a new subscription replaces the replica whatever its
// version.
type SyncOptions struct {
	// Private names fields (by full name, "game.v1.Player.email") that are
	// never synced, besides those marked (guild.propsync.private) in the
	// .proto.
	Private []protoreflect.FullName
	// MaySubscribe, optional, decides whether the user userID may
	// subscribe to the grain id. nil: only the user whose ID is the
	// grain's key (a player's own grain).
	MaySubscribe func(id Identity, userID string) bool
	// Route is the push route of the deltas. Default
	// propsync.DefaultRoute ("propsync").
	Route string
	// MaxSubscribers bounds the sessions subscribed to one grain at a
	// time (each costs a push, and an encoding of the delta, per turn
	// that changed the state): a
	// Subscribe of one more gets ResourceExhausted. Default
	// DefaultMaxSubscribers.
	MaxSubscribers int
}

// DefaultMaxSubscribers is SyncOptions.MaxSubscribers' default.
const DefaultMaxSubscribers = 1024

// PushFunc sends a client session, by its ID, a push on route: what
// gate.Push does. Package grain does not import package gate (a gateway
// may run where no grain does, and grains where no gateway does): give
// Config.Push a function that calls gate.Push with the node, as
//
//	Push: func(session, route string, msg proto.Message) error {
//		return gate.Push(node, session, route, msg)
//	},
type PushFunc func(sessionID, route string, msg proto.Message) error

// Metadata keys of the gateway's routes (gate.MetadataSessionID and
// gate.MetadataUserID); package grain does not import package gate.
const (
	metadataSessionID = "guild-session-id"
	metadataUserID    = "guild-user-id"
)

// syncer is a synced kind's shared part: its Differ and options.
type syncer struct {
	opts   SyncOptions
	differ *propsync.Differ
	push   PushFunc
}

// syncState is an activation's subscriptions: the tracker (made with
// the first subscriber) and the sessions subscribed.
type syncState struct {
	tracker *propsync.Tracker
	subs    []subscriber
	// version is the last version a dropped tracker of this activation
	// gave out: the next tracker starts after it (NewTrackerAfter), so
	// that a delta of the old one still on its way is older than the new
	// one's snapshot.
	version uint64
}

type subscriber struct {
	session string
	pid     actor.PID
}

func (k *Kind) validateSync(push PushFunc) error {
	if k.Sync == nil {
		return nil
	}
	switch {
	case k.State == nil:
		return fmt.Errorf("%w: kind %q is synced but has no State", ErrBadConfig, k.Name)
	case push == nil:
		return fmt.Errorf("%w: kind %q is synced but Config.Push is nil", ErrBadConfig, k.Name)
	case k.Sync.MaxSubscribers < 0:
		return fmt.Errorf("%w: kind %q: SyncOptions.MaxSubscribers %d is negative", ErrBadConfig, k.Name, k.Sync.MaxSubscribers)
	}
	if _, ok := k.State().(proto.Message); !ok {
		return fmt.Errorf("%w: kind %q is synced, but its State is a %T, not a proto.Message", ErrBadConfig, k.Name, k.State())
	}
	return nil
}

// syncRequest reports whether msg is a request of propsync.Service (a
// subscription request), and answers it when it is, for every kind: the
// service is the runtime's, so the grain's code never sees it, and a kind
// that is not synced answers FailedPrecondition. remote says the request
// came as an rpcpb.Call or from another node.
func (a *activation) syncRequest(c *actor.Context, msg any) bool {
	var (
		sub    bool
		entity string
		remote bool
		call   *rpcpb.Call
	)
	switch m := msg.(type) {
	case *propsyncpb.Subscribe:
		sub, entity = true, m.GetEntity()
	case *propsyncpb.Unsubscribe:
		entity = m.GetEntity()
	case *rpcpb.Call:
		if !strings.HasPrefix(m.GetMethod(), "/"+propsync.Service+"/") {
			return false
		}
		call, remote = m, true
	default:
		return false
	}
	if _, ok := c.Message().(*grainpb.Envelope); ok {
		remote = true // from another node: an error must be a proto.Message
	}
	if a.k.sync == nil {
		a.syncAnswer(c, remote, nil, rpc.Errorf(rpc.FailedPrecondition, "grain kind %q is not synced (its Kind.Sync is nil): it does not answer %s", a.k.Name, propsync.Service))
		return true
	}
	if call != nil {
		switch call.GetMethod() {
		case propsync.SubscribeMethod:
			var s propsyncpb.Subscribe
			if err := proto.Unmarshal(call.GetBody(), &s); err != nil {
				a.syncAnswer(c, true, nil, rpc.Errorf(rpc.InvalidArgument, "%s: the request does not decode: %v", call.GetMethod(), err))
				return true
			}
			sub, entity = true, s.GetEntity()
		case propsync.UnsubscribeMethod:
			var s propsyncpb.Unsubscribe
			if err := proto.Unmarshal(call.GetBody(), &s); err != nil {
				a.syncAnswer(c, true, nil, rpc.Errorf(rpc.InvalidArgument, "%s: the request does not decode: %v", call.GetMethod(), err))
				return true
			}
			entity = s.GetEntity()
		default:
			a.syncAnswer(c, true, nil, rpc.Errorf(rpc.Unimplemented, "%s: %s has Subscribe and Unsubscribe only", call.GetMethod(), propsync.Service))
			return true
		}
	}
	reply, err := a.subscribe(c, sub, entity)
	a.syncAnswer(c, remote, reply, err)
	return true
}

// syncAnswer answers a subscription request as an rpc service would: an
// error as an *rpc.Status to a caller on this node, as an rpcpb.Status to
// one elsewhere (or through a gateway).
func (a *activation) syncAnswer(c *actor.Context, remote bool, reply proto.Message, err error) {
	if !c.IsRequest() {
		return
	}
	if err != nil {
		st := rpc.StatusOf(err)
		if remote {
			c.Respond(&rpcpb.Status{Code: uint32(st.Code), Message: st.Message})
			return
		}
		c.Respond(st)
		return
	}
	c.Respond(reply)
}

// subscribe adds (sub) or removes the session of the current message as
// a subscriber.
func (a *activation) subscribe(c *actor.Context, sub bool, entity string) (proto.Message, error) {
	id := a.id()
	if entity != "" && entity != id.String() {
		return nil, rpc.Errorf(rpc.InvalidArgument, "grain %v: cannot subscribe to %q here", id, entity)
	}
	md := c.Metadata()
	session := md.Get(metadataSessionID)
	user := md.Get(metadataUserID)
	if session == "" {
		return nil, rpc.Errorf(rpc.InvalidArgument, "grain %v: a subscription needs a session (metadata %s)", id, metadataSessionID)
	}
	pid, err := actor.ParsePID(session)
	if err != nil {
		return nil, rpc.Errorf(rpc.InvalidArgument, "grain %v: session %q: %v", id, session, err)
	}
	sy := a.k.sync
	x := a.extra()
	if !sub {
		if x.sync != nil {
			x.sync.drop(c, pid)
		}
		return &propsyncpb.Unsubscribe{Entity: id.String()}, nil
	}
	may := user == id.Key
	if sy.opts.MaySubscribe != nil {
		may = user != "" && sy.opts.MaySubscribe(id, user)
	}
	if !may {
		return nil, rpc.Errorf(rpc.PermissionDenied, "grain %v: user %q may not subscribe", id, user)
	}
	if x.sync == nil {
		x.sync = &syncState{}
	}
	st := x.sync
	if st.tracker == nil {
		st.tracker = propsync.NewTrackerAfter(id.String(), sy.differ, a.state.(proto.Message), st.version)
	}
	if !slices.ContainsFunc(st.subs, func(s subscriber) bool { return s.pid == pid }) {
		if max := sy.opts.MaxSubscribers; len(st.subs) >= max {
			return nil, rpc.Errorf(rpc.ResourceExhausted, "grain %v: %d sessions subscribe already, the most it takes (SyncOptions.MaxSubscribers)", id, max)
		}
		st.subs = append(st.subs, subscriber{session: session, pid: pid})
		c.Watch(pid)
	}
	snap, err := st.tracker.Snapshot()
	if err != nil {
		return nil, rpc.Errorf(rpc.Internal, "grain %v: %v", id, err)
	}
	return snap, nil
}

// subscribed reports whether the activation has subscribers.
func (a *activation) subscribed() bool {
	return a.x != nil && a.x.sync != nil && len(a.x.sync.subs) > 0
}

// syncTurn runs after each turn of a synced grain with subscribers: it
// pushes them the delta of what changed.
func (a *activation) syncTurn(c *actor.Context) {
	st := a.x.sync
	d, err := st.tracker.Next(a.state.(proto.Message))
	if err != nil {
		a.k.s.log.Error("grain: sync the state", "grain", a.id().String(), "err", err)
		return
	}
	if d != nil {
		a.pushAll(c, d)
	}
}

// pushAll pushes d to every subscriber. A push that fails because the
// session is gone (NotFound) drops its subscriber. Any other failure (a
// full queue to the session's gateway node, a link down) keeps it: the
// session may be alive, and its client, having missed d, finds a gap in
// the next delta that reaches it and subscribes again. A session that is
// gone for good is dropped by its watch (Terminated) anyway.
//
// Each push encodes d again (a PushFunc takes one session): a turn that
// changed the state costs an encoding per subscriber, up to
// MaxSubscribers, inside the turn. gate.PushMany encodes once, but a
// batch hook would have to avoid its name lookup of each gateway's hub
// (which may wait on the registry) inside the turn; not done yet.
func (a *activation) pushAll(c *actor.Context, d *propsyncpb.Delta) {
	st := a.x.sync
	route := a.k.sync.opts.Route
	for i := 0; i < len(st.subs); {
		s := st.subs[i]
		if err := a.k.sync.push(s.session, route, d); err != nil {
			if sessionGone(err) {
				a.k.s.log.Debug("grain: a subscriber is gone", "grain", a.id().String(), "session", s.session, "err", err)
				st.drop(c, s.pid)
				continue
			}
			a.k.s.log.Debug("grain: a push to a subscriber failed; it stays subscribed", "grain", a.id().String(), "session", s.session, "version", d.GetVersion(), "err", err)
		}
		i++
	}
}

// sessionGone reports whether err, from Config.Push, says the session no
// longer exists: the actor runtime's ErrActorNotFound, or an rpc status
// NotFound (what gate.Push makes of it).
func sessionGone(err error) bool {
	return errors.Is(err, actor.ErrActorNotFound) || rpc.StatusOf(err).Code == rpc.NotFound
}

// sessionEnded reports whether a subscriber's Terminated says its session
// is gone. ReasonLinkLost does not: the session's node stayed a member and
// could not be reached for a while (a partition between this node and the
// gateway's), while the client may still be connected to its gateway.
func sessionEnded(r actor.TerminationReason) bool {
	return r != actor.ReasonLinkLost
}

// syncEnd tells the subscribers that their subscriptions end with the
// activation.
func (a *activation) syncEnd(c *actor.Context) {
	if !a.subscribed() {
		return
	}
	st := a.x.sync
	a.syncTurn(c) // the last turn's changes (Stopping's) first
	if a.subscribed() {
		a.pushAll(c, st.tracker.Ended())
	}
	for _, s := range st.subs {
		c.Unwatch(s.pid)
	}
	a.x.sync = nil
}

// terminated handles the Terminated of a watched session: a session that
// ended, or whose node left the cluster, is dropped. ReasonLinkLost keeps
// the subscriber and watches the session again: the new watch ends when
// the session's node answers once reachable (at once if the session ended
// meanwhile) or leaves the cluster. Meanwhile pushes to it may be lost;
// its client finds the gap with the first delta that reaches it.
func (st *syncState) terminated(c *actor.Context, m actor.Terminated) {
	if sessionEnded(m.Reason) {
		st.drop(c, m.PID)
		return
	}
	if slices.ContainsFunc(st.subs, func(s subscriber) bool { return s.pid == m.PID }) {
		c.Watch(m.PID)
	}
}

// drop removes the subscriber of session pid.
func (st *syncState) drop(c *actor.Context, pid actor.PID) {
	i := slices.IndexFunc(st.subs, func(s subscriber) bool { return s.pid == pid })
	if i < 0 {
		return
	}
	st.subs = slices.Delete(st.subs, i, i+1)
	c.Unwatch(pid)
	if len(st.subs) == 0 {
		// No one to sync: no diff per turn. The versions go on from here
		// with the next subscriber.
		if st.tracker != nil {
			st.version = st.tracker.Version()
		}
		st.tracker = nil
	}
}

// Subscribe subscribes session sessionID, of user userID, to the synced
// grain named entity ("kind/key", a Delta's entity) and returns the
// snapshot: what a client's Subscribe through a UserGrain route does, for
// a grain that is not the caller's own (a gate.Service handler that lets
// players watch what they can see passes its Session's ID and UserID).
// The grain's SyncOptions.MaySubscribe decides; the pushes go to the
// session as for any subscriber.
func (s *System) Subscribe(ctx context.Context, entity, sessionID, userID string) (*propsyncpb.Delta, error) {
	reply, err := s.syncCall(ctx, entity, sessionID, userID, &propsyncpb.Subscribe{Entity: entity})
	if err != nil {
		return nil, err
	}
	d, ok := reply.(*propsyncpb.Delta)
	if !ok {
		return nil, rpc.Errorf(rpc.Internal, "grain %s: subscribe answered a %T", entity, reply)
	}
	return d, nil
}

// Unsubscribe stops the pushes of the grain named entity to session
// sessionID.
func (s *System) Unsubscribe(ctx context.Context, entity, sessionID, userID string) error {
	_, err := s.syncCall(ctx, entity, sessionID, userID, &propsyncpb.Unsubscribe{Entity: entity})
	return err
}

func (s *System) syncCall(ctx context.Context, entity, sessionID, userID string, msg proto.Message) (any, error) {
	kind, key, ok := strings.Cut(entity, "/")
	if !ok || kind == "" {
		return nil, rpc.Errorf(rpc.InvalidArgument, "entity %q is not kind/key", entity)
	}
	if k := s.kinds[kind]; k != nil && k.sync == nil {
		return nil, rpc.Errorf(rpc.FailedPrecondition, "grain kind %q is not synced", kind)
	}
	md := actor.NewMetadata(metadataSessionID, sessionID, metadataUserID, userID)
	reply, err := s.Call(ctx, Identity{Kind: kind, Key: key}, actor.WithMetadata(msg, md))
	if st, ok := reply.(*rpcpb.Status); ok && err == nil {
		return nil, rpc.Error(rpc.Code(st.GetCode()), st.GetMessage())
	}
	return reply, err
}
