package grain

import (
	"context"

	"github.com/guildkit/guild/actor"
)

// Context is what a grain's Receive gets: the actor context of the
// grain's activation (Respond, Sender, Self, timers...), with the message
// unwrapped, and the grain's identity and state. Like actor.Context, it is
// valid only during Receive.
type Context struct {
	ac  *actor.Context
	msg any
	a   *activation
}

// Actor returns the actor context of the activation: Respond, Sender,
// Self, Send, Request, timers, Logger. Its Message may be the network
// envelope the message came in; use Context.Message.
func (c *Context) Actor() *actor.Context { return c.ac }

// Message returns the message being handled: what the sender gave to Send
// or Call (decoded, when it came from another node), or actor.Started and
// actor.Stopping.
func (c *Context) Message() any { return c.msg }

// Metadata returns the metadata the current message carries (see
// actor.WithMetadata): a gateway route's user and session, trace context.
func (c *Context) Metadata() actor.Metadata { return c.ac.Metadata() }

// Respond answers the current request; see actor.Context.Respond.
func (c *Context) Respond(msg any) { c.ac.Respond(msg) }

// IsRequest reports whether the sender waits for a reply.
func (c *Context) IsRequest() bool { return c.ac.IsRequest() }

// Sender returns the sending actor (the zero PID for a caller outside any
// actor).
func (c *Context) Sender() actor.PID { return c.ac.Sender() }

// Identity returns the grain's identity.
func (c *Context) Identity() Identity { return c.a.id() }

// State returns the grain's state: the value Kind.State made, loaded from
// the Store. Change it in place. nil for a kind without state.
func (c *Context) State() any { return c.a.state }

// MarkDirty says the state changed, so the next flush writes it even when
// Kind.TrustMarkDirty is set. Without TrustMarkDirty, a change is found
// anyway (by hashing the state's encoding at flush time).
func (c *Context) MarkDirty() { c.a.set(flagDirty) }

// Flush writes the state now, if it changed since the last flush. When it
// fails with ErrStale the activation is deactivating and its later
// messages go to the grain's next activation.
func (c *Context) Flush(_ context.Context) error { return c.a.flush(c.ac) }

// Deactivate deactivates the grain once this message is handled: its
// state is flushed, its claim released and its actor stopped. Its next
// message activates it again.
func (c *Context) Deactivate() { _ = c.ac.Send(c.ac.Self(), ctlDeactivate) }

// System returns the System the grain runs in, to message other grains.
func (c *Context) System() *System { return c.a.k.s }
