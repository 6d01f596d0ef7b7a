package cluster_test

// Global names follow their actor: registered on the actor's node, released
// when it stops, and traffic addressed to a name reaches its holder as the
// holder's node knows it, never an actor that stopped holding it.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
)

// staleNames makes a node address names to the PIDs it is told, as a
// name cache that has not yet seen a name move would: it rewrites the
// Target of every envelope sent by name (the TargetName stays).
type staleNames struct {
	mu  sync.Mutex
	pid map[string]actor.PID
}

// set makes name resolve to pid; the zero pid ends that.
func (s *staleNames) set(name string, pid actor.PID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pid.IsZero() {
		delete(s.pid, name)
		return
	}
	if s.pid == nil {
		s.pid = make(map[string]actor.PID)
	}
	s.pid[name] = pid
}

func (s *staleNames) interceptor(next actor.SendFunc) actor.SendFunc {
	return func(e *actor.Envelope) error {
		if e.TargetName != "" {
			s.mu.Lock()
			pid, ok := s.pid[e.TargetName]
			s.mu.Unlock()
			if ok {
				e.Target = pid
			}
		}
		return next(e)
	}
}

// namedActor answers requests with its own name tag and reports one-way
// messages on got.
func spawnNamed(t *testing.T, n *actor.Node, tag string, got chan string) actor.PID {
	t.Helper()
	pid, err := n.SpawnFunc(func(c *actor.Context) {
		m, ok := c.Message().(*wrapperspb.StringValue)
		if !ok {
			return
		}
		if c.IsRequest() {
			c.Respond(wrapperspb.String(tag + ":" + m.GetValue()))
			return
		}
		got <- tag + ":" + m.GetValue()
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestGlobalNamesFollowTheirActor(t *testing.T) {
	var stale staleNames
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Actor: actor.Config{SendInterceptors: []actor.SendInterceptor{stale.interceptor}}})
	a, b, cc := c.Node(0), c.Node(1), c.Node(2)
	ctx := ctxTimeout(t, 30*time.Second)
	got := make(chan string, 16)
	x := spawnNamed(t, b, "x", got)

	// Registered on its own node only.
	if err := a.Register(ctx, "boss", x); !errors.Is(err, actor.ErrBadName) {
		t.Fatalf("registering a global name for an actor of another node: %v, want ErrBadName", err)
	}
	if err := b.Register(ctx, "boss", x); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "A to resolve boss", func() bool {
		pid, err := a.Lookup(ctx, "boss")
		return err == nil && pid == x
	})

	t.Run("verbs by name", func(t *testing.T) {
		if err := a.SendName("boss", wrapperspb.String("send")); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, got); m != "x:send" {
			t.Fatalf("SendName delivered %q", m)
		}
		if r, err := a.CallName(ctx, "boss", wrapperspb.String("call")); err != nil || answer(r) != "x:call" {
			t.Fatalf("CallName = %v, %v", r, err)
		}
		replies := make(chan string, 4)
		if err := a.RequestName("boss", wrapperspb.String("request"), 5*time.Second, func(r any, err error) {
			replies <- fmt.Sprint(answer(r), " ", err)
		}); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, replies); m != "x:request <nil>" {
			t.Fatalf("RequestName got %q", m)
		}
		// From inside an actor.
		_, err := a.SpawnFunc(func(c *actor.Context) {
			if _, ok := c.Message().(actor.Started); !ok {
				return
			}
			if err := c.SendName("boss", wrapperspb.String("ctx-send")); err != nil {
				replies <- "SendName: " + err.Error()
			}
			r, err := c.CallName(context.Background(), "boss", wrapperspb.String("ctx-call"))
			replies <- fmt.Sprint(answer(r), " ", err)
			if err := c.RequestName("boss", wrapperspb.String("ctx-request"), 5*time.Second, func(r any, err error) {
				replies <- fmt.Sprint(answer(r), " ", err)
			}); err != nil {
				replies <- "RequestName: " + err.Error()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if m := recv(t, replies); m != "x:ctx-call <nil>" {
			t.Fatalf("Context.CallName got %q", m)
		}
		if m := recv(t, replies); m != "x:ctx-request <nil>" {
			t.Fatalf("Context.RequestName got %q", m)
		}
		if m := recv(t, got); m != "x:ctx-send" {
			t.Fatalf("Context.SendName delivered %q", m)
		}
		// Unknown names.
		if err := a.SendName("nobody", wrapperspb.String("x")); !errors.Is(err, actor.ErrNameNotFound) {
			t.Fatalf("SendName to an unknown name: %v", err)
		}
		if _, err := a.CallName(ctx, "nobody", wrapperspb.String("x")); !errors.Is(err, actor.ErrNameNotFound) {
			t.Fatalf("CallName to an unknown name: %v", err)
		}
	})

	t.Run("released when the actor stops", func(t *testing.T) {
		if err := b.Stop(x); err != nil {
			t.Fatal(err)
		}
		// Another node sees the name go, and an actor elsewhere can take it.
		waitFor(t, 5*time.Second, "A to see boss released", func() bool {
			_, err := a.Lookup(ctx, "boss")
			return errors.Is(err, actor.ErrNameNotFound)
		})
		y := spawnNamed(t, cc, "y", got)
		if err := cc.Register(ctx, "boss", y); err != nil {
			t.Fatalf("registering a released name: %v", err)
		}
		waitFor(t, 5*time.Second, "A to resolve boss to its new holder", func() bool {
			pid, err := a.Lookup(ctx, "boss")
			return err == nil && pid == y
		})
		if r, err := a.CallName(ctx, "boss", wrapperspb.String("moved")); err != nil || answer(r) != "y:moved" {
			t.Fatalf("CallName after the move = %v, %v", r, err)
		}

		// A node whose cache still says B: B holds boss no more, and
		// refuses, whatever the verb, instead of reaching anyone.
		stale.set("boss", x)
		if _, err := a.CallName(ctx, "boss", wrapperspb.String("stale")); !errors.Is(err, actor.ErrNameNotFound) {
			t.Fatalf("CallName through a stale cache: %v, want ErrNameNotFound from B", err)
		}
		replies := make(chan error, 1)
		if err := a.RequestName("boss", wrapperspb.String("stale"), 5*time.Second, func(_ any, err error) { replies <- err }); err != nil {
			t.Fatal(err)
		}
		if err := recv(t, replies); !errors.Is(err, actor.ErrNameNotFound) {
			t.Fatalf("RequestName through a stale cache: %v, want ErrNameNotFound from B", err)
		}
		if err := a.SendName("boss", wrapperspb.String("stale")); err != nil {
			t.Fatal(err) // dropped at B
		}
		stale.set("boss", actor.PID{})
		// The name moves back to B, to another actor: traffic that A
		// addresses to the old holder reaches the new one, by name.
		if err := cc.Unregister(ctx, "boss"); err != nil {
			t.Fatal(err)
		}
		z := spawnNamed(t, b, "z", got)
		waitFor(t, 5*time.Second, "B to take boss", func() bool { return b.Register(ctx, "boss", z) == nil })
		stale.set("boss", x) // A still thinks of the first holder, on B
		if r, err := a.CallName(ctx, "boss", wrapperspb.String("back")); err != nil || answer(r) != "z:back" {
			t.Fatalf("CallName to the old holder's node after the name came back = %v, %v; want the new holder", r, err)
		}
		if err := a.SendName("boss", wrapperspb.String("back")); err != nil {
			t.Fatal(err)
		}
		// One-way messages arrive in order: the stale one was dropped.
		if m := recv(t, got); m != "z:back" {
			t.Fatalf("after the move, the holder got %q", m)
		}
		stale.set("boss", actor.PID{})
	})

	t.Run("taken again on its node once its actor stopped", func(t *testing.T) {
		// The release runs in the background; a registration on the same
		// node waits for it instead of failing with ErrNameTaken.
		for i := range 5 {
			old := spawnNamed(t, b, "old", got)
			if err := b.Register(ctx, "again", old); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			stopped := make(chan actor.Terminated, 1)
			if _, err := b.Watch(old, func(m actor.Terminated) { stopped <- m }); err != nil {
				t.Fatal(err)
			}
			if err := b.Stop(old); err != nil {
				t.Fatal(err)
			}
			recv(t, stopped)
			next := spawnNamed(t, b, "next", got)
			if err := b.Register(ctx, "again", next); err != nil {
				t.Fatalf("round %d: registering the name of a stopped actor on its node: %v", i, err)
			}
			if r, err := a.CallName(ctx, "again", wrapperspb.String("hi")); err != nil || answer(r) != "next:hi" {
				t.Fatalf("round %d: CallName = %v, %v", i, r, err)
			}
			if err := b.Stop(next); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the name to go", func() bool {
				_, err := b.Lookup(ctx, "again")
				return errors.Is(err, actor.ErrNameNotFound)
			})
		}
	})
}
