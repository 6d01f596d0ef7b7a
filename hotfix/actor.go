package hotfix

import (
	"context"
	"errors"
	"fmt"

	"github.com/guildkit/guild/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Message is a message in raw form, for a type the node has no Go type
// for: to a hotfix Actor, Type is the type name the module sees and Data
// its bytes; from one, the reply of a module that named no type the
// node's binary knows.
type Message struct {
	Type string
	Data []byte
}

// Actor is an actor whose logic is a Handler's module: the state lives
// here, in Go, as bytes, and each message is one call into the module in
// service, which returns the new state and the reply. A Swap between two
// messages changes the code and keeps the state; nobody is disconnected.
//
// Messages: a proto.Message goes to the module under its full name
// (proto.Marshal'd); a *Message as it is; the actor's lifecycle messages
// (actor.Started and the others) and any other Go value are not passed
// to the module (a request of another type is answered with an error).
// A request gets the reply: decoded into its protobuf type when the
// module named one that the node's binary knows (protoregistry), else a
// *Message; *emptypb.Empty when the module returned none; a *CallError
// when the module failed (the requester's Call returns it). A one-way
// message's reply is dropped, and its error logged.
//
// The state changes only when the call returns normally: a handler's
// error or a trap leaves it as before the turn.
type Actor struct {
	h     *Handler
	state []byte
}

// NewActor returns an actor run by h, with the initial state (its
// bytes are the actor's from now on). Pass it in a Producer:
//
//	node.Spawn(func() actor.Actor { return hotfix.NewActor(h, nil) })
func NewActor(h *Handler, state []byte) *Actor { return &Actor{h: h, state: state} }

// State returns the actor's state. Call it only inside the actor's turn.
func (a *Actor) State() []byte { return a.state }

// Receive implements actor.Actor.
func (a *Actor) Receive(c *actor.Context) {
	var typ string
	var data []byte
	switch m := c.Message().(type) {
	case *Message:
		typ, data = m.Type, m.Data
	case proto.Message:
		b, err := proto.Marshal(m)
		if err != nil {
			a.fail(c, fmt.Errorf("hotfix: marshal %T: %w", m, err))
			return
		}
		typ, data = string(m.ProtoReflect().Descriptor().FullName()), b
	default: // lifecycle messages, and any other Go value

		if c.IsRequest() {
			c.Respond(fmt.Errorf("hotfix: %s: a message of type %T: send a proto.Message or a *hotfix.Message", a.h.name, m))
		}
		return
	}
	res, _, err := a.h.Call(context.Background(), a.state, typ, data) // Config.CallTimeout bounds it
	if err != nil {
		a.fail(c, err)
		return
	}
	if res.State != nil {
		a.state = res.State
	}
	if !c.IsRequest() {
		return
	}
	c.Respond(reply(res))
}

// fail answers a request with err, or logs it.
func (a *Actor) fail(c *actor.Context, err error) {
	if c.IsRequest() {
		c.Respond(err)
		return
	}
	c.Logger().Warn("hotfix: a message failed", "handler", a.h.name, "err", err)
}

// reply turns a module's reply into the value a requester gets.
func reply(res Result) any {
	if res.Reply == nil {
		return &emptypb.Empty{}
	}
	if res.ReplyType != "" {
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(res.ReplyType)); err == nil {
			m := mt.New().Interface()
			if err := proto.Unmarshal(res.Reply, m); err != nil {
				return fmt.Errorf("hotfix: the reply as %s: %w", res.ReplyType, err)
			}
			return m
		} else if !errors.Is(err, protoregistry.NotFound) {
			return fmt.Errorf("hotfix: the reply's type %s: %w", res.ReplyType, err)
		}
	}
	return &Message{Type: res.ReplyType, Data: res.Reply}
}
