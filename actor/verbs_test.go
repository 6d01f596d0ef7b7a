package actor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// echo answers every string request with "echo:" + the string.
func echo(c *Context) {
	if s, ok := c.Message().(string); ok {
		c.Respond("echo:" + s)
	}
}

func TestSendDeliversInOrderPerSender(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	type msg struct{ from, seq int }
	const senders, each = 4, 2000
	last := make(map[int]int)
	var bad []string
	done := make(chan struct{})
	got := 0
	pid := mustSpawn(t, n, func(c *Context) {
		m, ok := c.Message().(msg)
		if !ok {
			return
		}
		if m.seq != last[m.from]+1 {
			bad = append(bad, fmt.Sprintf("sender %d: %d after %d", m.from, m.seq, last[m.from]))
		}
		last[m.from] = m.seq
		if got++; got == senders*each {
			close(done)
		}
	})
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				if err := n.Send(pid, msg{s, i}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	recv(t, done)
	if len(bad) > 0 {
		t.Fatalf("order broken: %v", bad[:min(5, len(bad))])
	}
}

func TestVerbsFromOutside(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	pid := mustSpawn(t, n, echo)

	reply, err := n.Call(ctxTimeout(t, 5*time.Second), pid, "a")
	if err != nil || reply != "echo:a" {
		t.Fatalf("Call with a deadline = %v, %v", reply, err)
	}
	reply, err = n.Call(context.Background(), pid, "b")
	if err != nil || reply != "echo:b" {
		t.Fatalf("Call without a deadline = %v, %v", reply, err)
	}
	got := make(chan string, 1)
	if err := n.Request(pid, "c", time.Second, func(reply any, err error) {
		got <- fmt.Sprintf("%v %v", reply, err)
	}); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, got); s != "echo:c <nil>" {
		t.Fatalf("Request reply = %q", s)
	}
}

func TestVerbsInsideActors(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	server := mustSpawn(t, n, echo)
	results := make(chan string, 3)
	busy := false // true while Receive runs; plain field, so -race also flags concurrent use
	client := mustSpawn(t, n, func(c *Context) {
		busy = true
		defer func() { busy = false }()
		if c.Message() != "go" {
			return
		}
		reply, err := c.Call(context.Background(), server, "call")
		results <- fmt.Sprintf("%v %v", reply, err)
		self := c.Self()
		err = c.Request(server, "request", time.Second, func(reply any, err error) {
			results <- fmt.Sprintf("%v %v self=%v concurrent=%v", reply, err, c.Self() == self, busy)
		})
		if err != nil {
			results <- err.Error()
		}
		time.Sleep(20 * time.Millisecond) // the reply arrives while Receive is still running
	})
	if err := n.Send(client, "go"); err != nil {
		t.Fatal(err)
	}
	if s := recv(t, results); s != "echo:call <nil>" {
		t.Fatalf("Call inside an actor = %q", s)
	}
	if s := recv(t, results); s != "echo:request <nil> self=true concurrent=false" {
		t.Fatalf("Request inside an actor = %q", s)
	}
}

func TestRespondToSendGoesToSender(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	server := mustSpawn(t, n, echo)
	got := make(chan any, 1)
	client := mustSpawn(t, n, func(c *Context) {
		switch m := c.Message().(type) {
		case PID:
			_ = c.Send(m, "hi")
		case string:
			if c.Sender() != server {
				got <- fmt.Sprintf("sender %v, want %v", c.Sender(), server)
				return
			}
			got <- m
		}
	})
	_ = n.Send(client, server)
	if v := recv(t, got); v != "echo:hi" {
		t.Fatalf("got %v", v)
	}
}

func TestErrorReplyBecomesCallError(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	errNo := errors.New("no such item")
	pid := mustSpawn(t, n, func(c *Context) {
		if c.IsRequest() {
			c.Respond(fmt.Errorf("lookup: %w", errNo))
		}
	})
	if _, err := n.Call(context.Background(), pid, 1); !errors.Is(err, errNo) {
		t.Fatalf("err = %v", err)
	}
}

func TestCallErrors(t *testing.T) {
	n, _ := newTestNode(t, Config{RequestTimeout: 50 * time.Millisecond})
	silent := mustSpawn(t, n, func(c *Context) {
		if c.IsRequest() {
			_ = c.Responder() // promise a reply and never send it
		}
	})
	start := time.Now()
	if _, err := n.Call(context.Background(), silent, 1); !errors.Is(err, ErrTimeout) {
		t.Fatalf("no reply, no ctx deadline: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("ErrTimeout took %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := n.Call(ctx, silent, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: %v, want context.DeadlineExceeded", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := n.Call(ctx, silent, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	ghost := PID{Node: n.Addr(), Serial: 1 << 40}
	if _, err := n.Call(context.Background(), ghost, 1); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("unknown actor: %v", err)
	}
	if err := n.Send(ghost, 1); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("Send to unknown actor: %v", err)
	}
	if err := n.Send(PID{Node: MustAddr(9, 9, 9), Serial: 1}, 1); !errors.Is(err, ErrRemote) {
		t.Fatalf("Send to another node without a cluster: %v", err)
	}
	ignoring := mustSpawn(t, n, func(*Context) {})
	if _, err := n.Call(context.Background(), ignoring, 1); !errors.Is(err, ErrNoReply) {
		t.Fatalf("request handled without a reply: %v", err)
	}
	requestErr := make(chan error, 1)
	if err := n.Request(silent, 1, 20*time.Millisecond, func(_ any, err error) { requestErr <- err }); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, requestErr); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Request timeout: %v", err)
	}
}

func TestCallToSelf(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	got := make(chan error, 1)
	pid := mustSpawn(t, n, func(c *Context) {
		if c.Message() == "go" {
			_, err := c.Call(context.Background(), c.Self(), "x")
			got <- err
		}
	})
	_ = n.Send(pid, "go")
	if err := recv(t, got); !errors.Is(err, ErrCallToSelf) {
		t.Fatalf("err = %v", err)
	}
}

func TestDeadlineTravelsWithRequest(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	pid := mustSpawn(t, n, func(c *Context) {
		if c.IsRequest() {
			dl, ok := c.Deadline()
			c.Respond(fmt.Sprint(ok, dl.UnixNano()))
		}
	})
	dl := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	reply, err := n.Call(ctx, pid, 1)
	if err != nil || reply != fmt.Sprint(true, dl.UnixNano()) {
		t.Fatalf("callee saw %v (%v), want deadline %v", reply, err, dl.UnixNano())
	}
}

func TestResponderAndForward(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	backend := mustSpawn(t, n, echo)
	front := mustSpawn(t, n, func(c *Context) {
		switch c.Message() {
		case "later":
			r := c.Responder()
			go func() {
				time.Sleep(5 * time.Millisecond)
				r.Respond("done later")
				r.Respond("ignored second answer")
			}()
		case "pass":
			if err := c.Forward(backend); err != nil {
				c.Respond(err)
			}
		}
	})
	if reply, err := n.Call(context.Background(), front, "later"); err != nil || reply != "done later" {
		t.Fatalf("Responder: %v %v", reply, err)
	}
	if reply, err := n.Call(context.Background(), front, "pass"); err != nil || reply != "echo:pass" {
		t.Fatalf("Forward: %v %v", reply, err)
	}
}

func TestMailboxBound(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	pid := mustSpawn(t, n, func(c *Context) {
		if c.Message() == "block" {
			entered <- struct{}{}
			<-release
		}
	}, WithMailboxBound(3))
	if err := n.Send(pid, "block"); err != nil {
		t.Fatal(err)
	}
	recv(t, entered)
	for i := 0; i < 3; i++ {
		if err := n.Send(pid, i); err != nil {
			t.Fatalf("send %d within the bound: %v", i, err)
		}
	}
	dead := make(chan DeadLetter, 1)
	unsub := n.SubscribeDeadLetters(func(d DeadLetter) {
		select {
		case dead <- d:
		default:
		}
	})
	defer unsub()
	if err := n.Send(pid, 3); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("send past the bound: %v, want ErrMailboxFull", err)
	}
	if d := recv(t, dead); d.Message != 3 || !errors.Is(d.Reason, ErrMailboxFull) || d.Target != pid {
		t.Fatalf("dead letter %+v", d)
	}
	if _, err := n.Call(context.Background(), pid, 4); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("Call past the bound: %v", err)
	}
	close(release)
	eventually(t, "the backlog drains", func() bool { return n.Send(pid, "after") == nil })
}

func TestSystemMessagesSkipBacklog(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	handled := 0
	stopped := make(chan int, 1)
	pid := mustSpawn(t, n, func(c *Context) {
		switch c.Message().(type) {
		case string:
			entered <- struct{}{}
			<-release
		case int:
			handled++
		case Stopped:
			stopped <- handled
		}
	})
	_ = n.Send(pid, "block")
	recv(t, entered)
	for i := 0; i < 100; i++ {
		_ = n.Send(pid, i)
	}
	callErr := make(chan error, 1)
	go func() {
		_, err := n.Call(ctxTimeout(t, 5*time.Second), pid, 1000)
		callErr <- err
	}()
	eventually(t, "the call is queued", func() bool {
		var queued int
		if p := n.procs.get(pid.Serial); p != nil {
			p.mb.mu.Lock()
			queued = len(p.mb.user)
			p.mb.mu.Unlock()
		}
		return queued == 101
	})
	before := n.Stats().DeadLetters
	if err := n.Stop(pid); err != nil {
		t.Fatal(err)
	}
	close(release)
	if got := recv(t, stopped); got != 0 {
		t.Fatalf("handled %d backlog messages before stopping, want 0", got)
	}
	if err := recv(t, callErr); !errors.Is(err, ErrActorStopped) || !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("queued Call got %v, want ErrActorStopped", err)
	}
	if d := n.Stats().DeadLetters - before; d != 101 {
		t.Fatalf("%d dead letters, want 101", d)
	}
}

func TestReplyToStoppedRequesterIsDropped(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	var held Responder
	gotRequest := make(chan struct{})
	server := mustSpawn(t, n, func(c *Context) {
		if c.IsRequest() {
			held = c.Responder()
			close(gotRequest)
		}
	})
	client := mustSpawn(t, n, func(c *Context) {
		if c.Message() == "go" {
			_ = c.Request(server, "q", time.Minute, func(any, error) { panic("callback after stop") })
		}
	})
	dead := make(chan DeadLetter, 4)
	defer n.SubscribeDeadLetters(func(d DeadLetter) { dead <- d })()
	_ = n.Send(client, "go")
	recv(t, gotRequest)
	if err := n.Stop(client); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the client stops", func() bool { return n.Stats().Actors == 1 })
	held.Respond("late answer")
	d := recv(t, dead)
	if d.Target != client || d.Message != "late answer" || !errors.Is(d.Reason, ErrActorNotFound) {
		t.Fatalf("dead letter %+v", d)
	}
}

func TestDeadLetters(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	var mu sync.Mutex
	var got []DeadLetter
	unsub := n.SubscribeDeadLetters(func(d DeadLetter) {
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
	})
	ghost := PID{Node: n.Addr(), Serial: 999999}
	_ = n.Send(ghost, "lost")
	unsub()
	unsub()
	_ = n.Send(ghost, "unseen")
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Message != "lost" || got[0].Target != ghost || !errors.Is(got[0].Reason, ErrActorNotFound) {
		t.Fatalf("dead letters %+v", got)
	}
	if n.Stats().DeadLetters != 2 {
		t.Fatalf("DeadLetters counter = %d, want 2", n.Stats().DeadLetters)
	}
}

func TestDeadLetterSubscriberPanicIsContained(t *testing.T) {
	n, logs := newTestNode(t, Config{})
	defer n.SubscribeDeadLetters(func(DeadLetter) { panic("subscriber bug") })()
	if err := n.Send(PID{Node: n.Addr(), Serial: 12345}, 1); !errors.Is(err, ErrActorNotFound) {
		t.Fatal(err)
	}
	eventually(t, "the panic is logged", func() bool { return strings.Contains(logs.String(), "subscriber bug") })
}

func TestTwoNodesSideBySide(t *testing.T) {
	a, _ := newTestNode(t, Config{Addr: MustAddr(1, 1, 1)})
	b, _ := newTestNode(t, Config{Addr: MustAddr(1, 1, 2)})
	pa := mustSpawn(t, a, echo)
	pb := mustSpawn(t, b, echo)
	if pa.Node == pb.Node {
		t.Fatal("two nodes share an address")
	}
	if _, err := a.Call(context.Background(), pb, "x"); !errors.Is(err, ErrRemote) {
		t.Fatalf("node a reached node b's actor without a cluster: %v", err)
	}
	if r, err := b.Call(context.Background(), pb, "x"); err != nil || r != "echo:x" {
		t.Fatalf("%v %v", r, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Call(context.Background(), pb, "y"); err != nil || r != "echo:y" {
		t.Fatalf("closing node a affected node b: %v %v", r, err)
	}
}

func TestSendInterceptors(t *testing.T) {
	errBlocked := errors.New("blocked")
	var mu sync.Mutex
	var seen []string
	n, _ := newTestNode(t, Config{SendInterceptors: []SendInterceptor{
		func(next SendFunc) SendFunc {
			return func(e *Envelope) error {
				mu.Lock()
				seen = append(seen, fmt.Sprintf("%v request=%v", e.Message, e.IsRequest()))
				mu.Unlock()
				if e.Message == "forbidden" {
					return errBlocked
				}
				if s, ok := e.Message.(string); ok {
					e.Message = s + "+tagged"
				}
				return next(e)
			}
		},
	}})
	pid := mustSpawn(t, n, echo)
	if r, err := n.Call(context.Background(), pid, "a"); err != nil || r != "echo:a+tagged" {
		t.Fatalf("Call through interceptor: %v %v", r, err)
	}
	if err := n.Send(pid, "forbidden"); !errors.Is(err, errBlocked) {
		t.Fatalf("rejected send: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "a request=true" || seen[1] != "forbidden request=false" {
		t.Fatalf("interceptor saw %q", seen)
	}
}

func TestReceiveInterceptors(t *testing.T) {
	var order []string
	var mu sync.Mutex
	record := func(name string) ReceiveInterceptor {
		return func(next ReceiveFunc) ReceiveFunc {
			return func(c *Context) {
				if _, ok := c.Message().(string); ok {
					mu.Lock()
					order = append(order, name)
					mu.Unlock()
				}
				next(c)
			}
		}
	}
	n, _ := newTestNode(t, Config{ReceiveInterceptors: []ReceiveInterceptor{record("node")}})
	pid := mustSpawn(t, n, echo, WithReceiveInterceptors(record("actor")))
	if r, err := n.Call(context.Background(), pid, "x"); err != nil || r != "echo:x" {
		t.Fatal(r, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order) != "[node actor]" {
		t.Fatalf("interceptor order %v", order)
	}
}

func TestIdleActorsHoldNoGoroutine(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	before := goroutines()
	for i := 0; i < 10_000; i++ {
		pid := mustSpawn(t, n, echo)
		_ = n.Send(pid, "wake up")
	}
	eventually(t, "actors go idle", func() bool { return !goroutinesBusy(n) })
	if after := goroutines(); after-before > maxIdleWorkers+10 {
		t.Fatalf("10,000 idle actors hold %d goroutines", after-before)
	}
}

func goroutines() int { return runtime.NumGoroutine() }
