package gate

import (
	"maps"
	"slices"
	"strings"

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
	// MetadataStatePrefix starts the keys that carry the session's state
	// (Session.Set, SetSessionState) to generated RPC services and grains
	// (RPC and UserGrain routes): state key "team" travels as
	// "guild-state-team". StateOf reads them back. A gate.Service gets the
	// state with the session instead.
	MetadataStatePrefix = "guild-state-"
	// MetadataStatePartial is set ("1") when the session's state did not
	// fit in a request's metadata (more than MaxMetadataState keys, or
	// MaxMetadataStateBytes bytes): the keys that fit, in sorted order,
	// are there, and SessionState reads the whole state.
	MetadataStatePartial = "guild-partial-state"
)

// The share of a request's metadata (see actor.MaxMetadataEntries and
// MaxMetadataSize) that the session's state may take, leaving room for
// the session's and user's IDs and a trace context.
const (
	MaxMetadataState      = 24
	MaxMetadataStateBytes = 2048
)

// StateOf returns the session state that a request's metadata carries
// (see MetadataStatePrefix), or nil when it carries none.
func StateOf(md actor.Metadata) map[string]string {
	var state map[string]string
	for k, v := range md.All() {
		if key, ok := strings.CutPrefix(k, MetadataStatePrefix); ok {
			if state == nil {
				state = make(map[string]string)
			}
			state[key] = v
		}
	}
	return state
}

// stateMetadata returns pairs with the state's keys (sorted) appended,
// as many as fit within MaxMetadataState and MaxMetadataStateBytes, and
// MetadataStatePartial when some did not.
func stateMetadata(pairs []string, state map[string]string) []string {
	size, n := 0, 0
	for _, k := range slices.Sorted(maps.Keys(state)) {
		v := state[k]
		size += len(MetadataStatePrefix) + len(k) + len(v)
		if n == MaxMetadataState || size > MaxMetadataStateBytes || k == "" {
			return append(pairs, MetadataStatePartial, "1")
		}
		pairs = append(pairs, MetadataStatePrefix+k, v)
		n++
	}
	return pairs
}

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
