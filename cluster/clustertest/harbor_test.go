package clustertest_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/transport"
)

// TestHarborVerbs: Call, Request, Send (and its answer sent back),
// Forward, deadlines and error answers work between nodes of two
// clusters, each with its own etcd, through their harbors; and neither
// cluster's view holds the other's members.
func TestHarborVerbs(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{})
	a, b := cs.Each[0], cs.Each[1]
	for _, m := range a.Membership(0).Members() {
		if m.Addr.Cluster() != 1 {
			t.Fatalf("cluster 1's view holds %v", m.Addr)
		}
	}
	pid, e := spawnEcho(t, b.Node(1))
	ctx := ctxTimeout(t, 10*time.Second)

	// Call, from every node of cluster 1, harbors included.
	for i := range a.Nodes {
		got, err := a.Node(i).Call(ctx, pid, wrapperspb.String("hi"))
		if err != nil {
			t.Fatalf("call from %v: %v", a.Addrs[i], err)
		}
		if got.(*wrapperspb.StringValue).GetValue() != "echo:hi" {
			t.Fatalf("call from %v: %v", a.Addrs[i], got)
		}
	}

	// The deadline travels with the request.
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	want, _ := dctx.Deadline()
	got, err := a.Node(0).Call(dctx, pid, wrapperspb.String("deadline"))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if s := got.(*wrapperspb.StringValue).GetValue(); s != "true "+strconv.FormatInt(want.UnixNano(), 10) {
		t.Fatalf("deadline seen by the callee: %q, want true %d", s, want.UnixNano())
	}

	// An error answer keeps its sentinel.
	if _, err := a.Node(0).Call(ctx, pid, wrapperspb.String("stopped")); !errors.Is(err, actor.ErrActorStopped) {
		t.Fatalf("error answer: %v", err)
	}
	// An actor that does not exist.
	if _, err := a.Node(0).Call(ctx, actor.PID{Node: pid.Node, Serial: 1 << 40}, wrapperspb.String("x")); !errors.Is(err, actor.ErrActorNotFound) {
		t.Fatalf("missing actor: %v", err)
	}
	// A cluster with no harbor.
	if _, err := a.Node(0).Call(ctx, actor.PID{Node: actor.MustAddr(9, 1, 1), Serial: 1}, wrapperspb.String("x")); !errors.Is(err, cluster.ErrNoRoute) {
		t.Fatalf("call to cluster 9: %v", err)
	}

	// Request with a callback.
	done := make(chan any, 1)
	if err := a.Node(1).Request(pid, wrapperspb.String("req"), 5*time.Second, func(msg any, err error) {
		if err != nil {
			done <- err
			return
		}
		done <- msg
	}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, done); got.(*wrapperspb.StringValue).GetValue() != "echo:req" {
		t.Fatalf("request: %v", got)
	}

	// Send: cluster 2 to an actor of cluster 1, which sends it on to a
	// collector in cluster 2.
	back := make(chan string, 1)
	sender, err := b.Node(1).SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			back <- m.GetValue()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := a.Node(0).SpawnFunc(func(c *actor.Context) {
		switch m := c.Message().(type) {
		case *wrapperspb.StringValue:
			if c.IsRequest() {
				_ = c.Forward(pid) // on to cluster 2, the answer straight back to the caller
				return
			}
			_ = c.Send(sender, m)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = fwd
	if err := b.Node(0).Send(fwd, wrapperspb.String("to-sender")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, back); got != "to-sender" {
		t.Fatalf("send across: %q", got)
	}

	// Forward: cluster 2 calls an actor of cluster 1, which forwards to
	// cluster 2's echo; the answer retraces the path.
	got, err = b.Node(2).Call(ctx, fwd, wrapperspb.String("fwd"))
	if err != nil {
		t.Fatal(err)
	}
	if got.(*wrapperspb.StringValue).GetValue() != "echo:fwd" {
		t.Fatalf("forward: %v", got)
	}

	// A request held by the callee fails at its deadline, not later.
	hctx, hcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	_, err = a.Node(0).Call(hctx, pid, wrapperspb.String("hold"))
	hcancel()
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("held request: %v after %v", err, time.Since(start))
	}
	recv(t, e.held).Respond(wrapperspb.String("late")) // dropped along the way
}

// TestHarborLostFailsFast: a request in flight through a harbor that is
// killed fails at once with transport.ErrPeerLost, and the next one goes
// through the other harbor.
func TestHarborLostFailsFast(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 1})
	a, b := cs.Each[0], cs.Each[1]
	pid, e := spawnEcho(t, b.Node(0))
	ctx := ctxTimeout(t, 20*time.Second)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Node(0).Call(ctx, pid, wrapperspb.String("hold"))
		errc <- err
	}()
	held := recv(t, e.held)
	_ = held
	// Which harbor of cluster 1 carries it? The one holding the relay.
	killed := -1
	for h := range cs.Harbors {
		i := cs.Harbor(h)
		if a.Nodes[i].PeerStats() != nil && relays(a.Nodes[i]) > 0 {
			killed = i
		}
	}
	if killed < 0 {
		t.Fatal("no harbor of cluster 1 relays the request")
	}
	start := time.Now()
	a.Kill(killed)
	select {
	case err := <-errc:
		if !errors.Is(err, transport.ErrPeerLost) {
			t.Fatalf("request through the killed harbor: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("request through the killed harbor failed after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request through the killed harbor did not fail")
	}
	got, err := a.Node(0).Call(ctx, pid, wrapperspb.String("again"))
	if err != nil {
		t.Fatal(err)
	}
	if got.(*wrapperspb.StringValue).GetValue() != "echo:again" {
		t.Fatalf("after the kill: %v", got)
	}
}

// relays returns how many requests node n relays or waits on.
func relays(n *cluster.Node) int { return n.Pending() }

// TestHarborExports: the exported, available members of another cluster
// reach a node's View through the harbors (and no cluster's etcd), those
// not exported do not, and one that leaves goes; a name held by an
// exported member of another cluster is found with LookupAt.
func TestHarborExports(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{
		Types:  [][]int{{1, 1, 1}, {1, 7, 7}},
		Export: [][]bool{{false, false, false}, {false, true, false}},
	})
	a, b := cs.Each[0], cs.Each[1]
	exported, hidden := b.Addrs[1], b.Addrs[2]
	view := a.Nodes[0].View()
	sees := func(addr actor.Addr) bool {
		for _, m := range view.Members() {
			if m.Addr == addr {
				return true
			}
		}
		return false
	}
	a.WaitFor(t, "cluster 1's view to show the exported 2.7.2", func() bool { return sees(exported) })
	if sees(hidden) || sees(b.Addrs[0]) {
		t.Fatalf("a member not exported is in the view: %v", view.Members())
	}
	for _, m := range a.Membership(0).Members() {
		if m.Addr.Cluster() != 1 {
			t.Fatalf("cluster 1's etcd holds %v", m.Addr)
		}
	}
	var sel cluster.Selector
	for range 4 {
		m, err := sel.Pick(view.Members(), a.Addrs[0], 7, cluster.RoundRobin, "")
		if err != nil || m.Addr != exported {
			t.Fatalf("pick of type 7 from cluster 1: %v, %v", m.Addr, err)
		}
	}
	// A name the exported member holds, looked up from cluster 1.
	pid, _ := spawnEcho(t, b.Node(1))
	ctx := ctxTimeout(t, 10*time.Second)
	if err := b.Node(1).Register(ctx, "realm-echo", pid); err != nil {
		t.Fatal(err)
	}
	got, err := view.LookupAt(ctx, exported, "realm-echo")
	if err != nil || got != pid {
		t.Fatalf("LookupAt = %v, %v, want %v", got, err, pid)
	}
	if _, err := view.LookupAt(ctx, exported, "nobody"); !errors.Is(err, actor.ErrNameNotFound) {
		t.Fatalf("LookupAt of a name nobody holds: %v", err)
	}
	// The exported member leaves: it goes from the view.
	if err := b.Nodes[1].Close(); err != nil {
		t.Fatal(err)
	}
	a.WaitFor(t, "2.7.2 to leave cluster 1's view", func() bool { return !sees(exported) })
}
