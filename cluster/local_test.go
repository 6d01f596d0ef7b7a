package cluster_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/transport"
)

// recorder collects events from a subscription.
type recorder struct {
	mu  sync.Mutex
	evs []cluster.Event
}

func (r *recorder) add(ev cluster.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

// wait polls until n events have arrived and returns them.
func (r *recorder) wait(t *testing.T, n int) []cluster.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		evs := append([]cluster.Event(nil), r.evs...)
		r.mu.Unlock()
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d events %v; want %d", len(evs), evs, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLocalMembership(t *testing.T) {
	ctx := context.Background()
	addr := actor.MustAddr(1, 2, 3)
	m := cluster.NewLocal(addr)
	defer m.Close()

	var early recorder
	m.Subscribe(early.add)
	if err := m.Update(ctx, cluster.Member{Addr: addr}); !errors.Is(err, cluster.ErrNotJoined) {
		t.Fatalf("Update before Join: %v; want ErrNotJoined", err)
	}
	if err := m.Join(ctx, cluster.Member{Addr: actor.MustAddr(1, 2, 4)}); !errors.Is(err, cluster.ErrBadMember) {
		t.Fatalf("Join with another address: %v; want ErrBadMember", err)
	}
	me := cluster.Member{Addr: addr, Endpoint: "127.0.0.1:1", Available: true, Meta: map[string]string{"zone": "a"}}
	if err := m.Join(ctx, me); err != nil {
		t.Fatal(err)
	}
	if err := m.Join(ctx, me); !errors.Is(err, cluster.ErrAlreadyJoined) {
		t.Fatalf("second Join: %v; want ErrAlreadyJoined", err)
	}
	got := m.Members()
	if len(got) != 1 || got[0].Addr != addr || got[0].Started.IsZero() || got[0].Meta["zone"] != "a" {
		t.Fatalf("Members = %+v", got)
	}
	got[0].Meta["zone"] = "changed" // a copy: the view must not change
	if m.Members()[0].Meta["zone"] != "a" {
		t.Fatal("Members returned a shared map")
	}

	var late recorder // subscribes after the Join: gets it as an initial event
	m.Subscribe(late.add)
	me.Available = false
	if err := m.Update(ctx, me); err != nil {
		t.Fatal(err)
	}
	if err := m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Leave(ctx); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if len(m.Members()) != 0 {
		t.Fatalf("Members after Leave = %v", m.Members())
	}
	for _, r := range []*recorder{&early, &late} {
		evs := r.wait(t, 3)
		kinds := []cluster.EventKind{evs[0].Kind, evs[1].Kind, evs[2].Kind}
		if evs[0].Kind != cluster.Join || evs[1].Kind != cluster.Update || evs[2].Kind != cluster.Leave {
			t.Fatalf("events %v; want join, update, leave", kinds)
		}
		if evs[1].Member.Available {
			t.Fatalf("update event carries Available = true")
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := m.Join(ctx, me); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Join after Close: %v; want ErrClosed", err)
	}
}

func TestLocalUnsubscribeAndPanic(t *testing.T) {
	ctx := context.Background()
	// The panic below is logged through slog.Default: keep test output clean.
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { slog.SetDefault(prev) })
	addr := actor.MustAddr(0, 1, 1)
	m := cluster.NewLocal(addr)
	defer m.Close()
	var a, b recorder
	unsub := m.Subscribe(func(ev cluster.Event) {
		a.add(ev)
		panic("subscriber bug") // recovered; later events still arrive
	})
	m.Subscribe(b.add)
	if err := m.Join(ctx, cluster.Member{Addr: addr}); err != nil {
		t.Fatal(err)
	}
	a.wait(t, 1)
	b.wait(t, 1)
	unsub()
	unsub()
	if err := m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	b.wait(t, 2)
	if evs := a.wait(t, 1); len(evs) != 1 {
		t.Fatalf("unsubscribed callback got %v", evs)
	}
}

// TestMemoryTwoNodes: two cluster nodes of one process find each other
// through a shared Memory store, with no etcd, and a node that leaves is
// forgotten by the other: a request to it fails at once.
func TestMemoryTwoNodes(t *testing.T) {
	store := cluster.NewMemory()
	ctx := context.Background()
	start := func(addr actor.Addr) (*cluster.Node, cluster.Membership) {
		m := store.Membership(addr)
		t.Cleanup(func() { m.Close() })
		n, err := cluster.Start(ctx, cluster.NodeConfig{
			Actor:      actor.Config{Addr: addr, Logger: quiet},
			Listen:     "127.0.0.1:0",
			Membership: m,
			Logger:     quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n, m
	}
	a, ma := start(addrA)
	b, _ := start(addrB)
	if got := len(ma.Members()); got != 2 {
		t.Fatalf("A sees %d members, want 2", got)
	}
	dup := store.Membership(addrA)
	if err := dup.Join(ctx, cluster.Member{Addr: addrA}); !errors.Is(err, cluster.ErrBadMember) {
		t.Fatalf("a second Join of A's address: %v, want ErrBadMember", err)
	}
	dup.Close()

	pid, _ := spawnServer(t, b)
	reply, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("hi"))
	if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "echo:hi" {
		t.Fatalf("call across a Memory store: %v, %v", reply, err)
	}

	var evs recorder
	ma.Subscribe(evs.add)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got := evs.wait(t, 3) // Join A, Join B (the initial view), Leave B
	if got[2].Kind != cluster.Leave || got[2].Member.Addr != addrB {
		t.Fatalf("events %v, want B's Leave last", got)
	}
	waitFor(t, 5*time.Second, "a request to the departed node to fail fast", func() bool {
		start := time.Now()
		_, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("hi"))
		return errors.Is(err, transport.ErrPeerLost) && time.Since(start) < time.Second
	})
}

// TestMemoryNames: the store's names are global to its nodes, the first
// registration wins, and a node's names go when it leaves.
func TestMemoryNames(t *testing.T) {
	store := cluster.NewMemory()
	ctx := context.Background()
	names := store.Names()
	ma, mb := store.Membership(addrA), store.Membership(addrB)
	defer ma.Close()
	defer mb.Close()
	for _, m := range []cluster.Membership{ma, mb} {
		if err := m.Join(ctx, cluster.Member{Addr: addrFor(m, ma)}); err != nil {
			t.Fatal(err)
		}
	}
	pa, pb := actor.PID{Node: addrA, Serial: 1<<32 | 1}, actor.PID{Node: addrB, Serial: 1<<32 | 1}
	if err := names.Register(ctx, "lobby", pa); err != nil {
		t.Fatal(err)
	}
	if err := names.Register(ctx, "lobby", pa); err != nil {
		t.Fatalf("re-registering the same pair: %v", err)
	}
	if err := names.Register(ctx, "lobby", pb); !errors.Is(err, actor.ErrNameTaken) {
		t.Fatalf("a taken name: %v, want ErrNameTaken", err)
	}
	if got, err := names.Lookup(ctx, "lobby"); err != nil || got != pa {
		t.Fatalf("Lookup = %v, %v", got, err)
	}
	if err := ma.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := names.Lookup(ctx, "lobby"); !errors.Is(err, actor.ErrNameNotFound) {
		t.Fatalf("after the owner left: %v, want ErrNameNotFound", err)
	}
	if err := names.Register(ctx, "lobby", pb); err != nil {
		t.Fatal(err)
	}
	if err := names.Unregister(ctx, "lobby", pa); err != nil {
		t.Fatal(err)
	}
	if got, _ := names.Lookup(ctx, "lobby"); got != pb {
		t.Fatalf("Unregister by a non-holder removed the name")
	}
}

// addrFor returns the address each membership of TestMemoryNames joins as.
func addrFor(m, ma cluster.Membership) actor.Addr {
	if m == ma {
		return addrA
	}
	return addrB
}
