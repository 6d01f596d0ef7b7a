// Package guestpb is the typed side of a hot-fix module: handlers of
// protobuf messages, with the actor's state as a protobuf message too,
// on top of package guest's raw bytes. A fix registers one handler per
// message type, in an init function:
//
//	func init() {
//		guestpb.Route(func(st *shoppb.State, req *shoppb.Buy) (*shoppb.Bought, error) {
//			st.Gold -= req.GetPrice() * 2 // the fix
//			return &shoppb.Bought{Gold: st.GetGold()}, nil
//		})
//	}
//
// The state arrives decoded (an empty state is a new, empty message),
// the handler changes it in place, and it is encoded again after every
// call that returns no error; the reply goes back with its full name,
// which the host decodes into its own Go type. A message of a type no
// handler takes is an error. Adding fields to the state's message is the
// compatible way to change its schema: an older version's bytes still
// decode.
//
// It links google.golang.org/protobuf into the module (a few MB more
// than package guest alone), and like package guest it builds natively
// too, so a fix's handlers can be tested with guest.Call.
package guestpb

import (
	"fmt"

	"github.com/guildkit/guild/hotfix/guest"
	"google.golang.org/protobuf/proto"
)

// routes are the handlers by message type (full name).
var routes map[string]func(state, msg []byte) (guest.Result, error)

// Route registers h as the handler of messages of type In, whose state
// is an S and whose reply an Out (nil for none). The last Route of a type
// wins. The first Route installs the module's handler (guest.Handle).
func Route[S, In, Out proto.Message](h func(state S, in In) (Out, error)) {
	var in In
	name := string(in.ProtoReflect().Descriptor().FullName())
	if routes == nil {
		routes = make(map[string]func(state, msg []byte) (guest.Result, error))
		guest.Handle(dispatch)
	}
	routes[name] = func(state, msg []byte) (guest.Result, error) {
		var s S
		st := s.ProtoReflect().Type().New().Interface().(S)
		if err := proto.Unmarshal(state, st); err != nil {
			return guest.Result{}, fmt.Errorf("guestpb: the state as %s: %w", st.ProtoReflect().Descriptor().FullName(), err)
		}
		m := in.ProtoReflect().Type().New().Interface().(In)
		if err := proto.Unmarshal(msg, m); err != nil {
			return guest.Result{}, fmt.Errorf("guestpb: the message as %s: %w", name, err)
		}
		out, err := h(st, m)
		if err != nil {
			return guest.Result{}, err
		}
		newState, err := proto.MarshalOptions{Deterministic: true}.Marshal(st)
		if err != nil {
			return guest.Result{}, fmt.Errorf("guestpb: the new state: %w", err)
		}
		if newState == nil {
			newState = []byte{} // an empty message: empty, not unchanged
		}
		res := guest.Result{State: newState}
		if out.ProtoReflect().IsValid() {
			if res.Reply, err = proto.Marshal(out); err != nil {
				return guest.Result{}, fmt.Errorf("guestpb: the reply: %w", err)
			}
			if res.Reply == nil {
				res.Reply = []byte{}
			}
			res.ReplyType = string(out.ProtoReflect().Descriptor().FullName())
		}
		return res, nil
	}
}

// dispatch is the module's handler: the route of the message's type.
func dispatch(state []byte, msgType string, msg []byte) (guest.Result, error) {
	r, ok := routes[msgType]
	if !ok {
		return guest.Result{}, fmt.Errorf("guestpb: no route for messages of type %q", msgType)
	}
	return r(state, msg)
}
