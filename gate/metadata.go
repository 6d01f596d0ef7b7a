package gate

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
