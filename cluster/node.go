package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/tcp"
)

// DefaultLeaveTimeout is NodeConfig.LeaveTimeout's default.
const DefaultLeaveTimeout = 5 * time.Second

// NodeConfig configures a cluster Node.
type NodeConfig struct {
	// Actor configures the actor node. Addr must be set; Remote and Names
	// are filled in by Start.
	Actor actor.Config
	// Listen is the TCP address of the transport, e.g. "127.0.0.1:0", for
	// a transport that listens (the default TCP mesh); a broker transport
	// ignores it.
	Listen string
	// Advertise, optional, is the endpoint ("host:port") other nodes dial
	// to reach this one, published in its member record: for a node
	// behind NAT, a container port mapping or a proxy. Empty means the
	// address the transport listens on.
	Advertise string
	// Membership publishes this node and resolves the others, e.g. from
	// cluster/etcd's New or NewLocal. Required. The Node leaves it on Close
	// but does not close it.
	Membership Membership
	// Harbors, for a harbor node only (Actor.Addr of type
	// actor.HarborType), is the membership every harbor of every cluster
	// joins (its own etcd, not any cluster's): the node joins it with the
	// same record as Membership, reaches the other clusters' harbors
	// through it, and relays envelopes between its cluster and theirs. It
	// is required for a harbor and refused for any other node. The Node
	// leaves it on Close but does not close it.
	Harbors Membership
	// Names, optional, resolves global names (cluster/etcd's Names()).
	Names actor.NameRegistry
	// TLS, optional, secures the transport: the connections between nodes
	// (transport/tcp) or to the broker.
	TLS *tls.Config
	// Types resolves payload types: nil means protoregistry.GlobalTypes.
	Types *protoregistry.Types
	// Logger receives the node's logs: default slog.Default().
	Logger *slog.Logger
	// Member holds extra fields for this node's record. Start fills in
	// Addr, Endpoint and Available (true, unless JoinUnavailable).
	Member Member
	// JoinUnavailable makes the node join marked unavailable: other
	// nodes' selectors (lookup by node type, rpc.AnyOf) and grain
	// placement skip it until SetAvailable(ctx, true). A program that
	// starts its services after joining (package app does) joins so, and
	// marks itself available once they serve, so that no request is sent
	// to a service that is not there yet.
	JoinUnavailable bool
	// LeaveTimeout bounds the Leave that Close makes (a node that cannot
	// reach its membership then leaves when its lease expires). Default
	// DefaultLeaveTimeout (5s).
	LeaveTimeout time.Duration
	// WatchLinkTimeout is how long a node may stay unreachable, while it
	// is still a member, before the watches of its actors end with
	// actor.ReasonLinkLost. Default DefaultWatchLinkTimeout (10s).
	WatchLinkTimeout time.Duration
	// Transport, optional, is the transport the node starts: nil means
	// the direct TCP mesh with its defaults (tcp.Config{}). Pass a
	// tcp.Config to tune the mesh (heartbeats, queues, backoff), or a
	// broker's config (transport/nats, transport/amqp, transport/redis).
	// Start hands it the node's address, Listen, TLS, Logger, a resolver
	// over the membership and the node's receiver (transport.Setup).
	Transport transport.Config
}

// Node is an actor node connected to a cluster: its actors reach actors on
// other nodes through its transport, and other nodes find it through the
// membership.
type Node struct {
	cfg    NodeConfig
	actor  *actor.Node
	tr     transport.Transport
	remote *remote
	unsub  func() // stops following the membership (and the harbors')
	member Member // this node's record as joined

	// harborMu serializes the rebuilds of the remote's harbor map (the
	// follow callbacks of two memberships may run at once on a harbor).
	// Lock order: harborMu, then the memberships' own locks (Members).
	harborMu sync.Mutex

	// On a harbor: its exports goroutine (runExports) and what it
	// publishes; nil channels on another node.
	exportsWake     chan struct{} // one slot: run now
	exportsQuit     chan struct{}
	exportsStop     sync.Once
	exportsWG       sync.WaitGroup
	harborAvailable atomic.Bool // the availability SetAvailable last asked for

	shutOnce sync.Once
	shutErr  error

	closeOnce sync.Once
	closeErr  error
}

// Start creates the actor node and its transport and joins the membership
// with this node's record (marked available unless JoinUnavailable).
func Start(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.Actor.Addr == 0 {
		return nil, errors.New("cluster: NodeConfig.Actor.Addr is not set")
	}
	if cfg.Membership == nil {
		return nil, errors.New("cluster: NodeConfig.Membership is nil")
	}
	if cfg.Actor.Addr.IsHarbor() != (cfg.Harbors != nil) {
		if cfg.Harbors == nil {
			return nil, fmt.Errorf("cluster: %v is a harbor (type %d): NodeConfig.Harbors is nil", cfg.Actor.Addr, actor.HarborType)
		}
		return nil, fmt.Errorf("cluster: NodeConfig.Harbors is set, but %v is not a harbor (type %d)", cfg.Actor.Addr, actor.HarborType)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Actor.Logger == nil {
		cfg.Actor.Logger = cfg.Logger
	}
	timeout := cfg.Actor.RequestTimeout
	if timeout <= 0 {
		timeout = actor.DefaultConfig().RequestTimeout
	}
	r := newRemote(cfg.Actor.Addr, cfg.Types, cfg.Logger, timeout, cfg.Membership, cfg.WatchLinkTimeout)
	ac := cfg.Actor
	ac.Remote = r
	ac.Names = cfg.Names
	an, err := actor.NewNode(ac)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	r.node.Store(an)
	tc := cfg.Transport
	if tc == nil {
		tc = tcp.Config{}
	}
	tr, err := tc.Start(transport.Setup{
		Self:    cfg.Actor.Addr,
		Listen:  cfg.Listen,
		Resolve: resolver(cfg.Membership, cfg.Harbors),
		Handler: r,
		TLS:     cfg.TLS,
		Logger:  cfg.Logger,
	})
	if err != nil {
		_ = an.Close()
		r.close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	r.tr.Store(&trBox{t: tr})
	n := &Node{cfg: cfg, actor: an, tr: tr, remote: r}
	if cfg.Harbors != nil {
		n.exportsWake, n.exportsQuit = make(chan struct{}, 1), make(chan struct{})
		n.harborAvailable.Store(!cfg.JoinUnavailable)
	}
	n.unsub = cfg.Membership.Subscribe(n.follow)
	if cfg.Harbors != nil {
		unsubOwn, unsubHarbors := n.unsub, cfg.Harbors.Subscribe(n.follow)
		n.unsub = func() { unsubOwn(); unsubHarbors() }
	}
	n.rebuildHarbors()
	m := cfg.Member.Clone()
	m.Addr = cfg.Actor.Addr
	m.Endpoint = tr.Endpoint()
	if cfg.Advertise != "" {
		m.Endpoint = cfg.Advertise
	}
	m.Available = !cfg.JoinUnavailable
	n.member = m.Clone()
	if err := cfg.Membership.Join(ctx, m); err != nil {
		n.unsub()
		_ = an.Close()
		_ = tr.Close()
		r.close()
		return nil, fmt.Errorf("cluster: join: %w", err)
	}
	if cfg.Harbors != nil {
		if err := cfg.Harbors.Join(ctx, m.Clone()); err != nil {
			n.unsub()
			lctx, cancel := context.WithTimeout(context.Background(), n.leaveTimeout())
			_ = cfg.Membership.Leave(lctx)
			cancel()
			_ = an.Close()
			_ = tr.Close()
			r.close()
			return nil, fmt.Errorf("cluster: join the harbors: %w", err)
		}
		n.exportsWG.Add(1)
		go n.runExports()
	}
	return n, nil
}

// stopExports stops a harbor's exports goroutine and waits for it. Safe
// to call twice, and on any node.
func (n *Node) stopExports() {
	if n.exportsQuit == nil {
		return
	}
	n.exportsStop.Do(func() { close(n.exportsQuit) })
	n.exportsWG.Wait()
}

// leaveTimeout is LeaveTimeout or its default.
func (n *Node) leaveTimeout() time.Duration {
	if n.cfg.LeaveTimeout > 0 {
		return n.cfg.LeaveTimeout
	}
	return DefaultLeaveTimeout
}

// memberships returns the memberships the node joined: its cluster's, and
// on a harbor the harbors'.
func (n *Node) memberships() []Membership {
	if n.cfg.Harbors != nil {
		return []Membership{n.cfg.Membership, n.cfg.Harbors}
	}
	return []Membership{n.cfg.Membership}
}

// rebuildHarbors gives the remote the harbors of the current views.
func (n *Node) rebuildHarbors() {
	n.harborMu.Lock()
	defer n.harborMu.Unlock()
	var views [][]Member
	for _, ms := range n.memberships() {
		views = append(views, ms.Members())
	}
	n.remote.setHarbors(buildHarborMap(n.cfg.Actor.Addr, views...))
}

// follow keeps the transport in step with the membership. A member that
// leaves (gracefully, or when its lease expires after a crash) is
// forgotten: what was queued for it is dropped, requests waiting on it
// fail, and it is no longer redialled; a member that leaves gracefully
// once it has closed its connection, so that the answers it wrote last are
// read (remote.forgetLeft). A member that joins is presumed reachable, so
// requests to it go out (and dial) again.
func (n *Node) follow(ev Event) {
	addr := ev.Member.Addr
	if addr == n.cfg.Actor.Addr {
		return
	}
	if addr.IsHarbor() || addr.Cluster() != n.cfg.Actor.Addr.Cluster() {
		n.rebuildHarbors()
	}
	n.wakeExports()
	if ev.Kind == Leave && n.cfg.Harbors != nil && n.stillMember(addr) {
		return // in the other view still (a harbor of this cluster left one of the two)
	}
	switch ev.Kind {
	case Leave:
		n.remote.watches.endNode(addr, actor.ReasonNodeDown)
		n.remote.forgetLeft(addr, func() { n.tr.Forget(addr) })
	case Join:
		n.remote.takeLeft(addr, nil) // back before it was forgotten
		n.remote.PeerUp(addr)
	}
}

// stillMember reports whether a is in one of the node's views.
func (n *Node) stillMember(a actor.Addr) bool {
	for _, ms := range n.memberships() {
		for _, m := range ms.Members() {
			if m.Addr == a {
				return true
			}
		}
	}
	return false
}

// resolver returns the transport's Resolve: the endpoint of a member of
// ms, or, on a harbor, of the harbors' membership hs (nil otherwise).
func resolver(ms, hs Membership) func(actor.Addr) (string, error) {
	return func(a actor.Addr) (string, error) {
		views := []Membership{ms}
		if hs != nil && a.IsHarbor() {
			views = append(views, hs)
		}
		for _, v := range views {
			for _, m := range v.Members() {
				if m.Addr == a {
					if m.Endpoint == "" {
						return "", fmt.Errorf("%w: member %v has no endpoint", ErrNoMember, a)
					}
					return m.Endpoint, nil
				}
			}
		}
		return "", fmt.Errorf("%w: %v is not a member", ErrNoMember, a)
	}
}

// Actor returns the actor node.
func (n *Node) Actor() *actor.Node { return n.actor }

// Addr returns the node's logical address.
func (n *Node) Addr() actor.Addr { return n.cfg.Actor.Addr }

// Route returns the peer a message for a node at dst goes to from this
// node: dst itself in this node's cluster; for another cluster, the
// harbor it would be relayed through now (one of this cluster's, or, on
// a harbor, one of dst's cluster's). It fails with ErrNoRoute when no
// live harbor leads there. Messages go the same way while the harbors
// stay the same; a harbor whose connection is down is passed over.
func (n *Node) Route(dst actor.Addr) (actor.Addr, error) { return n.remote.route(dst) }

// Pending returns how many requests the node waits on answers for: its
// actors' requests to other nodes and, on a harbor, the requests it
// relays between clusters.
func (n *Node) Pending() int { return n.remote.pendingCount() }

// Membership returns the membership the node joined (NodeConfig.Membership),
// for packages that publish in this node's record or follow the view, such
// as package stream.
func (n *Node) Membership() Membership { return n.cfg.Membership }

// TLS returns the TLS configuration of the node's mesh, so that
// connections the node makes besides its transport's (package stream's)
// are secured as its mesh is: NodeConfig.TLS, or else the TLS of a
// tcp.Config given as NodeConfig.Transport; nil when the mesh runs in
// clear. (For a broker transport, NodeConfig.TLS is the broker client's,
// which cannot serve.)
func (n *Node) TLS() *tls.Config {
	if n.cfg.TLS != nil {
		return n.cfg.TLS
	}
	switch tc := n.cfg.Transport.(type) {
	case tcp.Config:
		return tc.TLS
	case *tcp.Config:
		if tc != nil {
			return tc.TLS
		}
	}
	return nil
}

// Endpoint returns how other nodes reach this one through its transport
// (transport.Transport's Endpoint): the address the TCP mesh listens on,
// or the node's subject, queue or key on a broker.
func (n *Node) Endpoint() string { return n.tr.Endpoint() }

// PeerStats returns the per-peer counters of the node's transport (queue
// depth, frames and bytes in and out, connects, up or down), or nil when
// its transport keeps none (transport.StatsReporter: the TCP mesh does,
// the brokers do not yet).
func (n *Node) PeerStats() []transport.PeerStats {
	if r, ok := n.tr.(transport.StatsReporter); ok {
		return r.PeerStats()
	}
	return nil
}

// SetAvailable publishes whether other nodes may choose this node for new
// work: selectors (lookup by node type, rpc.AnyOf) and grain placement
// skip an unavailable member, while PIDs already known keep working. A
// node about to leave marks itself unavailable first; Shutdown does.
//
// It returns once this node's own view of the membership shows the change
// (so its own selectors agree at once), or when ctx ends, or after 5 s:
// the record is published either way, and other nodes see it as their
// views catch up.
func (n *Node) SetAvailable(ctx context.Context, available bool) error {
	// Start from the record as published (others, such as package grain,
	// add services and metadata to it), falling back to the joined one.
	m := n.member.Clone()
	for _, cur := range n.cfg.Membership.Members() {
		if cur.Addr == m.Addr {
			m = cur
			break
		}
	}
	m.Available = available
	if err := n.cfg.Membership.Update(ctx, m); err != nil {
		return fmt.Errorf("cluster: mark %s: %w", map[bool]string{true: "available", false: "unavailable"}[available], err)
	}
	if n.cfg.Harbors != nil {
		// The harbors' record carries the exports besides: start from it.
		n.harborAvailable.Store(available)
		hm := m
		for _, cur := range n.cfg.Harbors.Members() {
			if cur.Addr == m.Addr {
				hm = cur
				break
			}
		}
		hm.Available = available
		err := n.cfg.Harbors.Update(ctx, hm)
		n.wakeExports() // and it mends a record an exports update raced with
		if err != nil {
			return fmt.Errorf("cluster: mark %s among the harbors: %w", map[bool]string{true: "available", false: "unavailable"}[available], err)
		}
	}
	for give := time.Now().Add(viewWait); !n.viewShows(m.Addr, available) && time.Now().Before(give); {
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

// viewWait bounds how long SetAvailable waits for its own view to show
// the change.
const viewWait = 5 * time.Second

// viewShows reports whether this node's view has addr's record with the
// given availability.
func (n *Node) viewShows(addr actor.Addr, available bool) bool {
	for _, cur := range n.cfg.Membership.Members() {
		if cur.Addr == addr {
			return cur.Available == available
		}
	}
	return false
}

// Shutdown leaves the cluster in order, so that nothing in flight is lost:
//
//  1. the node's record is marked unavailable, so other nodes' selectors
//     (and grain placement) stop choosing it; PIDs already known keep
//     working;
//  2. the actor node drains (actor.Node.Shutdown): actors handle what is
//     queued (including requests still arriving from other nodes, and
//     calling other nodes as they need to) and stop, children first;
//  3. requests this node is waiting on finish: its actors' own, and those
//     it forwarded for other nodes, whose answers it relays back;
//  4. it leaves the membership, writes out what is queued for its peers
//     and closes the transport.
//
// Grains should be handed over before (grain.System.Close), and a gateway
// should tell its clients first (gate.Gateway.Shutdown); package app does
// both, in that order. When ctx ends first, Shutdown falls back to Close
// and returns ctx's error. It does not close the Membership. Shutdown and
// Close are safe to call twice and together.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutOnce.Do(func() { n.shutErr = n.shutdown(ctx) })
	return n.shutErr
}

func (n *Node) shutdown(ctx context.Context) error {
	var errs []error
	if err := n.SetAvailable(ctx, false); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotJoined) {
		errs = append(errs, err)
	}
	if err := n.actor.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("cluster: drain the actors: %w", err))
	}
	if err := n.remote.waitIdle(ctx); err != nil {
		errs = append(errs, fmt.Errorf("cluster: %d requests still waiting for answers: %w", n.remote.pendingCount(), err))
	}
	n.unsub()
	n.stopExports()
	if err := n.cfg.Membership.Leave(ctx); err != nil && !errors.Is(err, ErrClosed) {
		errs = append(errs, fmt.Errorf("cluster: leave: %w", err))
	}
	if n.cfg.Harbors != nil {
		if err := n.cfg.Harbors.Leave(ctx); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, fmt.Errorf("cluster: leave the harbors: %w", err))
		}
	}
	if err := n.tr.Flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("cluster: write out the last envelopes: %w", err))
	}
	errs = append(errs, n.Close())
	return errors.Join(errs...)
}

// Close leaves the membership, closes the actor node, then the transport,
// at once: requests in flight fail (see Shutdown for the orderly way). It
// does not close the Membership. It is safe to call twice.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		timeout := n.cfg.LeaveTimeout
		if timeout <= 0 {
			timeout = DefaultLeaveTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		n.unsub() // safe to repeat
		n.stopExports()
		errLeave := n.cfg.Membership.Leave(ctx)
		if errors.Is(errLeave, ErrClosed) {
			errLeave = nil // a closed membership has left already
		}
		if n.cfg.Harbors != nil {
			if err := n.cfg.Harbors.Leave(ctx); err != nil && !errors.Is(err, ErrClosed) {
				errLeave = errors.Join(errLeave, fmt.Errorf("leave the harbors: %w", err))
			}
		}
		errActor := n.actor.Close()
		errTr := n.tr.Close()
		n.remote.close()
		n.closeErr = errors.Join(errLeave, errActor, errTr)
	})
	return n.closeErr
}
