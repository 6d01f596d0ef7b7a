package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestShutdownDrainsThenStopsChildrenFirst(t *testing.T) {
	n, err := NewNode(Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{}
	var handled atomic.Int64
	parent := mustSpawn(t, n, func(c *Context) {
		lifecycleActor(j, "parent")(c)
		switch c.Message().(type) {
		case Started:
			if _, err := c.SpawnFunc(func(c *Context) {
				lifecycleActor(j, "child")(c)
				if _, ok := c.Message().(int); ok {
					time.Sleep(10 * time.Microsecond)
					handled.Add(1)
				}
			}, WithName(".child")); err != nil {
				t.Error(err)
			}
		case int:
			child, _ := c.Node().Lookup(context.Background(), ".child")
			_ = c.Send(child, 1) // actors keep messaging each other while draining
		}
	})
	for i := 0; i < 500; i++ {
		if err := n.Send(parent, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Shutdown(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if handled.Load() != 500 {
		t.Fatalf("child handled %d of 500 messages before shutdown finished", handled.Load())
	}
	if c, p := j.index("child actor.Stopped"), j.index("parent actor.Stopped"); c < 0 || p < 0 || c > p {
		t.Fatalf("stop order: %q", j.list())
	}
	if err := n.Send(parent, 1); !errors.Is(err, ErrNodeClosed) {
		t.Fatalf("Send after Shutdown: %v", err)
	}
	if _, err := n.SpawnFunc(echo); !errors.Is(err, ErrNodeClosed) {
		t.Fatalf("Spawn after Shutdown: %v", err)
	}
	if _, err := n.Call(context.Background(), parent, 1); !errors.Is(err, ErrNodeClosed) {
		t.Fatalf("Call after Shutdown: %v", err)
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
}

func TestShutdownFallsBackToCloseWhenCtxEnds(t *testing.T) {
	n, err := NewNode(Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	pid := mustSpawn(t, n, func(c *Context) {
		if _, ok := c.Message().(int); ok {
			time.Sleep(time.Millisecond)
			handled.Add(1)
		}
	})
	for i := 0; i < 5000; i++ {
		_ = n.Send(pid, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the ctx error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v after its ctx ended", d)
	}
	if h := handled.Load(); h >= 5000 {
		t.Fatalf("handled the whole backlog (%d) although the ctx ended", h)
	}
	if n.Stats().Actors != 0 {
		t.Fatalf("%d actors left", n.Stats().Actors)
	}
}

func TestCloseStopsEverythingAndIsIdempotent(t *testing.T) {
	n, err := NewNode(Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{}
	for i := 0; i < 100; i++ {
		pid := mustSpawn(t, n, func(c *Context) {
			if _, ok := c.Message().(Started); ok {
				_, _ = c.SpawnFunc(lifecycleActor(j, "child"))
				c.Every(time.Millisecond, "tick")
			}
		})
		_ = n.Send(pid, "hi")
	}
	// Stats().Actors counts a spawn in progress; wait for the lifecycle.
	eventually(t, "all children started", func() bool {
		started := 0
		for _, e := range j.list() {
			if e == "child actor.Started" {
				started++
			}
		}
		return started == 100
	})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := 0
	for _, e := range j.list() {
		if e == "child actor.Stopped" {
			stopped++
		}
	}
	if stopped != 100 || n.Stats().Actors != 0 {
		t.Fatalf("%d children saw Stopped, %d actors left", stopped, n.Stats().Actors)
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCloseReportsStuckActors(t *testing.T) {
	logs := &logBuffer{}
	n, err := NewNode(Config{StopTimeout: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{})
	pid := mustSpawn(t, n, func(c *Context) {
		if c.Message() == "block" {
			close(entered)
			<-release
		}
	})
	_ = n.Send(pid, "block")
	<-entered
	if err := n.Close(); err == nil || !strings.Contains(err.Error(), "1 actors did not stop") {
		t.Fatalf("Close with a stuck actor: %v", err)
	}
	close(release)
	eventually(t, "the stuck actor finishes", func() bool { return n.Stats().Actors == 0 })
	n.wg.Wait() // its worker exits once the turn ends; goleak checks the rest
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{RequestTimeout: -1},
		{Throughput: -1},
		{TimerResolution: -1},
		{TimerResolution: time.Microsecond},
		{StopTimeout: -1},
		{Supervisor: Supervisor{Window: -1}},
		{SendInterceptors: []SendInterceptor{nil}},
		{ReceiveInterceptors: []ReceiveInterceptor{nil}},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %d validated: %+v", i, c)
		}
		if _, err := NewNode(c); err == nil {
			t.Errorf("NewNode accepted config %d", i)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if d := DefaultConfig(); d.Addr != MustAddr(1, 1, 1) || d.RequestTimeout != 5*time.Second {
		t.Fatalf("defaults %+v", d)
	}
}

func TestCloseEndsWaitingCallsAndRequests(t *testing.T) {
	n, err := NewNode(Config{Logger: slog.New(slog.DiscardHandler), RequestTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	gotRequest := make(chan struct{}, 2)
	silent := mustSpawn(t, n, func(c *Context) {
		if c.IsRequest() {
			_ = c.Responder() // never answered
			gotRequest <- struct{}{}
		}
	})
	callErr := make(chan error, 1)
	go func() {
		_, err := n.Call(context.Background(), silent, "q")
		callErr <- err
	}()
	requestErr := make(chan error, 1)
	if err := n.Request(silent, "q", 0, func(_ any, err error) { requestErr <- err }); err != nil {
		t.Fatal(err)
	}
	recv(t, gotRequest)
	recv(t, gotRequest)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, callErr); !errors.Is(err, ErrNodeClosed) {
		t.Fatalf("waiting Call: %v", err)
	}
	if err := recv(t, requestErr); !errors.Is(err, ErrNodeClosed) {
		t.Fatalf("waiting Request: %v", err)
	}
}

func TestShutdownWaitsForOwedAnswers(t *testing.T) {
	// Requests whose actors took a Responder are answered after their
	// actors stopped, before Shutdown ends the node; a Responder never
	// answered holds Shutdown only until its requester gives up.
	n, err := NewNode(Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	held := make(chan Responder, 3)
	later := mustSpawn(t, n, func(c *Context) {
		if c.IsRequest() {
			held <- c.Responder()
		}
	})
	callRes := make(chan string, 1)
	go func() {
		r, err := n.Call(ctxTimeout(t, 10*time.Second), later, "q")
		callRes <- fmt.Sprint(r, " ", err)
	}()
	requestRes := make(chan string, 1)
	if err := n.Request(later, "q", 10*time.Second, func(r any, err error) { requestRes <- fmt.Sprint(r, " ", err) }); err != nil {
		t.Fatal(err)
	}
	forgotten := make(chan error, 1)
	go func() {
		_, err := n.Call(ctxTimeout(t, 300*time.Millisecond), later, "forgotten")
		forgotten <- err
	}()
	rs := []Responder{recv(t, held), recv(t, held), recv(t, held)}
	shut := make(chan error, 1)
	go func() { shut <- n.Shutdown(ctxTimeout(t, 10*time.Second)) }()
	eventually(t, "the actor to stop", func() bool { return n.Stats().Actors == 0 })
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the answers owed", err)
	default:
	}
	// Answer the two that still wait; the third requester gives up.
	for _, r := range rs {
		r.Respond("late answer")
	}
	if err := recv(t, forgotten); !errors.Is(err, context.DeadlineExceeded) && err != nil {
		t.Fatalf("forgotten Call: %v", err)
	}
	if got := recv(t, callRes); got != "late answer <nil>" {
		t.Fatalf("Call answered after its actor stopped: %q", got)
	}
	if got := recv(t, requestRes); got != "late answer <nil>" {
		t.Fatalf("Request answered after its actor stopped: %q", got)
	}
	if err := recv(t, shut); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	// A Responder never answered: Shutdown waits until its requester's
	// deadline, not for its own ctx.
	m, err := NewNode(Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	silent := mustSpawn(t, m, func(c *Context) {
		if c.IsRequest() {
			held <- c.Responder()
		}
	})
	go func() {
		_, err := m.Call(ctxTimeout(t, 300*time.Millisecond), silent, "never answered")
		forgotten <- err
	}()
	recv(t, held)
	start := time.Now()
	if err := m.Shutdown(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("Shutdown with an unanswered Responder: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown waited %v for a requester that gave up after 300ms", d)
	}
	// The Call ends at its deadline, or as the node closes right then.
	if err := recv(t, forgotten); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrNodeClosed) {
		t.Fatalf("unanswered Call: %v", err)
	}
}

// While the node drains, an actor handling its queued messages may still
// call out through the node's API, as code that routes for it does
// (grain.System.Call, rpc.Client): the node cannot tell such calls from
// outside ones, so it refuses sends only once it is closed.
func TestShutdownLetsTurnsCallThroughTheNode(t *testing.T) {
	n, err := NewNode(Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan string, 100)
	parent := mustSpawn(t, n, func(c *Context) {
		switch c.Message().(type) {
		case Started:
			if _, err := c.SpawnFunc(func(c *Context) {
				if s, ok := c.Message().(string); ok {
					c.Respond(s + "!")
				}
			}, WithName(".helper")); err != nil {
				t.Error(err)
			}
		case int:
			helper, err := c.Node().Lookup(context.Background(), ".helper")
			if err != nil {
				results <- err.Error()
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			reply, err := c.Node().Call(ctx, helper, "call")
			if err != nil {
				results <- err.Error()
				return
			}
			if err := c.Node().Send(helper, "send"); err != nil {
				results <- err.Error()
				return
			}
			results <- reply.(string)
		}
	})
	for i := range 50 {
		if err := n.Send(parent, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Shutdown(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	close(results)
	got := 0
	for r := range results {
		if r != "call!" {
			t.Fatalf("a call made while draining: %s", r)
		}
		got++
	}
	if got != 50 {
		t.Fatalf("%d of 50 messages handled", got)
	}
	if err := n.Send(parent, 1); !errors.Is(err, ErrNodeClosed) {
		t.Fatalf("Send after Shutdown: %v", err)
	}
}
