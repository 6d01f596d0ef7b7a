package cluster_test

// Remote watches: a watcher hears exactly one Terminated per watch, with
// the right reason, and none while the watched actor lives, whatever the
// connection between the nodes does.
//
// Absence checks ("no second Terminated") use a causal window rather than
// a sleep: settle makes a round trip to the target's node, whose reply
// leaves that node after every Terminated it sent before (one connection,
// one ordered queue per peer, and the receiving node hands envelopes to
// their actors in the order it reads them), and then sends the watcher a
// marker, which it handles after every message queued before it. When the
// marker comes back, any duplicate the target's node sent has been
// recorded.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/wire"
)

// termLog records every Terminated a watcher actor receives.
type termLog struct {
	mu  sync.Mutex
	got []actor.Terminated
}

func (l *termLog) add(m actor.Terminated) {
	l.mu.Lock()
	l.got = append(l.got, m)
	l.mu.Unlock()
}

// of returns the Terminated received for pid.
func (l *termLog) of(pid actor.PID) []actor.Terminated {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []actor.Terminated
	for _, m := range l.got {
		if m.PID == pid {
			out = append(out, m)
		}
	}
	return out
}

// wait polls until a Terminated for pid has arrived, and returns the first.
func (l *termLog) wait(t *testing.T, pid actor.PID) actor.Terminated {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("Terminated for %v", pid), func() bool { return len(l.of(pid)) > 0 })
	return l.of(pid)[0]
}

// Commands for a watcher actor, sent from the test (locally, so any Go
// value will do).
type (
	watchCmd   struct{ pid actor.PID }
	unwatchCmd struct{ pid actor.PID }
	markCmd    struct{ done chan struct{} }
)

// spawnWatcher starts an actor on n that watches and unwatches on command
// and records what it hears.
func spawnWatcher(t *testing.T, n *actor.Node) (actor.PID, *termLog) {
	t.Helper()
	l := &termLog{}
	pid, err := n.SpawnFunc(func(c *actor.Context) {
		switch m := c.Message().(type) {
		case watchCmd:
			c.Watch(m.pid)
		case unwatchCmd:
			c.Unwatch(m.pid)
		case markCmd:
			close(m.done)
		case actor.Terminated:
			l.add(m)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid, l
}

// mark waits until actor w (a watcher, or a requester actor) has handled
// every message queued for it so far.
func mark(t *testing.T, n *actor.Node, w actor.PID) {
	t.Helper()
	done := make(chan struct{})
	if err := n.Send(w, markCmd{done}); err != nil {
		t.Fatalf("mark %v: %v", w, err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("actor %v did not handle its marker in 10s", w)
	}
}

// roundTrip calls echo (a server on another node) from n: everything n
// sent that node before has been handled there, and everything that node
// sent n before its reply has been handled here.
func roundTrip(t *testing.T, n *actor.Node, echo actor.PID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := n.Call(ctx, echo, wrapperspb.String("sync"))
	if err != nil {
		t.Fatalf("round trip from %v to %v: %v", n.Addr(), echo, err)
	}
	if r.(*wrapperspb.StringValue).GetValue() != "echo:sync" {
		t.Fatalf("round trip from %v to %v: %v", n.Addr(), echo, r)
	}
}

// settle is the causal window described at the top of this file.
func settle(t *testing.T, n *actor.Node, echo, w actor.PID) {
	t.Helper()
	roundTrip(t, n, echo)
	mark(t, n, w)
}

// watchSynced makes w (on n) watch pids and waits until the watches have
// reached the node of echo: the watch goes out on the connection before
// the round trip's request.
func watchSynced(t *testing.T, n *actor.Node, w, echo actor.PID, pids ...actor.PID) {
	t.Helper()
	for _, pid := range pids {
		if err := n.Send(w, watchCmd{pid}); err != nil {
			t.Fatal(err)
		}
	}
	mark(t, n, w)
	roundTrip(t, n, echo)
}

// exactlyOne checks that w heard exactly one Terminated for pid, with one
// of the reasons.
func exactlyOne(t *testing.T, l *termLog, pid actor.PID, reasons ...actor.TerminationReason) {
	t.Helper()
	got := l.of(pid)
	if len(got) != 1 {
		t.Fatalf("Terminated for %v: %v, want exactly one", pid, got)
	}
	for _, r := range reasons {
		if got[0].Reason == r {
			return
		}
	}
	t.Fatalf("Terminated for %v with reason %v, want one of %v", pid, got[0].Reason, reasons)
}

// spawnIdle starts an actor on n that ignores what it gets.
func spawnIdle(t *testing.T, n *actor.Node) actor.PID {
	t.Helper()
	pid, err := n.SpawnFunc(func(*actor.Context) {})
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// terminatedFor returns the guild.terminated envelopes addressed to watcher.
func terminatedFor(envs []sysEnvelope, watcher actor.PID) []sysEnvelope {
	var out []sysEnvelope
	for _, e := range envs {
		if e.target == watcher {
			out = append(out, e)
		}
	}
	return out
}

func TestRemoteWatch(t *testing.T) {
	fc := startFaultCluster(t, 3, nodeOpts{})
	a, b, c := fc.node(0), fc.node(1), fc.node(2)
	echoB, _ := spawnServer(t, fc.nodes[1].Node)

	t.Run("stopped", func(t *testing.T) {
		x := spawnIdle(t, b)
		w1, l1 := spawnWatcher(t, a)
		w2, l2 := spawnWatcher(t, a)
		w3, l3 := spawnWatcher(t, c)
		watchSynced(t, a, w1, echoB, x, x) // twice: one watch
		watchSynced(t, a, w2, echoB, x)
		watchSynced(t, c, w3, echoB, x)
		if err := b.Stop(x); err != nil {
			t.Fatal(err)
		}
		for _, l := range []*termLog{l1, l2, l3} {
			l.wait(t, x)
		}
		settle(t, a, echoB, w1)
		settle(t, a, echoB, w2)
		settle(t, c, echoB, w3)
		exactlyOne(t, l1, x, actor.ReasonStopped)
		exactlyOne(t, l2, x, actor.ReasonStopped)
		exactlyOne(t, l3, x, actor.ReasonStopped)
	})

	t.Run("remote stop and poison", func(t *testing.T) {
		// Poison from A comes after the messages A sent before it.
		var handled atomic.Int64
		final := make(chan int64, 1)
		x, err := b.SpawnFunc(func(c *actor.Context) {
			switch c.Message().(type) {
			case *wrapperspb.Int32Value:
				handled.Add(1)
			case actor.Stopped:
				final <- handled.Load()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		stopped := spawnIdle(t, b)
		w, l := spawnWatcher(t, a)
		watchSynced(t, a, w, echoB, x, stopped)
		const sent = 300
		for i := range sent {
			if err := a.Send(x, wrapperspb.Int32(int32(i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Poison(x); err != nil {
			t.Fatal(err)
		}
		if err := a.Stop(stopped); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, final); got != sent {
			t.Fatalf("poisoned actor handled %d messages before it stopped, want the %d sent before the poison", got, sent)
		}
		l.wait(t, x)
		l.wait(t, stopped)
		settle(t, a, echoB, w)
		exactlyOne(t, l, x, actor.ReasonStopped)
		exactlyOne(t, l, stopped, actor.ReasonStopped)
		// The actors are gone: a request to either is refused by B.
		for _, pid := range []actor.PID{x, stopped} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := a.Call(ctx, pid, wrapperspb.String("still there?"))
			cancel()
			if !isNotFound(err) {
				t.Fatalf("Call to stopped %v: %v, want actor not found", pid, err)
			}
		}
	})

	t.Run("panic", func(t *testing.T) {
		// A child whose supervisor stops it on a panic ends with
		// ReasonStopped; a top-level actor restarted on a panic (the
		// default) keeps its PID and is not reported at all.
		kids := make(chan actor.PID, 1)
		stopper := actor.Supervisor{Decide: func(any) actor.Directive { return actor.Stop }}
		_, err := b.SpawnFunc(func(c *actor.Context) {
			if _, ok := c.Message().(actor.Started); ok {
				kid, err := c.SpawnFunc(func(c *actor.Context) {
					if _, ok := c.Message().(*wrapperspb.StringValue); ok {
						panic("boom")
					}
				})
				if err != nil {
					panic(err)
				}
				kids <- kid
			}
		}, actor.WithSupervisor(stopper))
		if err != nil {
			t.Fatal(err)
		}
		kid := recv(t, kids)
		restarted, err := b.SpawnFunc(func(c *actor.Context) {
			if m, ok := c.Message().(*wrapperspb.StringValue); ok {
				if m.GetValue() == "boom" {
					panic("boom")
				}
				c.Respond(wrapperspb.String("alive"))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		w, l := spawnWatcher(t, a)
		watchSynced(t, a, w, echoB, kid, restarted)
		for _, pid := range []actor.PID{kid, restarted} {
			if err := a.Send(pid, wrapperspb.String("boom")); err != nil {
				t.Fatal(err)
			}
		}
		l.wait(t, kid)
		// The restarted actor answers with the same PID, so its restart
		// is behind us; its watch must have survived it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if r, err := a.Call(ctx, restarted, wrapperspb.String("ping")); err != nil || r.(*wrapperspb.StringValue).GetValue() != "alive" {
			t.Fatalf("restarted actor: %v, %v", r, err)
		}
		settle(t, a, echoB, w)
		exactlyOne(t, l, kid, actor.ReasonStopped)
		if got := l.of(restarted); len(got) != 0 {
			t.Fatalf("restarted actor reported %v while alive", got)
		}
		if err := b.Stop(restarted); err != nil {
			t.Fatal(err)
		}
		l.wait(t, restarted)
		settle(t, a, echoB, w)
		exactlyOne(t, l, restarted, actor.ReasonStopped)
	})

	t.Run("not found", func(t *testing.T) {
		ghost := actor.PID{Node: b.Addr(), Serial: 1 << 40}
		w, l := spawnWatcher(t, a)
		watchSynced(t, a, w, echoB, ghost)
		l.wait(t, ghost)
		settle(t, a, echoB, w)
		exactlyOne(t, l, ghost, actor.ReasonNotFound)
	})

	t.Run("not a member", func(t *testing.T) {
		// Told at once, by the watching node itself.
		ghost := actor.PID{Node: actor.MustAddr(1, 1, 99), Serial: 1}
		w, l := spawnWatcher(t, a)
		if err := a.Send(w, watchCmd{ghost}); err != nil {
			t.Fatal(err)
		}
		mark(t, a, w) // the watch was handled, so its Terminated is queued behind the marker...
		mark(t, a, w) // ...and handled before this one
		exactlyOne(t, l, ghost, actor.ReasonNodeDown)
	})

	t.Run("unwatch", func(t *testing.T) {
		x := spawnIdle(t, b)
		w, l := spawnWatcher(t, a)
		control, lc := spawnWatcher(t, a)
		watchSynced(t, a, w, echoB, x)
		watchSynced(t, a, control, echoB, x)
		if err := a.Send(w, unwatchCmd{x}); err != nil {
			t.Fatal(err)
		}
		mark(t, a, w)
		roundTrip(t, a, echoB) // B has the unwatch
		stopFinalized(t, b, x)
		lc.wait(t, x)
		settle(t, a, echoB, w)
		if got := l.of(x); len(got) != 0 {
			t.Fatalf("Terminated after Unwatch: %v", got)
		}
		if got := terminatedFor(fc.seen(wire.SystemTerminated), w); len(got) != 0 {
			t.Fatalf("B still told the unwatching watcher: %v", got)
		}
		exactlyOne(t, lc, x, actor.ReasonStopped)
	})

	t.Run("watcher stops", func(t *testing.T) {
		// A watcher that stops unwatches: B no longer holds its watch, so
		// B sends it nothing when the target stops (seen on the wire: the
		// watching node's table would drop it anyway).
		x := spawnIdle(t, b)
		w, _ := spawnWatcher(t, a)
		control, lc := spawnWatcher(t, a)
		watchSynced(t, a, w, echoB, x)
		watchSynced(t, a, control, echoB, x)
		before := a.Stats().Actors
		if err := a.Stop(w); err != nil {
			t.Fatal(err)
		}
		// Its finalizer has sent the unwatch once it is no longer counted.
		waitFor(t, 10*time.Second, "the watcher to stop", func() bool { return a.Stats().Actors == before-1 })
		roundTrip(t, a, echoB) // B has the unwatch
		stopFinalized(t, b, x)
		lc.wait(t, x)
		roundTrip(t, a, echoB)
		if got := terminatedFor(fc.seen(wire.SystemTerminated), w); len(got) != 0 {
			t.Fatalf("B still told the stopped watcher: %v", got)
		}
		if got := terminatedFor(fc.seen(wire.SystemTerminated), control); len(got) != 1 {
			t.Fatalf("B told the live watcher %d times (%v), want once", len(got), got)
		}
	})

	t.Run("Node.Watch", func(t *testing.T) {
		x := spawnIdle(t, b)
		y := spawnIdle(t, b)
		var mu sync.Mutex
		var heard []actor.Terminated
		record := func(m actor.Terminated) {
			mu.Lock()
			heard = append(heard, m)
			mu.Unlock()
		}
		heardOf := func(pid actor.PID) (out []actor.Terminated) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range heard {
				if m.PID == pid {
					out = append(out, m)
				}
			}
			return out
		}
		if _, err := a.Watch(x, record); err != nil {
			t.Fatal(err)
		}
		cancelY, err := a.Watch(y, record)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "both watches to reach B", func() bool {
			n := 0
			for _, e := range fc.seen(wire.SystemWatch) {
				if e.target == x || e.target == y {
					n++
				}
			}
			return n >= 2
		})
		roundTrip(t, a, echoB)
		cancelY()
		control, lc := spawnWatcher(t, a)
		watchSynced(t, a, control, echoB, y)
		stopFinalized(t, b, x)
		stopFinalized(t, b, y)
		waitFor(t, 10*time.Second, "the watch function", func() bool { return len(heardOf(x)) > 0 })
		lc.wait(t, y)
		settle(t, a, echoB, control)
		if got := heardOf(x); len(got) != 1 || got[0].Reason != actor.ReasonStopped {
			t.Fatalf("Node.Watch function heard %v, want one stopped", got)
		}
		if got := heardOf(y); len(got) != 0 {
			t.Fatalf("cancelled Node.Watch function heard %v", got)
		}
	})

	t.Run("reconnect", func(t *testing.T) {
		// The connections drop and come back, twice: nothing is reported
		// while the actor lives, and exactly one Terminated when it stops.
		x := spawnIdle(t, b)
		w, l := spawnWatcher(t, a)
		wc, lc := spawnWatcher(t, c)
		watchSynced(t, a, w, echoB, x)
		watchSynced(t, c, wc, echoB, x)
		for range 2 {
			before := fc.accepted()
			fc.cutAll()
			reconnect(t, a, echoB)
			reconnect(t, c, echoB)
			if fc.accepted() <= before {
				t.Fatal("no connection was made again after the cut")
			}
		}
		settle(t, a, echoB, w)
		settle(t, c, echoB, wc)
		if got := append(l.of(x), lc.of(x)...); len(got) != 0 {
			t.Fatalf("Terminated while the actor lives, across a reconnect: %v", got)
		}
		if err := b.Stop(x); err != nil {
			t.Fatal(err)
		}
		l.wait(t, x)
		lc.wait(t, x)
		settle(t, a, echoB, w)
		settle(t, c, echoB, wc)
		exactlyOne(t, l, x, actor.ReasonStopped)
		exactlyOne(t, lc, x, actor.ReasonStopped)
	})

	t.Run("terminated lost with the connection", func(t *testing.T) {
		// B's Terminated is lost in the network, then the connection
		// drops: on reconnecting A watches again and B answers anew.
		x := spawnIdle(t, b)
		w, l := spawnWatcher(t, a)
		watchSynced(t, a, w, echoB, x)
		fc.setDrop(true)
		if err := b.Stop(x); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "B's Terminated to be lost", func() bool {
			for _, e := range terminatedFor(fc.seen(wire.SystemTerminated), w) {
				if e.dropped {
					return true
				}
			}
			return false
		})
		fc.cutAll()
		fc.setDrop(false)
		reconnect(t, a, echoB)
		l.wait(t, x)
		settle(t, a, echoB, w)
		exactlyOne(t, l, x, actor.ReasonNotFound)
	})

	// Every watch above has ended: the watching nodes hold none.
	for _, i := range []int{0, 2} {
		if n := cluster.Watches(fc.nodes[i].Node); n != 0 {
			t.Errorf("node %v still holds %d watches", fc.nodes[i].addr, n)
		}
	}
}

// reconnect waits until n reaches echo again after its connection was cut.
func reconnect(t *testing.T, n *actor.Node, echo actor.PID) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%v to reach %v again", n.Addr(), echo.Node), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := n.Call(ctx, echo, wrapperspb.String("sync"))
		return err == nil
	})
}

// stopFinalized stops x, an actor of n, and waits until n no longer
// counts it: x's finalizer has then run to its end, so every Terminated it
// sends is queued for its peer (a later reply to that peer leaves after
// it). Nothing else may spawn or stop actors on n meanwhile.
func stopFinalized(t *testing.T, n *actor.Node, x actor.PID) {
	t.Helper()
	before := n.Stats().Actors
	if err := n.Stop(x); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, fmt.Sprintf("%v to be gone", x), func() bool { return n.Stats().Actors == before-1 })
}

func isNotFound(err error) bool { return errors.Is(err, actor.ErrActorNotFound) }

func TestRemoteWatchNodeDown(t *testing.T) {
	// The watching nodes A and B give a node link watchLink to come back
	// after a connection drops, longer than a dead node's record lives
	// (its TTL, 1s, plus etcd's expiry check), so a killed node is
	// reported by the membership, ReasonNodeDown.
	const watchLink = 4 * time.Second
	fc := startFaultCluster(t, 2, nodeOpts{link: watchLink})
	a, b := fc.node(0), fc.node(1)
	closed, shut, killed := fc.add(nodeOpts{}), fc.add(nodeOpts{}), fc.add(nodeOpts{ttl: time.Second})
	fc.waitView()
	type target struct {
		name string
		n    *faultNode
		x    actor.PID
		echo actor.PID
	}
	targets := []*target{{name: "closed", n: closed}, {name: "shut down", n: shut}, {name: "killed", n: killed}}
	wa, la := spawnWatcher(t, a)
	wb, lb := spawnWatcher(t, b)
	for _, tg := range targets {
		tg.x = spawnIdle(t, tg.n.Actor())
		tg.echo, _ = spawnServer(t, tg.n.Node)
		watchSynced(t, a, wa, tg.echo, tg.x)
		watchSynced(t, b, wb, tg.echo, tg.x)
	}

	// Graceful: Close leaves the membership, then stops the actors;
	// Shutdown stops the actors, then leaves. Either way each watcher
	// hears once, that the actor stopped or that its node went.
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shut.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets[:2] {
		la.wait(t, tg.x)
		lb.wait(t, tg.x)
	}

	// A crash: the record stays until its lease expires; the watchers
	// hear of it then, and not before.
	killedAt := time.Now()
	killed.kill()
	for _, l := range []*termLog{la, lb} {
		got := l.wait(t, targets[2].x)
		if got.Reason != actor.ReasonNodeDown {
			t.Fatalf("killed node's actor: Terminated %v, want node down", got)
		}
	}
	t.Logf("the killed node was reported %v after the kill", time.Since(killedAt))
	for _, m := range []*faultNode{fc.nodes[0], fc.nodes[1]} {
		if sees(m.m, killed.addr) {
			t.Fatalf("Terminated before the killed node's record expired from %v's view", m.addr)
		}
	}

	// No second Terminated. The nodes that went can send nothing more;
	// the one other source is the watching node's own link timer, armed
	// when each connection dropped and due watchLink later: wait past the
	// last of them (the kill), then let the watchers handle their queues.
	for time.Since(killedAt) < watchLink+500*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
	}
	mark(t, a, wa)
	mark(t, b, wb)
	for _, tg := range targets {
		want := []actor.TerminationReason{actor.ReasonNodeDown, actor.ReasonStopped}
		if tg.n == killed {
			want = want[:1]
		}
		exactlyOne(t, la, tg.x, want...)
		exactlyOne(t, lb, tg.x, want...)
		t.Logf("%s: %v", tg.name, la.of(tg.x)[0].Reason)
	}
	for _, n := range fc.nodes[:2] {
		if w := cluster.Watches(n.Node); w != 0 {
			t.Errorf("node %v still holds %d watches", n.addr, w)
		}
	}
	// A watch of an actor on a node that went is answered at once.
	for _, tg := range targets {
		if err := a.Send(wa, watchCmd{tg.x}); err != nil {
			t.Fatal(err)
		}
	}
	mark(t, a, wa)
	mark(t, a, wa)
	for _, tg := range targets {
		if got := la.of(tg.x); len(got) != 2 || got[1].Reason != actor.ReasonNodeDown {
			t.Fatalf("watch of %v on a node that went: %v, want node down", tg.x, got)
		}
	}
}

func TestRemoteWatchLinkLost(t *testing.T) {
	// A cannot reach B for longer than its link timeout while B stays a
	// member: the watch ends once, ReasonLinkLost, and stays ended when
	// the link comes back and the actor later stops.
	const watchLink = 300 * time.Millisecond
	fc := startFaultCluster(t, 2, nodeOpts{link: watchLink})
	a, b := fc.node(0), fc.node(1)
	echoB, _ := spawnServer(t, fc.nodes[1].Node)
	x := spawnIdle(t, b)
	w, l := spawnWatcher(t, a)
	watchSynced(t, a, w, echoB, x)
	for _, n := range fc.nodes {
		n.px.setRefuse(true)
	}
	fc.cutAll()
	got := l.wait(t, x)
	if got.Reason != actor.ReasonLinkLost {
		t.Fatalf("Terminated %v, want link lost", got)
	}
	for _, n := range fc.nodes {
		n.px.setRefuse(false)
	}
	reconnect(t, a, echoB)
	stopFinalized(t, b, x)
	settle(t, a, echoB, w)
	exactlyOne(t, l, x, actor.ReasonLinkLost)
	if n := cluster.Watches(fc.nodes[0].Node); n != 0 {
		t.Errorf("A still holds %d watches", n)
	}
}

func TestRemoteWatchRacingLeave(t *testing.T) {
	// Watches issued while their node leaves, from several actors at
	// once: each ends exactly once, and soon (well before the link
	// timeout, 10s), as not found (answered by the node) or node down.
	fc := startFaultCluster(t, 2, nodeOpts{})
	a := fc.node(0)
	leaving := fc.add(nodeOpts{})
	fc.waitView()
	const watchers, batch = 4, 100
	type watchMany struct{ from uint64 }
	var l termLog
	var issued atomic.Int64
	var ws []actor.PID
	for range watchers {
		w, err := a.SpawnFunc(func(c *actor.Context) {
			switch m := c.Message().(type) {
			case watchMany:
				for i := range uint64(batch) {
					c.Watch(actor.PID{Node: leaving.addr, Serial: m.from + i})
				}
				issued.Add(batch)
			case markCmd:
				close(m.done)
			case actor.Terminated:
				l.add(m)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	const first = 1 << 30
	stop := make(chan struct{})
	sent := make(chan uint64, 1)
	go func() {
		next := uint64(first)
		defer func() { sent <- next }()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			if issued.Load() < int64(next-first)-watchers*batch {
				time.Sleep(100 * time.Microsecond) // let the watchers keep up
				continue
			}
			if err := a.Send(ws[k%watchers], watchMany{next}); err != nil {
				return
			}
			next += batch
		}
	}()
	waitFor(t, 10*time.Second, "some watches answered", func() bool { return len(l.of(actor.PID{Node: leaving.addr, Serial: first})) > 0 })
	if err := leaving.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A to see the node leave", func() bool { return !sees(fc.nodes[0].m, leaving.addr) })
	close(stop)
	end := <-sent
	for _, w := range ws {
		mark(t, a, w) // every batch sent has been issued
	}
	total := int(end - first)
	ended := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.got)
	}
	deadline := time.Now().Add(3 * time.Second)
	for ended() < total && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := ended(); n < total {
		// Say how the late ones end, if they do, for the report.
		late := time.Now()
		for ended() < total && time.Since(late) < 12*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		l.mu.Lock()
		tail := slices.Clone(l.got[n:])
		l.mu.Unlock()
		t.Fatalf("%d of %d watches had not ended 3s after the node left; %v later, %d more ended: %v", total-n, total, time.Since(late), len(tail), tail[:min(len(tail), 5)])
	}
	for _, w := range ws {
		mark(t, a, w)
	}
	seen := make(map[actor.PID]int)
	reasons := make(map[actor.TerminationReason]int)
	l.mu.Lock()
	for _, m := range l.got {
		seen[m.PID]++
		reasons[m.Reason]++
	}
	l.mu.Unlock()
	for pid, n := range seen {
		if n != 1 {
			t.Errorf("%v: %d Terminated", pid, n)
		}
	}
	if len(seen) != total {
		t.Errorf("%d watches ended, want %d", len(seen), total)
	}
	t.Logf("%d watches: %v", total, reasons)
	if n := cluster.Watches(fc.nodes[0].Node); n != 0 {
		t.Errorf("A still holds %d watches", n)
	}
}
