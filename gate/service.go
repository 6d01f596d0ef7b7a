package gate

import (
	"context"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/internal/nodepb"
	"github.com/guildkit/guild/rpc"
)

// Service handles the routes of one service name ("chat" for "chat.Send",
// "chat.Join"...) on a backend node. Add handlers with Handle, then Serve
// it on every node that should take the service's requests; the
// gateway's Routes say which nodes those are.
type Service struct {
	name     string
	handlers map[string]handler
}

// handler runs one method: decode the body, call the typed function,
// encode the reply.
type handler func(s *Session, body []byte) ([]byte, error)

// NewService returns an empty service named name.
func NewService(name string) *Service {
	return &Service{name: name, handlers: make(map[string]handler)}
}

// Handle makes h handle the route "<service>.<method>". The request body
// decodes as Req; the reply h returns is encoded for the client. An error
// reaches the client with its code (an *rpc.Status), any other error as
// Unknown; a panic as Internal, with its stack logged here.
func Handle[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](s *Service, method string, h func(s *Session, req PReq) (Resp, error)) {
	s.handlers[method] = func(sess *Session, body []byte) ([]byte, error) {
		req := PReq(new(Req))
		if err := proto.Unmarshal(body, req); err != nil {
			return nil, rpc.Errorf(rpc.InvalidArgument, "the request does not decode as %T: %v", req, err)
		}
		resp, err := h(sess, req)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(resp)
	}
}

// Serve hosts the service as an actor on n, under the names that the
// gateway's routes resolve (ServiceName), and returns its PID. Its
// handlers run in that actor, one request at a time.
func (s *Service) Serve(ctx context.Context, n *actor.Node) (actor.PID, error) {
	name := ServiceName(s.name)
	pid, err := n.Spawn(func() actor.Actor { return &serviceActor{svc: s} }, actor.WithName(rpc.LocalServiceName(name)))
	if err != nil {
		return actor.PID{}, fmt.Errorf("gate: serve %s: %w", s.name, err)
	}
	if err := n.Register(ctx, rpc.NodeServiceName(name, n.Addr()), pid); err != nil && err != actor.ErrNoGlobalNames {
		_ = n.Stop(pid)
		return actor.PID{}, fmt.Errorf("gate: serve %s: %w", s.name, err)
	}
	return pid, nil
}

// serviceActor hosts a Service.
type serviceActor struct{ svc *Service }

func (a *serviceActor) Receive(c *actor.Context) {
	req, ok := c.Message().(*nodepb.ClientRequest)
	if !ok {
		return
	}
	sess := &Session{ctx: c, snap: req.GetSession(), reply: &nodepb.ClientReply{}}
	method := routeMethod(req.GetRoute())
	h := a.svc.handlers[method]
	var (
		body []byte
		err  error
	)
	if h == nil {
		err = rpc.Errorf(rpc.Unimplemented, "service %s has no method %q", a.svc.name, method)
	} else {
		body, err = a.run(c, h, sess, req)
	}
	r := sess.reply
	if err != nil {
		st := rpc.StatusOf(err)
		if st.Code == rpc.OK {
			st = rpc.Error(rpc.Unknown, st.Message)
		}
		r.Code, r.Message = uint32(st.Code), st.Message
	} else {
		r.Body = body
	}
	c.Respond(r)
}

func (a *serviceActor) run(c *actor.Context, h handler, sess *Session, req *nodepb.ClientRequest) (body []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			stack := debug.Stack()
			c.Logger().Error("gate: handler panicked", "route", req.GetRoute(), "panic", p, "stack", string(stack))
			c.Node().Report(actor.Failure{PID: c.Self(), Where: "gate", MessageType: req.GetRoute(), Reason: fmt.Sprint(p), Stack: stack})
			body, err = nil, rpc.Errorf(rpc.Internal, "%s panicked: %v", req.GetRoute(), p)
		}
	}()
	return h(sess, req.GetBody())
}

// Session is a handler's view of the client session that made the
// request. Changes to it (Set, Delete, Bind, Kick) travel back to the
// gateway with the reply, which applies them before the client sees the
// response; the next request, wherever it goes, sees them.
type Session struct {
	ctx   *actor.Context
	snap  *nodepb.Session
	reply *nodepb.ClientReply
}

// ID returns the session's ID, for Push, Kick and groups.
func (s *Session) ID() string {
	return actor.PID{Node: actor.Addr(s.snap.GetGate()), Serial: s.snap.GetSerial()}.String()
}

// UserID returns the user the session is bound to ("" before login), as
// changed by Bind in this request.
func (s *Session) UserID() string {
	if u := s.reply.GetBindUser(); u != "" {
		return u
	}
	return s.snap.GetUserId()
}

// Get returns a value of the session's state, as changed in this request.
func (s *Session) Get(key string) (string, bool) {
	if v, ok := s.reply.GetSetState()[key]; ok {
		return v, true
	}
	for _, k := range s.reply.GetDeleteState() {
		if k == key {
			return "", false
		}
	}
	v, ok := s.snap.GetState()[key]
	return v, ok
}

// State returns a copy of the session's state, as changed in this request.
func (s *Session) State() map[string]string {
	st := maps.Clone(s.snap.GetState())
	if st == nil {
		st = make(map[string]string)
	}
	maps.Copy(st, s.reply.GetSetState())
	for _, k := range s.reply.GetDeleteState() {
		delete(st, k)
	}
	return st
}

// Set sets a value of the session's state.
func (s *Session) Set(key, value string) {
	if s.reply.SetState == nil {
		s.reply.SetState = make(map[string]string)
	}
	s.reply.SetState[key] = value
	s.reply.DeleteState = remove(s.reply.DeleteState, key)
}

// Delete removes a value of the session's state.
func (s *Session) Delete(key string) {
	delete(s.reply.SetState, key)
	s.reply.DeleteState = append(remove(s.reply.DeleteState, key), key)
}

func remove(keys []string, key string) []string {
	out := keys[:0]
	for _, k := range keys {
		if k != key {
			out = append(out, k)
		}
	}
	return out
}

// Bind binds the session to a user: it is then authenticated, routes
// that are not public open to it, and PushUser reaches it. A session of
// the same user elsewhere is kicked. It is BindIdentity with no roles and
// no expiry.
func (s *Session) Bind(userID string) { s.BindIdentity(Identity{UserID: userID}) }

// BindIdentity binds the session to id.UserID, as Bind does, with its
// roles (for Route.Require and Config.Authorize) and its expiry, when the
// session is closed (Close{16}, "login expired"). It replaces the roles
// and expiry the session had.
func (s *Session) BindIdentity(id Identity) {
	s.reply.BindUser = id.UserID
	s.reply.BindRoles = slices.Clone(id.Roles)
	s.reply.BindExpires = 0
	if !id.Expires.IsZero() {
		s.reply.BindExpires = id.Expires.UnixNano()
	}
}

// Roles returns the roles of the session's identity, as changed by
// BindIdentity in this request.
func (s *Session) Roles() []string {
	if s.reply.GetBindUser() != "" {
		return slices.Clone(s.reply.GetBindRoles())
	}
	return slices.Clone(s.snap.GetRoles())
}

// Kick closes the session after the reply, with reason.
func (s *Session) Kick(reason string) { s.reply.Kick, s.reply.KickReason = true, reason }

// Push sends this session's client a push now, before the reply.
func (s *Session) Push(route string, msg proto.Message) error {
	return Push(s.ctx.Node(), s.ID(), route, msg)
}

// Actor returns the service actor's context (its node, timers, sends),
// valid while the handler runs.
func (s *Session) Actor() *actor.Context { return s.ctx }
