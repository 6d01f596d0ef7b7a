// Package cluster describes the members of a guild cluster and how a node
// chooses among them.
//
// A [Member] is one node: its logical [actor.Addr] (cluster.type.index), the
// endpoint its transport is reached at (a host:port, or its inbox on a
// broker), and clustergo's two flags: Available
// (the node takes new work) and Export (the node may be used from other
// clusters). A [Membership] keeps the local view of all members and tells
// subscribers about every change as an [Event].
//
// Two implementations exist:
//   - [NewMemory]: a store held in memory and shared by the nodes of one
//     process, each with its own Membership; [NewLocal] is a store of one,
//     the default for a lone node. Nothing leaves the process.
//   - package cluster/etcd: membership, global names and leases on etcd,
//     plus an embedded etcd server for development.
//
// A [Selector] picks one member of a node type from a view: at random, round
// robin, or by a key with rendezvous (highest random weight) hashing, so
// that only about 1/N of the keys move when a member joins or leaves.
//
// A [Node] connects the pieces: it starts an actor node whose Config.Remote
// carries messages to actors on other nodes over its transport (the direct
// TCP mesh of transport/tcp by default, or a broker: NodeConfig.Transport
// takes any transport.Config), resolves a peer's endpoint from the
// Membership, and joins it with this node's record.
// A node that starts its services after joining joins marked unavailable
// (NodeConfig.JoinUnavailable) and marks itself available
// (Node.SetAvailable) once they serve; it marks itself unavailable again
// first when it leaves (Node.Shutdown).
//
// # Remote verbs
//
// Send, Request, Call and Respond work on PIDs of other nodes with the same
// API as on local ones: a PID names its node, and the actor node hands
// anything addressed elsewhere to the cluster. A message to a local actor
// never reaches the cluster (no encoding, no socket).
//
//   - Only proto.Message and []byte values cross nodes. Anything else fails
//     at the sender with an error matching wire.ErrNotEncodable, and the
//     connection is untouched.
//   - A request carries the caller's deadline (the Call's ctx deadline, or
//     the Request timeout); the callee sees it as Context.Deadline.
//   - A remote request that cannot be answered because its peer's
//     connection was lost fails at once with an error matching
//     transport.ErrPeerLost: it does not wait for its timeout.
//   - An error reply matches, with errors.Is, the actor sentinel its wire
//     code stands for (ErrActorNotFound, ErrMailboxFull, ErrTimeout, ...).
//   - A peer that cannot keep up (or cannot be reached) holds at most the
//     transport's PendingQueue envelopes (tcp.Config's, or bus.Options' on
//     a broker); beyond that Send, Request and Call fail at once with
//     transport.ErrPendingQueueFull.
//   - Forward works across nodes: an answer goes back to the node the
//     request came from, with that node's correlation, so it retraces the
//     path of any chain of forwards and reaches the request it answers. A
//     node accepts an answer only from the peer it asked.
//   - Watch, Unwatch, Stop and Poison work on remote PIDs. A watcher hears
//     exactly one Terminated: stopped or not found (from the target's
//     node), node down (its member record left the view), or link lost
//     (unreachable for NodeConfig.WatchLinkTimeout). A reconnect causes
//     none; watches are sent again after one.
//
// # Harbors: many clusters
//
// Clusters with a membership (an etcd) each are joined by harbor nodes,
// whose address has type actor.HarborType (255): a harbor joins its own
// cluster's membership and the harbors' (NodeConfig.Harbors), which the
// harbors of every cluster share. A message for a node of another
// cluster goes to a harbor of the sender's cluster, then to a harbor of
// the target's, then to the target, and its answer comes back the same
// way; every verb above works so, with the same deadlines and errors, and
// a request whose harbor is lost fails at once (transport.ErrPeerLost).
// [Node.Route] says which way a message goes. Global names and watches
// stay within a cluster ([ErrNoRoute] for a name of another cluster).
// The exported members of other clusters reach a node through its
// harbors: [Node.View] adds them to the members a Selector or rpc picks
// from, and [View.LookupAt] asks such a member for a name it holds.
// docs/PROTOCOL-NODE.md, section 9, has the protocol.
//
// # Leaving
//
// [Node.Shutdown] leaves in order: it marks the node unavailable
// ([Node.SetAvailable]), drains the actor node, waits for the requests it
// waits on or relays, leaves the membership and writes out what is queued
// for its peers. [Node.Close] does it at once.
//
// # The lease fence
//
// A Membership whose record lives under an expiring lease implements
// [Fence]: it says whether the node can prove its lease still valid. Grains
// and global names act only while it holds (see cluster/etcd.Keeper).
//
// # Names
//
// Names that start with "." are local to a node. Other names are global:
// with cluster/etcd's Names registry, Register claims them in etcd (the
// first claim wins, in a transaction), tied to the owner's lease so that
// they are released when the owner dies; the node also releases them when
// their actor stops. Every node caches the global names through a watch, so
// Lookup is a map read; a name missing from the cache is looked up in etcd.
// The verbs by name (SendName, CallName, RequestName) send the name itself
// to its holder's node, which delivers it only to the actor it holds the
// name for under a lease it can prove valid, and answers ErrNameNotFound
// otherwise.
//
// # Running a cluster
//
// In development one process runs an embedded etcd (etcd.StartEmbedded or
// StartEmbeddedConfig, lotou's "master"), and every node, in that process or
// others, points etcd.Config.Endpoints at it. In production the nodes point
// at an external etcd cluster instead; nothing else changes. The command
// "guild node" does either from flags. Package cluster/clustertest runs N
// nodes in one test process.
//
// # Concurrency
//
// Every Membership method is safe for concurrent use. Subscribe callbacks
// run on one goroutine per Membership, in the order the changes were applied
// to the view, and never concurrently with each other. A callback must not
// block for long and must not call Close (which waits for that goroutine).
package cluster
