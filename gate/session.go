package gate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/gate/internal/nodepb"
	"github.com/guildkit/guild/grain/grainpb"
	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// SessionInfo describes a session to the OnOpen and OnClose hooks.
type SessionInfo struct {
	// ID is the session's ID, the same the client got in its handshake.
	ID string
	// UserID is the user the session is bound to, or "".
	UserID string
	// Remote is the client's network address.
	Remote string
	// Listener is "tcp", "kcp", "ws", "mqtt" or "mqtt-ws", or the
	// network name given to ServeListener.
	Listener string
	// Opened is when the handshake completed.
	Opened time.Time
	// Roles and Expires are the rest of the session's Identity, once
	// logged in.
	Roles   []string
	Expires time.Time
}

// Messages from a connection's reader to its session actor.
type (
	// Each names its connection (att): a session that took on another
	// connection since (a resume) ignores the old one's.
	clientRequest struct {
		att   *attachment
		id    uint64
		route string
		body  []byte
	}
	clientHeartbeat struct{ att *attachment }
	// connEnded: the connection is done (read error, client goodbye, a
	// broken limit). err is nil for a goodbye; e says why to the client.
	// lost: the connection broke (reset, closed without a goodbye,
	// heartbeat lost): a resumable session detaches.
	connEnded struct {
		att  *attachment
		err  error
		e    ending
		lost bool
	}
	// pushFrame is a push frame encoded once for several sessions, with
	// its PushOptions.
	pushFrame struct {
		frame     []byte
		coalesce  string
		droppable bool
	}
	// goAway: the gateway is shutting down (see Gateway.Shutdown). The
	// session takes no more requests, and sends the GoingAway Close frame
	// once the requests it forwarded are answered; with now (Close), it
	// answers them itself at once.
	goAway struct{ now bool }
	// reroute: the timer that sends a request again (see session.retry).
	reroute struct{ o *outgoing }
	// refusedRequest: the reader refused a request for the rate limit;
	// frame is its answer, encoded.
	refusedRequest struct {
		att   *attachment
		frame []byte
	}
	// loginDeadline: Limits.LoginTimeout has passed since the handshake.
	loginDeadline struct{}
)

// outgoing is a client's request on its way to its service, kept until it
// is answered so that a request that certainly did not reach the service
// can be routed again (see retry).
type outgoing struct {
	id       uint64
	route    string
	body     []byte
	r        Route
	service  string    // the name the route resolves
	method   string    // the full method of a generated RPC service; "" for a Service
	deadline time.Time // RequestTimeout after it arrived, over every attempt
	tries    int       // times routed again
	md       actor.Metadata
	key      string // the grain's key, of a SyncGrain route
	// A Subscribe or Unsubscribe on a route that syncs (see
	// subscriptions.go): which (syncSubscribe, syncUnsubscribe), of what
	// entity, made for the session's user of generation userGen.
	sync    int
	entity  string
	userGen int
	// syncPID is the grain a Subscribe went to when it failed with an
	// outcome unknown (a timeout): the grain may take it yet (see
	// syncUnknown).
	syncPID actor.PID
}

// Routing a request again: at most maxReroutes times, after a pause that
// starts at rerouteFirst and doubles up to rerouteMax (about 1.2 s in all),
// and never past the request's deadline. That is how long a route may keep
// resolving to a service that has just gone: a backend that left the
// membership, or shut down before the gateway's view showed it
// unavailable.
const (
	maxReroutes  = 10
	rerouteFirst = 5 * time.Millisecond
	rerouteMax   = 200 * time.Millisecond
)

// session is the actor of one client session. It alone writes to the
// connection's write queue, so frames reach the client in the order the
// session decided them. Its fields are its own (actor state).
type session struct {
	g      *Gateway
	att    *attachment // its connection; nil while detached (see resume.go)
	info   SessionInfo
	self   actor.PID
	userID string
	id     Identity          // its Roles and Expires (its UserID is userID)
	idGen  int               // counts the identities set: an expiry timer of an older one is stale
	state  map[string]string // copy-on-write: requests carry it as it is
	groups map[string]bool
	reason error  // why the session ended, for OnClose
	bye    ending // why the session ended, for its client (see clientConn.finish)

	// forwarded counts the requests sent to services and not answered
	// yet, by the client's request ID (a client may reuse an ID).
	forwarded  map[uint64]int
	nforwarded int
	// observed holds, by request ID, what Config.Observe returned for the
	// requests routed and not answered yet.
	observed map[uint64]func(rpc.Code)
	draining bool // goAway came: requests are refused, the session ends when nforwarded is 0
	hurried  bool // goAway came from Close: the session ends, never detaches
	ending   bool // the session has written its last frame and stops

	// Resumption (see resume.go).
	adapted    bool        // the client is an adapter's (ListenConns): never resumable
	secret     string      // the resume secret; "": not resumable
	registered bool        // detached, and counted by the gateway (Gateway.detach)
	resumeGen  int         // counts detachments and attachments: an older resumeExpired is stale
	detachErr  error       // why the connection was lost, for OnClose if not resumed
	buf        []bufFrame  // pushes kept while detached, in order
	bufBytes   int         // their bytes, with frameOverhead each
	resync     bool        // pushes were dropped while detached
	movedTo    actor.PID   // the session on another gateway this one handed itself over to
	plan       *resumePlan // what to resume when starting; nil: nothing
	rejoin     []string    // the groups to join, of a session taken over
	// The sealed record in its token (see seal.go): when it was sealed,
	// and whether the record changed since (the client needs a new one).
	sealed        string
	sealedAt      time.Time
	recordChanged bool
	// limUser is the user's entry in the limit table once the session is
	// bound (set by the actor, read by the reader for each request).
	limUser atomic.Pointer[limitEntry]

	// Property sync (see subscriptions.go): the subscriptions forwarded,
	// by entity, and the generation of the session's user (one more at
	// each change of user).
	subs    map[string]*syncSub
	userGen int
}

// Receive implements actor.Actor.
func (s *session) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.started(c)
	case *clientRequest:
		if m.att == s.att {
			s.request(c, m)
		}
	case clientHeartbeat:
		if m.att == s.att {
			s.write(c, &gatepb.Frame{Body: &gatepb.Frame_Heartbeat{Heartbeat: &gatepb.Heartbeat{}}})
		}
	case connEnded:
		if s.ending || m.att != s.att {
			return
		}
		if m.lost && s.resumable() {
			s.detach(c, m.err, m.e, true)
			return
		}
		s.end(c, m.err, m.e)
	case resumeAttach:
		s.attach(c, m)
	case *nodepb.ResumeTake:
		s.handOver(c, m)
	case resumeExpired:
		s.resumeExpired(c, m)
	case resumeEnd:
		if s.att == nil && !s.ending {
			s.end(c, ErrClosed, clean)
		}
	case *nodepb.SessionFrame:
		s.push(c, m.GetFrame(), m.GetCoalesce(), m.GetDroppable())
	case goAway:
		s.goAway(c, m.now)
	case reroute:
		s.send(c, m.o)
	case refusedRequest:
		if m.att == s.att {
			s.g.stats.response(rpc.ResourceExhausted)
			s.enqueue(c, m.frame)
		}
	case loginDeadline:
		s.loginDeadline(c)
	case loginExpired:
		s.expire(c, m)
	case *nodepb.Push:
		if u := m.GetUser(); u != "" && u != s.userID {
			return // for the user it was bound to before (PushUser raced a re-bind)
		}
		if len(s.subs) > 0 && s.g.deltas[m.GetRoute()] && s.syncPush(c, m.GetRoute(), m.GetBody()) {
			return // a delta of a subscription of the session's former user
		}
		b, err := gatepb.Encode(&gatepb.Frame{Body: &gatepb.Frame_Push{Push: &gatepb.Push{Route: m.GetRoute(), Body: m.GetBody()}}})
		if err != nil {
			s.g.log.Error("gate: cannot encode a push", "session", s.info.ID, "route", m.GetRoute(), "err", err)
			return
		}
		s.g.stats.pushes.Add(1)
		s.push(c, b, m.GetCoalesce(), m.GetDroppable())
	case pushFrame:
		s.g.stats.pushes.Add(1)
		s.push(c, m.frame, m.coalesce, m.droppable)
	case *nodepb.Kick:
		if u := m.GetUser(); u != "" && u != s.userID {
			return // for the user it was bound to before (KickUser raced a re-bind)
		}
		if s.movedTo.IsZero() { // moved: the directory's "logged in elsewhere" is the move itself
			s.kick(c, m.GetCode(), m.GetReason())
		}
	case *nodepb.SessionState:
		s.sessionState(c, m)
	case reannounce:
		if s.userID != "" {
			_ = c.Send(s.g.hub, hubBind{user: s.userID, serial: s.self.Serial})
		}
		for name := range s.groups {
			_ = c.Send(s.g.hub, hubJoin{group: name, serial: s.self.Serial})
		}
	case *nodepb.SessionGroup:
		if err := s.group(c, m); err != nil {
			c.Respond(err)
		} else {
			c.Respond(&nodepb.Ack{})
		}
	case actor.Terminated:
		if m.Reason == actor.ReasonLinkLost {
			s.grainUnreachable(c, m.PID)
		} else {
			s.grainGone(c, m.PID)
		}
	case actor.Stopped:
		s.stopped(c)
		return
	}
	s.checkToken(c)
}

func (s *session) started(c *actor.Context) {
	s.self = c.Self()
	s.info.ID = s.self.String()
	resumed := s.plan != nil && s.take(c)
	if resumed {
		s.g.stats.resumes.Add(1)
	}
	// Bind first: once the client has its ack, its user must lead here.
	if s.userID != "" {
		id := s.id
		id.UserID, s.userID = s.userID, ""
		s.setIdentity(c, id)
	}
	// Back in its groups at once, without waiting for their shards to
	// know: a shard lost with the old gateway comes back only once that
	// gateway's lease expires, and the hub tells it then.
	for _, name := range s.rejoin {
		if s.groups == nil {
			s.groups = make(map[string]bool, len(s.rejoin))
		}
		s.groups[name] = true
		_ = c.Send(s.g.hub, hubJoin{group: name, serial: s.self.Serial})
	}
	s.rejoin = nil
	s.ack(c, resumed)
	if s.g.cfg.OnOpen != nil {
		s.g.hook(func() { s.g.cfg.OnOpen(s.snapshotInfo()) })
	}
	if s.userID == "" && s.g.lim.LoginTimeout > 0 {
		c.After(s.g.lim.LoginTimeout, loginDeadline{})
	}
}

// loginDeadline closes the session if it is still not bound to a user.
func (s *session) loginDeadline(c *actor.Context) {
	if s.userID != "" || s.ending {
		return
	}
	s.ending = true
	s.reason = errLoginTimeout
	s.bye = endingOf(rpc.Unauthenticated, fmt.Sprintf("not logged in within %v", s.g.lim.LoginTimeout))
	_ = c.Stop(c.Self())
}

// errLoginTimeout is the close reason of a session closed for not logging
// in within Limits.LoginTimeout.
var errLoginTimeout = errors.New("gate: not logged in in time")

func (s *session) snapshotInfo() *SessionInfo {
	info := s.info
	info.UserID = s.userID
	info.Roles = slices.Clone(s.id.Roles)
	info.Expires = s.id.Expires
	return &info
}

func (s *session) stopped(c *actor.Context) {
	if s.registered {
		s.registered = false
		s.g.undetach(s.self)
	}
	for name := range s.groups {
		_ = c.Send(s.g.hub, hubLeave{group: name, serial: s.self.Serial})
	}
	if s.userID != "" {
		_ = c.Send(s.g.hub, hubUnbind{user: s.userID, serial: s.self.Serial})
	}
	if s.g.cfg.OnClose != nil {
		s.g.hook(func() { s.g.cfg.OnClose(s.snapshotInfo(), s.reason) })
	}
	s.g.limits.release(s.limUser.Swap(nil))
	for id, done := range s.observed { // requests the session's end left unanswered
		delete(s.observed, id)
		s.observed1(done, rpc.Unavailable)
	}
	if s.att != nil {
		s.att.out.close(s.bye) // the writer sends what is queued, then ends the connection with s.bye
	}
}

// write encodes f and queues it for the client.
func (s *session) write(c *actor.Context, f *gatepb.Frame) {
	b, err := gatepb.Encode(f)
	if err != nil {
		s.g.log.Error("gate: cannot encode a frame", "session", s.info.ID, "err", err)
		return
	}
	s.enqueue(c, b)
}

// enqueue queues an encoded frame that must reach the client (a
// response, a heartbeat); see push. A detached session has no client to
// send it to: its client failed its requests when the connection broke.
func (s *session) enqueue(c *actor.Context, frame []byte) {
	if s.att != nil {
		s.queue(c, frame, "", false)
	}
}

// push queues a push frame, with its options: for the client, or kept for
// it while the session is detached (see keep), or sent on to the session
// that took this one over (see handOver).
func (s *session) push(c *actor.Context, frame []byte, coalesce string, droppable bool) {
	switch {
	case !s.movedTo.IsZero():
		s.forwardPush(c, frame, coalesce, droppable)
	case s.att == nil:
		if !s.ending {
			s.keep(frame, coalesce, droppable)
		}
	default:
		s.queue(c, frame, coalesce, droppable)
	}
}

// queue queues an encoded frame, with a push's options (see
// frameQueue.push). A client whose queue is over its bounds is too slow:
// it is cut off (its frames waiting are dropped, and it gets only the
// Close frame that says why, see frameQueue.cut), and nothing waits for
// it.
func (s *session) queue(c *actor.Context, frame []byte, coalesce string, droppable bool) {
	if s.reason != nil && errors.Is(s.reason, errSlowClient) {
		return
	}
	if r, why := s.att.out.push(frame, coalesce, droppable); r == tooSlow {
		s.g.stats.slow.Add(1)
		s.ending = true
		s.reason = fmt.Errorf("%w: %s", errSlowClient, why)
		s.bye = slowClient(why)
		s.g.log.Warn("gate: cutting off a slow client", "session", s.info.ID, "why", why)
		s.att.out.cut()
		_ = c.Stop(c.Self())
	}
}

func (s *session) respond(c *actor.Context, id uint64, code rpc.Code, msg string, body []byte) {
	s.g.stats.response(code)
	s.write(c, &gatepb.Frame{Body: &gatepb.Frame_Response{Response: &gatepb.Response{Id: id, Code: uint32(code), Message: msg, Body: body}}})
	if done, ok := s.observed[id]; ok {
		delete(s.observed, id)
		s.observed1(done, code)
	}
}

// observe passes o to Config.Observe, keeping the function it returns
// until o is answered.
func (s *session) observe(o *outgoing) {
	defer func() {
		if r := recover(); r != nil {
			s.g.log.Error("gate: Config.Observe panicked", "route", o.route, "panic", r)
		}
	}()
	md, done := s.g.cfg.Observe(o.route, o.md)
	o.md = md
	if done != nil {
		if s.observed == nil {
			s.observed = make(map[uint64]func(rpc.Code))
		}
		if prev, ok := s.observed[o.id]; ok {
			// The client reused the ID of a request still in flight:
			// the answers cannot be told apart any more.
			s.observed1(prev, rpc.Unknown)
		}
		s.observed[o.id] = done
	}
}

// mayWatch asks r's WatchedBy whether the session's user may watch the
// grain of key; a panic in it is logged and counts as no.
func (s *session) mayWatch(r Route, key string) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			s.g.log.Error("gate: a SyncGrain route's WatchedBy panicked", "kind", r.grainKind, "key", key, "panic", p)
			ok = false
		}
	}()
	return r.mayWatch(s.userID, key)
}

// observed1 calls one function Config.Observe returned, recovering a panic.
func (s *session) observed1(done func(rpc.Code), code rpc.Code) {
	defer func() {
		if r := recover(); r != nil {
			s.g.log.Error("gate: the function Config.Observe returned panicked", "panic", r)
		}
	}()
	done(code)
}

// request routes a client's request to its service.
func (s *session) request(c *actor.Context, m *clientRequest) {
	g := s.g
	if s.draining || s.ending {
		s.g.stats.response(rpc.Unavailable)
		s.write(c, &gatepb.Frame{Body: &gatepb.Frame_Response{Response: &gatepb.Response{
			Id:           m.id,
			Code:         uint32(rpc.Unavailable),
			Message:      fmt.Sprintf("%s: %s: not forwarded, send it to another gateway", m.route, GoingAwayReason),
			NotForwarded: true,
		}}})
		return
	}
	// The route table first: a route to no service says so, logged in or
	// not. The table is the gateway's own, so this costs no lookup. It
	// knows services, not their methods: a method the service lacks is
	// the service's to answer, and only logged-in sessions reach it.
	svc := routeService(m.route)
	r, ok := g.cfg.Routes[svc]
	if !ok {
		s.respond(c, m.id, rpc.Unimplemented, fmt.Sprintf("no route %q", m.route), nil)
		return
	}
	if s.userID == "" && !g.public[m.route] {
		s.respond(c, m.id, rpc.Unauthenticated, fmt.Sprintf("%s: log in first%s", m.route, g.loginHint), nil)
		return
	}
	if r.grainKind != "" && s.userID == "" {
		s.respond(c, m.id, rpc.Unauthenticated, fmt.Sprintf("%s: log in first (it goes to your own %s)", m.route, r.grainKind), nil)
		return
	}
	if code, msg, ok := s.authorize(m, r); !ok {
		s.respond(c, m.id, code, msg, nil)
		return
	}
	if code, msg, ok := s.check(m); !ok {
		s.respond(c, m.id, code, msg, nil)
		return
	}
	o := &outgoing{id: m.id, route: m.route, body: m.body, r: r, service: ServiceName(svc), deadline: time.Now().Add(g.lim.RequestTimeout), md: s.metadata(r.rpcService != "")}
	if r.byEntity {
		method := routeMethod(m.route)
		if method != "Subscribe" && method != "Unsubscribe" {
			s.respond(c, m.id, rpc.Unimplemented, fmt.Sprintf("%s: a SyncGrain route takes Subscribe and Unsubscribe only", m.route), nil)
			return
		}
		key, err := entityKey(r.grainKind, m.body)
		if err != nil {
			s.respond(c, m.id, rpc.InvalidArgument, fmt.Sprintf("%s: %v", m.route, err), nil)
			return
		}
		// Unsubscribe too: it would activate the grain it names as well;
		// but not an Unsubscribe of a grain the session holds (it is
		// active, and the session's slot is freed).
		held := method == "Unsubscribe" && s.subs[r.grainKind+"/"+key] != nil
		if r.mayWatch != nil && !held && !s.mayWatch(r, key) {
			s.respond(c, m.id, rpc.PermissionDenied, fmt.Sprintf("%s: user %q may not watch %s/%s", m.route, s.userID, r.grainKind, key), nil)
			return
		}
		o.key = key
	}
	if r.syncs() {
		key := o.key
		if !r.byEntity {
			key = s.userID
		}
		if code, msg, ok := s.syncRequest(o, r, routeMethod(m.route), key); !ok {
			s.respond(c, m.id, code, msg, nil)
			return
		}
	}
	if g.cfg.Observe != nil {
		s.observe(o)
	}
	if r.rpcService != "" {
		o.service = r.rpcService
		o.method = rpc.FullMethodName(r.rpcService, routeMethod(m.route))
	}
	s.forward(o.id)
	s.send(c, o)
}

// send resolves an outgoing request's route and sends it to the service.
// A generated RPC service gets an encoded call, which it decodes into its
// method's request type; a Service gets the request with a snapshot of the
// session.
func (s *session) send(c *actor.Context, o *outgoing) {
	if _, ok := s.forwarded[o.id]; !ok {
		return // Close answered it while it waited to be routed again
	}
	left := max(time.Until(o.deadline), time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), left)
	pid, err := s.g.client.Resolve(ctx, o.r.resolve(s, o), o.service)
	cancel()
	if err != nil {
		s.failed(c, o, err, o.route+": ")
		return
	}
	var msg any = &rpcpb.Call{Method: o.method, Body: o.body}
	if o.method == "" {
		msg = &nodepb.ClientRequest{
			Session: &nodepb.Session{Gate: uint32(s.self.Node), Serial: s.self.Serial, UserId: s.userID, State: s.state, Roles: s.id.Roles},
			Route:   o.route,
			Body:    o.body,
		}
	}
	err = c.Request(pid, actor.WithMetadata(msg, o.md), left, func(reply any, err error) {
		if r, ok := reply.(*grainpb.Refused); ok {
			err = &refusal{st: rpc.Error(rpc.Code(r.GetCode()), r.GetMessage()), retry: r.GetRetry()}
		}
		if err != nil {
			if o.sync == syncSubscribe && outcomeUnknown(err) {
				o.syncPID = pid
			}
			s.failed(c, o, err, "")
			return
		}
		if !s.answered(o.id) {
			return
		}
		if o.method != "" {
			s.rpcReply(c, o, reply)
		} else {
			s.reply(c, o.id, reply, nil)
		}
		if o.sync != syncNone {
			s.syncAnswered(c, o, pid, syncOK(reply))
		}
		s.drained(c)
	})
	if err != nil {
		s.failed(c, o, err, "")
	}
}

// metadata is what a request of this session carries to its service:
// the session's ID and, once logged in, its user's (MetadataSessionID,
// MetadataUserID); with state (for generated RPC services and grains,
// which do not get the session), the session's state (see
// MetadataStatePrefix).
func (s *session) metadata(state bool) actor.Metadata {
	if !state || len(s.state) == 0 {
		if s.userID == "" {
			return actor.NewMetadata(MetadataSessionID, s.self.String())
		}
		return actor.NewMetadata(MetadataSessionID, s.self.String(), MetadataUserID, s.userID)
	}
	pairs := make([]string, 0, 4+2*min(len(s.state), MaxMetadataState+1))
	pairs = append(pairs, MetadataSessionID, s.self.String())
	if s.userID != "" {
		pairs = append(pairs, MetadataUserID, s.userID)
	}
	return actor.NewMetadata(stateMetadata(pairs, s.state)...)
}

// failed answers a request that met err on its way to its service (its
// message prefixed with prefix), or routes it again when it certainly did
// not reach the service.
func (s *session) failed(c *actor.Context, o *outgoing, err error, prefix string) {
	if notDelivered(err) && s.retry(c, o) {
		return
	}
	if !s.answered(o.id) {
		return
	}
	st := rpc.StatusOf(err)
	s.respond(c, o.id, st.Code, prefix+st.Message, nil)
	switch {
	case o.sync == syncSubscribe && !o.syncPID.IsZero():
		s.syncUnknown(c, o)
	case o.sync != syncNone:
		s.syncAnswered(c, o, actor.PID{}, false)
	}
	s.drained(c)
}

// notDelivered reports whether err says that a request did not reach its
// service, so that sending it again cannot apply it twice: the route
// resolved to a name nobody holds any more, or the service's actor was
// gone, or stopped before it took the request, or its node was closed, or
// a grain refused it saying it was not handled. A timeout or a lost
// connection leaves the outcome unknown: not these.
func notDelivered(err error) bool {
	var r *refusal
	return errors.Is(err, actor.ErrActorNotFound) || // ErrActorStopped too
		errors.Is(err, actor.ErrNameNotFound) ||
		errors.Is(err, actor.ErrNodeClosed) ||
		(errors.As(err, &r) && r.retry)
}

// outcomeUnknown reports whether err, the end of a request sent to its
// service, leaves open whether the service took it: a timeout or a lost
// connection, not a refusal nor a request that certainly did not arrive.
func outcomeUnknown(err error) bool {
	var r *refusal
	return !notDelivered(err) && !errors.As(err, &r)
}

// refusal is a grain's refusal of a request (a grainpb.Refused reply, for
// a UserGrain route): its activation could not take it (it failed to
// load, could not prove its lease, or was stale). It is an error for the
// client, never a reply; with retry, the request was certainly not handled
// and is routed again.
type refusal struct {
	st    *rpc.Status
	retry bool
}

func (r *refusal) Error() string { return r.st.Error() }
func (r *refusal) Unwrap() error { return r.st }

// retry routes o again after a pause, unless it has been tried enough,
// its deadline would pass, or the session is ending. The request stays
// counted as forwarded meanwhile, so a draining session waits for it.
func (s *session) retry(c *actor.Context, o *outgoing) bool {
	if s.ending || o.tries >= maxReroutes {
		return false
	}
	if _, ok := s.forwarded[o.id]; !ok {
		return false
	}
	wait := min(rerouteFirst<<o.tries, rerouteMax)
	if time.Now().Add(wait).After(o.deadline) {
		return false
	}
	o.tries++
	c.After(wait, reroute{o})
	return true
}

// forward counts a request sent to a service.
func (s *session) forward(id uint64) {
	if s.forwarded == nil {
		s.forwarded = make(map[uint64]int)
	}
	s.forwarded[id]++
	s.nforwarded++
}

// answered uncounts a forwarded request, as its answer came, and reports
// whether it was still counted: when Close hurried the session, it
// answered its requests itself, and their late answers are dropped.
func (s *session) answered(id uint64) bool {
	n, ok := s.forwarded[id]
	if !ok {
		return false
	}
	if n > 1 {
		s.forwarded[id] = n - 1
	} else {
		delete(s.forwarded, id)
	}
	s.nforwarded--
	return true
}

// goAway starts the session's end as the gateway shuts down: no more
// requests, then, once those forwarded are answered (now: at once, with
// an error), the GoingAway Close frame.
func (s *session) goAway(c *actor.Context, now bool) {
	if s.ending {
		return
	}
	s.draining = true
	if now {
		s.hurried = true
		if s.att == nil {
			s.end(c, ErrClosed, clean)
			return
		}
		for id, n := range s.forwarded {
			for range n {
				s.respond(c, id, rpc.Unavailable, "the gateway closed before the service answered: the request may or may not have been handled", nil)
			}
		}
		clear(s.forwarded)
		s.nforwarded = 0
	}
	s.drained(c)
}

// drained ends a draining session once its forwarded requests are
// answered: its client gets the GoingAway Close frame after their
// answers.
func (s *session) drained(c *actor.Context) {
	if !s.draining || s.ending || s.nforwarded > 0 || s.att == nil {
		return
	}
	if !s.hurried && s.resumable() {
		// Its client moves to another gateway and takes the session over
		// there (see Gateway.Shutdown).
		s.detach(c, ErrClosed, goingAway(), false)
		return
	}
	s.ending = true
	s.reason = ErrClosed
	s.bye = goingAway()
	_ = c.Stop(c.Self())
}

// rpcReply answers a client's request with the reply of a generated RPC
// service, encoded.
func (s *session) rpcReply(c *actor.Context, o *outgoing, reply any) {
	switch r := reply.(type) {
	case *rpcpb.Status:
		s.respond(c, o.id, rpc.Code(r.GetCode()), r.GetMessage(), nil)
	case proto.Message:
		body, err := proto.Marshal(r)
		if err != nil {
			s.respond(c, o.id, rpc.Internal, fmt.Sprintf("%s: the reply does not encode: %v", o.method, err), nil)
			return
		}
		s.respond(c, o.id, rpc.OK, "", body)
	default:
		s.respond(c, o.id, rpc.Internal, fmt.Sprintf("%s answered a %T", o.method, reply), nil)
	}
}

// reply answers a client's request with its service's reply and applies
// the changes the handler made to the session.
func (s *session) reply(c *actor.Context, id uint64, reply any, err error) {
	if err != nil {
		st := rpc.StatusOf(err)
		s.respond(c, id, st.Code, st.Message, nil)
		return
	}
	r, ok := reply.(*nodepb.ClientReply)
	if !ok {
		s.respond(c, id, rpc.Internal, fmt.Sprintf("the service answered a %T", reply), nil)
		return
	}
	if len(r.GetSetState()) > 0 || len(r.GetDeleteState()) > 0 {
		st := maps.Clone(s.state)
		if st == nil {
			st = make(map[string]string, len(r.GetSetState()))
		}
		maps.Copy(st, r.GetSetState())
		for _, k := range r.GetDeleteState() {
			delete(st, k)
		}
		s.state = st
		s.recordChanged = true
	}
	if u := r.GetBindUser(); u != "" {
		id := Identity{UserID: u, Roles: r.GetBindRoles()}
		if ns := r.GetBindExpires(); ns != 0 {
			id.Expires = time.Unix(0, ns)
		}
		was := s.userID
		s.setIdentity(c, id)
		if s.userID != was && s.secret != "" {
			// Before the answer: the client has its token when its login returns.
			s.reseal(time.Now())
			s.write(c, &gatepb.Frame{Body: &gatepb.Frame_SessionUpdate{SessionUpdate: &gatepb.SessionUpdate{UserId: s.userID, ResumeToken: s.resumeToken()}}})
		}
	}
	s.respond(c, id, rpc.Code(r.GetCode()), r.GetMessage(), r.GetBody())
	if r.GetKick() {
		s.kick(c, uint32(rpc.PermissionDenied), r.GetKickReason())
	}
	s.checkToken(c) // replies come to a callback, not to Receive
}

// kick closes the session with a Close frame.
func (s *session) kick(c *actor.Context, code uint32, reason string) {
	if s.ending {
		return
	}
	s.g.stats.kicks.Add(1)
	s.ending = true
	s.reason = fmt.Errorf("kicked: %s", reason)
	s.bye = endingOf(rpc.Code(code), reason)
	_ = c.Stop(c.Self())
}

// bind binds the session to a user. A session of the same user elsewhere
// is kicked ("logged in elsewhere"): a user has one session at a time.
// The gateway's hub tells the user's directory shard, and bind returns
// once the shard knows (see directory.go).
func (s *session) bind(c *actor.Context, uid string) {
	if uid == s.userID {
		return
	}
	if s.userID != "" {
		_ = c.Send(s.g.hub, hubUnbind{user: s.userID, serial: s.self.Serial})
	}
	s.userID = uid
	s.syncUserChanged(c)
	s.issueSecret()
	s.g.limits.release(s.limUser.Swap(s.g.limits.user(uid)))
	ctx, cancel := context.WithTimeout(context.Background(), s.g.lim.RequestTimeout)
	defer cancel()
	if _, err := c.Call(ctx, s.g.hub, hubBind{user: uid, serial: s.self.Serial}); err != nil {
		s.g.log.Warn("gate: the directory did not take the session's user in time", "session", s.info.ID, "user", uid, "err", err)
	}
}

// group joins or leaves a group (see JoinGroup): the gateway's hub keeps
// the group's members here, and tells the group's directory shard.
func (s *session) group(c *actor.Context, m *nodepb.SessionGroup) error {
	name := m.GetGroup()
	if m.GetJoin() {
		ctx, cancel := context.WithTimeout(context.Background(), s.g.lim.RequestTimeout)
		defer cancel()
		if dl, ok := c.Deadline(); ok {
			ctx, cancel = context.WithDeadline(ctx, dl)
			defer cancel()
		}
		if s.groups == nil {
			s.groups = make(map[string]bool)
		}
		// In the group from here on, even if the shard is slow to learn it:
		// the hub keeps telling it until it knows.
		s.groups[name] = true
		s.recordChanged = true
		_, err := c.Call(ctx, s.g.hub, hubJoin{group: name, serial: s.self.Serial})
		return err
	}
	if !s.groups[name] {
		return nil
	}
	delete(s.groups, name)
	s.recordChanged = true
	return c.Send(s.g.hub, hubLeave{group: name, serial: s.self.Serial})
}

// sessionState applies a SessionState from another node and answers with
// the state after it.
func (s *session) sessionState(c *actor.Context, m *nodepb.SessionState) {
	if len(m.GetSet()) > 0 || len(m.GetDelete()) > 0 {
		state := maps.Clone(s.state) // copy-on-write: requests in flight keep theirs
		if state == nil {
			state = make(map[string]string, len(m.GetSet()))
		}
		maps.Copy(state, m.GetSet())
		for _, k := range m.GetDelete() {
			delete(state, k)
		}
		s.state = state
		s.recordChanged = true
	}
	c.Respond(&nodepb.SessionState{State: maps.Clone(s.state)})
}

// loginHint returns the end of a "log in first" refusal, which names the
// routes open before login: " (open before login: auth.Login)", or
// " (no route is open before login)".
func loginHint(public map[string]bool) string {
	if len(public) == 0 {
		return " (no route is open before login)"
	}
	routes := slices.Sorted(maps.Keys(public))
	if len(routes) > maxLoginHint {
		routes = append(routes[:maxLoginHint], "…")
	}
	return " (open before login: " + strings.Join(routes, ", ") + ")"
}

// maxLoginHint bounds the routes a "log in first" refusal names.
const maxLoginHint = 8

// routeService returns the service of a route: what comes before its last
// ".", or the whole route when it has none.
func routeService(route string) string {
	if i := strings.LastIndexByte(route, '.'); i >= 0 {
		return route[:i]
	}
	return route
}

// routeMethod returns the method of a route: what comes after its last ".".
func routeMethod(route string) string {
	return route[strings.LastIndexByte(route, '.')+1:]
}

// entityKey returns the key of the grain of kind that a property-sync
// request (a propsyncpb.Subscribe or Unsubscribe: both hold the entity,
// "kind/key", as field 1) names.
func entityKey(kind string, body []byte) (string, error) {
	var sub propsyncpb.Subscribe
	if err := proto.Unmarshal(body, &sub); err != nil {
		return "", fmt.Errorf("the request is not a guild.propsync.Subscribe: %v", err)
	}
	key, ok := strings.CutPrefix(sub.GetEntity(), kind+"/")
	if !ok || key == "" {
		return "", fmt.Errorf("entity %q is not a %s grain (%s/<key>)", sub.GetEntity(), kind, kind)
	}
	return key, nil
}
