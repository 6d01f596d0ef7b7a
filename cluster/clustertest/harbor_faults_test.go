package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport"
)

// a4Load calls the echo at target from n in a loop, checking that every
// reply is the echo of its own request, until stop is closed.
type a4Load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	wrong      []string
	late       []string
	errs       []error
}

func (l *a4Load) run(ctx context.Context, wg *sync.WaitGroup, n *actor.Node, target actor.PID, tag string, limit time.Duration) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ctx.Err() == nil; k++ {
			payload := fmt.Sprintf("%s-%d", tag, k)
			cctx, cancel := context.WithTimeout(context.Background(), limit)
			start := time.Now()
			got, err := n.Call(cctx, target, wrapperspb.String(payload))
			cancel()
			d := time.Since(start)
			l.mu.Lock()
			if d > limit+500*time.Millisecond {
				l.late = append(l.late, fmt.Sprintf("%s took %v (limit %v): %v", payload, d, limit, err))
			}
			if err != nil {
				l.failed.Add(1)
				l.errs = append(l.errs, err)
			} else if v := got.(*wrapperspb.StringValue).GetValue(); v != "echo:"+payload {
				l.wrong = append(l.wrong, fmt.Sprintf("%s got %q", payload, v))
			} else {
				l.ok.Add(1)
			}
			l.mu.Unlock()
		}
	}()
}

func (l *a4Load) check(t *testing.T, failuresOK bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.wrong {
		t.Errorf("wrong reply: %s", w)
	}
	for _, w := range l.late {
		t.Errorf("call past its deadline: %s", w)
	}
	if !failuresOK {
		for i, err := range l.errs {
			if i > 5 {
				break
			}
			t.Errorf("call failed: %v", err)
		}
	}
	t.Logf("load: %d ok, %d failed, %d wrong, %d late", l.ok.Load(), l.failed.Load(), len(l.wrong), len(l.late))
}

// TestHarborTargetKilledMidCall: requests relayed from cluster 1 to a
// node of cluster 2 that is killed while it holds them fail at once with
// transport.ErrPeerLost ("When a harbor loses the next node on a request's
// path, it answers the request at once with wire.CodePeerLost"), while
// calls to another node of cluster 2 go on with their own replies; after
// the node restarts, a call to a PID of its old incarnation fails (it
// does not hang) and a new actor on it answers.
func TestHarborTargetKilledMidCall(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 2})
	a, b := cs.Each[0], cs.Each[1]
	holderPID, holder := spawnHolder(t, b.Node(0))
	echoPID, _ := spawnEcho(t, b.Node(1))

	const held = 20
	type res struct {
		payload string
		err     error
		at      time.Time
	}
	results := make(chan res, held)
	for i := range held {
		n := a.Node(i % 2)
		go func() {
			p := fmt.Sprintf("held-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := n.Call(ctx, holderPID, wrapperspb.String(p))
			results <- res{p, err, time.Now()}
		}()
	}
	await.True(t, 10*time.Second, "the holder to hold every request", func() bool { return holder.count() == held })

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var load a4Load
	for i := range 2 {
		load.run(ctx, &wg, a.Node(i), echoPID, fmt.Sprintf("n%d", i), 3*time.Second)
	}
	await.True(t, 10*time.Second, "load before the kill", func() bool { return load.ok.Load() >= 50 })
	killAt := time.Now()
	b.Kill(0)
	for range held {
		select {
		case r := <-results:
			if r.err == nil {
				t.Errorf("%s: answered by a killed node", r.payload)
			} else if !errors.Is(r.err, transport.ErrPeerLost) {
				t.Errorf("%s: %v, want transport.ErrPeerLost", r.payload, r.err)
			}
			if d := r.at.Sub(killAt); d > 3*time.Second {
				t.Errorf("%s failed %v after the kill: not at once", r.payload, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("a request held by the killed node neither failed nor was answered 10s after the kill")
		}
	}
	base := load.ok.Load()
	await.True(t, 10*time.Second, "load after the kill", func() bool { return load.ok.Load() >= base+50 })
	stop()
	wg.Wait()
	load.check(t, false)

	b.Restart(t, 0)
	start := time.Now()
	_, err := a.Node(0).Call(ctxTimeout(t, 5*time.Second), holderPID, wrapperspb.String("stale"))
	if err == nil {
		t.Errorf("a call to the old incarnation's PID %v was answered", holderPID)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a call to the old incarnation's PID took %v: %v", d, err)
	}
	t.Logf("call to the old PID: %v after %v", err, time.Since(start))
	pid2, _ := spawnEcho(t, b.Node(0))
	got, err := a.Node(0).Call(ctxTimeout(t, 5*time.Second), pid2, wrapperspb.String("new"))
	if err != nil || got.(*wrapperspb.StringValue).GetValue() != "echo:new" {
		t.Fatalf("a call to the restarted node: %v, %v", got, err)
	}
}

// TestHarborDeadlineAndLateReplies: requests relayed to another cluster
// end at their own deadline ("the deadline goes with the envelope, so that
// each harbor on the way frees its relay in time"), the harbors' relays
// drain, and answers that arrive after the deadline are dropped: newer
// requests of the same caller to the same target each get their own
// reply.
func TestHarborDeadlineAndLateReplies(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 1})
	a, b := cs.Each[0], cs.Each[1]
	holderPID, holder := spawnHolder(t, b.Node(0))
	const n = 10
	const limit = 700 * time.Millisecond
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("old-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), limit)
			defer cancel()
			start := time.Now()
			got, err := a.Node(0).Call(ctx, holderPID, wrapperspb.String(p))
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				t.Errorf("%s answered %v though never released", p, got)
			}
			if d > limit+500*time.Millisecond {
				t.Errorf("%s ended %v after its start, deadline %v: %v", p, d, limit, err)
			}
		}()
	}
	wg.Wait()
	await.True(t, 10*time.Second, "the holder to have every old request", func() bool { return holder.count() == n })
	// Every relay on every harbor is freed once the deadlines pass.
	await.True(t, 10*time.Second, "the harbors' relays to drain", func() bool {
		for _, c := range cs.Each {
			for h := range cs.Harbors {
				if c.Nodes[cs.Harbor(h)].Pending() != 0 {
					return false
				}
			}
		}
		return true
	})
	// And the caller's, by its own sweep (deadline and a grace period).
	await.True(t, 10*time.Second, "the caller's pending requests to drain", func() bool { return a.Nodes[0].Pending() == 0 })

	// New requests, then the old ones' late answers, then the new ones'.
	type res struct {
		payload, got string
		err          error
	}
	out := make(chan res, n)
	for i := range n {
		go func() {
			p := fmt.Sprintf("new-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := a.Node(0).Call(ctx, holderPID, wrapperspb.String(p))
			r := res{payload: p, err: err}
			if err == nil {
				r.got = got.(*wrapperspb.StringValue).GetValue()
			}
			out <- r
		}()
	}
	await.True(t, 10*time.Second, "the holder to have every new request", func() bool { return holder.count() == 2*n })
	for i := range n {
		if !holder.release(fmt.Sprintf("old-%d", i)) {
			t.Fatalf("old-%d not held", i)
		}
	}
	// Give the late answers a chance to (wrongly) match.
	select {
	case r := <-out:
		t.Fatalf("%s ended before its release: %q, %v", r.payload, r.got, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	for i := range n {
		holder.release(fmt.Sprintf("new-%d", i))
	}
	for range n {
		r := recv(t, out)
		if r.err != nil || r.got != "echo:"+r.payload {
			t.Errorf("%s: got %q, %v", r.payload, r.got, r.err)
		}
	}
}

// TestHarborRestartUnderLoad: a harbor restarted (killed, then started
// again with the same address) while the nodes of cluster 1 call cluster
// 2: every reply is its own request's, no call outlives its deadline, and
// every failure is a lost peer; afterwards calls succeed again.
func TestHarborRestartUnderLoad(t *testing.T) {
	for _, side := range []int{0, 1} {
		t.Run(fmt.Sprintf("cluster%d", side+1), func(t *testing.T) {
			cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 2})
			a, b := cs.Each[0], cs.Each[1]
			var targets []actor.PID
			for i := range cs.Nodes {
				pid, _ := spawnEcho(t, b.Node(i))
				targets = append(targets, pid)
			}
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var load a4Load
			for i := range cs.Nodes {
				for j, tg := range targets {
					for w := range 2 {
						load.run(ctx, &wg, a.Node(i), tg, fmt.Sprintf("n%d-t%d-w%d", i, j, w), 2*time.Second)
					}
				}
			}
			await.True(t, 10*time.Second, "load before the restart", func() bool { return load.ok.Load() >= 200 })
			c := cs.Each[side]
			c.Kill(cs.Harbor(0))
			c.Restart(t, cs.Harbor(0))
			cs.Each[0].WaitFor(t, "every harbor to see the 4 harbors", func() bool {
				for _, c := range cs.Each {
					for h := range cs.Harbors {
						if hm := c.HarborMembership(cs.Harbor(h)); hm == nil || len(hm.Members()) != 4 {
							return false
						}
					}
				}
				return true
			})
			// Kill the other harbor of that cluster: traffic must now go
			// through the restarted one.
			c.Kill(cs.Harbor(1))
			time.Sleep(time.Second) // a grace period, as TestHarborKillUnderLoad's
			l0 := load.failed.Load()
			base := load.ok.Load()
			await.True(t, 15*time.Second, "load through the restarted harbor", func() bool { return load.ok.Load() >= base+200 })
			stop()
			wg.Wait()
			t.Logf("%d calls failed after the other harbor's kill settled", load.failed.Load()-l0)
			load.mu.Lock()
			for _, err := range load.errs {
				if !errors.Is(err, transport.ErrPeerLost) {
					t.Errorf("a call failed with %v, want transport.ErrPeerLost", err)
				}
			}
			load.mu.Unlock()
			load.check(t, true)
		})
	}
}

// a4Seq records the sequence numbers of the one-way messages it gets,
// per sender tag.
type a4Seq struct {
	mu   sync.Mutex
	last map[string]int
	seen map[string]map[int]bool
	bad  []string
	n    int
}

func (s *a4Seq) receive(c *actor.Context) {
	m, ok := c.Message().(*wrapperspb.StringValue)
	if !ok {
		return
	}
	var tag string
	var k int
	if _, err := fmt.Sscanf(m.Value, "%s %d", &tag, &k); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.seen[tag] == nil {
		s.seen[tag] = make(map[int]bool)
	}
	if s.seen[tag][k] {
		s.bad = append(s.bad, fmt.Sprintf("%s %d delivered twice", tag, k))
	}
	s.seen[tag][k] = true
	if l, ok := s.last[tag]; ok && k <= l {
		s.bad = append(s.bad, fmt.Sprintf("%s %d after %d", tag, k, l))
	}
	s.last[tag] = k
}

func (s *a4Seq) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestHarborSendOrder: one-way messages from nodes of cluster 1 to an
// actor of cluster 2 arrive in the order sent, each once ("the messages
// of one node to another follow one path while the harbors stay the
// same, so they keep their order"); then a harbor of cluster 2 that
// carries none of them is killed: order and uniqueness still hold.
func TestHarborSendOrder(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 2})
	a, b := cs.Each[0], cs.Each[1]
	seq := &a4Seq{last: map[string]int{}, seen: map[string]map[int]bool{}}
	pid, err := b.Node(0).SpawnFunc(seq.receive)
	if err != nil {
		t.Fatal(err)
	}
	const per = 3000
	send := func(round string) {
		var wg sync.WaitGroup
		for i := range cs.Nodes {
			for w := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// From inside no actor: Node.Send; each goroutine's
					// messages have their own tag.
					tag := fmt.Sprintf("%s-n%d-w%d", round, i, w)
					for k := range per {
						for {
							err := a.Node(i).Send(pid, wrapperspb.String(fmt.Sprintf("%s %d", tag, k)))
							if err == nil {
								break
							}
							if !errors.Is(err, transport.ErrPendingQueueFull) {
								t.Errorf("send %s %d: %v", tag, k, err)
								return
							}
							time.Sleep(time.Millisecond)
						}
					}
				}()
			}
		}
		wg.Wait()
	}
	// "a Send gives no delivery guarantee" (docs/ARCHITECTURE.md): a
	// harbor whose queue to the next hop is full drops; order and
	// uniqueness are what is checked. Wait until deliveries stop.
	settle := func(what string) {
		last, since := -1, time.Now()
		await.True(t, 30*time.Second, what, func() bool {
			if n := seq.count(); n != last {
				last, since = n, time.Now()
			}
			return time.Since(since) > time.Second
		})
	}
	send("r1")
	settle("round 1's deliveries to stop")
	t.Logf("round 1: %d of %d delivered", seq.count(), cs.Nodes*3*per)
	// Kill the harbor of cluster 2 that relays nothing to node 0 (if the
	// two harbors of cluster 1 pick different ones, kill none).
	route := map[actor.Addr]bool{}
	for h := range cs.Harbors {
		r, _ := a.Nodes[cs.Harbor(h)].Route(b.Addrs[0])
		route[r] = true
	}
	for h := range cs.Harbors {
		if !route[b.Addrs[cs.Harbor(h)]] {
			b.Kill(cs.Harbor(h))
			break
		}
	}
	n1 := seq.count()
	send("r2")
	settle("round 2's deliveries to stop")
	t.Logf("round 2: %d of %d delivered", seq.count()-n1, cs.Nodes*3*per)
	seq.mu.Lock()
	defer seq.mu.Unlock()
	for i, s := range seq.bad {
		if i >= 10 {
			t.Errorf("... and %d more", len(seq.bad)-10)
			break
		}
		t.Error(s)
	}
}

// TestHarborExportsFollowNodes: exported members of cluster 2 appear in
// cluster 1's View while exported and available, and go when their node
// is killed, marked unavailable, or when every harbor of cluster 2 dies;
// they come back when it restarts or is available again (cluster/exports.go:
// "each harbor publishes the exported, available members of its own
// cluster"; doc.go: "The exported members of other clusters reach a node
// through its harbors").
func TestHarborExportsFollowNodes(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{
		Types:  [][]int{{1, 1, 1}, {1, 7, 7}},
		Export: [][]bool{{false, false, false}, {false, true, true}},
	})
	a, b := cs.Each[0], cs.Each[1]
	e1, e2 := b.Addrs[1], b.Addrs[2]
	sees := func(i int, addr actor.Addr) bool {
		for _, m := range a.Nodes[i].View().Members() {
			if m.Addr == addr {
				return m.Available
			}
		}
		return false
	}
	all := func(addr actor.Addr, want bool) func() bool {
		return func() bool {
			for i := range cs.Nodes {
				if sees(i, addr) != want {
					return false
				}
			}
			return true
		}
	}
	await.True(t, 15*time.Second, "both exported members in cluster 1's views", func() bool { return all(e1, true)() && all(e2, true)() })

	b.Kill(1)
	await.True(t, 15*time.Second, "the killed 2.7.2 to leave cluster 1's views", all(e1, false))
	if !all(e2, true)() {
		t.Errorf("2.7.3 left the views with 2.7.2")
	}
	b.Restart(t, 1)
	await.True(t, 15*time.Second, "the restarted 2.7.2 back in cluster 1's views", all(e1, true))

	if err := b.Nodes[2].SetAvailable(ctxTimeout(t, 5*time.Second), false); err != nil {
		t.Fatal(err)
	}
	await.True(t, 15*time.Second, "the unavailable 2.7.3 to leave cluster 1's views", all(e2, false))
	if err := b.Nodes[2].SetAvailable(ctxTimeout(t, 5*time.Second), true); err != nil {
		t.Fatal(err)
	}
	await.True(t, 15*time.Second, "the available 2.7.3 back in cluster 1's views", all(e2, true))

	for h := range cs.Harbors {
		b.Kill(cs.Harbor(h))
	}
	await.True(t, 20*time.Second, "cluster 2's exports to leave cluster 1's views when its harbors die", func() bool { return all(e1, false)() && all(e2, false)() })
	b.Restart(t, cs.Harbor(0))
	await.True(t, 20*time.Second, "cluster 2's exports back once a harbor restarts", func() bool { return all(e1, true)() && all(e2, true)() })
}

// TestHarborGracefulShutdownRelays: a harbor that shuts down gracefully
// while it relays requests waits for their answers and relays them back
// (doc.go: "[Node.Shutdown] leaves in order: it marks the node
// unavailable ..., waits for the requests it waits on or relays"), so
// every held request gets its own reply, not an error; requests made
// meanwhile go through the other harbor.
func TestHarborGracefulShutdownRelays(t *testing.T) {
	for _, side := range []int{0, 1} {
		t.Run(fmt.Sprintf("cluster%d", side+1), func(t *testing.T) {
			cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 1})
			a, b := cs.Each[0], cs.Each[1]
			holderPID, holder := spawnHolder(t, b.Node(0))
			type res struct {
				payload, got string
				err          error
			}
			out := make(chan res, 64)
			call := func(p string) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				got, err := a.Node(0).Call(ctx, holderPID, wrapperspb.String(p))
				r := res{payload: p, err: err}
				if err == nil {
					r.got = got.(*wrapperspb.StringValue).GetValue()
				}
				out <- r
			}
			const n = 10
			for i := range n {
				go call(fmt.Sprintf("old-%d", i))
			}
			await.True(t, 10*time.Second, "the holder to hold the old requests", func() bool { return holder.count() == n })
			c := cs.Each[side]
			victim := -1
			for h := range cs.Harbors {
				if c.Nodes[cs.Harbor(h)].Pending() > 0 {
					victim = cs.Harbor(h)
				}
			}
			if victim < 0 {
				t.Fatal("no harbor relays the requests")
			}
			shut := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				shut <- c.Nodes[victim].Shutdown(ctx)
			}()
			// The shutting harbor is marked unavailable: new requests go
			// through the other harbor.
			await.True(t, 10*time.Second, "the route to avoid the shutting harbor", func() bool {
				r1, _ := a.Nodes[0].Route(b.Addrs[0])
				if side == 0 {
					return r1 != c.Addrs[victim]
				}
				h := harborOf(a, r1)
				if h == nil {
					return false
				}
				r2, _ := h.Route(b.Addrs[0])
				return r2 != c.Addrs[victim]
			})
			for i := range n {
				go call(fmt.Sprintf("new-%d", i))
			}
			await.True(t, 10*time.Second, "the holder to hold the new requests", func() bool { return holder.count() == 2*n })
			for i := range n {
				holder.release(fmt.Sprintf("old-%d", i))
				holder.release(fmt.Sprintf("new-%d", i))
			}
			for range 2 * n {
				select {
				case r := <-out:
					if r.err != nil || r.got != "echo:"+r.payload {
						t.Errorf("%s: got %q, %v", r.payload, r.got, r.err)
					}
				case <-time.After(15 * time.Second):
					t.Fatal("a request got no answer")
				}
			}
			select {
			case err := <-shut:
				if err != nil {
					t.Errorf("the harbor's Shutdown: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the harbor's Shutdown did not return")
			}
		})
	}
}

// TestHarborPauseUnderLoad: a harbor whose network freezes (Pause: no
// reset) while calls flow through it, then thaws (Resume, which delivers
// what was held back late): no call outlives its deadline by much, every
// reply is its own request's, and calls succeed again afterwards.
func TestHarborPauseUnderLoad(t *testing.T) {
	for _, side := range []int{0, 1} {
		t.Run(fmt.Sprintf("cluster%d", side+1), func(t *testing.T) {
			cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 2})
			a, b := cs.Each[0], cs.Each[1]
			var targets []actor.PID
			for i := range cs.Nodes {
				pid, _ := spawnEcho(t, b.Node(i))
				targets = append(targets, pid)
			}
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var load a4Load
			for i := range cs.Nodes {
				for j, tg := range targets {
					for w := range 2 {
						load.run(ctx, &wg, a.Node(i), tg, fmt.Sprintf("n%d-t%d-w%d", i, j, w), 2*time.Second)
					}
				}
			}
			await.True(t, 10*time.Second, "load before the pause", func() bool { return load.ok.Load() >= 200 })
			c := cs.Each[side]
			// Pause the harbor that carries node 0's calls to target 0.
			r1, _ := a.Nodes[0].Route(b.Addrs[0])
			victim := r1
			if side == 1 {
				victim, _ = harborOf(a, r1).Route(b.Addrs[0])
			}
			vi := -1
			for i, ad := range c.Addrs {
				if ad == victim {
					vi = i
				}
			}
			c.Pause(vi)
			time.Sleep(3 * c.TTL) // the freeze lasts past the harbor's lease
			base := load.ok.Load()
			await.True(t, 15*time.Second, "calls through the other harbor during the freeze", func() bool { return load.ok.Load() >= base+200 })
			c.Resume(vi)
			base = load.ok.Load()
			await.True(t, 15*time.Second, "calls after the thaw", func() bool { return load.ok.Load() >= base+500 })
			stop()
			wg.Wait()
			load.check(t, true)
		})
	}
}
