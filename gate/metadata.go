package gate

import (
	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
)

// Metadata keys that every request a gateway routes carries to its
// service (see actor.Metadata): an RPC handler reads them with
// rpc.IncomingMetadata(ctx).Get(gate.MetadataUserID), an actor or grain
// with Context.Metadata().Get(...). They are set by the gateway, never
// taken from the client.
const (
	// MetadataSessionID is the ID of the session the request came from
	// (for Push, Kick and the group calls).
	MetadataSessionID = "guild-session-id"
	// MetadataUserID is the user the session logged in as; absent before
	// login (a public route).
	MetadataUserID = "guild-user-id"
)

// ObserveFunc is the type of Config.Observe: it sees a request being
// routed, returns the metadata to send with it and, or nil, the function
// the gateway calls once with the code of its answer.
type ObserveFunc func(route string, md actor.Metadata) (actor.Metadata, func(code rpc.Code))

// Observers chains observers into one ObserveFunc: each gets the metadata
// the one before returned, and the answer's code reaches every one that
// asked for it, the last first. Nil observers are skipped; none gives nil.
func Observers(obs ...ObserveFunc) ObserveFunc {
	var list []ObserveFunc
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return func(route string, md actor.Metadata) (actor.Metadata, func(rpc.Code)) {
		var dones []func(rpc.Code)
		for _, o := range list {
			var done func(rpc.Code)
			md, done = o(route, md)
			if done != nil {
				dones = append(dones, done)
			}
		}
		if len(dones) == 0 {
			return md, nil
		}
		return md, func(code rpc.Code) {
			for i := len(dones) - 1; i >= 0; i-- {
				dones[i](code)
			}
		}
	}
}
