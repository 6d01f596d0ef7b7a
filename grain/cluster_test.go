package grain_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/memstore"
)

// etcdSystems starts a System with an EtcdClaimer on every node of c.
func etcdSystems(t *testing.T, c *clustertest.Cluster, st store.Store, kinds ...grain.Kind) []*grain.System {
	t.Helper()
	var out []*grain.System
	for i, n := range c.Nodes {
		out = append(out, startOn(t, n.Actor(), c.Members[i], st, kinds...))
	}
	for _, s := range out {
		for _, k := range kinds {
			waitFor(t, "every view to hold every host", func() bool { return s.Hosts(k.Name) == len(out) })
		}
	}
	return out
}

func startOn(t *testing.T, n *actor.Node, m *etcd.Membership, st store.Store, kinds ...grain.Kind) *grain.System {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := grain.Start(ctx, grain.Config{
		Node:         n,
		Membership:   m,
		Kinds:        kinds,
		Store:        st,
		Claims:       grain.NewEtcdClaimer(m, ""),
		ClaimTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close %v: %v", n.Addr(), err)
		}
	})
	return s
}

// extraNode starts a node by hand against c's etcd, with its own
// membership; the test closes it (or its cleanup does).
func extraNode(t *testing.T, c *clustertest.Cluster, index int) (*cluster.Node, *etcd.Membership) {
	t.Helper()
	m, err := etcd.New(etcd.Config{Endpoints: c.Etcd.Endpoints(), TTL: c.TTL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:      actor.Config{Addr: actor.MustAddr(1, 1, index)},
		Listen:     "127.0.0.1:0",
		Transport:  c.Transport(),
		Membership: m,
		Names:      m.Names(),
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		_ = m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		_ = m.Close()
	})
	return n, m
}

func key(i int) string { return fmt.Sprintf("k%03d", i) }

func TestClusterActivatesOnce(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	var cs counts
	systems := etcdSystems(t, c, memstore.New(), seqKind("p", &cs, time.Hour, time.Hour))
	for round := range 3 {
		id := grain.Identity{Kind: "p", Key: fmt.Sprintf("hot%d", round)}
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := systems[i%3].Call(ctx, id, wrapperspb.Int64(int64(i))); err != nil {
					errs <- err
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := cs.get(id); n != 1 {
			t.Fatalf("%v activated %d times", id, n)
		}
		if st := getState(t, systems[0], id); st.N != 100 {
			t.Fatalf("%v handled %d messages, want 100", id, st.N)
		}
	}
}

// owners returns, for each grain, the index of the System it is active on.
func owners(t *testing.T, systems []*grain.System, ids []grain.Identity) []int {
	t.Helper()
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = -1
		for j, s := range systems {
			if s.IsActive(id) {
				if out[i] >= 0 {
					t.Fatalf("%v active on %d and %d", id, out[i], j)
				}
				out[i] = j
			}
		}
	}
	return out
}

func TestClusterJoinMovesAFewGrains(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	var cs counts
	kind := seqKind("p", &cs, time.Hour, time.Hour)
	st := memstore.New()
	systems := etcdSystems(t, c, st, kind)
	const n = 300
	ids := make([]grain.Identity, n)
	for i := range ids {
		ids[i] = grain.Identity{Kind: "p", Key: key(i)}
		call(t, systems[i%3], ids[i], 1)
	}
	before := owners(t, systems, ids)
	for i, o := range before {
		if o < 0 {
			t.Fatalf("%v is active nowhere", ids[i])
		}
	}
	node, m := extraNode(t, c, 4)
	systems = append(systems, startOn(t, node.Actor(), m, st, kind))
	for _, s := range systems {
		waitFor(t, "every view to hold 4 hosts", func() bool { return s.Hosts("p") == 4 })
	}
	// The grains the new node wins are handed over: flushed and stopped.
	for i := range ids {
		if got := call(t, systems[i%4], ids[i], 2); got != 2 {
			t.Fatalf("%v: N = %d after the join, want 2", ids[i], got)
		}
	}
	after := owners(t, systems, ids)
	moved := 0
	for i := range ids {
		if after[i] != before[i] {
			moved++
			if after[i] != 3 {
				t.Fatalf("%v moved from %d to %d, not to the new node", ids[i], before[i], after[i])
			}
		}
	}
	if moved < n/8 || moved > n/2 {
		t.Fatalf("%d of %d grains moved, want about %d", moved, n, n/4)
	}
	t.Logf("%d of %d grains moved to the new node", moved, n)
	for _, id := range ids {
		if a := cs.get(id); a > 2 {
			t.Fatalf("%v activated %d times", id, a)
		}
	}
}

func TestClusterGracefulLeaveLosesNothing(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	kind := seqKind("p", nil, time.Hour, time.Hour)
	systems := etcdSystems(t, c, memstore.New(), kind)
	const grains = 50
	ids := make([]grain.Identity, grains)
	for i := range ids {
		ids[i] = grain.Identity{Kind: "p", Key: key(i)}
	}
	stop := make(chan struct{})
	sent := make([]int64, grains)
	var wg sync.WaitGroup
	errs := make(chan error, grains)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int64(1); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := systems[int(seq)%2].Call(ctx, ids[i], wrapperspb.Int64(seq))
				cancel()
				if err != nil {
					errs <- fmt.Errorf("%v seq %d: %w", ids[i], seq, err)
					return
				}
				sent[i] = seq
				time.Sleep(time.Millisecond)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	leaving := systems[2]
	onLeaving := 0
	for _, id := range ids {
		if leaving.IsActive(id) {
			onLeaving++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := leaving.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	for _, s := range systems[:2] {
		waitFor(t, "the others to stop routing to the leaving node", func() bool { return s.Hosts("p") == 2 })
	}
	time.Sleep(100 * time.Millisecond)
	if err := c.Nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if onLeaving == 0 {
		t.Fatal("no grain was on the leaving node")
	}
	for i, id := range ids {
		st := getState(t, systems[0], id)
		seen := make(map[int64]int)
		for _, s := range st.Seqs {
			seen[s]++
		}
		for seq := int64(1); seq <= sent[i]; seq++ {
			if seen[seq] != 1 {
				t.Fatalf("%v: seq %d seen %d times (sent %d, state has %d)", id, seq, seen[seq], sent[i], len(st.Seqs))
			}
		}
		if int64(len(st.Seqs)) != sent[i] {
			t.Fatalf("%v: %d seqs for %d sent", id, len(st.Seqs), sent[i])
		}
	}
	t.Logf("%d grains handed over from the leaving node; %d handovers", onLeaving, leaving.Stats().Handovers)
}

func TestClusterNodeLossRecoversFlushedState(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2, TTL: time.Second})
	var cs counts
	kind := seqKind("p", &cs, time.Hour, -1)
	st := memstore.New()
	systems := etcdSystems(t, c, st, kind)
	node, m := extraNode(t, c, 3)
	victim := startOn(t, node.Actor(), m, st, kind)
	for _, s := range append(systems, victim) {
		waitFor(t, "3 hosts", func() bool { return s.Hosts("p") == 3 })
	}
	var onVictim []grain.Identity
	for i := 0; len(onVictim) < 5 && i < 200; i++ {
		id := grain.Identity{Kind: "p", Key: key(i)}
		call(t, systems[0], id, 1)
		if victim.IsActive(id) {
			onVictim = append(onVictim, id)
		}
	}
	ctx := context.Background()
	for _, id := range onVictim {
		if _, err := systems[0].Call(ctx, id, wrapperspb.String("flush")); err != nil {
			t.Fatal(err)
		}
		call(t, systems[0], id, 2) // never flushed: lost with the node
	}
	// Crash: the lease is not revoked, nothing is flushed or released.
	start := time.Now()
	victim.Abort()
	_ = m.Client().Close()
	_ = node.Close()
	_ = m.Close()
	for _, s := range systems {
		waitFor(t, "the victim's lease to expire", func() bool { return s.Hosts("p") == 2 })
	}
	gone := time.Since(start)
	for _, id := range onVictim {
		got := getState(t, systems[1], id)
		if got.N != 1 || len(got.Seqs) != 1 || got.Seqs[0] != 1 {
			t.Fatalf("%v came back as %+v, want its last flushed state {N:1}", id, got)
		}
		if cs.get(id) != 2 {
			t.Fatalf("%v activated %d times", id, cs.get(id))
		}
	}
	t.Logf("the victim left the views after %v; its %d grains were back after %v", gone.Round(time.Millisecond), len(onVictim), time.Since(start).Round(time.Millisecond))
}

// A node that joined marked unavailable (as package app starts nodes)
// starts its System at once and sends to the grains hosted elsewhere; it
// hosts grains only once it is marked available.
func TestClusterStartOnUnavailableNode(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 1})
	st := memstore.New()
	kind := seqKind("p", nil, time.Hour, time.Hour)
	first := etcdSystems(t, c, st, kind)[0]

	m, err := etcd.New(etcd.Config{Endpoints: c.Etcd.Endpoints(), TTL: c.TTL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:           actor.Config{Addr: actor.MustAddr(1, 1, 9)},
		Listen:          "127.0.0.1:0",
		Transport:       c.Transport(),
		Membership:      m,
		Names:           m.Names(),
		Logger:          slog.New(slog.DiscardHandler),
		JoinUnavailable: true,
	})
	if err != nil {
		_ = m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		_ = m.Close()
	})
	late := startOn(t, n.Actor(), m, st, kind) // returns although the node is no host yet
	if h := late.Hosts("p"); h != 1 {
		t.Fatalf("the unavailable node's view has %d hosts of p, want 1", h)
	}
	for i := range 20 {
		if _, err := late.Call(ctx, grain.Identity{Kind: "p", Key: key(i)}, wrapperspb.Int64(1)); err != nil {
			t.Fatal(err)
		}
		if late.IsActive(grain.Identity{Kind: "p", Key: key(i)}) {
			t.Fatalf("%s active on the unavailable node", key(i))
		}
	}
	if err := n.SetAvailable(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both views to hold both hosts", func() bool { return first.Hosts("p") == 2 && late.Hosts("p") == 2 })
}

// A node marked unavailable that is the only host of a kind serves its
// own callers (a module using its node's grains while it starts), and
// the grain moves to an available host once there is one.
func TestClusterUnavailableSoleHostServesItself(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 1})
	st := memstore.New()
	kind := seqKind("p", nil, time.Hour, time.Hour)
	first := etcdSystems(t, c, st, kind)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Nodes[0].SetAvailable(ctx, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node's view to drop it as a host", func() bool { return first.Hosts("p") == 0 })
	id := grain.Identity{Kind: "p", Key: "k"}
	if _, err := first.Call(ctx, id, wrapperspb.Int64(1)); err != nil {
		t.Fatalf("a call from the sole host, unavailable: %v", err)
	}
	if !first.IsActive(id) {
		t.Fatal("the grain is not active on its sole host")
	}
	n, m := extraNode(t, c, 2)
	second := startOn(t, n.Actor(), m, st, kind)
	waitFor(t, "the grain to move to the available host", func() bool { return !first.IsActive(id) })
	reply, err := first.Call(ctx, id, wrapperspb.Int64(2))
	if err != nil {
		t.Fatal(err)
	}
	if got := reply.(*wrapperspb.Int64Value).GetValue(); got != 2 || !second.IsActive(id) {
		t.Fatalf("after the move: reply %d (want 2: the state moved with it), active on the new host %v", got, second.IsActive(id))
	}
}
