// Package actor is guild's actor runtime on one node.
//
// A [Node] hosts actors. An actor is a user type with a Receive method (or a
// plain function, see [Node.SpawnFunc]); it handles one message at a time, so
// its fields need no locks. Spawning returns a [PID], a small comparable value
// holding the node's logical [Addr] (cluster.type.index) and a serial the node
// never reuses.
//
// # The four verbs
//
// Messages are any Go values in one process; across nodes (package cluster
// provides the [Remote]) they must be protobuf messages or []byte. The
// verbs work from outside any actor (on a Node) and from inside one (on its
// [Context]), on actors of any node:
//
//   - Send is one-way.
//   - Request is asynchronous: its callback runs later inside the requesting
//     actor's own turn, never concurrently with its Receive.
//   - Call blocks until the reply comes or its ctx ends.
//   - Respond answers a Request or a Call; responding with an error value
//     makes the caller's Call return it as the error. [Context.Forward]
//     hands a request on; its answer reaches the original requester, and
//     across nodes it travels back along the path the request took.
//
// [Node.SendName], [Node.CallName] and [Node.RequestName] (and their
// Context forms) address a name instead of a PID.
//
// Every failure is a sentinel error matched with errors.Is: [ErrActorNotFound],
// [ErrActorStopped], [ErrMailboxFull], [ErrTimeout] (or the ctx's own error),
// [ErrNodeClosed], [ErrNoReply], [ErrPanicked]. A message that cannot be
// delivered also goes to the dead-letter stream ([Node.SubscribeDeadLetters]).
// Order is kept per sender-receiver pair.
//
// # Mailboxes and scheduling
//
// Each actor has a mailbox with two lanes: system messages (stop, watch,
// lifecycle) are handled before any further user message. The user lane is
// unbounded unless [WithMailboxBound] sets a bound; a full mailbox refuses
// with ErrMailboxFull, never blocks and never panics. An idle actor holds no
// goroutine: a turn is scheduled on the node's worker pool only while the
// mailbox has work, and it yields after Config.Throughput messages so that a
// busy actor cannot starve the rest. A Call whose ctx can never be cancelled
// may run an idle target's turn on the caller's own goroutine, which would
// otherwise only wait.
//
// # Lifecycle, children and supervision
//
// Actors receive [Started] first, then user messages; [Stopping] when they
// begin to stop; [Stopped] last, after all their children have stopped.
// Actors spawn children ([Context.Spawn]) and watch any actor, on any node
// ([Context.Watch]; [Node.Watch] from outside actors), receiving exactly one
// [Terminated] when it stops or can no longer be reached, with a
// [TerminationReason]. A panic in Receive
// is recovered and logged with its stack; the parent's [Supervisor] then
// restarts (within a restart budget), resumes, stops or escalates. User code
// never takes the node down. Every recovered panic and every escalation
// also goes to Config.Reporter, when set, as a [Failure] (package report
// delivers them to a webhook or by e-mail).
//
// # Names and timers
//
// Local names start with "." and are seen by one node ([Node.Register],
// [Node.Lookup], [WithName]); they are released when their actor stops.
// Names without the dot are global and need a cluster's [NameRegistry]; a
// global name is registered on its actor's node and released when the
// actor stops. With a [LeasedNames] registry, the node serves traffic to a
// global name only while it can prove the lease it holds the name under
// ([Node.HeldName]).
// Actors get timers that deliver into their own mailbox ([Context.After],
// [Context.Every]); they run on the node's hierarchical timing wheel (package
// timer) and are cancelled when the actor stops or restarts.
//
// # Metadata
//
// A message can carry a [Metadata], a small immutable set of string
// key-values ([WithMetadata]): trace context, who is asking, keys of the
// application. The handler reads it with [Context.Metadata] (and
// [Context.Message] is the message alone); it crosses nodes with the
// message and goes on with [Context.Forward]; replies carry none. A
// message sent without metadata pays nothing for it.
//
// # Goroutines and ownership
//
// Everything an actor owns (its fields, its children, timers and pending
// requests) is touched only by its turn, and at most one turn runs at a time.
// A node owns one clock goroutine and a pool of worker goroutines (at most
// 256 idle); [Node.Shutdown] drains and stops actors, children before
// parents, and [Node.Close] stops them at once; both wait for every goroutine
// the node started and are safe to call twice. The framework never calls
// flag.Parse or signal.Notify and starts nothing from init.
package actor
