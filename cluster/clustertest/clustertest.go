// Package clustertest runs a guild cluster inside one test process: an
// embedded etcd server and N cluster nodes that talk to each other over real
// TCP on 127.0.0.1, each with its own etcd client, membership and global-name
// registry. It is meant for the tests of code built on guild, as well as
// guild's own, and it can break that cluster on purpose: partitions, paused
// and killed nodes, an etcd outage.
//
//	func TestPing(t *testing.T) {
//		c := clustertest.Start(t, clustertest.Options{Nodes: 3})
//		pid, _ := c.Node(2).SpawnFunc(pong)
//		reply, err := c.Node(0).Call(ctx, pid, wrapperspb.String("ping"))
//		...
//	}
//
// StartClusters runs several such clusters, each with its own etcd, joined
// by harbor nodes that share an etcd of their own (package cluster's
// "Harbors"); each is a Cluster with its fault methods, and a node killed
// or paused in one is so for the others too (their proxies reset or
// blackhole its connections to their nodes). Partition stays within a
// cluster.
//
// Start registers a t.Cleanup that closes every node, every membership, the
// fault proxies and the etcd server, in that order, so a test needs no
// teardown of its own.
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
//
// # Faults
//
// Every byte between two nodes, and between a node and etcd, crosses a
// proxy of package faultnet that the Cluster controls: node i advertises
// (cluster.NodeConfig.Advertise) the address of a proxy in front of its
// transport's listener, which learns from the transport's hello which node
// dialled, and node i's etcd client dials etcd through a proxy of its own.
// The fault methods turn these proxies' modes; each one logs what it did
// with t.Logf and a timestamp, as do the proxies for every connection they
// hold or reset, so a failing test shows its history. Only node-to-node and
// etcd traffic is proxied: a gateway's client listeners, a store's Redis
// and the like are not.
//
//   - Partition(groups...) cuts every link between nodes of different
//     groups; Heal ends it. A cut link is blackholed, not closed: bytes
//     already on the way are held, and so is a close, so each transport
//     learns of the partition only from its heartbeats (tcp.Config
//     HeartbeatInterval and DeadAfter), as on a real network. A connection
//     dialled across the cut is accepted but its hello is held, so the
//     dialler times out in the handshake (tcp.Config.DialTimeout), as it
//     would if its SYN were lost, and the node it dialled never sees it.
//     It is not refused: a refusal is what a dead process on a live host
//     looks like, not a partition. One still waiting when the partition
//     heals goes through. etcd stays reachable from every group,
//     so the views do not change: a partition tests the transport and what
//     is built on it, and Pause or EtcdOutage cut etcd.
//   - Pause(i) blackholes every link of node i, its etcd connection
//     included, as if its process were stopped (SIGSTOP): its lease
//     keepalives stop, so the others drop it from their views within the
//     TTL, and their transports declare it dead. Resume(i) lets its bytes
//     flow again: what it had sent arrives late, its keeper finds its lease
//     lost and joins again with a new one, and the others see it join.
//     Unlike SIGSTOP, node i's goroutines keep running inside the test
//     process (its timers fire, its actors run); only its network is
//     frozen. Package cluster/clustertest/proc runs nodes in child
//     processes that a test can really stop.
//   - Kill(i) is a crash (SIGKILL): every connection of node i is reset
//     (RST) and so is every new one, in both directions; its etcd lease is
//     not revoked, so the others see it leave only when the lease expires,
//     within the TTL. Node i is then closed in the background, with its etcd
//     traffic cut first so that its Leave fails instead of revoking the
//     lease (it gives up after a few seconds; Kill does not wait for it).
//     Restart(t, i) starts a fresh node with the same address, options and
//     advertised endpoint, once etcd has let the old record go.
//   - EtcdOutage() blackholes every node's etcd connection until
//     EtcdRestore(): an outage shorter than about two thirds of the TTL
//     (the keepalive period is a third of it) costs no lease, and no view
//     changes meanwhile; membership changes made during it, such as a
//     node's Leave, complete when it ends.
//
// A node's other listeners can be put behind a proxy too
// (Cluster.FrontProxy): package stream's tests put each node's stream host
// there, so that Kill resets its stream connections with the rest.
//
// # Transports
//
// The nodes talk over the TCP mesh unless Options.Transport says
// otherwise, or, when it is nil, the environment variable
// GUILD_TEST_TRANSPORT=nats does: then the Cluster runs an embedded NATS
// server (transport/nats/natsembed) and every node reaches it through a
// fault proxy of its own, so Pause, Kill and Restart act on that link
// (a killed node's subscription goes away, and its peers learn it from
// NATS's "no responders" within a heartbeat; a paused node stays
// subscribed but answers nothing, and its peers declare it dead after
// DeadAfter). Partition and Heal skip the test: the nodes share the
// broker, and there is no link between two nodes to cut. guild's CI runs
// the cluster, RPC, grain and gateway suites both ways, so that no layer
// above the transport depends on the TCP mesh by accident.
//
// The faults combine: a killed node stays killed through Heal, a paused
// node stays paused through EtcdRestore, and so on; each fault is undone
// only by its own counterpart (or, for a kill, by Restart). The cleanup
// lifts every fault but the kills before it closes the nodes.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest/faultnet"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/nats"
	"github.com/guildkit/guild/transport/nats/natsembed"
	"github.com/guildkit/guild/transport/tcp"
)

// TransportEnv names the environment variable that chooses the transport
// of a Cluster whose Options.Transport is nil: "tcp" (or unset) or
// "nats".
const TransportEnv = "GUILD_TEST_TRANSPORT"

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
	// Transport is the template of every node's transport: nil, a
	// tcp.Config (queue bound, heartbeats, backoff) or a nats.Config.
	// nil means the TCP mesh with its defaults, unless the environment
	// variable GUILD_TEST_TRANSPORT says "nats": then it means
	// nats.Config{}, so that a whole test suite can run on NATS without a
	// change (see the package doc's Transports); "tcp-queued" means the
	// mesh with tcp.Config.QueuedWrites (no direct writes).
	//
	// On NATS, the Cluster runs an embedded NATS server, and each node
	// reaches it through a fault proxy of its own (its URL is replaced):
	// Pause, Kill and Restart work on that link; Partition and Heal skip
	// the test, since the nodes share the broker and have no link between
	// them to cut. Another transport.Config is used as it is, without
	// fault proxies between the nodes (as with Direct).
	Transport transport.Config
	// HarborEtcd, optional, holds the endpoints of the harbors' etcd
	// (the membership every harbor of every cluster joins): each node of
	// type actor.HarborType then joins it, through a fault proxy of its
	// own, as cluster.NodeConfig.Harbors. StartClusters sets it; without
	// it a Cluster cannot start a harbor node.
	HarborEtcd []string
	// Direct connects the nodes to each other and to etcd without the
	// fault proxies, for benchmarks. A proxy adds a loopback hop and a
	// copy to every connection: on a 2-CPU machine a call round trip's
	// median goes from about 30µs to 55µs (BenchmarkClusterCall), and
	// one-way sends between two nodes cost 350 to 650ns each instead of
	// about 300ns (BenchmarkClusterSend). With Direct, the fault methods,
	// Restart excepted, fail the test.
	Direct bool
}

// Cluster is N guild nodes in one process: one embedded etcd, real TCP
// between nodes, through proxies that the fault methods control. Its
// fields are set by Start and must not be changed; Restart replaces
// Nodes[i] and Members[i].
type Cluster struct {
	// Nodes are the cluster nodes; Nodes[i] has the address Addrs[i].
	Nodes []*cluster.Node
	// Addrs are the logical addresses of the nodes.
	Addrs []actor.Addr
	// Etcd is the embedded etcd server. Its Endpoints let a test connect
	// more clients, e.g. a node started by hand; they reach etcd directly,
	// not through the fault proxies.
	Etcd *etcd.Embedded
	// Members are the memberships (and name registries) of the nodes, one
	// etcd client each.
	Members []*etcd.Membership
	// TTL is the lease TTL the nodes use.
	TTL time.Duration

	t           testing.TB
	opts        Options
	onNATS      bool              // the nodes talk over NATS
	nats        *natsembed.Server // the broker, on NATS; guarded by mu once started
	natsAddr    string            // its address while BrokerStop has it down
	nodeProxies []*faultnet.Proxy // nodeProxies[i] is in front of node i's transport (on NATS: between it and the broker)
	etcdProxies []*faultnet.Proxy // etcdProxies[i] is between node i and etcd
	// harborProxies[i] is between harbor node i and the harbors' etcd
	// (nil for another node); harborMembers[i] is its membership there,
	// replaced by Restart, so guarded by mu.
	harborProxies []*faultnet.Proxy
	harborMembers []*etcd.Membership
	// grp, for a cluster of StartClusters, shares the fault state of the
	// nodes with the other clusters' proxies; nil otherwise. Set once,
	// under mu, before any fault.
	grp *clusterGroup
	// frontProxies[i] are FrontProxy's proxies of node i; guarded by mu.
	frontProxies [][]*faultnet.Proxy
	bg           sync.WaitGroup // background closes of killed nodes

	// mu guards the fault state. It is held while the state is applied to
	// the proxies, so that two faults do not interleave. Lock order:
	// Cluster.mu, then faultnet's Proxy.mu (taken inside Proxy methods);
	// neither is held while calling out: t.Logf, node and membership
	// methods, the proxies' Logf all run without it.
	mu       sync.Mutex
	group    []int      // partition group of each node: all 0 when healed
	paused   []bool     // Pause
	killed   []*killing // non-nil from Kill until Restart
	etcdDown bool       // EtcdOutage
}

// killing is the background close of a killed node.
type killing struct {
	done chan struct{} // closed when the close has returned
	err  error         // its result, set before done is closed
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
	if opts.Transport == nil {
		switch env := os.Getenv(TransportEnv); env {
		case "", "tcp":
		case "tcp-queued": // the TCP mesh without direct writes
			opts.Transport = tcp.Config{QueuedWrites: true}
		case "nats":
			opts.Transport = nats.Config{}
		default:
			return opts, fmt.Errorf("%s=%q: want tcp, tcp-queued or nats", TransportEnv, env)
		}
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

// Start runs an embedded etcd and opts.Nodes cluster nodes, each behind
// its fault proxies, and waits until every node's view holds every node.
// It fails t (t.Fatal) on any error, and registers a t.Cleanup that closes
// everything; a Close error there fails t too. Call it from the test
// goroutine. The fault methods log to t, so t must be the test (or
// benchmark) that uses the Cluster.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	opts, err := opts.resolved()
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	c := &Cluster{
		TTL:    opts.TTL,
		t:      t,
		opts:   opts,
		group:  make([]int, opts.Nodes),
		paused: make([]bool, opts.Nodes),
		killed: make([]*killing, opts.Nodes),

		harborMembers: make([]*etcd.Membership, opts.Nodes),
	}
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
	etcdAddr := strings.TrimPrefix(e.Endpoints()[0], "http://")
	_, onNATS := opts.Transport.(nats.Config)
	if onNATS {
		if c.nats, err = natsembed.Start("127.0.0.1:0"); err != nil {
			t.Fatalf("clustertest: %v", err)
		}
		c.onNATS = true
	}
	for i, addr := range c.Addrs {
		if opts.Direct {
			break
		}
		ep, err := faultnet.Listen(faultnet.Config{
			Name:   fmt.Sprintf("etcd proxy of node %d (%v)", i, addr),
			Target: etcdAddr,
			Logf:   c.proxyLogf,
		})
		if err != nil {
			t.Fatalf("clustertest: node %d (%v): %v", i, addr, err)
		}
		c.etcdProxies = append(c.etcdProxies, ep)
		var hp *faultnet.Proxy
		if addr.IsHarbor() && len(opts.HarborEtcd) > 0 {
			hp, err = faultnet.Listen(faultnet.Config{
				Name:   fmt.Sprintf("harbors' etcd proxy of node %d (%v)", i, addr),
				Target: strings.TrimPrefix(opts.HarborEtcd[0], "http://"),
				Logf:   c.proxyLogf,
			})
			if err != nil {
				t.Fatalf("clustertest: node %d (%v): %v", i, addr, err)
			}
		}
		c.harborProxies = append(c.harborProxies, hp)
		npc := faultnet.Config{
			Name:     fmt.Sprintf("proxy of node %d (%v)", i, addr),
			Identify: helloPeer,
			Logf:     c.proxyLogf,
		}
		if onNATS {
			npc.Name = fmt.Sprintf("NATS proxy of node %d (%v)", i, addr)
			npc.Identify, npc.Target = nil, c.nats.Addr()
		} else if _, tcpMesh := opts.Transport.(tcp.Config); opts.Transport != nil && !tcpMesh {
			continue // a transport clustertest cannot put proxies in front of
		}
		np, err := faultnet.Listen(npc)
		if err != nil {
			t.Fatalf("clustertest: node %d (%v): %v", i, addr, err)
		}
		c.nodeProxies = append(c.nodeProxies, np)
	}
	for i, addr := range c.Addrs {
		n, m, err := c.startNode(i, 0)
		if err != nil {
			t.Fatalf("clustertest: node %d (%v): %v", i, addr, err)
		}
		c.Nodes = append(c.Nodes, n)
		c.Members = append(c.Members, m)
	}
	c.waitMembers(t, len(c.Nodes), false)
	return c
}

// startNode starts node i: its membership, through its etcd proxy, and its
// cluster node, advertising its node proxy, which it then points at the
// node's listener. joinWait is the membership's etcd.Config.JoinWait.
func (c *Cluster) startNode(i int, joinWait time.Duration) (*cluster.Node, *etcd.Membership, error) {
	opts := c.opts
	endpoints, advertise := c.Etcd.Endpoints(), ""
	tr := opts.Transport
	if nc, ok := tr.(nats.Config); ok {
		nc.URL = c.natsServer().URL()
		if nc.Prefix == "" {
			nc.Prefix = natsPrefix
		}
		if len(c.nodeProxies) > i {
			nc.URL = "nats://" + c.nodeProxies[i].Addr()
		}
		tr = nc
	}
	if len(c.etcdProxies) > i {
		endpoints = []string{"http://" + c.etcdProxies[i].Addr()}
	}
	if len(c.nodeProxies) > i && !c.onNATS {
		advertise = c.nodeProxies[i].Addr()
	}
	m, err := etcd.New(etcd.Config{
		Endpoints: endpoints,
		TTL:       opts.TTL,
		JoinWait:  joinWait,
		Logger:    opts.Logger,
	})
	if err != nil {
		return nil, nil, err
	}
	var harbors cluster.Membership
	if c.Addrs[i].IsHarbor() && len(opts.HarborEtcd) > 0 {
		hendpoints := opts.HarborEtcd
		if len(c.harborProxies) > i && c.harborProxies[i] != nil {
			hendpoints = []string{"http://" + c.harborProxies[i].Addr()}
		}
		hm, err := etcd.New(etcd.Config{
			Endpoints: hendpoints,
			TTL:       opts.TTL,
			JoinWait:  joinWait,
			Logger:    opts.Logger,
		})
		if err != nil {
			_ = m.Close()
			return nil, nil, err
		}
		defer func() {
			if harbors != nil {
				_ = hm.Close() // the node did not start
			}
		}()
		c.mu.Lock()
		c.harborMembers[i] = hm
		c.mu.Unlock()
		harbors = hm
	}
	ac := opts.Actor
	ac.Addr = c.Addrs[i]
	var member cluster.Member
	if opts.Export != nil {
		member.Export = opts.Export[i]
	}
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout+joinWait)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:      ac,
		Listen:     "127.0.0.1:0",
		Advertise:  advertise,
		Membership: m,
		Harbors:    harbors,
		Names:      m.Names(),
		Logger:     opts.Logger,
		Member:     member,
		Transport:  tr,
		// A killed node's Close cannot reach etcd: it gives up soon,
		// and its lease expires as after a crash.
		LeaveTimeout: time.Second,
	})
	if err != nil {
		_ = m.Close()
		return nil, nil, err
	}
	harbors = nil // started: the cleanup closes it
	if len(c.nodeProxies) > i && !c.onNATS {
		c.nodeProxies[i].SetTarget(n.Endpoint())
	}
	return n, m, nil
}

// close lifts every fault but the kills, waits for the killed nodes'
// background closes, then closes the other nodes, their memberships, the
// proxies and etcd.
func (c *Cluster) close() error {
	c.mu.Lock()
	clear(c.group)
	clear(c.paused)
	c.etcdDown = false
	c.applyLocked()
	killed := make([]bool, len(c.killed))
	for i, k := range c.killed {
		killed[i] = k != nil
	}
	c.mu.Unlock()
	c.bg.Wait()
	var errs []error
	for i, n := range c.Nodes {
		if killed[i] {
			continue
		}
		if err := n.Close(); err != nil {
			if leaveSlow(err) {
				c.t.Logf("clustertest: close: node %d (%v): %v", i, c.Addrs[i], err)
				continue
			}
			errs = append(errs, fmt.Errorf("node %d (%v): %w", i, c.Addrs[i], err))
		}
	}
	for i, m := range slices.Concat(c.Members, c.harborMembersNow()) {
		if m == nil || killed[i%len(c.Members)] {
			continue
		}
		if err := m.Close(); err != nil {
			if leaveSlow(err) {
				c.t.Logf("clustertest: close: membership %d (%v): %v", i, c.Addrs[i], err)
				continue
			}
			errs = append(errs, fmt.Errorf("membership %d (%v): %w", i, c.Addrs[i], err))
		}
	}
	c.mu.Lock()
	fronts := slices.Concat(c.frontProxies...)
	c.mu.Unlock()
	for _, p := range slices.Concat(c.nodeProxies, c.etcdProxies, c.harborProxies, fronts) {
		if p == nil {
			continue
		}
		if err := p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("proxy: %w", err))
		}
	}
	if err := c.Etcd.Close(); err != nil {
		errs = append(errs, fmt.Errorf("etcd: %w", err))
	}
	if s := c.natsServer(); s != nil {
		s.Close() // safe after BrokerStop's
	}
	return errors.Join(errs...)
}

// leaveSlow reports whether err is only a Leave that etcd did not answer
// in time while the cluster closed (a busy machine): the node's lease
// expires within the TTL anyway, and the embedded etcd closes next, so it
// is logged, not failed.
func leaveSlow(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) && strings.Contains(err.Error(), "expires within")
}

// Transport returns the transport configuration for a node a test
// starts by hand to join the Cluster (cluster.NodeConfig.Transport): the
// nodes' own, reaching the broker directly, without a fault proxy.
func (c *Cluster) Transport() transport.Config {
	if nc, ok := c.opts.Transport.(nats.Config); ok {
		nc.URL = c.natsServer().URL()
		if nc.Prefix == "" {
			nc.Prefix = natsPrefix
		}
		return nc
	}
	return c.opts.Transport
}

// harborMembersNow returns the harbors' memberships of the nodes (nil for
// a node that is not a harbor).
func (c *Cluster) harborMembersNow() []*etcd.Membership {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.harborMembers)
}

// HarborMembership returns the membership of harbor node i among the
// harbors of every cluster, or nil when node i is not a harbor.
func (c *Cluster) HarborMembership(i int) *etcd.Membership {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.harborMembers[i]
}

// natsServer returns the NATS server, or nil on another transport.
func (c *Cluster) natsServer() *natsembed.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nats
}

// natsPrefix is the subject prefix of the nodes on NATS, unless
// Options.Transport sets one.
const natsPrefix = "clustertest"

// TransportKind says what the nodes talk over: "tcp" (the TCP mesh),
// "nats" or "other" (a transport.Config clustertest does not know).
func (c *Cluster) TransportKind() string {
	switch c.opts.Transport.(type) {
	case nil, tcp.Config:
		return "tcp"
	case nats.Config:
		return "nats"
	}
	return "other"
}

// Node returns the actor node of node i: c.Nodes[i].Actor().
func (c *Cluster) Node(i int) *actor.Node { return c.Nodes[i].Actor() }

// Membership returns the membership of node i: its view of the cluster, and
// through Names its global-name registry.
func (c *Cluster) Membership(i int) *etcd.Membership { return c.Members[i] }

// WaitMembers waits until the view of every live node holds exactly n
// members, and fails t (t.Fatal) after WaitTimeout. A node is live unless
// it is paused or killed (see Pause and Kill: its own view is frozen) or
// closed; a node counts as closed once its own view no longer holds
// itself, which cluster.Node.Close causes. So after c.Nodes[k].Close(), or
// c.Kill(k), WaitMembers(t, len(c.Nodes)-1) waits until the others have
// seen node k go. Call it from the test goroutine.
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
			if skipClosed && !c.live(i) {
				continue
			}
			if len(m.Members()) != n {
				return false
			}
		}
		return true
	})
}

// live reports whether node i is neither paused, nor killed, nor closed.
func (c *Cluster) live(i int) bool {
	c.mu.Lock()
	frozen := c.paused[i] || c.killed[i] != nil
	c.mu.Unlock()
	return !frozen && !c.closed(i)
}

// closed reports whether node i's record is gone from its own view.
func (c *Cluster) closed(i int) bool {
	return !c.holds(i, c.Addrs[i])
}

// holds reports whether node i's view holds a.
func (c *Cluster) holds(i int, a actor.Addr) bool {
	return slices.ContainsFunc(c.Members[i].Members(), func(m cluster.Member) bool { return m.Addr == a })
}

// WaitFor polls cond until it returns true, and fails t (t.Fatal) after
// WaitTimeout, naming what it waited for; it is internal/await.True with
// WaitTimeout. Call it from the test goroutine.
func (c *Cluster) WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	await.True(t, WaitTimeout, what, cond)
}
