// Package propsync mirrors a server-side state, a protobuf message, to
// clients: a snapshot first, then after each turn that changed what
// clients may see, a compact delta of the changes (fields, nested
// messages, repeated and map entries), in order, with a version.
//
// The server keeps a Tracker per synced state: Tracker.Next diffs the
// state with the copy it last synced and returns the Delta (nil when
// nothing visible changed); Tracker.Snapshot returns the whole state. A
// client keeps a Replica: Replica.Apply applies snapshots and deltas and
// calls the callbacks registered with OnChange for the fields that
// changed. A delta whose base is not the replica's version means that
// one was missed: Apply returns ErrGap and the client subscribes again,
// which brings a fresh snapshot. A Replica holds one entity, its
// snapshot's, and ignores the deltas of others, so one push handler may
// feed each replica every delta of the route. Diff and Apply are the two
// halves underneath, usable on their own. The wire form is propsyncpb's
// (docs/PROTOCOL.md, "Property sync"); package grain syncs a grain's
// state this way (grain.Kind.Sync).
//
// # Private fields
//
// A field marked private is persisted with the state but never sent to a
// client: neither Diff nor Redact (and so no snapshot) carries it, or
// anything below it. Mark it in the .proto with the field option
// (guild.propsync.private) = true, or in Go by its full name with
// NewDiffer.
//
// # Generated diff code
//
// By default Diff finds the changes by reflection, helped by comparing
// the deterministic encodings of the two versions field by field. A
// message marked synced in its .proto
//
//	message Player {
//	  option (guild.propsync.synced) = true;
//	  ...
//	}
//
// gets from guild gen (package propsync/syncgen) a file <name>_sync.pb.go
// with a method PropsyncDiff (interface Generated) on it and on every
// message of its file it reaches: typed Go that compares the two versions
// field by field with no reflection and no encoding of what did not
// change, emits the same ops as Diff, and for a Tracker updates the copy
// last synced in the same walk. It is about ten times faster on a 2 KB
// player-like state (docs/PERFORMANCE.md, "Property sync"). Diff and
// Tracker use it by themselves. It skips the fields the .proto marks
// private, and at run time those the Differ marks on the Go side
// (NewDiffer with names, or grain.SyncOptions.Private; a oneof with such
// a case is diffed by reflection). A message field of another file's type is diffed by that type's own
// generated code if it has some, else by reflection; so is a proto3
// optional bytes field. The generator takes proto3 files only, and
// refuses a field or a oneof named propsync_diff in a message that gets
// code (its Go name would be the method's).
//
// # Paths
//
// Apply reports what it changed as paths: the proto JSON names of the
// fields from the root message down to the field an op changed, joined by
// dots. Map keys and list indices are not part of a path: a change of
// items[3].count is "items.count", of bag["sword"] is "bag", and a list
// that grew is "items". OnChange callbacks registered on a prefix fire
// for every change at or under it ("stats" fires for "stats.hp"), once
// per Apply and path, and for a change above it (the whole "stats" set or
// cleared fires "stats.hp", with the prefix as the path). The TypeScript
// SDK uses the same paths and rules.
package propsync

// The service a client calls to subscribe to a synced grain, through a
// gateway route (gate.UserGrain(kind, propsync.Service), or
// gate.SyncGrain(kind) to the grain a Subscribe's entity names): its methods
// take a propsyncpb.Subscribe (the reply is the snapshot, a
// propsyncpb.Delta) and a propsyncpb.Unsubscribe. The grain runtime
// answers them itself. No .proto declares it: these names are the
// contract.
const (
	// Service is the full name of the service.
	Service = "guild.propsync.Sync"
	// SubscribeMethod is the full method name of Subscribe.
	SubscribeMethod = "/" + Service + "/Subscribe"
	// UnsubscribeMethod is the full method name of Unsubscribe.
	UnsubscribeMethod = "/" + Service + "/Unsubscribe"
	// DefaultRoute is the push route deltas are sent on unless a synced
	// grain kind names another.
	DefaultRoute = "propsync"
)
