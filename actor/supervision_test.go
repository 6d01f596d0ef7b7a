package actor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPanicIsRecoveredLoggedAndRestarted(t *testing.T) {
	n, logs := newTestNode(t, Config{})
	pid, err := n.Spawn(func() Actor { return &counter{} })
	if err != nil {
		t.Fatal(err)
	}
	_ = n.Send(pid, "inc")
	_ = n.Send(pid, "inc")
	if _, err := n.Call(context.Background(), pid, "panic"); !errors.Is(err, ErrPanicked) || !strings.Contains(err.Error(), "counter failed") {
		t.Fatalf("Call into a panic: %v, want ErrPanicked", err)
	}
	v, err := n.Call(context.Background(), pid, "get")
	if err != nil || v != 0 {
		t.Fatalf("after restart the state is %v (%v), want a fresh 0", v, err)
	}
	out := logs.String()
	for _, want := range []string{"actor panicked", "counter failed", "goroutine", "(*counter).Receive", pid.String()} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestRestartDeliversRestartingThenStarted(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	j := &journal{}
	pid := mustSpawn(t, n, lifecycleActor(j, "a"))
	_ = n.Send(pid, "panic")
	_ = n.Send(pid, "after")
	eventually(t, "the message after the panic", func() bool { return j.index("a got after") >= 0 })
	want := "[a actor.Started a Restarting boom a actor.Started a got after]"
	if got := strings.Join(j.list(), " "); "["+got+"]" != want {
		t.Fatalf("lifecycle %q, want %s", got, want)
	}
}

func TestResumeKeepsState(t *testing.T) {
	n, _ := newTestNode(t, Config{Supervisor: Supervisor{Decide: func(any) Directive { return Resume }}})
	pid, _ := n.Spawn(func() Actor { return &counter{} })
	_ = n.Send(pid, "inc")
	_ = n.Send(pid, "panic")
	_ = n.Send(pid, "inc")
	if v, err := n.Call(context.Background(), pid, "get"); err != nil || v != 2 {
		t.Fatalf("resumed counter = %v (%v), want 2", v, err)
	}
}

func TestStopDirective(t *testing.T) {
	n, _ := newTestNode(t, Config{Supervisor: Supervisor{Decide: func(any) Directive { return Stop }}})
	pid, _ := n.Spawn(func() Actor { return &counter{} })
	_ = n.Send(pid, "panic")
	eventually(t, "the actor stops", func() bool { return n.Stats().Actors == 0 })
	if err := n.Send(pid, "inc"); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("send after Stop directive: %v", err)
	}
}

func TestRestartBudget(t *testing.T) {
	n, logs := newTestNode(t, Config{Supervisor: Supervisor{MaxRestarts: 3, Window: time.Minute}})
	j := &journal{}
	pid := mustSpawn(t, n, lifecycleActor(j, "a"))
	for i := 0; i < 4; i++ {
		_ = n.Send(pid, "panic")
	}
	eventually(t, "the actor is stopped after its budget", func() bool { return n.Stats().Actors == 0 })
	restarts := 0
	for _, e := range j.list() {
		if strings.HasPrefix(e, "a Restarting") {
			restarts++
		}
	}
	if restarts != 3 {
		t.Fatalf("%d restarts, want 3: %q", restarts, j.list())
	}
	if !strings.Contains(logs.String(), "restart budget exhausted") {
		t.Fatal("budget exhaustion was not logged")
	}
}

func TestRestartBudgetWindowSlides(t *testing.T) {
	s := Supervisor{MaxRestarts: 2, Window: time.Second}
	var h []int64
	var ok bool
	base := time.Now().UnixNano()
	for i, at := range []int64{0, 1, 2} {
		h, ok = s.allowRestart(h, base+at*int64(time.Millisecond))
		if want := i < 2; ok != want {
			t.Fatalf("restart %d allowed=%v", i, ok)
		}
	}
	if _, ok = s.allowRestart(h, base+int64(2*time.Second)); !ok {
		t.Fatal("old restarts still count after the window")
	}
	if _, ok := (&Supervisor{MaxRestarts: -1}).allowRestart(nil, base); ok {
		t.Fatal("MaxRestarts < 0 allowed a restart")
	}
}

func TestEscalateFailsTheParent(t *testing.T) {
	n, _ := newTestNode(t, Config{}) // the parent's own supervisor (the node's) restarts it
	j := &journal{}
	escalate := Supervisor{Decide: func(any) Directive { return Escalate }}
	childPID := make(chan PID, 2)
	parent, err := n.SpawnFunc(func(c *Context) {
		lifecycleActor(j, "parent")(c)
		if _, ok := c.Message().(Started); ok {
			pid, err := c.SpawnFunc(lifecycleActor(j, "child"))
			if err != nil {
				t.Error(err)
			}
			childPID <- pid
		}
	}, WithSupervisor(escalate))
	if err != nil {
		t.Fatal(err)
	}
	first := recv(t, childPID)
	_ = n.Send(first, "panic")
	second := recv(t, childPID) // the restarted parent spawns a new child
	if second == first {
		t.Fatal("the child was not replaced")
	}
	eventually(t, "parent restarted", func() bool { return j.index("parent Restarting boom") >= 0 })
	// The failed child stops on its own turn: possibly after the restarted
	// parent has spawned the new one.
	eventually(t, "the failed child stopped", func() bool { return j.index("child actor.Stopped") >= 0 })
	eventually(t, "only the parent and its new child to be left", func() bool { return n.Stats().Actors == 2 })
	_ = parent
}

func TestPanicsEverywhereLeaveTheNodeUp(t *testing.T) {
	n, logs := newTestNode(t, Config{})
	server := mustSpawn(t, n, echo)
	// A panic in a Request callback fails the requester like a Receive panic.
	restarted := make(chan struct{}, 4)
	client := mustSpawn(t, n, func(c *Context) {
		switch c.Message() {
		case "go":
			_ = c.Request(server, "x", time.Second, func(any, error) { panic("callback bug") })
		}
		if _, ok := c.Message().(Restarting); ok {
			restarted <- struct{}{}
		}
	})
	_ = n.Send(client, "go")
	recv(t, restarted)
	// Panics in Started and Stopping.
	j := &journal{}
	bad := mustSpawn(t, n, func(c *Context) {
		switch c.Message().(type) {
		case Stopping:
			j.add("stopping")
			panic("stopping bug")
		case Stopped:
			j.add("stopped")
		}
	})
	_ = n.Stop(bad)
	eventually(t, "Stopped after a panic in Stopping", func() bool { return j.index("stopped") >= 0 })
	if !strings.Contains(logs.String(), "stopping bug") || !strings.Contains(logs.String(), "callback bug") {
		t.Fatal("panics were not logged")
	}
	if r, err := n.Call(context.Background(), server, "still up"); err != nil || r != "echo:still up" {
		t.Fatal(r, err)
	}
}

// An escalation from a child of an instance that has since been replaced
// does not fail the new instance.
func TestStaleEscalationIsIgnored(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	j := &journal{}
	escalate := Supervisor{Decide: func(any) Directive { return Escalate }}
	kids := make(chan PID, 4)
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	parent, err := n.SpawnFunc(func(c *Context) {
		lifecycleActor(j, "parent")(c)
		switch c.Message().(type) {
		case Started:
			pid, err := c.SpawnFunc(func(c *Context) {
				if c.Message() == "slow panic" {
					entered <- struct{}{}
					<-release
					panic("late failure")
				}
			})
			if err != nil {
				t.Error(err)
			}
			kids <- pid
		}
	}, WithSupervisor(escalate))
	if err != nil {
		t.Fatal(err)
	}
	old := recv(t, kids)
	_ = n.Send(old, "slow panic")
	recv(t, entered)
	_ = n.Send(parent, "panic") // the parent restarts while the old child is mid-message
	recv(t, kids)               // the new instance's child
	close(release)              // now the old child fails and escalates
	eventually(t, "the old child is gone", func() bool { return n.Stats().Actors == 2 })
	restarts := 0
	for _, e := range j.list() {
		if strings.HasPrefix(e, "parent Restarting") {
			restarts++
		}
	}
	if restarts != 1 {
		t.Fatalf("the parent restarted %d times, want 1 (the stale escalation must be ignored): %q", restarts, j.list())
	}
}
