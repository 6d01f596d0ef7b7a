package actor

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestLocalNames(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	ctx := context.Background()
	a := mustSpawn(t, n, echo)
	b := mustSpawn(t, n, echo)
	if err := n.Register(ctx, ".lobby", a); err != nil {
		t.Fatal(err)
	}
	if err := n.Register(ctx, ".lobby", a); err != nil {
		t.Fatalf("re-registering the same owner: %v", err)
	}
	if err := n.Register(ctx, ".lobby", b); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("taken name: %v", err)
	}
	if err := n.Register(ctx, ".hall", a); err != nil {
		t.Fatalf("second name for the same actor: %v", err)
	}
	if pid, err := n.Lookup(ctx, ".lobby"); err != nil || pid != a {
		t.Fatalf("Lookup = %v, %v", pid, err)
	}
	if err := n.Unregister(ctx, ".lobby"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Lookup(ctx, ".lobby"); !errors.Is(err, ErrNameNotFound) {
		t.Fatalf("Lookup after Unregister: %v", err)
	}
	if err := n.Unregister(ctx, ".lobby"); !errors.Is(err, ErrNameNotFound) {
		t.Fatalf("double Unregister: %v", err)
	}
	if err := n.Register(ctx, ".lobby", b); err != nil {
		t.Fatalf("name free again: %v", err)
	}
	// A stopping actor releases its names.
	_ = n.Stop(a)
	eventually(t, ".hall released", func() bool {
		_, err := n.Lookup(ctx, ".hall")
		return errors.Is(err, ErrNameNotFound)
	})
	if err := n.Register(ctx, ".hall", a); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("registering a stopped actor: %v", err)
	}
}

func TestNameValidation(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	ctx := context.Background()
	a := mustSpawn(t, n, echo)
	for _, bad := range []string{"", ".", ".has space", ".tab\t", string(make([]byte, 300))} {
		if err := n.Register(ctx, bad, a); !errors.Is(err, ErrBadName) {
			t.Errorf("Register(%q) = %v, want ErrBadName", bad, err)
		}
	}
	if err := n.Register(ctx, "world", a); !errors.Is(err, ErrNoGlobalNames) {
		t.Fatalf("global name without a cluster: %v", err)
	}
	if _, err := n.Lookup(ctx, "world"); !errors.Is(err, ErrNoGlobalNames) {
		t.Fatalf("global lookup without a cluster: %v", err)
	}
	other := PID{Node: MustAddr(2, 2, 2), Serial: 1}
	if err := n.Register(ctx, ".x", other); !errors.Is(err, ErrBadName) {
		t.Fatalf("local name for a remote PID: %v", err)
	}
	if _, err := n.SpawnFunc(echo, WithName("global")); !errors.Is(err, ErrBadName) {
		t.Fatalf("WithName with a global name: %v", err)
	}
}

func TestWithName(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	ctx := context.Background()
	a, err := n.SpawnFunc(echo, WithName(".chat"))
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := n.Lookup(ctx, ".chat"); err != nil || pid != a {
		t.Fatalf("Lookup = %v, %v", pid, err)
	}
	if _, err := n.SpawnFunc(echo, WithName(".chat")); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second spawn with a taken name: %v", err)
	}
	if n.Stats().Actors != 1 {
		t.Fatalf("the failed spawn left an actor behind: %d", n.Stats().Actors)
	}
}

// mapNames is a NameRegistry for the test of the global-name hook.
type mapNames struct{ m map[string]PID }

func (r *mapNames) Register(_ context.Context, name string, pid PID) error {
	if _, ok := r.m[name]; ok {
		return ErrNameTaken
	}
	r.m[name] = pid
	return nil
}

func (r *mapNames) Unregister(_ context.Context, name string, pid PID) error {
	if r.m[name] == pid {
		delete(r.m, name)
	}
	return nil
}

func (r *mapNames) Lookup(_ context.Context, name string) (PID, error) {
	if pid, ok := r.m[name]; ok {
		return pid, nil
	}
	return PID{}, ErrNameNotFound
}

func TestGlobalNamesUseTheRegistry(t *testing.T) {
	reg := &mapNames{m: map[string]PID{}}
	n, _ := newTestNode(t, Config{Names: reg})
	ctx := context.Background()
	a := mustSpawn(t, n, echo)
	if err := n.Register(ctx, "world", a); err != nil {
		t.Fatal(err)
	}
	if pid, err := n.Lookup(ctx, "world"); err != nil || pid != a || reg.m["world"] != a {
		t.Fatalf("global Lookup = %v, %v", pid, err)
	}
	if err := n.Unregister(ctx, "world"); err != nil || len(reg.m) != 0 {
		t.Fatalf("global Unregister: %v %v", err, reg.m)
	}
}

func TestVerbsByLocalName(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	ctx := ctxTimeout(t, 10*time.Second)
	got := make(chan string, 8)
	lobby := mustSpawn(t, n, func(c *Context) {
		s, ok := c.Message().(string)
		if !ok {
			return
		}
		if c.IsRequest() {
			c.Respond("lobby:" + s)
			return
		}
		got <- "lobby:" + s
	})
	if err := n.Register(ctx, ".lobby", lobby); err != nil {
		t.Fatal(err)
	}

	// From outside any actor.
	if err := n.SendName(".lobby", "send"); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, got); m != "lobby:send" {
		t.Fatalf("SendName delivered %q", m)
	}
	if r, err := n.CallName(ctx, ".lobby", "call"); err != nil || r != "lobby:call" {
		t.Fatalf("CallName = %v, %v", r, err)
	}
	replies := make(chan string, 4)
	if err := n.RequestName(".lobby", "request", time.Second, func(r any, err error) { replies <- fmt.Sprint(r, " ", err) }); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, replies); m != "lobby:request <nil>" {
		t.Fatalf("RequestName got %q", m)
	}

	// From inside an actor.
	mustSpawn(t, n, func(c *Context) {
		if _, ok := c.Message().(Started); !ok {
			return
		}
		if err := c.SendName(".lobby", "ctx-send"); err != nil {
			replies <- "SendName: " + err.Error()
		}
		r, err := c.CallName(ctx, ".lobby", "ctx-call")
		replies <- fmt.Sprint(r, " ", err)
		if err := c.RequestName(".lobby", "ctx-request", time.Second, func(r any, err error) { replies <- fmt.Sprint(r, " ", err) }); err != nil {
			replies <- "RequestName: " + err.Error()
		}
	})
	if m := recv(t, replies); m != "lobby:ctx-call <nil>" {
		t.Fatalf("Context.CallName got %q", m)
	}
	if m := recv(t, replies); m != "lobby:ctx-request <nil>" {
		t.Fatalf("Context.RequestName got %q", m)
	}
	if m := recv(t, got); m != "lobby:ctx-send" {
		t.Fatalf("Context.SendName delivered %q", m)
	}

	// Unknown names, and a name whose actor stopped: ErrNameNotFound, and
	// RequestName's callback never runs.
	stopped := make(chan Terminated, 1)
	if _, err := n.Watch(lobby, func(m Terminated) { stopped <- m }); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(lobby); err != nil {
		t.Fatal(err)
	}
	recv(t, stopped)
	for _, name := range []string{".nobody", ".lobby"} {
		if err := n.SendName(name, "x"); !errors.Is(err, ErrNameNotFound) {
			t.Fatalf("SendName(%q): %v", name, err)
		}
		if _, err := n.CallName(ctx, name, "x"); !errors.Is(err, ErrNameNotFound) {
			t.Fatalf("CallName(%q): %v", name, err)
		}
		if err := n.RequestName(name, "x", time.Second, func(r any, err error) { replies <- fmt.Sprint("callback ran: ", r, err) }); !errors.Is(err, ErrNameNotFound) {
			t.Fatalf("RequestName(%q): %v", name, err)
		}
	}
	// A global name on a node without a registry.
	if err := n.SendName("lobby", "x"); !errors.Is(err, ErrNoGlobalNames) {
		t.Fatalf("SendName of a global name without a registry: %v", err)
	}
	select {
	case m := <-replies:
		t.Fatalf("unexpected %q", m)
	default:
	}
}
