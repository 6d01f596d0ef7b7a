package actor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// journal records events from many actors in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	j.events = append(j.events, fmt.Sprintf(format, args...))
	j.mu.Unlock()
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.events...)
}

func (j *journal) index(event string) int {
	for i, e := range j.list() {
		if e == event {
			return i
		}
	}
	return -1
}

// lifecycleActor records its lifecycle messages under a name.
func lifecycleActor(j *journal, name string) func(c *Context) {
	return func(c *Context) {
		switch m := c.Message().(type) {
		case Started, Stopping, Stopped:
			j.add("%s %T", name, m)
		case Restarting:
			j.add("%s Restarting %v", name, m.Reason)
		case string:
			if m == "panic" {
				panic("boom")
			}
			j.add("%s got %s", name, m)
		}
	}
}

func TestLifecycleOrder(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	j := &journal{}
	pid := mustSpawn(t, n, lifecycleActor(j, "a"))
	_ = n.Send(pid, "hello")
	eventually(t, "hello", func() bool { return j.index("a got hello") >= 0 })
	if err := n.Stop(pid); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Stopped", func() bool { return j.index("a actor.Stopped") >= 0 })
	want := "[a actor.Started a got hello a actor.Stopping a actor.Stopped]"
	if got := fmt.Sprint(j.list()); got != want {
		t.Fatalf("lifecycle %s, want %s", got, want)
	}
	if err := n.Send(pid, "late"); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("send to a stopped actor: %v", err)
	}
}

func TestChildrenStopBeforeParent(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	j := &journal{}
	kids := make(chan []PID, 1)
	var parentPID PID
	parent := mustSpawn(t, n, func(c *Context) {
		lifecycleActor(j, "parent")(c)
		if _, ok := c.Message().(Started); ok {
			parentPID = c.Self()
			for i := 0; i < 3; i++ {
				name := fmt.Sprintf("child%d", i)
				if _, err := c.SpawnFunc(func(c *Context) {
					lifecycleActor(j, name)(c)
					if _, ok := c.Message().(Started); ok {
						if _, err := c.SpawnFunc(lifecycleActor(j, name+".grandchild")); err != nil {
							t.Error(err)
						}
					}
				}); err != nil {
					t.Error(err)
				}
			}
			kids <- c.Children()
		}
	})
	children := recv(t, kids)
	if len(children) != 3 || parentPID != parent {
		t.Fatalf("children %v", children)
	}
	eventually(t, "all started", func() bool { return n.Stats().Actors == 7 })
	if err := n.Stop(parent); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all stopped", func() bool { return n.Stats().Actors == 0 })
	parentStopped := j.index("parent actor.Stopped")
	parentStopping := j.index("parent actor.Stopping")
	for i := 0; i < 3; i++ {
		c := j.index(fmt.Sprintf("child%d actor.Stopped", i))
		g := j.index(fmt.Sprintf("child%d.grandchild actor.Stopped", i))
		if c < 0 || g < 0 || !(parentStopping < g && g < c && c < parentStopped) {
			t.Fatalf("stop order wrong: %q", j.list())
		}
	}
}

func TestWatch(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	target := mustSpawn(t, n, func(*Context) {})
	got := make(chan PID, 2)
	watcher := mustSpawn(t, n, func(c *Context) {
		switch m := c.Message().(type) {
		case PID:
			c.Watch(m)
			c.Respond("watching")
		case Terminated:
			got <- m.PID
		}
	})
	// The watch is queued in the target's system lane before Call returns,
	// so it is ahead of the stop below.
	if _, err := n.Call(context.Background(), watcher, target); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(target); err != nil {
		t.Fatal(err)
	}
	if pid := recv(t, got); pid != target {
		t.Fatalf("Terminated for %v, want %v", pid, target)
	}
	ghost := PID{Node: n.Addr(), Serial: 1 << 50}
	if _, err := n.Call(context.Background(), watcher, ghost); err != nil {
		t.Fatal(err)
	}
	if pid := recv(t, got); pid != ghost {
		t.Fatalf("watching a missing actor gave Terminated for %v", pid)
	}
}

func TestUnwatch(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	target := mustSpawn(t, n, echo)
	got := make(chan PID, 1)
	watcher := mustSpawn(t, n, func(c *Context) {
		switch m := c.Message().(type) {
		case PID:
			c.Watch(m)
			c.Unwatch(m)
			c.Respond("ok")
		case Terminated:
			got <- m.PID
		}
	})
	if _, err := n.Call(context.Background(), watcher, target); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Call(context.Background(), target, "flush"); err != nil {
		t.Fatal(err)
	}
	_ = n.Stop(target)
	noValue(t, got, 50*time.Millisecond)
}

func TestSpawnErrors(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	if _, err := n.Spawn(nil); err == nil {
		t.Fatal("nil producer accepted")
	}
	if _, err := n.Spawn(func() Actor { return nil }); err == nil {
		t.Fatal("nil actor accepted")
	}
	if _, err := n.Spawn(func() Actor { panic("bad producer") }); err == nil || !strings.Contains(err.Error(), "bad producer") {
		t.Fatalf("panicking producer: %v", err)
	}
	if _, err := n.SpawnFunc(echo, WithMailboxBound(-1)); err == nil {
		t.Fatal("negative bound accepted")
	}
	if n.Stats().Actors != 0 {
		t.Fatalf("failed spawns left %d actors", n.Stats().Actors)
	}
}

func TestProducerStructActor(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	pid, err := n.Spawn(func() Actor { return &counter{} })
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		_ = n.Send(pid, "inc")
	}
	if v, err := n.Call(context.Background(), pid, "get"); err != nil || v != 3 {
		t.Fatalf("counter = %v, %v", v, err)
	}
}

// counter is a struct actor: "inc" adds one, "get" answers the count, and
// "panic" panics.
type counter struct{ n int }

func (a *counter) Receive(c *Context) {
	switch c.Message() {
	case "inc":
		a.n++
	case "get":
		c.Respond(a.n)
	case "panic":
		panic("counter failed")
	}
}
