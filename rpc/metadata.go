package rpc

import (
	"context"

	"github.com/guildkit/guild/actor"
)

// outgoingKey and incomingKey are the context keys of call metadata.
type (
	outgoingKey struct{}
	incomingKey struct{}
)

// WithMetadata returns a copy of ctx whose calls carry md (see
// actor.Metadata): a Client's Call, CallAsync and Send made with it, or
// made by an interceptor that passes it on, send md with the request, on
// this node or across nodes, and the handler reads it with
// IncomingMetadata. It replaces metadata ctx carried already; to add a key,
// use OutgoingMetadata(ctx).With(key, value).
func WithMetadata(ctx context.Context, md actor.Metadata) context.Context {
	return context.WithValue(ctx, outgoingKey{}, md)
}

// OutgoingMetadata returns the metadata calls made with ctx carry.
func OutgoingMetadata(ctx context.Context) actor.Metadata {
	md, _ := ctx.Value(outgoingKey{}).(actor.Metadata)
	return md
}

// IncomingMetadata returns the metadata of the call being handled: in a
// handler or a server interceptor, what the caller sent (a gateway route
// adds the caller's user and session: see package gate's
// MetadataUserID); in a client interceptor of CallAsync, what the message
// the calling actor is handling carries. It is empty elsewhere. It is not
// sent on by calls the handler makes: pass it to WithMetadata for that.
func IncomingMetadata(ctx context.Context) actor.Metadata {
	md, _ := ctx.Value(incomingKey{}).(actor.Metadata)
	return md
}

// incomingContext is a context that answers IncomingMetadata with md.
type incomingContext struct {
	context.Context
	md actor.Metadata
}

func (c incomingContext) Value(key any) any {
	if key == (incomingKey{}) {
		return c.md
	}
	return c.Context.Value(key)
}
