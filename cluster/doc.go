// Package cluster describes the members of a guild cluster and how a node
// chooses among them.
//
// A [Member] is one node: its logical [actor.Addr] (cluster.type.index), the
// endpoint its transport listens on, and clustergo's two flags: Available
// (the node takes new work) and Export (the node may be used from other
// clusters). A [Membership] keeps the local view of all members and tells
// subscribers about every change as an [Event].
//
// Two implementations exist:
//   - [NewLocal]: the one-process default. Nothing leaves the process.
//   - package cluster/etcd: membership, global names and leases on etcd,
//     plus an embedded etcd server for development.
//
// A [Selector] picks one member of a node type from a view: at random, round
// robin, or by a key with rendezvous (highest random weight) hashing, so
// that only about 1/N of the keys move when a member joins or leaves.
//
// A [Node] connects the pieces: it starts an actor node whose Config.Remote
// carries messages to actors on other nodes over transport/tcp, resolves a
// peer's endpoint from the Membership, and joins it with this node's record.
// A remote request that cannot be answered because its peer's connection was
// lost fails at once with an error matching transport.ErrPeerLost; an error
// reply matches, with errors.Is, the actor sentinel its wire code stands for.
// Only proto.Message and []byte values cross nodes: anything else fails at
// the sender with wire.ErrNotEncodable.
//
// # Concurrency
//
// Every Membership method is safe for concurrent use. Subscribe callbacks
// run on one goroutine per Membership, in the order the changes were applied
// to the view, and never concurrently with each other. A callback must not
// block for long and must not call Close (which waits for that goroutine).
package cluster
