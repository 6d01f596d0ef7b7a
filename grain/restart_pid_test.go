package grain_test

// Tests of a PID from ResolveGrain, used after the
// grain's node restarted under the same address.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/store/memstore"
)

// TestResolvedPIDAfterNodeRestart: ResolveGrain's doc says the PID
// "is valid until the grain deactivates; a message sent to it afterwards
// fails with actor.ErrActorNotFound, and the caller should resolve
// again". A node that restarts (same address, new process or node value)
// hands out the same serials again, so the old PID of grain A reaches
// whichever activation now has that serial: another grain, which handles
// the message and answers for A.
func TestResolvedPIDAfterNodeRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	st := memstore.New()
	log := &turnLog{}
	var slow atomic.Int64
	kind := ctrKind("c", log, &slow, nil, 0)
	systems := etcdSystems(t, c, st, kind)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var closeVictim func()
	startVictim := func() *grain.System {
		node, m := extraNode(t, c, 3)
		v := startOn(t, node.Actor(), m, st, kind)
		for _, s := range append(systems, v) {
			await.True(t, 15*time.Second, "3 hosts", func() bool { return s.Hosts("c") == 3 })
		}
		closeVictim = func() {
			if err := v.Close(ctx); err != nil {
				t.Fatal(err)
			}
			_ = node.Close()
			_ = m.Close()
		}
		return v
	}
	firstOnVictim := func(v *grain.System, from int, value int64) grain.Identity {
		for i := from; i < from+300; i++ {
			id := grain.Identity{Kind: "c", Key: key(i)}
			if _, err := systems[0].Call(ctx, id, wrapperspb.Int64(value)); err != nil {
				t.Fatal(err)
			}
			if v.IsActive(id) {
				return id
			}
		}
		t.Fatal("no grain landed on the victim")
		return grain.Identity{}
	}

	victim := startVictim()
	a := firstOnVictim(victim, 0, 111)
	pid, err := systems[0].ResolveGrain(ctx, a.Kind, a.Key)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("grain %v resolved to %v", a, pid)

	// The victim leaves gracefully and comes back under the same address.
	closeVictim()
	for _, s := range systems {
		await.True(t, 15*time.Second, "2 hosts", func() bool { return s.Hosts("c") == 2 })
	}
	victim = startVictim()
	b := firstOnVictim(victim, 1000, 222)
	t.Logf("after the restart, grain %v is the first activation on the victim", b)

	r, err := grain.NodeOf(systems[0]).Call(ctx, pid, wrapperspb.String("get"))
	if errors.Is(err, actor.ErrActorNotFound) {
		return // as documented
	}
	t.Fatalf("a message to %v (the stale PID of %v) got reply %v, err %v; want actor.ErrActorNotFound (it reached another grain: %v)", pid, a, r, err, fmt.Sprint(b))
}
