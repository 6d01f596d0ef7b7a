package rpc

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// ServiceDesc describes a service to Serve. Generated code builds it; write
// one by hand only for a service without a .proto.
type ServiceDesc struct {
	// Name is the service's full protobuf name, "package.Service".
	Name string
	// Methods are the service's methods.
	Methods []MethodDesc
}

// MethodDesc describes one method of a service.
type MethodDesc struct {
	// Name is the method's short name, "Send".
	Name string
	// NewRequest returns an empty request message, to decode into.
	NewRequest func() proto.Message
	// Handle calls the method of impl (the value given to Serve). A nil
	// reply with a nil error is answered with an Internal error.
	Handle func(impl any, ctx *Context, req proto.Message) (proto.Message, error)
}

// FullMethodName returns "/service/method".
func FullMethodName(service, method string) string { return "/" + service + "/" + method }

// SplitMethodName is FullMethodName's inverse: it splits
// "/package.Service/Method" into the service and the method. ok is false
// when full has no '/' after its leading one; service is then all of it
// and method empty.
func SplitMethodName(full string) (service, method string, ok bool) {
	s := strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// Handler is a call as interceptors see it: on the client, the rest of the
// chain and then the call itself; on the server, the rest of the chain and
// then the method.
type Handler func(ctx context.Context, info *CallInfo, req proto.Message) (proto.Message, error)

// Interceptor wraps calls, on the client (WithClientInterceptors) or on the
// server (WithServerInterceptors), with the same shape on both sides: it
// may look at or change the request, call next (or not), and look at or
// change the reply and the error. It is the place for tracing, metrics,
// auth and logging. The first interceptor given is the outermost.
type Interceptor func(ctx context.Context, info *CallInfo, req proto.Message, next Handler) (proto.Message, error)

// CallInfo describes the call being intercepted.
type CallInfo struct {
	// Method is the full method name, "/package.Service/Method".
	Method string
	// Server is true on the server's side.
	Server bool
	// Target is where the call goes (client side).
	Target Target
	// Peer is, on the server, the caller (a PID with serial 0 for a caller
	// outside any actor), and on the client the service actor once
	// resolved.
	Peer actor.PID
	// Remote reports whether the call crosses nodes.
	Remote bool
	// OneWay is true for a call that is not answered.
	OneWay bool

	service string // the service's name, for the client's last handler
}

// chain builds the handler that runs ics around last.
func chain(ics []Interceptor, last Handler) Handler {
	h := last
	for i := len(ics) - 1; i >= 0; i-- {
		ic, next := ics[i], h
		h = func(ctx context.Context, info *CallInfo, req proto.Message) (proto.Message, error) {
			return ic(ctx, info, req, next)
		}
	}
	return h
}

// ServeOption configures Serve.
type ServeOption func(*serveConfig)

type serveConfig struct {
	name  string
	ics   []Interceptor
	spawn []actor.SpawnOption
}

// WithName registers the service actor under this name as well: a global
// name (the first to claim it in the cluster wins), or a local ".name".
// Callers reach it with Named(name).
func WithName(name string) ServeOption { return func(c *serveConfig) { c.name = name } }

// WithServerInterceptors wraps every call the service handles.
func WithServerInterceptors(ics ...Interceptor) ServeOption {
	return func(c *serveConfig) { c.ics = append(c.ics, ics...) }
}

// WithSpawnOptions passes options to the spawn of the service actor (a
// mailbox bound, a supervisor...).
func WithSpawnOptions(opts ...actor.SpawnOption) ServeOption {
	return func(c *serveConfig) { c.spawn = append(c.spawn, opts...) }
}

// Serve hosts impl, which implements the service desc describes, as an
// actor on n, and returns its PID. The actor handles one call at a time,
// so impl needs no locks for state only its methods touch.
//
// It registers the actor under LocalServiceName(desc.Name), so type
// targets that pick n itself, and Named(".rpc/...") callers, find it; on a
// node with global names (a cluster node) also under
// NodeServiceName(desc.Name, n.Addr()), so that other nodes' type targets
// find it; and under WithName's name if given. The names go with the
// actor when it stops.
func Serve(ctx context.Context, n *actor.Node, desc *ServiceDesc, impl any, opts ...ServeOption) (actor.PID, error) {
	var cfg serveConfig
	for _, o := range opts {
		o(&cfg)
	}
	s := newServer(desc, impl, cfg)
	spawn := append([]actor.SpawnOption{actor.WithName(LocalServiceName(desc.Name))}, cfg.spawn...)
	pid, err := n.Spawn(func() actor.Actor { return s }, spawn...)
	if err != nil {
		return actor.PID{}, fmt.Errorf("rpc: serve %s: %w", desc.Name, err)
	}
	fail := func(err error) (actor.PID, error) {
		_ = n.Stop(pid)
		return actor.PID{}, fmt.Errorf("rpc: serve %s: %w", desc.Name, err)
	}
	if err := n.Register(ctx, NodeServiceName(desc.Name, n.Addr()), pid); err != nil && !errors.Is(err, actor.ErrNoGlobalNames) {
		return fail(err)
	}
	if cfg.name != "" {
		if err := n.Register(ctx, cfg.name, pid); err != nil {
			return fail(err)
		}
	}
	return pid, nil
}

// localCall is a call to a service on the caller's own node: the request
// goes to the handler as it is, never encoded.
type localCall struct {
	method string
	req    proto.Message
}

// newServer builds the dispatcher of desc's methods on impl.
func newServer(desc *ServiceDesc, impl any, cfg serveConfig) *server {
	s := &server{desc: desc, impl: impl, methods: make(map[string]*MethodDesc, len(desc.Methods)), ics: cfg.ics}
	for i := range desc.Methods {
		m := &desc.Methods[i]
		s.methods[FullMethodName(desc.Name, m.Name)] = m
	}
	if len(s.ics) > 0 {
		s.chained = chain(s.ics, s.method)
	}
	return s
}

// Dispatcher answers a service's calls inside an actor of your own: a
// grain (package grain), or an actor that has more to do than serve one
// service. Serve hosts a service in an actor made for it; a Dispatcher
// lets the actor's own Receive pass it each message. It is owned by that
// actor: use it from its turns only.
type Dispatcher struct{ s *server }

// NewDispatcher returns the dispatcher of desc's methods on impl. Of the
// ServeOptions, only WithServerInterceptors applies.
func NewDispatcher(desc *ServiceDesc, impl any, opts ...ServeOption) *Dispatcher {
	var cfg serveConfig
	for _, o := range opts {
		o(&cfg)
	}
	return &Dispatcher{s: newServer(desc, impl, cfg)}
}

// Handle answers the current message of c if it is a call to the service
// (from this node or another), and reports whether it was one. Other
// messages are the caller's to handle.
func (d *Dispatcher) Handle(c *actor.Context) bool { return d.s.handle(c) }

// server is the actor that hosts a service.
type server struct {
	desc    *ServiceDesc
	impl    any
	methods map[string]*MethodDesc // by full method name
	ics     []Interceptor
	chained Handler // ics around method, built once (nil without ics)
}

// Receive implements actor.Actor.
func (s *server) Receive(c *actor.Context) { s.handle(c) }

// handle answers the current message if it is a call, reporting whether.
func (s *server) handle(c *actor.Context) bool {
	var (
		method string
		req    proto.Message
		remote bool
	)
	switch m := c.Message().(type) {
	case *localCall:
		method, req = m.method, m.req
	case *rpcpb.Call:
		method, remote = m.Method, true
	default:
		return false // lifecycle messages and the actor's own
	}
	md := s.methods[method]
	if md == nil {
		s.answer(c, remote, nil, Errorf(Unimplemented, "service %s has no method %q", s.desc.Name, method))
		return true
	}
	if remote {
		req = md.NewRequest()
		if err := proto.Unmarshal(c.Message().(*rpcpb.Call).Body, req); err != nil {
			s.answer(c, remote, nil, Errorf(InvalidArgument, "%s: the request does not decode as %T: %v", method, req, err))
			return true
		}
	}
	ctx := &Context{actor: c, method: method, md: md, in: c.Metadata()}
	reply, err := s.run(ctx, req, remote)
	ctx.release()
	if err == nil && reply == nil {
		err = Errorf(Internal, "%s returned neither a reply nor an error", method)
	}
	s.answer(c, remote, reply, err)
	return true
}

// run runs the server interceptors and the method, with a panic in any of
// them turned into an Internal error (and its stack logged): the service
// actor answers and lives on.
func (s *server) run(ctx *Context, req proto.Message, remote bool) (reply proto.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			stack := debug.Stack()
			ctx.actor.Logger().Error("rpc: handler panicked", "method", ctx.method, "panic", p, "stack", string(stack))
			f := actor.Failure{PID: ctx.actor.Self(), Where: "rpc", MessageType: ctx.method, Reason: fmt.Sprint(p), Stack: stack}
			if req != nil {
				f.MessageType = string(req.ProtoReflect().Descriptor().FullName())
			}
			ctx.actor.Node().Report(f)
			reply, err = nil, Errorf(Internal, "%s panicked: %v", ctx.method, p)
		}
	}()
	if len(s.ics) == 0 {
		return ctx.md.Handle(s.impl, ctx, req)
	}
	c := ctx.actor
	info := &CallInfo{Method: ctx.method, Server: true, Peer: caller(c), Remote: remote, OneWay: !c.IsRequest()}
	return s.chained(ctx, info, req)
}

// method is the last handler of the server interceptors' chain: the
// method itself, with the Context the chain passed on.
func (s *server) method(ictx context.Context, _ *CallInfo, req proto.Message) (proto.Message, error) {
	if ctx, ok := ictx.(*Context); ok {
		return ctx.md.Handle(s.impl, ctx, req)
	}
	// An interceptor passed on a context of its own (values, a shorter
	// deadline): the handler sees it through a Context that reads it. Its
	// chain of parents ends at the call's Context, which reads none.
	ctx, ok := ictx.Value(callContextKey{}).(*Context)
	if !ok {
		return nil, Errorf(Internal, "a server interceptor passed on a context that does not derive from the call's")
	}
	vctx := &Context{actor: ctx.actor, method: ctx.method, md: ctx.md, in: ctx.in, values: ictx}
	return ctx.md.Handle(s.impl, vctx, req)
}

// callContextKey finds, through the contexts interceptors derive from it,
// the Context of the call.
type callContextKey struct{}

// answer replies to the current call, if it is a request: the reply, or
// the error as a Status (as a message when it crosses nodes).
func (s *server) answer(c *actor.Context, remote bool, reply proto.Message, err error) {
	if !c.IsRequest() {
		if err != nil {
			c.Logger().Warn("rpc: one-way call failed", "service", s.desc.Name, "err", err)
		}
		return
	}
	if err != nil {
		st := StatusOf(err)
		if st.Code == OK {
			// A failed call is never OK: answer as a remote caller's
			// result does with a Status of code 0.
			st = &Status{Code: Unknown, Message: st.Message}
		}
		if remote {
			c.Respond(&rpcpb.Status{Code: uint32(st.Code), Message: st.Message})
			return
		}
		c.Respond(st)
		return
	}
	c.Respond(reply)
}

// Context is what a handler gets: the call's context.Context (its deadline
// is the caller's), the actor context of the service actor, and the
// method.
type Context struct {
	actor  *actor.Context
	method string
	md     *MethodDesc
	in     actor.Metadata // what the call carries: IncomingMetadata

	values context.Context // set when a server interceptor passed on a context of its own

	once   sync.Once
	inner  context.Context
	cancel context.CancelFunc
}

var _ context.Context = (*Context)(nil)

// Actor returns the service actor's context: its Self, Send, Request,
// timers and logger. Valid only while the handler runs.
func (c *Context) Actor() *actor.Context { return c.actor }

// Method returns the full method name, "/package.Service/Method".
func (c *Context) Method() string { return c.method }

// Caller returns the caller's PID (serial 0 for a caller outside any
// actor; its Node is the caller's node either way).
func (c *Context) Caller() actor.PID { return caller(c.actor) }

// caller returns the sender of the current call. The actor runtime gives a
// local sender outside any actor as the zero PID (a remote one comes with
// its node's Addr); such a caller is on this node.
func caller(c *actor.Context) actor.PID {
	p := c.Sender()
	if p.IsZero() {
		p.Node = c.Self().Node
	}
	return p
}

// Deadline returns the caller's deadline, when it set one (or a server
// interceptor's, when it passed on a context with an earlier one).
func (c *Context) Deadline() (time.Time, bool) {
	if c.values != nil {
		return c.values.Deadline()
	}
	return c.actor.Deadline()
}

// ctx returns the context.Context behind Done and Err: the interceptor's,
// or one made on first use (most handlers never ask, and a deadline
// context costs a timer).
func (c *Context) ctx() context.Context {
	if c.values != nil {
		return c.values
	}
	c.once.Do(func() {
		if dl, ok := c.actor.Deadline(); ok {
			c.inner, c.cancel = context.WithDeadline(context.Background(), dl)
			return
		}
		c.inner = context.Background()
	})
	return c.inner
}

// Done is closed when the deadline passes.
func (c *Context) Done() <-chan struct{} { return c.ctx().Done() }

// Err returns context.DeadlineExceeded once the deadline passed.
func (c *Context) Err() error { return c.ctx().Err() }

// Value returns the values that server interceptors added to the context
// they passed on, if any, and the call's metadata (IncomingMetadata).
func (c *Context) Value(key any) any {
	if c.values != nil {
		return c.values.Value(key)
	}
	switch key {
	case incomingKey{}:
		return c.in
	case callContextKey{}:
		return c
	}
	return nil
}

// release frees the timer of the inner context, if one was made.
func (c *Context) release() {
	if c.cancel != nil {
		c.cancel()
	}
}
