package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport"
)

// harborOp is one call of the history TestHarborKillUnderLoad records.
type harborOp struct {
	from       actor.Addr // the calling node, in cluster 1
	target     actor.PID  // an echo of cluster 2
	via        actor.Addr // the harbor of cluster 1 the call went to (Node.Route at invocation)
	via2       actor.Addr // the harbor of cluster 2 that one relays it to (its Route)
	start, end time.Time
	deadline   time.Time
	err        error
}

// harborSeed returns the seed of the test: GUILD_SEED, or the clock.
func harborSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GUILD_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GUILD_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (GUILD_SEED=%d replays it)", seed, seed)
	return seed
}

// TestHarborKillUnderLoad kills (kill -9: clustertest.Kill) one of the
// four harbors (two in each cluster) while every node of cluster 1 calls
// the echoes of cluster 2, records every call with its invocation, its
// result and the harbors it went through, and checks the history:
//   - no call ended later than its deadline (plus a scheduling slack);
//   - no call failed before the kill;
//   - every failure went through the killed harbor (a relay in cluster 1
//     or in cluster 2), matches
//     transport.ErrPeerLost, and ended at once (within failFast of the
//     kill or of its own start, whichever is later): none waited for its
//     deadline;
//   - calls go on through the other harbor: every call that started a
//     grace period after the kill succeeded, and enough of them did.
//
// The seed (GUILD_SEED replays it) picks the harbor killed and each
// caller's targets.
//
// Calls made through the killed harbor are counted, so that the kill
// surely hit traffic.
func TestHarborKillUnderLoad(t *testing.T) {
	seed := harborSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{})
	a, b := cs.Each[0], cs.Each[1]
	var targets []actor.PID
	for i := range cs.Nodes {
		pid, _ := spawnEcho(t, b.Node(i))
		targets = append(targets, pid)
	}
	const (
		workers   = 3 // per calling node
		callLimit = 2 * time.Second
		slack     = 500 * time.Millisecond
		failFast  = time.Second
		grace     = time.Second
	)
	var (
		mu      sync.Mutex
		history []harborOp
		okAfter atomic.Int64 // successes that started after the kill
		killed  atomic.Int64 // the kill's time, UnixNano; 0 before
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for i := range cs.Nodes {
		n := a.Nodes[i]
		for w := range workers {
			wseed := rng.Uint64()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(wseed, uint64(w)))
				for k := 0; ctx.Err() == nil; k++ {
					target := targets[r.IntN(len(targets))]
					op := harborOp{from: n.Addr(), target: target, start: time.Now()}
					op.via, _ = n.Route(target.Node)
					if h := harborOf(a, op.via); h != nil {
						op.via2, _ = h.Route(target.Node)
					}
					cctx, cancel := context.WithTimeout(context.Background(), callLimit)
					op.deadline, _ = cctx.Deadline()
					got, err := n.Actor().Call(cctx, target, wrapperspb.String(fmt.Sprint(k)))
					cancel()
					op.end, op.err = time.Now(), err
					if err == nil && got.(*wrapperspb.StringValue).GetValue() != "echo:"+fmt.Sprint(k) {
						op.err = fmt.Errorf("wrong answer %v", got)
					}
					if err == nil && killed.Load() != 0 && op.start.UnixNano() > killed.Load() {
						okAfter.Add(1)
					}
					mu.Lock()
					history = append(history, op)
					mu.Unlock()
				}
			}()
		}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(history)
	}
	await.True(t, 10*time.Second, "200 calls before the kill", func() bool { return count() >= 200 })
	side := a
	if rng.IntN(2) == 1 {
		side = b
	}
	victim := cs.Harbor(rng.IntN(cs.Harbors))
	lost := side.Addrs[victim]
	killAt := time.Now()
	killed.Store(killAt.UnixNano())
	side.Kill(victim)
	await.True(t, 10*time.Second, "200 calls to succeed after the kill", func() bool { return okAfter.Load() >= 200 })
	// Calls that started a grace period after the kill must all succeed:
	// run for another while.
	settled := time.Now().Add(grace)
	await.True(t, 10*time.Second, "calls past the grace period", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, op := range history {
			if op.start.After(killAt.Add(grace)) {
				n++
			}
		}
		return n >= 100 && time.Now().After(settled)
	})
	stop()
	wg.Wait()

	var failed, viaLost, before, after int
	for _, op := range history {
		if op.end.After(op.deadline.Add(slack)) {
			t.Errorf("call %v→%v via %v ended %v after its deadline: %v", op.from, op.target, op.via, op.end.Sub(op.deadline), op.err)
		}
		if op.start.Before(killAt) {
			before++
		} else {
			after++
		}
		through := op.via == lost || op.via2 == lost
		if through {
			viaLost++
		}
		if op.err == nil {
			continue
		}
		failed++
		switch {
		case op.end.Before(killAt):
			t.Errorf("call %v→%v failed before the kill: %v", op.from, op.target, op.err)
		case !through:
			t.Errorf("call %v→%v via %v and %v (not the killed %v) failed: %v", op.from, op.target, op.via, op.via2, lost, op.err)
		case !errors.Is(op.err, transport.ErrPeerLost):
			t.Errorf("call %v→%v via the killed harbor failed with %v, want transport.ErrPeerLost", op.from, op.target, op.err)
		case op.end.Sub(later(op.start, killAt)) > failFast:
			t.Errorf("call %v→%v via the killed harbor failed %v after the kill: not at once", op.from, op.target, op.end.Sub(later(op.start, killAt)))
		case op.start.After(killAt.Add(grace)):
			t.Errorf("call %v→%v started %v after the kill and failed: %v", op.from, op.target, op.start.Sub(killAt), op.err)
		}
	}
	t.Logf("history: %d calls (%d before the kill of %v, %d after), %d through it, %d failed", len(history), before, lost, after, viaLost, failed)
	if viaLost == 0 {
		t.Errorf("no call went through %v: the kill tested nothing", lost)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// harborOf returns the cluster node of c at addr, or nil.
func harborOf(c *clustertest.Cluster, addr actor.Addr) *cluster.Node {
	for i, a := range c.Addrs {
		if a == addr {
			return c.Nodes[i]
		}
	}
	return nil
}
