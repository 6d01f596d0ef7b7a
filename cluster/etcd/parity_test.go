package etcd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

// TestLocalAndEtcdAgree runs the same script against cluster.NewLocal and an
// etcd Membership.
func TestLocalAndEtcdAgree(t *testing.T) {
	addr := actor.MustAddr(3, 4, 5)
	impls := map[string]func(t *testing.T) cluster.Membership{
		"local": func(*testing.T) cluster.Membership { return cluster.NewLocal(addr) },
		"etcd":  func(t *testing.T) cluster.Membership { return newMembership(t, startEtcd(t), time.Second) },
	}
	for name, mk := range impls {
		t.Run(name, func(t *testing.T) {
			ctx := ctxT(t)
			m := mk(t)
			var r recorder
			m.Subscribe(r.add)
			if err := m.Update(ctx, cluster.Member{Addr: addr}); !errors.Is(err, cluster.ErrNotJoined) {
				t.Fatalf("Update before Join: %v", err)
			}
			if err := m.Leave(ctx); err != nil {
				t.Fatalf("Leave before Join: %v", err)
			}
			me := cluster.Member{Addr: addr, Endpoint: "127.0.0.1:9", Available: true, Meta: map[string]string{"k": "v"}}
			if err := m.Join(ctx, me); err != nil {
				t.Fatal(err)
			}
			if err := m.Join(ctx, me); !errors.Is(err, cluster.ErrAlreadyJoined) {
				t.Fatalf("second Join: %v", err)
			}
			waitFor(t, 5*time.Second, "self in view", func() bool { return has(m.Members(), addr) })
			me.Available = false
			if err := m.Update(ctx, me); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "update in view", func() bool {
				got, ok := find(m.Members(), addr)
				return ok && !got.Available && got.Meta["k"] == "v" && !got.Started.IsZero()
			})
			if err := m.Leave(ctx); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "join, update, leave events", func() bool { return len(r.events()) == 3 })
			evs := r.events()
			if evs[0].Kind != cluster.Join || evs[1].Kind != cluster.Update || evs[2].Kind != cluster.Leave {
				t.Fatalf("events %v", evs)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if err := m.Join(context.Background(), me); !errors.Is(err, cluster.ErrClosed) {
				t.Fatalf("Join after Close: %v", err)
			}
		})
	}
}
