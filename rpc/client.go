package rpc

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// DefaultAsyncTimeout is the timeout of an asynchronous call given none.
const DefaultAsyncTimeout = 5 * time.Second

// Client makes calls from one actor node; generated clients wrap it. It is
// safe for concurrent use, and cheap enough to share: make one per node.
type Client struct {
	node    *actor.Node
	members cluster.Membership
	sel     cluster.Selector
	ics     []Interceptor
	grains  GrainResolver
	chained Handler // ics around the call, built once (nil without ics)
}

// ClientOption configures NewClient.
type ClientOption func(*Client)

// WithMembership lets the client resolve node-type targets (AnyOf, ByKey)
// against m, for example a cluster node's membership. With a cluster
// node's View (cluster.Node.View), the exported members of other
// clusters qualify too, reached through the harbors: the service's PID on
// such a member is asked of the member itself (View.LookupAt), one round
// trip before each call.
func WithMembership(m cluster.Membership) ClientOption {
	return func(c *Client) { c.members = m }
}

// WithGrains lets the client resolve grain targets (Grain) through r,
// for example a grain.System.
func WithGrains(r GrainResolver) ClientOption {
	return func(c *Client) { c.grains = r }
}

// WithClientInterceptors wraps every call the client makes.
func WithClientInterceptors(ics ...Interceptor) ClientOption {
	return func(c *Client) { c.ics = append(c.ics, ics...) }
}

// NewClient returns a client that calls from n.
func NewClient(n *actor.Node, opts ...ClientOption) *Client {
	c := &Client{node: n}
	for _, o := range opts {
		o(c)
	}
	if len(c.ics) > 0 {
		c.chained = chain(c.ics, func(ctx context.Context, info *CallInfo, req proto.Message) (proto.Message, error) {
			return c.call(ctx, info.Target, info.service, info.Method, req, info)
		})
	}
	return c
}

// Call calls method ("/package.Service/Method") of service ("package.Service")
// at to, and waits for the reply. Generated clients call it with typed
// requests and replies.
//
// When the service lives on the caller's node, req goes to the handler as
// it is (no encoding, no copy), so the caller must not change req until
// Call returns, and must not change the reply afterwards if the handler
// may keep it. Otherwise req is encoded and crosses the mesh. Both ways
// behave the same: ctx's deadline reaches the handler, ctx's end stops the
// wait at once, and every error is a *Status (see StatusOf).
func (c *Client) Call(ctx context.Context, to Target, service, method string, req proto.Message) (proto.Message, error) {
	if len(c.ics) == 0 {
		return c.call(ctx, to, service, method, req, nil)
	}
	reply, err := c.chained(ctx, &CallInfo{Method: method, Target: to, service: service}, req)
	if err != nil {
		return nil, StatusOf(err) // an interceptor's own error too
	}
	return reply, nil
}

func (c *Client) call(ctx context.Context, to Target, service, method string, req proto.Message, info *CallInfo) (proto.Message, error) {
	pid, msg, err := c.prepare(ctx, to, service, method, req, info)
	if err != nil {
		return nil, err
	}
	return result(c.node.Call(ctx, pid, msg))
}

// CallAsync calls method of service at to from inside an actor, without
// blocking it: cb runs later in that actor's own turn (never concurrently
// with its Receive), with the reply or a *Status error. timeout bounds the
// wait (DefaultAsyncTimeout when zero or less). Resolving a name or a node
// type target reads the caller's cache of names; only a name missing from
// it makes CallAsync wait for the registry, bounded by timeout.
//
// Client interceptors see the call being sent, with a nil reply: the reply
// reaches cb only.
func (c *Client) CallAsync(ac *actor.Context, to Target, service, method string, req proto.Message, timeout time.Duration, cb func(proto.Message, error)) error {
	if timeout <= 0 {
		timeout = DefaultAsyncTimeout
	}
	send := func(ctx context.Context, info *CallInfo, req proto.Message) (proto.Message, error) {
		pid, msg, err := c.prepare(ctx, to, service, method, req, info)
		if err != nil {
			return nil, err
		}
		if err := ac.Request(pid, msg, timeout, func(reply any, err error) { cb(result(reply, err)) }); err != nil {
			return nil, StatusOf(err)
		}
		return nil, nil
	}
	ctx, cancel := c.resolveContext(to, timeout)
	defer cancel()
	if in := ac.Metadata(); in.Len() > 0 {
		ctx = incomingContext{Context: ctx, md: in}
	}
	var err error
	if len(c.ics) == 0 {
		_, err = send(ctx, nil, req)
	} else {
		_, err = chain(c.ics, send)(ctx, &CallInfo{Method: method, Target: to}, req)
	}
	return statusOrNil(err)
}

// statusOrNil returns err as a *Status, or an untyped nil.
func statusOrNil(err error) error {
	if err == nil {
		return nil
	}
	return StatusOf(err)
}

// Send calls a method of service at to one way: no reply, no wait (the
// generated "OneWay" form of methods that return google.protobuf.Empty).
// An error means the call was not sent; a failure in the handler is only
// logged by the service.
func (c *Client) Send(ctx context.Context, to Target, service, method string, req proto.Message) error {
	send := func(ctx context.Context, info *CallInfo, req proto.Message) (proto.Message, error) {
		pid, msg, err := c.prepare(ctx, to, service, method, req, info)
		if err != nil {
			return nil, err
		}
		if err := c.node.Send(pid, msg); err != nil {
			return nil, StatusOf(err)
		}
		return nil, nil
	}
	var err error
	if len(c.ics) == 0 {
		_, err = send(ctx, nil, req)
	} else {
		_, err = chain(c.ics, send)(ctx, &CallInfo{Method: method, Target: to, OneWay: true}, req)
	}
	return statusOrNil(err)
}

// resolveContext bounds the resolution of a target by timeout; a PID needs
// none.
func (c *Client) resolveContext(to Target, timeout time.Duration) (context.Context, context.CancelFunc) {
	if to.kind == targetPID {
		return context.Background(), func() {}
	}
	return context.WithTimeout(context.Background(), timeout)
}

// prepare resolves to and builds the message for the service actor: the
// request itself for a local actor, an encoded rpcpb.Call otherwise.
func (c *Client) prepare(ctx context.Context, to Target, service, method string, req proto.Message, info *CallInfo) (actor.PID, any, error) {
	pid, err := c.resolve(ctx, to, service)
	if err != nil {
		return actor.PID{}, nil, StatusOf(err)
	}
	remote := pid.Node != c.node.Addr()
	if info != nil {
		info.Peer, info.Remote = pid, remote
	}
	md := OutgoingMetadata(ctx)
	if !remote {
		return pid, actor.WithMetadata(&localCall{method: method, req: req}, md), nil
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return actor.PID{}, nil, Errorf(InvalidArgument, "%s: the request does not encode: %v", method, err)
	}
	return pid, actor.WithMetadata(&rpcpb.Call{Method: method, Body: body}, md), nil
}

// result turns what the actor runtime returned into a reply or a *Status.
func result(reply any, err error) (proto.Message, error) {
	if err != nil {
		return nil, StatusOf(err)
	}
	switch r := reply.(type) {
	case *rpcpb.Status:
		code := Code(r.GetCode())
		if code == OK {
			code = Unknown // a Status is only ever sent for an error
		}
		return nil, &Status{Code: code, Message: r.GetMessage()}
	case proto.Message:
		return r, nil
	}
	return nil, Errorf(Internal, "the reply is a %T, not a protobuf message", reply)
}

// BadReply is the error of a generated client whose reply is not of the
// method's reply type.
func BadReply(method string, reply proto.Message) error {
	return Errorf(Internal, "%s: the reply is a %T", method, reply)
}
