package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
)

func lookup(c *clustertest.Cluster, i int, name string) (actor.PID, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Node(i).Lookup(ctx, name)
}

func register(c *clustertest.Cluster, i int, name string, pid actor.PID) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.Node(i).Register(ctx, name, pid)
}

// TestNameReleasedAfterShortEtcdRefusal: "Either kind is released
// when its actor stops" (actor.Node.Register). The holder stops during an
// etcd outage that costs no lease (shorter than 2/3 of the TTL, see
// clustertest's EtcdOutage) but is longer than the release's own timeout
// (actor.Config.RequestTimeout); node 2's etcd connections are reset
// meanwhile (refused), so its lease keepalives fail but the lease lives.
// Once etcd is back the name must be gone
// and another node must be able to take it.
func TestNameReleasedAfterShortEtcdRefusal(t *testing.T) {
	t.Run("2.5s refusal, 1s release timeout", func(t *testing.T) {
		attackNameRelease(t, actor.Config{RequestTimeout: time.Second}, 6*time.Second, 2500*time.Millisecond)
	})
	t.Run("6s refusal, default 5s release timeout, 10s TTL", func(t *testing.T) {
		attackNameRelease(t, actor.Config{}, 10*time.Second, 6*time.Second)
	})
}

func attackNameRelease(t *testing.T, ac actor.Config, ttl, refusal time.Duration) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: ttl, Actor: ac})
	holder, err := c.Node(2).SpawnFunc(idle)
	if err != nil {
		t.Fatal(err)
	}
	if err := register(c, 2, "boss", holder); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(t, "node 0 to see boss", func() bool { p, err := lookup(c, 0, "boss"); return err == nil && p == holder })
	before := c.Membership(2).Lease()

	c.EtcdRefuse(2, true)
	if err := c.Node(2).Stop(holder); err != nil {
		t.Fatal(err)
	}
	time.Sleep(refusal) // a refusal shorter than 2/3 of the TTL: the lease lives
	c.EtcdRefuse(2, false)
	if l := c.Membership(2).Lease(); l != before {
		t.Errorf("node 2's lease changed: %x -> %x", before, l)
	}

	other, err := c.Node(1).SpawnFunc(idle)
	if err != nil {
		t.Fatal(err)
	}
	var lastErr error
	var lastPID actor.PID
	ok := false
	deadline := time.Now().Add(2 * c.TTL)
	for time.Now().Before(deadline) {
		_, lerr := lookup(c, 0, "boss")
		rerr := register(c, 1, "boss", other)
		if rerr == nil && errors.Is(lerr, actor.ErrNameNotFound) || rerr == nil {
			ok = true
			break
		}
		lastErr = rerr
		lastPID, _ = lookup(c, 0, "boss")
		time.Sleep(100 * time.Millisecond)
	}
	if !ok {
		t.Fatalf("%v after etcd came back, the name of the stopped actor %v is still held (lookup on node 0 gives %v), and node 1 cannot take it: %v", 2*c.TTL, holder, lastPID, lastErr)
	}
}

// TestNameFollowsKilledNode: a name whose node is killed disappears
// from every node's Lookup within the TTL (and a margin), and then exactly
// one of two nodes racing to take it wins; the loser sees the winner.
func TestNameFollowsKilledNode(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second})
	holder, _ := c.Node(2).SpawnFunc(idle)
	if err := register(c, 2, "king", holder); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		c.WaitFor(t, fmt.Sprintf("node %d to see king", i), func() bool { p, err := lookup(c, i, "king"); return err == nil && p == holder })
	}
	killed := time.Now()
	c.Kill(2)
	for i := range 2 {
		await.True(t, c.TTL+3*time.Second, fmt.Sprintf("node %d to drop king", i), func() bool {
			_, err := lookup(c, i, "king")
			return errors.Is(err, actor.ErrNameNotFound)
		})
	}
	t.Logf("king gone from nodes 0 and 1 %v after the kill", time.Since(killed))

	// Both race, many times each.
	pids := []actor.PID{}
	for i := range 2 {
		p, _ := c.Node(i).SpawnFunc(idle)
		pids = append(pids, p)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[actor.PID]int{}
	var others []error
	for round := range 20 {
		for i := range 2 {
			wg.Go(func() {
				err := register(c, i, "king", pids[i])
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins[pids[i]]++
				case !errors.Is(err, actor.ErrNameTaken):
					others = append(others, fmt.Errorf("round %d node %d: %w", round, i, err))
				}
			})
		}
	}
	wg.Wait()
	if len(others) > 0 || len(wins) != 1 {
		t.Fatalf("winners %v, other errors %v", wins, others)
	}
	// After the restart of node 2, whose first actor takes the old
	// holder's serial, the name must still resolve to the winner only.
	c.Restart(t, 2)
	fresh, _ := c.Node(2).SpawnFunc(idle)
	t.Logf("old holder %v, fresh actor on the restarted node %v", holder, fresh)
	for i := range 3 {
		p, err := lookup(c, i, "king")
		if err != nil || p == holder && wins[p] == 0 {
			t.Fatalf("node %d: king = %v, %v", i, p, err)
		}
	}
}

// TestNameStopReRegisterLoop: a name moves back and forth between
// two nodes: each time its holder stops, the other node takes it again
// (Register retried until it succeeds, bounded), and no node's Lookup
// returns a stopped holder once the new one has been registered and
// seen by the cache... checked as: a Lookup never returns a PID that is
// neither the current nor the previous holder.
func TestNameStopReRegisterLoop(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	prev := actor.PID{}
	for round := range 30 {
		i := round % 2
		p, _ := c.Node(i).SpawnFunc(idle)
		start := time.Now()
		var err error
		for time.Since(start) < 5*time.Second {
			if err = register(c, i, "ping", p); err == nil {
				break
			}
			if !errors.Is(err, actor.ErrNameTaken) {
				t.Fatalf("round %d: %v", round, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("round %d: node %d could not take ping %v after its holder %v stopped: %v", round, i, time.Since(start), prev, err)
		}
		took := time.Since(start)
		if took > time.Second {
			t.Logf("round %d: re-registering took %v", round, took)
		}
		c.WaitFor(t, "node 2 to see the new holder", func() bool { q, err := lookup(c, 2, "ping"); return err == nil && q == p })
		if err := c.Node(2).Stop(p); err != nil { // stopped from a third node
			t.Fatal(err)
		}
		prev = p
	}
}

// TestNameNotResurrectedAfterPause: the holder of a global name
// stops while its node is paused past the TTL (SIGSTOP-like: its etcd link
// frozen, its actors running). The lease expires, so etcd drops the name;
// when the node resumes, its keeper joins again and registers its names
// under the new lease: it must not register the name of the actor that
// stopped meanwhile. Afterwards the name must be free for another node.
func TestNameNotResurrectedAfterPause(t *testing.T) {
	t.Run("1s release timeout", func(t *testing.T) {
		attackNamePause(t, actor.Config{RequestTimeout: time.Second}, 0)
	})
	t.Run("default release timeout, 6s pause", func(t *testing.T) {
		attackNamePause(t, actor.Config{}, 6*time.Second)
	})
}

func attackNamePause(t *testing.T, ac actor.Config, pause time.Duration) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second, Actor: ac})
	holder, _ := c.Node(2).SpawnFunc(idle)
	if err := register(c, 2, "ghost", holder); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(t, "node 0 to see ghost", func() bool { p, err := lookup(c, 0, "ghost"); return err == nil && p == holder })
	c.Pause(2)
	paused := time.Now()
	if err := c.Node(2).Stop(holder); err != nil {
		t.Fatal(err)
	}
	c.WaitMembers(t, 2) // node 2's lease expired
	await.True(t, 5*time.Second, "node 0 to drop ghost", func() bool {
		_, err := lookup(c, 0, "ghost")
		return errors.Is(err, actor.ErrNameNotFound)
	})
	time.Sleep(pause - time.Since(paused)) // the pause lasts at least pause
	c.Resume(2)
	c.WaitMembers(t, 3)
	other, _ := c.Node(1).SpawnFunc(idle)
	var err error
	start := time.Now()
	for time.Since(start) < 3*c.TTL {
		if err = register(c, 1, "ghost", other); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p, lerr := lookup(c, 0, "ghost")
	t.Fatalf("%v after node 2 resumed, node 1 cannot take the name of the actor %v that stopped during the pause: %v (lookup on node 0: %v %v)", time.Since(start), holder, err, p, lerr)
}

// TestNameGoneAfterStop: when a name's holder stops, every node's
// Lookup stops returning it (within the TTL, a generous bound: the docs
// give none for a stop), and a CallName from another node fails with
// ErrNameNotFound, never reaches anyone else.
func TestNameGoneAfterStop(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second})
	for round := range 10 {
		holder, _ := spawnEcho(t, c.Node(2))
		name := fmt.Sprintf("n%d", round)
		if err := register(c, 2, name, holder); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			c.WaitFor(t, "lookup", func() bool { p, err := lookup(c, i, name); return err == nil && p == holder })
		}
		stopped := time.Now()
		if err := c.Node(round % 3).Stop(holder); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			await.True(t, c.TTL, fmt.Sprintf("node %d to drop %s", i, name), func() bool {
				_, err := lookup(c, i, name)
				return errors.Is(err, actor.ErrNameNotFound)
			})
		}
		took := time.Since(stopped)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.Node(0).CallName(ctx, name, nil)
		cancel()
		if !errors.Is(err, actor.ErrNameNotFound) {
			t.Errorf("round %d: CallName of a released name: %v, want ErrNameNotFound", round, err)
		}
		if took > 500*time.Millisecond {
			t.Logf("round %d: released after %v", round, took)
		}
	}
}
