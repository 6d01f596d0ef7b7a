package grain

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain/grainpb"
	"github.com/guildkit/guild/rpc"
)

// maxAttempts bounds how often Send, Call and Request route a message
// again after it was certainly not handled (the activation was
// deactivating, a handover was in progress).
const maxAttempts = 8

// locate finds where a message for id goes: a local activation (spawned
// if this node owns id and none is active), or the router of the owner.
// md is the message's metadata (for Config.Observe).
func (s *System) locate(id Identity, md actor.Metadata) (*activation, actor.PID, error) {
	if a := s.lookup(id); a != nil {
		return a, actor.PID{}, nil
	}
	h, ok := s.view.Load().owner(id, s.skip())
	if !ok {
		// No available member hosts the kind. A node that hosts it and is
		// not closing serves its own callers rather than none: it is
		// starting (its modules may use their grains before the node is
		// marked available) or it is the last host, about to leave.
		if s.kinds[id.Kind] == nil || s.closing.Load() {
			return nil, actor.PID{}, s.noHost(id)
		}
		h = host{addr: s.self, router: s.router}
	}
	if h.addr != s.self {
		return nil, h.router, nil
	}
	a, err := s.activate(id, md)
	if err != nil {
		return nil, actor.PID{}, err
	}
	if a == nil { // closing meanwhile: route again, skipping this node
		h, ok := s.view.Load().owner(id, s.self)
		if !ok {
			return nil, actor.PID{}, s.noHost(id)
		}
		return nil, h.router, nil
	}
	return a, actor.PID{}, nil
}

// metadataOf returns the metadata msg carries (actor.WithMetadata).
func metadataOf(msg any) actor.Metadata {
	_, md := actor.SplitMetadata(msg)
	return md
}

func (s *System) noHost(id Identity) error {
	return unavailable(fmt.Sprintf("no node hosts kind %q (grain %v)", id.Kind, id), ErrUnknownKind)
}

// Send sends msg one-way to the grain id, activating it if needed. A
// message for a grain on another node must be a proto.Message. Send
// returns once msg is queued on this node (locally, or for the
// network); it is not told whether the grain handled it.
func (s *System) Send(id Identity, msg any) error {
	if err := s.checkID(id); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		a, router, err := s.locate(id, metadataOf(msg))
		if err != nil {
			return err
		}
		if a != nil {
			err = a.push(msg)
		} else {
			var env any
			if env, err = s.wrap(id, msg); err != nil {
				return err
			}
			err = s.node.Send(router, env)
		}
		if errors.Is(err, errRetired) || (errors.Is(err, actor.ErrActorNotFound) && attempt < maxAttempts) {
			continue
		}
		return err
	}
}

// Call sends msg to the grain id, activating it if needed, and waits for
// the reply, as actor.Node.Call does. A message for a grain on another node
// must be a proto.Message, and so must its reply. A message that was
// certainly not handled (it met a handover) is sent again, a few times at
// most.
func (s *System) Call(ctx context.Context, id Identity, msg any) (any, error) {
	if err := s.checkID(id); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		reply, err, retry := s.callOnce(ctx, id, msg)
		if !retry || attempt >= maxAttempts || ctx.Err() != nil {
			return reply, err
		}
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

func (s *System) callOnce(ctx context.Context, id Identity, msg any) (reply any, err error, retry bool) {
	a, router, err := s.locate(id, metadataOf(msg))
	if err != nil {
		return nil, err, false
	}
	if a != nil {
		reply, err = s.node.Call(ctx, a.pid(), msg)
	} else {
		env, werr := s.wrap(id, msg)
		if werr != nil {
			return nil, werr, false
		}
		reply, err = s.node.Call(ctx, router, env)
	}
	return answer(reply, err)
}

// answer turns a Refused reply into an error, and says whether the
// message was certainly not handled.
func answer(reply any, err error) (any, error, bool) {
	if err != nil {
		return nil, err, errors.Is(err, actor.ErrActorNotFound)
	}
	if r, ok := reply.(*grainpb.Refused); ok {
		return nil, refusedErr(r), r.GetRetry()
	}
	return reply, nil, false
}

// Request sends msg to the grain id and returns at once; cb runs once, on a
// goroutine of its own, with the reply or an error (ErrTimeout after
// timeout; 0 means the node's RequestTimeout, 5s unless configured).
func (s *System) Request(id Identity, msg any, timeout time.Duration, cb actor.ReplyFunc) error {
	if err := s.checkID(id); err != nil {
		return err
	}
	if s.closing.Load() {
		return ErrClosed
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		reply, err := s.Call(ctx, id, msg)
		if errors.Is(err, context.DeadlineExceeded) {
			err = actor.ErrTimeout
		}
		cb(reply, err)
	}()
	return nil
}

// ResolveGrain returns the PID of the grain's activation, activating it if
// needed: it implements rpc.GrainResolver. The PID is valid until the grain
// deactivates; a message sent to it afterwards fails with
// actor.ErrActorNotFound, and the caller should resolve again. Prefer
// Send and Call, which do that themselves.
func (s *System) ResolveGrain(ctx context.Context, kind, key string) (actor.PID, error) {
	id := Identity{kind, key}
	if err := s.checkID(id); err != nil {
		return actor.PID{}, err
	}
	md := rpc.OutgoingMetadata(ctx) // the call's: an activation it makes is part of its trace
	for attempt := 0; ; attempt++ {
		a, router, err := s.locate(id, md)
		if err != nil {
			return actor.PID{}, err
		}
		if a != nil {
			return a.pid(), nil
		}
		env := &grainpb.Envelope{Kind: kind, Key: key, Resolve: true, MaxHops: uint32(s.cfg.MaxHops)}
		reply, err := s.node.Call(ctx, router, actor.WithMetadata(env, md))
		reply, err, retry := answer(reply, err)
		if retry && attempt < maxAttempts && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return actor.PID{}, err
		}
		p, ok := reply.(*grainpb.PID)
		if !ok {
			return actor.PID{}, fmt.Errorf("grain: resolve %v: unexpected reply %T", id, reply)
		}
		return actor.PID{Node: actor.Addr(p.Node), Serial: p.Serial}, nil
	}
}

var _ rpc.GrainResolver = (*System)(nil)

func (s *System) checkID(id Identity) error {
	if id.Kind == "" {
		return fmt.Errorf("%w: identity %q has no kind", ErrUnknownKind, id)
	}
	return nil
}

// wrap puts msg in an Envelope for the router of another node.
// Metadata the message carries (actor.WithMetadata) goes with the
// envelope: the activation finds it in its Context.
func (s *System) wrap(id Identity, msg any) (any, error) {
	msg, md := actor.SplitMetadata(msg)
	pm, ok := msg.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%w: %T for %v", ErrNotProto, msg, id)
	}
	payload, err := anypb.New(pm)
	if err != nil {
		return nil, fmt.Errorf("grain: encode %T for %v: %w", msg, id, err)
	}
	env := &grainpb.Envelope{Kind: id.Kind, Key: id.Key, Payload: payload, MaxHops: uint32(s.cfg.MaxHops)}
	return actor.WithMetadata(env, md), nil
}

// unavailable builds the error of a refused message: it matches
// ErrUnavailable, cause, and an *rpc.Status of code Unavailable.
func unavailable(msg string, cause error) error {
	if cause == nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, rpc.Error(rpc.Unavailable, msg))
	}
	return fmt.Errorf("%w: %w: %w", ErrUnavailable, cause, rpc.Error(rpc.Unavailable, msg))
}

func refusedErr(r *grainpb.Refused) error {
	if rpc.Code(r.GetCode()) == rpc.Unavailable {
		return unavailable(r.GetMessage(), nil)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, rpc.Error(rpc.Code(r.GetCode()), r.GetMessage()))
}

// routerReceive is the behaviour of the node's grain router, the actor
// that other nodes send grain messages to. It runs no IO: it finds or
// spawns the activation and forwards the envelope to it, with the original
// sender, so the activation answers the caller directly.
func (s *System) routerReceive(c *actor.Context) {
	env, ok := c.Message().(*grainpb.Envelope)
	if !ok {
		return
	}
	id := Identity{env.Kind, env.Key}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		a, router, err := s.locate(id, c.Metadata())
		if err != nil {
			s.refuse(c, env, err.Error(), false)
			return
		}
		if a == nil {
			if env.Hops >= env.MaxHops {
				s.refuse(c, env, fmt.Sprintf("grain %v: forwarded %d times; the nodes' views disagree", id, env.Hops), true)
				return
			}
			env.Hops++
			s.st.forwarded.Add(1)
			if err := c.Forward(router); err != nil {
				s.refuse(c, env, err.Error(), true)
			}
			return
		}
		if env.Resolve {
			c.Respond(&grainpb.PID{Node: uint32(s.self), Serial: a.serial})
			return
		}
		err = a.forward(c)
		if errors.Is(err, errRetired) || errors.Is(err, actor.ErrActorNotFound) {
			continue
		}
		if err != nil {
			s.refuse(c, env, err.Error(), false)
		}
		return
	}
	s.refuse(c, env, fmt.Sprintf("grain %v: no activation took the message", id), true)
}

// refuse answers a request that no activation will handle; a one-way
// message is dropped and logged.
func (s *System) refuse(c *actor.Context, env *grainpb.Envelope, why string, retry bool) {
	s.st.refused.Add(1)
	if c.IsRequest() {
		c.Respond(&grainpb.Refused{Code: uint32(rpc.Unavailable), Message: why, Retry: retry})
		return
	}
	s.log.Warn("grain: one-way message dropped", "kind", env.GetKind(), "key", env.GetKey(), "why", why)
}
