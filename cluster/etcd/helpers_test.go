package etcd

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

// startEtcd runs an embedded etcd for the test.
func startEtcd(t *testing.T) *Embedded {
	t.Helper()
	e, err := StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// newMembership connects a client with the given TTL.
func newMembership(t *testing.T, e *Embedded, ttl time.Duration) *Membership {
	t.Helper()
	m, err := New(Config{Endpoints: e.Endpoints(), TTL: ttl, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func has(ms []cluster.Member, a actor.Addr) bool {
	for _, m := range ms {
		if m.Addr == a {
			return true
		}
	}
	return false
}

func find(ms []cluster.Member, a actor.Addr) (cluster.Member, bool) {
	for _, m := range ms {
		if m.Addr == a {
			return m, true
		}
	}
	return cluster.Member{}, false
}

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

func (r *recorder) events() []cluster.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cluster.Event(nil), r.evs...)
}

// count reports how many events of kind for addr arrived.
func (r *recorder) count(kind cluster.EventKind, a actor.Addr) int {
	n := 0
	for _, ev := range r.events() {
		if ev.Kind == kind && ev.Member.Addr == a {
			n++
		}
	}
	return n
}

// crash stops m's keepalive without revoking the lease, as a killed process
// would, and then closes it (Close no longer sees a session to leave).
func (m *Membership) crash() {
	m.mu.Lock()
	s := m.sess
	m.sess = nil
	m.mu.Unlock()
	if s != nil {
		s.cancel()
		<-s.done
		s.keeper.Stop() // no more renewals, and no revoke
	}
	m.held.Store(nil)
	m.Close()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
