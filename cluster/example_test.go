package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
)

func ExampleSelector_Pick() {
	const gate, game = 1, 2 // node types
	self := actor.MustAddr(1, gate, 1)
	view := []cluster.Member{
		{Addr: actor.MustAddr(1, gate, 1), Available: true},                // another node type
		{Addr: actor.MustAddr(1, game, 1), Available: true},                // candidate
		{Addr: actor.MustAddr(1, game, 2), Available: true},                // candidate
		{Addr: actor.MustAddr(1, game, 3), Available: false},               // draining: skipped
		{Addr: actor.MustAddr(2, game, 1), Available: true, Export: false}, // other cluster, not exported: skipped
		{Addr: actor.MustAddr(2, game, 2), Available: true, Export: true},  // other cluster, exported: candidate
	}

	var s cluster.Selector // the zero Selector is ready to use

	// Random picks among the qualifying members only.
	seen := map[actor.Addr]bool{}
	for range 1000 {
		m, err := s.Pick(view, self, game, cluster.Random, "")
		if err != nil {
			fmt.Println(err)
			return
		}
		seen[m.Addr] = true
	}
	var picked []actor.Addr
	for a := range seen {
		picked = append(picked, a)
	}
	slices.Sort(picked)
	fmt.Println("random picks from:", picked)

	// Round robin takes the candidates in turn, in Addr order. In the
	// first four members only 1.2.1 and 1.2.2 qualify.
	two := view[:4]
	for range 4 {
		m, err := s.Pick(two, self, game, cluster.RoundRobin, "")
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("round robin:", m.Addr)
	}

	// The same key maps to the same member while the view stays the same.
	a, _ := s.Pick(view, self, game, cluster.ConsistentHash, "player-42")
	b, _ := s.Pick(view, self, game, cluster.ConsistentHash, "player-42")
	fmt.Println("consistent hash, same key twice, same member:", a.Addr == b.Addr, seen[a.Addr])

	// No qualifying member is an error matching cluster.ErrNoMember.
	_, err := s.Pick(view, self, 7, cluster.Random, "")
	fmt.Println(err)

	// Output:
	// random picks from: [1.2.1 1.2.2 2.2.2]
	// round robin: 1.2.1
	// round robin: 1.2.2
	// round robin: 1.2.1
	// round robin: 1.2.2
	// consistent hash, same key twice, same member: true true
	// cluster: no member available: no available member of type 7 for 1.1.1
}

// Example_twoNodes runs a two-node cluster in one process: an embedded etcd
// (a "master"), and two nodes that find each other through it and talk
// over TCP. Node B hosts an actor under a global name; node A finds it by
// name and calls it with the same API as for a local actor.
func Example_twoNodes() {
	e, err := etcd.StartEmbedded("")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := func(addr actor.Addr) (*cluster.Node, *etcd.Membership, func()) {
		m, err := etcd.New(etcd.Config{Endpoints: e.Endpoints(), TTL: 2 * time.Second})
		if err != nil {
			panic(err)
		}
		n, err := cluster.Start(ctx, cluster.NodeConfig{
			Actor:      actor.Config{Addr: addr},
			Listen:     "127.0.0.1:0",
			Membership: m,
			Names:      m.Names(),
		})
		if err != nil {
			panic(err)
		}
		return n, m, func() { n.Close(); m.Close() }
	}
	a, membersA, stopA := start(actor.MustAddr(1, 1, 1))
	defer stopA()
	// A reaches B once its view of the membership has B: B's join event.
	addrB := actor.MustAddr(1, 2, 1)
	bJoined := make(chan struct{}, 1)
	unsubscribe := membersA.Subscribe(func(ev cluster.Event) {
		if ev.Kind == cluster.Join && ev.Member.Addr == addrB {
			select {
			case bJoined <- struct{}{}:
			default:
			}
		}
	})
	defer unsubscribe()
	b, _, stopB := start(addrB)
	defer stopB()
	select {
	case <-bJoined:
	case <-ctx.Done():
		fmt.Println("B never joined A's view")
		return
	}

	// On node B: a greeter, under the global name "greeter".
	greeter, _ := b.Actor().SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("hello, " + m.Value + " from " + c.Self().Node.String()))
		}
	})
	if err := b.Actor().Register(ctx, "greeter", greeter); err != nil {
		fmt.Println(err)
		return
	}

	// On node A: find it by name (from A's cache of the names, or from
	// etcd when the cache has not caught up yet) and call it.
	pid, err := a.Actor().Lookup(ctx, "greeter")
	if err != nil {
		fmt.Println(err)
		return
	}
	reply, err := a.Actor().Call(ctx, pid, wrapperspb.String("player 1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reply.(*wrapperspb.StringValue).Value)
	// Output:
	// hello, player 1 from 1.2.1
}

// ExampleNode_Shutdown shows the cluster's verbs by name and a remote watch:
// node A calls B's greeter by its global name and watches it; B then shuts
// down gracefully, and A's watch ends with a single Terminated.
func ExampleNode_Shutdown() {
	e, err := etcd.StartEmbedded("")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := func(addr actor.Addr) (*cluster.Node, *etcd.Membership) {
		m, err := etcd.New(etcd.Config{Endpoints: e.Endpoints(), TTL: 2 * time.Second})
		if err != nil {
			panic(err)
		}
		n, err := cluster.Start(ctx, cluster.NodeConfig{
			Actor: actor.Config{Addr: addr}, Listen: "127.0.0.1:0", Membership: m, Names: m.Names(),
		})
		if err != nil {
			panic(err)
		}
		return n, m
	}
	a, ma := start(actor.MustAddr(1, 1, 1))
	defer func() { a.Close(); ma.Close() }()
	// A reaches B once its view of the membership has B: B's join event.
	addrB := actor.MustAddr(1, 2, 1)
	bJoined := make(chan struct{}, 1)
	unsubscribe := ma.Subscribe(func(ev cluster.Event) {
		if ev.Kind == cluster.Join && ev.Member.Addr == addrB {
			select {
			case bJoined <- struct{}{}:
			default:
			}
		}
	})
	defer unsubscribe()
	b, mb := start(addrB)
	defer mb.Close()
	select {
	case <-bJoined:
	case <-ctx.Done():
		fmt.Println("B never joined A's view")
		return
	}

	greeter, _ := b.Actor().SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("hello, " + m.Value))
		}
	})
	if err := b.Actor().Register(ctx, "greeter", greeter); err != nil {
		fmt.Println(err)
		return
	}
	reply, err := a.Actor().CallName(ctx, "greeter", wrapperspb.String("A"))
	fmt.Println(reply.(*wrapperspb.StringValue).GetValue(), err)

	ended := make(chan actor.Terminated, 2)
	stop, _ := a.Actor().Watch(greeter, func(t actor.Terminated) { ended <- t })
	defer stop()

	// B drains and leaves: unavailable, its actors stop, then it leaves.
	if err := b.Shutdown(ctx); err != nil {
		fmt.Println(err)
		return
	}
	t := <-ended
	fmt.Println("greeter ended:", t.PID == greeter)
	// Output:
	// hello, A <nil>
	// greeter ended: true
}

// Example_harbors runs two clusters in one process, each with its own
// membership (here the in-memory store; etcd in production), joined by a
// harbor each that also joins the harbors' membership. A node of cluster
// 1 calls an actor of cluster 2 by its PID: node → harbor 1.255.1 →
// harbor 2.255.1 → node, and the answer comes back the same way.
func Example_harbors() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stores := map[int]*cluster.Memory{1: cluster.NewMemory(), 2: cluster.NewMemory()}
	harbors := cluster.NewMemory() // where the harbors of every cluster meet
	var memberships []cluster.Membership
	start := func(addr actor.Addr) *cluster.Node {
		cfg := cluster.NodeConfig{
			Actor:      actor.Config{Addr: addr},
			Listen:     "127.0.0.1:0",
			Membership: stores[addr.Cluster()].Membership(addr),
		}
		memberships = append(memberships, cfg.Membership)
		if addr.IsHarbor() {
			cfg.Harbors = harbors.Membership(addr)
			memberships = append(memberships, cfg.Harbors)
		}
		n, err := cluster.Start(ctx, cfg)
		if err != nil {
			panic(err)
		}
		return n
	}
	var nodes []*cluster.Node
	for _, a := range []actor.Addr{actor.MustAddr(1, 1, 1), actor.MustAddr(1, actor.HarborType, 1), actor.MustAddr(2, actor.HarborType, 1), actor.MustAddr(2, 1, 1)} {
		nodes = append(nodes, start(a))
	}
	defer func() {
		for _, n := range slices.Backward(nodes) {
			_ = n.Close()
		}
		for _, m := range memberships {
			_ = m.Close()
		}
	}()
	from, to := nodes[0], nodes[3]
	pid, _ := to.Actor().SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("cluster 2 got " + m.GetValue()))
		}
	})
	// The views converge in the background: until the harbors know each
	// other, a call fails with cluster.ErrNoRoute. Retry until the deadline.
	var reply any
	var err error
	for {
		reply, err = from.Actor().Call(ctx, pid, wrapperspb.String("hello"))
		if !errors.Is(err, cluster.ErrNoRoute) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	via, _ := from.Route(pid.Node)
	fmt.Println("1.1.1 reaches", pid.Node, "through", via)
	fmt.Println(reply.(*wrapperspb.StringValue).GetValue())

	// Output:
	// 1.1.1 reaches 2.1.1 through 1.255.1
	// cluster 2 got hello
}
