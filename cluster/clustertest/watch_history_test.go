package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport/tcp"
)

type atkWatchEvent struct {
	t  actor.Terminated
	at time.Time
}

// atkWatcher is an actor that watches and unwatches on command and records
// every Terminated it gets.
type atkWatcher struct {
	mu  sync.Mutex
	got map[actor.PID][]atkWatchEvent
}

type atkWatchCmd struct {
	pid     actor.PID
	unwatch bool
	done    chan struct{}
}

func (w *atkWatcher) receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case atkWatchCmd:
		if m.unwatch {
			c.Unwatch(m.pid)
		} else {
			c.Watch(m.pid)
		}
		if m.done != nil {
			close(m.done)
		}
	case actor.Terminated:
		w.mu.Lock()
		w.got[m.PID] = append(w.got[m.PID], atkWatchEvent{m, time.Now()})
		w.mu.Unlock()
	}
}

func (w *atkWatcher) events(p actor.PID) []atkWatchEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]atkWatchEvent(nil), w.got[p]...)
}

func spawnWatcher(t *testing.T, n *actor.Node) (actor.PID, *atkWatcher) {
	t.Helper()
	w := &atkWatcher{got: make(map[actor.PID][]atkWatchEvent)}
	pid, err := n.SpawnFunc(w.receive)
	if err != nil {
		t.Fatal(err)
	}
	return pid, w
}

func watchCmd(t *testing.T, n *actor.Node, w actor.PID, target actor.PID, unwatch bool) {
	t.Helper()
	done := make(chan struct{})
	if err := n.Send(w, atkWatchCmd{pid: target, unwatch: unwatch, done: done}); err != nil {
		t.Fatal(err)
	}
	recv(t, done)
}

func idle(c *actor.Context) {}

// TestWatchHistory: one watcher on node 0 (and a Watch from
// outside actors) watch actors of node 2 through their whole lives.
func TestWatchHistory(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second,
		Transport: tcp.Config{HeartbeatInterval: heartbeat, DeadAfter: deadAfter}})
	n0 := c.Node(0)
	wpid, w := spawnWatcher(t, n0)
	spawn := func() actor.PID {
		p, err := c.Node(2).SpawnFunc(idle)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, live := spawn(), spawn(), spawn()
	ghost := actor.PID{Node: c.Addrs[2], Serial: 999999}

	outside := make(chan actor.Terminated, 10)
	for _, p := range []actor.PID{a, b, live, ghost} {
		watchCmd(t, n0, wpid, p, false)
		if _, err := n0.Watch(p, func(tm actor.Terminated) { outside <- tm }); err != nil {
			t.Fatal(err)
		}
	}
	// The ghost fires at once, not found.
	await.True(t, 2*time.Second, "the ghost's Terminated", func() bool { return len(w.events(ghost)) == 1 })
	if r := w.events(ghost)[0].t.Reason; r != actor.ReasonNotFound {
		t.Fatalf("ghost: reason %v, want not found", r)
	}
	if tm := recv(t, outside); tm.PID != ghost || tm.Reason != actor.ReasonNotFound {
		t.Fatalf("outside watch: %+v, want the ghost, not found", tm)
	}
	// Nothing for the live ones.
	time.Sleep(time.Second) // a window in which nothing may happen
	for _, p := range []actor.PID{a, b, live} {
		if e := w.events(p); len(e) != 0 {
			t.Fatalf("watching live %v fired: %+v", p, e)
		}
	}
	select {
	case tm := <-outside:
		t.Fatalf("outside watch of a live actor fired: %+v", tm)
	default:
	}

	// Unwatch b then stop it: nothing.
	watchCmd(t, n0, wpid, b, true)
	if err := n0.Stop(b); err != nil {
		t.Fatal(err)
	}
	// Stop a: exactly one, stopped.
	if err := n0.Stop(a); err != nil {
		t.Fatal(err)
	}
	await.True(t, 3*time.Second, "a's Terminated", func() bool { return len(w.events(a)) >= 1 })
	var gotOutside []actor.Terminated
	await.True(t, 3*time.Second, "outside Terminateds of a and b", func() bool {
		select {
		case tm := <-outside:
			gotOutside = append(gotOutside, tm)
		default:
		}
		return len(gotOutside) == 2
	})
	for _, tm := range gotOutside {
		if tm.Reason != actor.ReasonStopped {
			t.Fatalf("outside watch: %+v, want stopped", tm)
		}
	}

	// Kill node 2: the live one ends once, node down.
	killed := time.Now()
	c.Kill(2)
	await.True(t, c.TTL+5*time.Second, "live's Terminated after the kill", func() bool { return len(w.events(live)) >= 1 })
	ev := w.events(live)[0]
	t.Logf("live's Terminated %v after the kill: %v", ev.at.Sub(killed), ev.t.Reason)
	if ev.t.Reason != actor.ReasonNodeDown {
		t.Fatalf("live: reason %v, want node down", ev.t.Reason)
	}
	tm := recv(t, outside)
	if tm.PID != live || tm.Reason != actor.ReasonNodeDown {
		t.Fatalf("outside watch of live: %+v", tm)
	}
	c.Restart(t, 2)
	// The restarted node's actors may reuse the old serials: stopping
	// them must not deliver anything more to the old watches.
	for range 4 {
		p := spawn()
		_ = c.Node(2).Stop(p)
	}
	time.Sleep(2 * time.Second) // a window in which nothing more may happen
	check := func(p actor.PID, n int, reason actor.TerminationReason) {
		e := w.events(p)
		if len(e) != n {
			t.Errorf("%v: %d Terminated, want %d: %+v", p, len(e), n, e)
			return
		}
		if n == 1 && e[0].t.Reason != reason {
			t.Errorf("%v: reason %v, want %v", p, e[0].t.Reason, reason)
		}
	}
	check(ghost, 1, actor.ReasonNotFound)
	check(a, 1, actor.ReasonStopped)
	check(b, 0, 0)
	check(live, 1, actor.ReasonNodeDown)
	select {
	case tm := <-outside:
		t.Errorf("an extra outside Terminated: %+v", tm)
	default:
	}
}

// TestWatchStorm: many actors on node 2 are watched from nodes 0 and
// 1 while they are being stopped concurrently: every watch hears exactly
// one Terminated (stopped or not found), none is lost.
func TestWatchStorm(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	const n = 300
	targets := make([]actor.PID, n)
	for i := range targets {
		p, err := c.Node(2).SpawnFunc(idle)
		if err != nil {
			t.Fatal(err)
		}
		targets[i] = p
	}
	w0, r0 := spawnWatcher(t, c.Node(0))
	w1, r1 := spawnWatcher(t, c.Node(1))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for _, p := range targets {
			_ = c.Node(0).Send(w0, atkWatchCmd{pid: p})
		}
	}()
	go func() {
		defer wg.Done()
		for _, p := range targets {
			_ = c.Node(1).Send(w1, atkWatchCmd{pid: p})
		}
	}()
	go func() {
		defer wg.Done()
		for i, p := range targets {
			if i%2 == 0 {
				_ = c.Node(2).Stop(p)
			} else {
				_ = c.Node(0).Stop(p) // remote stop
			}
		}
	}()
	wg.Wait()
	all := func(w *atkWatcher) bool {
		for _, p := range targets {
			if len(w.events(p)) == 0 {
				return false
			}
		}
		return true
	}
	await.True(t, 10*time.Second, "every watch to end", func() bool { return all(r0) && all(r1) })
	time.Sleep(time.Second) // a window for duplicates
	for wi, w := range []*atkWatcher{r0, r1} {
		for _, p := range targets {
			e := w.events(p)
			if len(e) != 1 {
				t.Errorf("watcher on node %d: %v got %d Terminated: %+v", wi, p, len(e), e)
			} else if r := e[0].t.Reason; r != actor.ReasonStopped && r != actor.ReasonNotFound {
				t.Errorf("watcher on node %d: %v reason %v", wi, p, r)
			}
		}
	}
}

// TestWatchAcrossPartition: a watched actor stops during a
// partition shorter than the link timeout: its watcher hears exactly one
// Terminated once the partition heals (stopped, or not found when the
// watch is sent again). A second partition longer than the link timeout
// ends another watch with link lost, once; stopping that actor after the
// heal adds nothing.
func TestWatchAcrossPartition(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second,
		Transport: tcp.Config{HeartbeatInterval: heartbeat, DeadAfter: deadAfter}})
	if c.TransportKind() == "nats" {
		t.Skip("partition")
	}
	wpid, w := spawnWatcher(t, c.Node(0))
	x, _ := c.Node(2).SpawnFunc(idle)
	y, _ := c.Node(2).SpawnFunc(idle)
	watchCmd(t, c.Node(0), wpid, x, false)
	watchCmd(t, c.Node(0), wpid, y, false)
	// Make sure the watches arrived: a round trip to node 2.
	pe, _ := spawnEcho(t, c.Node(2))
	mustEcho(t, c, 0, pe, "sync")

	c.Partition([]int{0, 1}, []int{2})
	time.Sleep(2 * deadAfter) // the link is declared dead meanwhile
	if err := c.Node(2).Stop(x); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if e := w.events(x); len(e) != 0 {
		t.Fatalf("Terminated across a partition: %+v", e)
	}
	c.Heal()
	await.True(t, 8*time.Second, "x's Terminated after the heal", func() bool { return len(w.events(x)) >= 1 })
	t.Logf("x: %+v", w.events(x))

	// Long partition: past the link timeout (10s default).
	c.Partition([]int{0, 1}, []int{2})
	await.True(t, 20*time.Second, "y's link lost", func() bool { return len(w.events(y)) >= 1 })
	if r := w.events(y)[0].t.Reason; r != actor.ReasonLinkLost {
		t.Fatalf("y: %v, want link lost", r)
	}
	c.Heal()
	awaitEcho(t, c, 0, pe, "node 0 to reach node 2 after the heal")
	if err := c.Node(0).Stop(y); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // a window for duplicates
	for _, p := range []actor.PID{x, y} {
		if e := w.events(p); len(e) != 1 {
			t.Errorf("%v: %d Terminated, want exactly 1: %s", p, len(e), fmt.Sprint(e))
		}
	}
}

// TestWatchPlacedDuringPartition: "a watcher hears exactly one
// Terminated: ... or link lost (unreachable for
// NodeConfig.WatchLinkTimeout)". A watch placed while the target's node
// is already cut off (the partition began, and was detected, before any
// watch on that node existed) must still end with link lost within about
// the link timeout (10s default), not wait for the partition to heal.
func TestWatchPlacedDuringPartition(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second,
		Transport: tcp.Config{HeartbeatInterval: heartbeat, DeadAfter: deadAfter}})
	if c.TransportKind() == "nats" {
		t.Skip("partition")
	}
	target, _ := c.Node(2).SpawnFunc(idle)
	pe, _ := spawnEcho(t, c.Node(2))
	mustEcho(t, c, 0, pe, "connect") // node 0 has a connection to node 2
	c.Partition([]int{0, 1}, []int{2})
	// Wait until node 0 knows node 2 is unreachable.
	await.True(t, 10*time.Second, "node 0 to find node 2 unreachable", func() bool {
		_, err := callEcho(c, 0, pe, "probe", 300*time.Millisecond)
		return err != nil && !errorsIsTimeout(err)
	})
	wpid, w := spawnWatcher(t, c.Node(0))
	placed := time.Now()
	watchCmd(t, c.Node(0), wpid, target, false)
	fired := make(chan actor.Terminated, 1)
	if _, err := c.Node(0).Watch(target, func(tm actor.Terminated) { fired <- tm }); err != nil {
		t.Fatal(err)
	}
	bound := 10*time.Second + 5*time.Second
	ok := false
	for time.Since(placed) < bound {
		if len(w.events(target)) > 0 {
			ok = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !ok {
		t.Fatalf("a watch placed during a partition heard nothing in %v (link timeout 10s)", time.Since(placed))
	}
	t.Logf("watch placed during the partition ended after %v: %+v", time.Since(placed), w.events(target))
	select {
	case tm := <-fired:
		t.Logf("outside watch: %v", tm.Reason)
	case <-time.After(2 * time.Second):
		t.Errorf("the outside watch (Node.Watch) heard nothing")
	}
	c.Heal()
}

func errorsIsTimeout(err error) bool {
	return errors.Is(err, actor.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// TestNodeWatchCancel: Node.Watch's cancel: "fn does not run after
// cancel has returned". Remote targets watched from node 0; half the
// watches are cancelled, then every target is stopped (half from node 0,
// half locally): the cancelled ones never run fn, the others run it once.
func TestNodeWatchCancel(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	const n = 200
	var mu sync.Mutex
	calls := make(map[actor.PID]int)
	targets := make([]actor.PID, n)
	cancels := make([]func(), n)
	for i := range targets {
		p, err := c.Node(2).SpawnFunc(idle)
		if err != nil {
			t.Fatal(err)
		}
		targets[i] = p
		cancels[i], err = c.Node(0).Watch(p, func(tm actor.Terminated) {
			mu.Lock()
			calls[tm.PID]++
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pe, _ := spawnEcho(t, c.Node(2))
	mustEcho(t, c, 0, pe, "sync") // the watches reached node 2
	for i := 0; i < n; i += 2 {
		cancels[i]()
	}
	for i, p := range targets {
		if i%4 < 2 {
			_ = c.Node(0).Stop(p)
		} else {
			_ = c.Node(2).Stop(p)
		}
	}
	await.True(t, 10*time.Second, "the uncancelled watches to fire", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := 1; i < n; i += 2 {
			if calls[targets[i]] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // a window for late or duplicate calls
	mu.Lock()
	defer mu.Unlock()
	for i, p := range targets {
		want := 1
		if i%2 == 0 {
			want = 0
		}
		if calls[p] != want {
			t.Errorf("target %d (%v, cancelled %v): fn ran %d times, want %d", i, p, i%2 == 0, calls[p], want)
		}
	}
}

// TestRemoteStopDuringPartition: Node.Stop of a remote PID during a
// partition (etcd reachable: the node stays a member) queued once the
// cut is known takes effect once the partition heals.
func TestRemoteStopDuringPartition(t *testing.T) {
	t.Run("direct writes", func(t *testing.T) { attackRemoteStop(t, false) })
	t.Run("queued writes", func(t *testing.T) { attackRemoteStop(t, true) })
}

func attackRemoteStop(t *testing.T, queued bool) {
	var logger *slog.Logger
	if os.Getenv("ATK_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second, Logger: logger,
		Transport: tcp.Config{HeartbeatInterval: heartbeat, DeadAfter: deadAfter, QueuedWrites: queued}})
	if c.TransportKind() == "nats" {
		t.Skip("partition")
	}
	early, _ := c.Node(2).SpawnFunc(idle) // stopped before the cut is detected
	late, _ := c.Node(2).SpawnFunc(idle)  // stopped after
	pe, _ := spawnEcho(t, c.Node(2))
	mustEcho(t, c, 0, pe, "connect")
	stopped := make(chan actor.PID, 2)
	for _, p := range []actor.PID{early, late} {
		if _, err := c.Node(2).Watch(p, func(tm actor.Terminated) { stopped <- tm.PID }); err != nil {
			t.Fatal(err)
		}
	}
	c.Partition([]int{0, 1}, []int{2})
	errEarly := c.Node(0).Stop(early)
	await.True(t, 10*time.Second, "node 0 to find node 2 unreachable", func() bool {
		_, err := callEcho(c, 0, pe, "probe", 300*time.Millisecond)
		return err != nil && !errorsIsTimeout(err)
	})
	errLate := c.Node(0).Stop(late)
	t.Logf("Stop before detection: %v; after: %v", errEarly, errLate)
	time.Sleep(time.Second)
	c.Heal()
	awaitEcho(t, c, 0, pe, "node 0 to reach node 2 after the heal")
	// Observed: a Stop written on the connection before the cut was
	// detected is lost with it (at most once, like a Send: no promise
	// says otherwise, so this is only logged); one queued after the
	// detection is delivered once the link is back.
	got := map[actor.PID]bool{}
	deadline := time.After(5 * time.Second)
wait:
	for !got[late] || !got[early] {
		select {
		case p := <-stopped:
			got[p] = true
		case <-deadline:
			break wait
		}
	}
	if errEarly == nil && !got[early] {
		t.Logf("observation: the Stop sent before the partition was detected (returned nil) was lost")
	}
	if errLate == nil && !got[late] {
		t.Fatalf("the Stop queued after the partition was detected (returned nil) never took effect after the heal")
	}
}
