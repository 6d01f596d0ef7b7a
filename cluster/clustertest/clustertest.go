// Package clustertest runs a guild cluster inside one test process: an
// embedded etcd server and N cluster nodes that talk to each other over real
// TCP on 127.0.0.1, each with its own etcd client, membership and global-name
// registry. It is meant for the tests of code built on guild, as well as
// guild's own.
//
//	func TestPing(t *testing.T) {
//		c := clustertest.Start(t, clustertest.Options{Nodes: 3})
//		pid, _ := c.Node(2).SpawnFunc(pong)
//		reply, err := c.Node(0).Call(ctx, pid, wrapperspb.String("ping"))
//		...
//	}
//
// Start registers a t.Cleanup that closes every node, every membership and
// the etcd server, in that order, so a test needs no teardown of its own.
// A test may close a node earlier (c.Nodes[i].Close()) to see how the others
// react; closing it again in the cleanup does nothing.
//
// Node i (counting from 0) gets the logical address
// actor.MustAddr(cluster, type, i+1), where cluster and type come from
// Options. Every node's view of the membership holds all the nodes before
// Start returns.
//
// The embedded etcd keeps its data in t.TempDir(). Its goroutines and those
// of the nodes all end in the cleanup, so a package using clustertest can
// check for leaks with go.uber.org/goleak in TestMain.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport/tcp"
)

// Defaults used by Start for zero Options fields.
const (
	DefaultNodes = 3
	DefaultTTL   = 2 * time.Second
)

// WaitTimeout bounds how long Start and WaitMembers wait for the views to
// converge.
const WaitTimeout = 10 * time.Second

// Options configures a Cluster. The zero value is three nodes of type 1 in
// cluster 1.
type Options struct {
	// Nodes is the number of nodes. Default 3.
	Nodes int
	// Cluster is the cluster number of every node's address. Default 1.
	Cluster int
	// Clusters, optional, gives the cluster number of each node, for
	// tests of several clusters sharing one etcd (see cluster.Selector and
	// Export). Its length must be Nodes; it overrides Cluster.
	Clusters []int
	// Types gives the node type of each node. Its length must be Nodes;
	// nil means every node is of type 1.
	Types []int
	// Export, optional, sets cluster.Member.Export of each node: the node
	// may be picked by nodes of other clusters. Its length must be Nodes.
	Export []bool
	// TTL is the etcd lease TTL of every node: how long a crashed node's
	// record and names outlive it. Default 2s; at least 1s.
	TTL time.Duration
	// Logger receives the logs of the nodes and memberships. Default:
	// discarded.
	Logger *slog.Logger
	// Actor is the template of every node's actor configuration. Its Addr
	// is replaced per node; its Remote and Names are set by cluster.Start.
	// A nil Actor.Logger means Logger.
	Actor actor.Config
	// Transport is the template of every node's TCP transport
	// configuration (queue bound, heartbeats, backoff); the zero value
	// means tcp's defaults. Its Self, Listen, Resolve, Handler, TLS and
	// Logger are set by cluster.Start.
	Transport tcp.Config
}

// Cluster is N guild nodes in one process: one embedded etcd, real TCP
// between nodes. Its fields are set by Start and must not be changed.
type Cluster struct {
	// Nodes are the cluster nodes; Nodes[i] has the address Addrs[i].
	Nodes []*cluster.Node
	// Addrs are the logical addresses of the nodes.
	Addrs []actor.Addr
	// Etcd is the embedded etcd server. Its Endpoints let a test connect
	// more clients, e.g. a node started by hand.
	Etcd *etcd.Embedded
	// Members are the memberships (and name registries) of the nodes, one
	// etcd client each.
	Members []*etcd.Membership
	// TTL is the lease TTL the nodes use.
	TTL time.Duration
}

// resolved checks opts and fills in its defaults.
func (opts Options) resolved() (Options, error) {
	if opts.Nodes == 0 {
		opts.Nodes = DefaultNodes
	}
	if opts.Nodes < 0 {
		return opts, fmt.Errorf("negative Options.Nodes %d", opts.Nodes)
	}
	if opts.Cluster == 0 {
		opts.Cluster = 1
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Actor.Logger == nil {
		opts.Actor.Logger = opts.Logger
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"Clusters", len(opts.Clusters)}, {"Types", len(opts.Types)}, {"Export", len(opts.Export)}} {
		if f.n != 0 && f.n != opts.Nodes {
			return opts, fmt.Errorf("len(Options.%s) = %d, want Options.Nodes = %d", f.name, f.n, opts.Nodes)
		}
	}
	return opts, nil
}

// addr is the address of node i.
func (opts Options) addr(i int) (actor.Addr, error) {
	cl, typ := opts.Cluster, 1
	if opts.Clusters != nil {
		cl = opts.Clusters[i]
	}
	if opts.Types != nil {
		typ = opts.Types[i]
	}
	return actor.NewAddr(cl, typ, i+1)
}

// Start runs an embedded etcd and opts.Nodes cluster nodes, and waits until
// every node's view holds every node. It fails t (t.Fatal) on any error,
// and registers a t.Cleanup that closes everything; a Close error there
// fails t too. Call it from the test goroutine.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	opts, err := opts.resolved()
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	c := &Cluster{TTL: opts.TTL}
	for i := range opts.Nodes {
		a, err := opts.addr(i)
		if err != nil {
			t.Fatalf("clustertest: node %d: %v", i, err)
		}
		c.Addrs = append(c.Addrs, a)
	}
	e, err := etcd.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	c.Etcd = e
	t.Cleanup(func() {
		if err := c.close(); err != nil {
			t.Errorf("clustertest: close: %v", err)
		}
	})
	for i, addr := range c.Addrs {
		m, err := etcd.New(etcd.Config{Endpoints: e.Endpoints(), TTL: opts.TTL, Logger: opts.Logger})
		if err != nil {
			t.Fatalf("clustertest: node %d (%v): %v", i, addr, err)
		}
		c.Members = append(c.Members, m)
		ac := opts.Actor
		ac.Addr = addr
		var member cluster.Member
		if opts.Export != nil {
			member.Export = opts.Export[i]
		}
		ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
		n, err := cluster.Start(ctx, cluster.NodeConfig{
			Actor:      ac,
			Listen:     "127.0.0.1:0",
			Membership: m,
			Names:      m.Names(),
			Logger:     opts.Logger,
			Member:     member,
			Transport:  opts.Transport,
		})
		cancel()
		if err != nil {
			t.Fatalf("clustertest: node %d (%v): %v", i, addr, err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	c.waitMembers(t, len(c.Nodes), false)
	return c
}

// close closes the nodes, then the memberships, then etcd.
func (c *Cluster) close() error {
	var errs []error
	for i, n := range c.Nodes {
		if err := n.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node %d (%v): %w", i, c.Addrs[i], err))
		}
	}
	for i, m := range c.Members {
		if err := m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("membership %d (%v): %w", i, c.Addrs[i], err))
		}
	}
	if err := c.Etcd.Close(); err != nil {
		errs = append(errs, fmt.Errorf("etcd: %w", err))
	}
	return errors.Join(errs...)
}

// Node returns the actor node of node i: c.Nodes[i].Actor().
func (c *Cluster) Node(i int) *actor.Node { return c.Nodes[i].Actor() }

// Membership returns the membership of node i: its view of the cluster, and
// through Names its global-name registry.
func (c *Cluster) Membership(i int) *etcd.Membership { return c.Members[i] }

// WaitMembers waits until the view of every node still running holds
// exactly n members, polling every few milliseconds, and fails t (t.Fatal)
// after WaitTimeout. A node counts as closed, and is skipped, once its own
// view no longer holds itself, which cluster.Node.Close causes. So after
// c.Nodes[k].Close(), WaitMembers(t, len(c.Nodes)-1) waits until the others
// have seen node k go. Call it from the test goroutine.
func (c *Cluster) WaitMembers(t testing.TB, n int) {
	t.Helper()
	c.waitMembers(t, n, true)
}

// waitMembers is WaitMembers; skipClosed false checks every node, for Start,
// when a node's view may not hold itself yet.
func (c *Cluster) waitMembers(t testing.TB, n int, skipClosed bool) {
	t.Helper()
	c.WaitFor(t, fmt.Sprintf("every view to hold %d members", n), func() bool {
		for i, m := range c.Members {
			if skipClosed && c.closed(i) {
				continue
			}
			if len(m.Members()) != n {
				return false
			}
		}
		return true
	})
}

// closed reports whether node i's record is gone from its own view.
func (c *Cluster) closed(i int) bool {
	return !slices.ContainsFunc(c.Members[i].Members(), func(m cluster.Member) bool { return m.Addr == c.Addrs[i] })
}

// WaitFor polls cond until it returns true, and fails t (t.Fatal) after
// WaitTimeout, naming what it waited for; it is internal/await.True with
// WaitTimeout. Call it from the test goroutine.
func (c *Cluster) WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	await.True(t, WaitTimeout, what, cond)
}
