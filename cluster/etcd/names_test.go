package etcd

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

func (m *Membership) cached(name string) (actor.PID, bool) {
	m.namesMu.RLock()
	defer m.namesMu.RUnlock()
	pid, ok := m.names[name]
	return pid, ok
}

func TestGlobalNames(t *testing.T) {
	e := startEtcd(t)
	ctx := ctxT(t)
	var ms []*Membership
	for i := range 3 {
		m := newMembership(t, e, time.Second)
		if err := m.Join(ctx, cluster.Member{Addr: actor.MustAddr(1, 1, i+1)}); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	var _ actor.NameRegistry = ms[0].Names()

	// A race of 10 goroutines on 3 clients: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 10)
	pids := make([]actor.PID, 10)
	for g := range 10 {
		m := ms[g%3]
		pids[g] = actor.PID{Node: actor.MustAddr(1, 1, g%3+1), Serial: uint64(g + 1)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[g] = m.Names().Register(ctx, "world", pids[g])
		}()
	}
	wg.Wait()
	winner := -1
	for g, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("goroutines %d and %d both registered the name", winner, g)
			}
			winner = g
		case !errors.Is(err, actor.ErrNameTaken):
			t.Fatalf("goroutine %d: %v; want ErrNameTaken", g, err)
		}
	}
	if winner < 0 {
		t.Fatal("nobody registered the name")
	}
	owner, pid := ms[winner%3], pids[winner]
	if err := owner.Names().Register(ctx, "world", pid); err != nil {
		t.Fatalf("registering the same pair again: %v", err)
	}

	// Lookup from another node: through the cache once the watch has it...
	reader := ms[(winner+1)%3]
	waitFor(t, 5*time.Second, "the name reaches the other cache", func() bool {
		got, ok := reader.cached("world")
		return ok && got == pid
	})
	before := reader.lookupGets.Load()
	if got, err := reader.Names().Lookup(ctx, "world"); err != nil || got != pid {
		t.Fatalf("Lookup = %v, %v; want %v", got, err, pid)
	}
	if reader.lookupGets.Load() != before {
		t.Fatal("a cached name was read from etcd")
	}
	// ...and through etcd when it is not cached.
	reader.namesMu.Lock()
	delete(reader.names, "world")
	reader.namesMu.Unlock()
	if got, err := reader.Names().Lookup(ctx, "world"); err != nil || got != pid {
		t.Fatalf("fallback Lookup = %v, %v; want %v", got, err, pid)
	}
	if reader.lookupGets.Load() != before+1 {
		t.Fatal("an uncached name was not read from etcd")
	}
	if _, err := reader.Names().Lookup(ctx, "nobody"); !errors.Is(err, actor.ErrNameNotFound) {
		t.Fatalf("Lookup of a missing name: %v; want ErrNameNotFound", err)
	}

	// Only the holder can unregister.
	if err := reader.Names().Unregister(ctx, "world", actor.PID{Node: pid.Node, Serial: 999}); !errors.Is(err, actor.ErrNameNotFound) {
		t.Fatalf("Unregister by another PID: %v; want ErrNameNotFound", err)
	}
	if err := owner.Names().Unregister(ctx, "world", pid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the unregister reaches the cache", func() bool {
		_, ok := reader.cached("world")
		return !ok
	})

	// The name dies with the owner's lease: Leave releases it at once.
	if err := owner.Names().Register(ctx, "world", pid); err != nil {
		t.Fatal(err)
	}
	if err := owner.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 500*time.Millisecond, "Leave releases the name", func() bool {
		_, err := reader.Names().Lookup(ctx, "world")
		return errors.Is(err, actor.ErrNameNotFound)
	})
	if err := owner.Names().Register(ctx, "world", pid); !errors.Is(err, cluster.ErrNotJoined) {
		t.Fatalf("Register after Leave: %v; want ErrNotJoined", err)
	}
	// Another node can take it now.
	rpid := actor.PID{Node: actor.MustAddr(1, 1, (winner+1)%3+1), Serial: 77}
	if err := reader.Names().Register(ctx, "world", rpid); err != nil {
		t.Fatalf("Register after the owner left: %v", err)
	}
}

func TestNameErrors(t *testing.T) {
	e := startEtcd(t)
	ctx := ctxT(t)
	m := newMembership(t, e, time.Second)
	pid := actor.PID{Node: actor.MustAddr(0, 1, 1), Serial: 1}
	if err := m.Names().Register(ctx, "x", pid); !errors.Is(err, cluster.ErrNotJoined) {
		t.Fatalf("Register before Join: %v; want ErrNotJoined", err)
	}
	if err := m.Join(ctx, cluster.Member{Addr: pid.Node}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", ".local", "a b", "tab\t", string(make([]byte, 256))} {
		if err := m.Names().Register(ctx, name, pid); !errors.Is(err, actor.ErrBadName) {
			t.Errorf("Register(%q): %v; want ErrBadName", name, err)
		}
		if _, err := m.Names().Lookup(ctx, name); !errors.Is(err, actor.ErrBadName) {
			t.Errorf("Lookup(%q): %v; want ErrBadName", name, err)
		}
	}
	if err := m.Names().Register(ctx, "x", actor.PID{}); !errors.Is(err, actor.ErrActorNotFound) {
		t.Fatalf("Register of the zero PID: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Names().Lookup(cctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lookup with a cancelled ctx: %v", err)
	}
}
