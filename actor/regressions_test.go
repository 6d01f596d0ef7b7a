package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// R1: a SendInterceptor that copies the envelope (a natural way to "change
// Message before calling next") makes the inline handoff land on the copy:
// the target's scheduled flag is set but nobody runs its turn.
func TestRegressionCopyingInterceptorLosesTurn(t *testing.T) {
	copyIc := func(next SendFunc) SendFunc {
		return func(e *Envelope) error { e2 := *e; return next(&e2) }
	}
	n, err := NewNode(Config{Logger: quiet(), SendInterceptors: []SendInterceptor{copyIc},
		RequestTimeout: 300 * time.Millisecond, StopTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	pid := mustSpawn(t, n, func(c *Context) {
		if _, ok := c.Message().(int); ok {
			c.Respond("pong")
		}
	})
	time.Sleep(20 * time.Millisecond) // let Started run and the actor go idle
	if _, err := n.Call(context.Background(), pid, 1); err != nil {
		t.Errorf("Call through copying interceptor: %v", err)
	}
	if _, err := n.Call(ctxTimeout(t, 300*time.Millisecond), pid, 2); err != nil {
		t.Errorf("second Call (cancellable ctx, no inline): %v", err)
	}
}

// R2: Node.Request's callback is not guarded by recover.
func TestRegressionRequestCallbackPanicKillsProcess(t *testing.T) {
	n, logs := newTestNode(t, Config{})
	pid := mustSpawn(t, n, func(c *Context) {
		if _, ok := c.Message().(int); ok {
			c.Respond("ok")
		}
	})
	if err := n.Request(pid, 1, 0, func(any, error) { panic("user bug in callback") }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the panic is logged", func() bool { return strings.Contains(logs.String(), "user bug in callback") })
	if r, err := n.Call(context.Background(), pid, 2); err != nil || r != "ok" {
		t.Fatalf("node after a callback panic: %v %v", r, err)
	}
}

// R3: after an idle period the clock's lastTick is stale; afterCoarse uses it
// as soon as the clock wakes, so a Call's timeout is already in the past.
func TestRegressionStaleLastTickSpuriousTimeout(t *testing.T) {
	n, _ := newTestNode(t, Config{RequestTimeout: 50 * time.Millisecond})
	pid := mustSpawn(t, n, func(c *Context) {
		if _, ok := c.Message().(int); ok {
			time.Sleep(10 * time.Millisecond)
			c.Respond("ok")
		}
	})
	time.Sleep(400 * time.Millisecond) // clock sleeps after 100ms with no timer
	if !n.clock.sleeping.Load() {
		t.Fatal("clock not asleep")
	}
	wake := n.clock.after(time.Hour, func() {}) // anything that adds a timer, e.g. c.After
	defer wake.Stop()
	eventually(t, "the clock wakes", func() bool { return !n.clock.sleeping.Load() })
	start := time.Now()
	_, err := n.Call(context.Background(), pid, 1) // 50ms budget, 10ms handler
	if err != nil {
		t.Fatalf("Call after clock wake-up: %v after %v", err, time.Since(start))
	}
}

// R4: stale request fields in Context for timer messages / Request callbacks
// handled in the same batch after a request.
func TestRegressionStaleCorrInTimerMessage(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	gate := make(chan struct{})
	got := make(chan bool, 1)
	pid := mustSpawn(t, n, func(c *Context) {
		switch c.Message() {
		case "start":
			c.After(30*time.Millisecond, "tick")
			<-gate
		case "req":
			c.Respond("ok")
		case "tick":
			got <- c.IsRequest()
		}
	})
	_ = n.Send(pid, "start")
	time.Sleep(5 * time.Millisecond)
	go func() { _, _ = n.Call(context.Background(), pid, "req") }()
	time.Sleep(60 * time.Millisecond) // "req" then the tick are queued
	close(gate)
	if isReq := recv(t, got); isReq {
		t.Fatal("timer message reports IsRequest() == true (stale corr from the previous request)")
	}
}

// R5: a top-level spawn that passed the state check before Shutdown but was
// added to the registry after stopAll's scan is never poisoned.
func TestRegressionShutdownHangsOnRacingSpawn(t *testing.T) {
	for iter := 0; iter < 200; iter++ {
		n, err := NewNode(Config{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if _, err := n.SpawnFunc(func(c *Context) {}); err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = n.Shutdown(ctx)
		cancel()
		wg.Wait()
		if err != nil {
			t.Fatalf("iteration %d: Shutdown: %v (live %d)", iter, err, n.Stats().Actors)
		}
	}
}

// R6: Close racing a spawn: stopAll stops the half-spawned actor, spawn's
// own failure path also calls processGone: live goes negative and the actor
// sees Stopping/Stopped without Started.
func TestRegressionCloseRacingSpawnDoubleCount(t *testing.T) {
	var noStart atomic.Int64
	for iter := 0; iter < 300; iter++ {
		n, err := NewNode(Config{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					started := false
					if _, err := n.SpawnFunc(func(c *Context) {
						switch c.Message().(type) {
						case Started:
							started = true
						case Stopping:
							if !started {
								noStart.Add(1)
							}
						}
					}); err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		if err := n.Close(); err != nil {
			t.Fatalf("iteration %d: Close: %v", iter, err)
		}
		wg.Wait()
		if a := n.Stats().Actors; a != 0 {
			t.Fatalf("iteration %d: Stats().Actors = %d after Close (Stopping without Started: %d)", iter, a, noStart.Load())
		}
	}
	if noStart.Load() > 0 {
		t.Fatalf("%d actors got Stopping without Started", noStart.Load())
	}
}

// R7: with WithName, the name is published before sysStart is queued, so a
// concurrent Lookup+Send can be handled before Started.
func TestRegressionUserMessageBeforeStarted(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	var cur atomic.Value
	cur.Store("")
	var bad atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if name := cur.Load().(string); name != "" {
				if pid, err := n.Lookup(context.Background(), name); err == nil {
					_ = n.Send(pid, "hi")
				}
			}
		}
	}()
	for i := 0; i < 20000 && bad.Load() == 0; i++ {
		name := fmt.Sprintf(".r%d", i)
		cur.Store(name)
		first := true
		pid, err := n.SpawnFunc(func(c *Context) {
			if first {
				first = false
				if _, ok := c.Message().(Started); !ok {
					bad.Add(1)
				}
			}
		}, WithName(name))
		if err != nil {
			t.Fatal(err)
		}
		_ = n.Stop(pid)
	}
	close(done)
	if bad.Load() > 0 {
		t.Fatalf("%d actors received a user message before Started", bad.Load())
	}
}

// R8: an interceptor that delivers and then returns an error makes startCall
// recycle a future whose channel already holds the reply; the next Call that
// gets it from the pool returns that stale reply.
func TestRegressionStaleResultInPooledFuture(t *testing.T) {
	tee := func(next SendFunc) SendFunc {
		return func(e *Envelope) error {
			err := next(e)
			if e.Message == "A" {
				time.Sleep(20 * time.Millisecond) // e.g. a slow audit send that fails
				return errors.New("audit failed")
			}
			return err
		}
	}
	n, _ := newTestNode(t, Config{SendInterceptors: []SendInterceptor{tee}})
	pid := mustSpawn(t, n, func(c *Context) {
		if s, ok := c.Message().(string); ok {
			if s == "B" {
				time.Sleep(50 * time.Millisecond)
			}
			c.Respond("reply to " + s)
		}
	})
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := n.Call(ctx, pid, "A")
		if err == nil {
			t.Fatal("expected audit error")
		}
		r, err := n.Call(ctx, pid, "B")
		cancel()
		if r != "reply to B" {
			t.Fatalf("Call B returned %v, %v", r, err)
		}
	}
}

// A dead-letter subscriber that forwards letters to an actor that has
// stopped must not recurse until the stack overflows.
func TestRegressionDeadLetterForwardRecursion(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	logger := mustSpawn(t, n, func(c *Context) {})
	defer n.SubscribeDeadLetters(func(d DeadLetter) { _ = n.Send(logger, d) })()
	_ = n.Stop(logger)
	eventually(t, "the logger stops", func() bool { return n.Stats().Actors == 0 })
	before := n.Stats().DeadLetters
	_ = n.Send(PID{Node: n.Addr(), Serial: 12345}, "lost")
	if got := n.Stats().DeadLetters - before; got != 2 {
		t.Fatalf("%d dead letters, want the lost message and the failed forward", got)
	}
}

// A Request callback that closes its node (on ErrNodeClosed, say) must not
// deadlock the Close or Shutdown that ended its request: the teardown waits
// for callbacks without holding the lock that Close takes.
func TestCloseFromRequestCallback(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		n, err := NewNode(Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan struct{})
		pid, err := n.SpawnFunc(func(c *Context) {
			if _, ok := c.Message().(string); ok {
				_ = c.Responder() // answers never: the request waits until the node closes
				close(got)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		called := make(chan error, 1)
		if err := n.Request(pid, "q", time.Minute, func(_ any, err error) {
			_ = n.Close()
			_ = n.Shutdown(context.Background())
			called <- err
		}); err != nil {
			t.Fatal(err)
		}
		select { // the request is owed an answer, not still in the mailbox
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("the actor never got the request")
		}
		done := make(chan error, 1)
		go func() {
			if graceful {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				done <- n.Shutdown(ctx)
				return
			}
			done <- n.Close()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("graceful=%v: the node's stop is stuck behind a callback that closes the node", graceful)
		}
		if err := <-called; !errors.Is(err, ErrNodeClosed) {
			t.Errorf("graceful=%v: callback got %v, want ErrNodeClosed", graceful, err)
		}
	}
}
