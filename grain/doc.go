// Package grain runs virtual actors ("grains", after Orleans; gonet's
// players): actors that always exist, conceptually, and are addressed by
// an Identity (kind, key) instead of a PID. A grain is activated on the
// node that placement picks when its first message arrives, loads its
// state from a store.Store, and is deactivated (state flushed, actor
// stopped) when it has been idle for its Kind's IdleTimeout. Callers never
// know or care where it runs.
//
//	sys, err := grain.Start(ctx, grain.Config{
//		Node:       node.Actor(),
//		Membership: members,
//		Kinds:      []grain.Kind{{Name: "player", New: newPlayer, State: func() any { return new(playerpb.State) }}},
//		Store:      st,
//		Claims:     grain.NewEtcdClaimer(members, ""),
//	})
//	reply, err := sys.Call(ctx, grain.Identity{Kind: "player", Key: "10086"}, &playerpb.AddGold{N: 5})
//
// # Placement
//
// Each node advertises the kinds it hosts in its membership record
// ("grain:<kind>" in Member.Services) together with the PID of its grain
// router. The owner of a grain is chosen by rendezvous (highest random
// weight) hashing of "kind/key" over the available members that host the
// kind, so every node computes the same owner from the same view without
// asking anyone, and when a node joins or leaves only the grains it wins
// or held (about 1/N) move. A node marked unavailable, because it is
// starting or leaving, is skipped; but when no available member hosts a
// kind, a node that hosts it and is not closing serves its own callers
// rather than none (a module may use its node's grains while it starts). A message for a grain owned by another node
// goes, as a grainpb.Envelope, to that node's router, which forwards it to
// the activation with the original sender, so the reply goes straight
// back. Messages to a grain on another node, and their replies, must
// therefore be proto.Messages; on the grain's own node any Go value works
// and nothing is encoded.
//
// # Guarantees, and their limits
//
//   - At most one activation per grain in the cluster, enforced by a claim
//     (Claimer) that an activation takes before it runs: with EtcdClaimer
//     a key created in an etcd transaction under the owner's lease. Views
//     that disagree (a node that has not yet seen a join) cannot create a
//     second activation: the second claimant waits for the release
//     (Config.ClaimTimeout), holding the grain's messages in its mailbox.
//     The claim is only as strong as the lease: if a node is cut from etcd
//     for longer than the TTL while it keeps running, its claims vanish
//     and another node may activate the grain. The store's optimistic
//     versions then keep the data safe: the stale activation's next flush
//     fails with store.ErrVersionConflict, and it deactivates without
//     writing (Stats.Conflicts).
//   - On one node, an activation runs only once the grain's previous
//     activation there has ended (handled what was queued for it, flushed
//     and released the claim): the claimer cannot tell them apart, since
//     the node holds the claim until then. A new activation waits for it
//     up to Config.ClaimTimeout, then fails with a retry (its callers
//     route the message again), and the next one waits for the old one
//     again.
//   - State survives deactivation, handover and graceful Close: it is
//     flushed before the claim is released. When a stopping activation's
//     last flush fails (the store is down), it keeps the claim and tries
//     again, backing off up to a second, until the store takes it (or the
//     System closes, or the state cannot be encoded: then the changes are
//     lost, and logged); meanwhile the grain is unavailable rather than
//     served from older state. A release that fails is tried again the
//     same way, so a claim does not outlive its activation while the
//     node's lease lives. Between flushes it lives only
//     in memory: a node that crashes loses the changes since its grains'
//     last flushes (Kind.FlushEvery), and its grains come back on other
//     nodes from their last flushed state once its lease expires.
//   - A change is never lost for want of MarkDirty: at flush time the
//     state is encoded and its hash compared with that of the last
//     flush. That costs one encoding per FlushEvery per grain that handled
//     a message (not one per message); Kind.TrustMarkDirty turns it off.
//     A Store that fails leaves the state dirty in memory; the flush is
//     retried on the next sweep.
//   - Messages are not lost in a handover or a deactivation: the
//     activation leaves the routing table first, handles what was already
//     queued, flushes, and releases its claim; later messages go to the
//     next activation (which waits for the release). A Call whose message
//     was certainly not handled (it met an activation that was stopping)
//     is retried transparently, so it is neither lost nor applied twice.
//     A one-way message that an activation refuses (it failed to start,
//     lost its lease, or met newer state) is routed again when the cause
//     may pass, at most three times (metadata key guild-grain-reroutes
//     counts them), and otherwise dropped with a warning, as a request
//     would get the refusal: a grain whose state does not load does not
//     bounce a message between failing activations.
//     A message forwarded more than Config.MaxHops times (views that
//     disagree for a while) is refused with ErrUnavailable (an
//     rpc.Unavailable status). Ordering between messages of one sender is
//     kept while the grain stays on one node, not across a handover.
//   - Cost: an idle grain is its actor (a few hundred bytes), its state,
//     and one table entry. No goroutine or timer per grain: one sweeper
//     per System handles idle deactivation and periodic flushes.
//
// # Synced state
//
// A kind whose state is a proto.Message can mirror it to clients
// (Kind.Sync, package propsync): clients subscribe through a gateway
// route (gate.UserGrain(kind, propsync.Service) to their own grain,
// gate.SyncGrain(kind) to the one they name), get a snapshot, then a
// delta pushed to their session after each turn that changed what they
// may see (Config.Push sends it: gate.Push, or app's Env.PushSession).
// The runtime answers Subscribe and Unsubscribe itself; subscriptions end
// with the activation, which tells the subscribers so. See SyncOptions.
//
// # RPC
//
// System implements rpc.GrainResolver, so a generated client made with
// rpc.WithGrains(system) calls a grain by identity: rpc.Grain(kind, key)
// resolves to the grain's activation (activating it if needed). The grain
// serves the generated service with an rpc.Dispatcher, whose Handle it
// calls from its Receive; the service's methods then run in the grain's
// turn, with its state at hand:
//
//	func (g *player) Receive(c *grain.Context) { g.rpc.Handle(c.Actor()) }
package grain
