package actor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/guildkit/guild/actor"
)

// greeter is an actor: a type with a Receive method. Its fields are its
// state. Receive handles one message at a time, so they need no lock.
type greeter struct {
	greeted int
	out     chan<- string
}

func (g *greeter) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		// The first message of every actor: set up here.
	case string:
		g.greeted++
		g.out <- fmt.Sprintf("hello, %s (greeting #%d)", m, g.greeted)
	}
}

func ExampleNode_Spawn() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	out := make(chan string, 2)
	// The Producer makes a fresh greeter now, and again each time a
	// supervisor restarts it.
	pid, err := node.Spawn(func() actor.Actor { return &greeter{out: out} })
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}
	_ = node.Send(pid, "alice")
	_ = node.Send(pid, "bob")
	fmt.Println(<-out)
	fmt.Println(<-out)
	// Output:
	// hello, alice (greeting #1)
	// hello, bob (greeting #2)
}

func ExampleNode_SpawnFunc() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	totals := make(chan int, 1)
	sum := 0 // captured by the actor: only its Receive touches it
	pid, err := node.SpawnFunc(func(c *actor.Context) {
		switch m := c.Message().(type) {
		case int:
			sum += m
		case string:
			if m == "total?" {
				totals <- sum
			}
		}
	})
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}
	for i := 1; i <= 4; i++ {
		_ = node.Send(pid, i)
	}
	_ = node.Send(pid, "total?")
	fmt.Println("total:", <-totals)
	// Output:
	// total: 10
}

func ExampleNode_Send() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	got := make(chan string, 3)
	pid, err := node.SpawnFunc(func(c *actor.Context) {
		if s, ok := c.Message().(string); ok {
			got <- s
		}
	})
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}

	// Send is one-way: it returns as soon as the message is queued.
	// Messages from one sender arrive in the order they were sent.
	for _, s := range []string{"one", "two", "three"} {
		if err := node.Send(pid, s); err != nil {
			fmt.Println("send:", err)
		}
	}
	for range 3 {
		fmt.Println(<-got)
	}

	// Send returns an error only when the message could not be queued,
	// for example once the node is shutting down.
	_ = node.Shutdown(context.Background())
	err = node.Send(pid, "four")
	fmt.Println(errors.Is(err, actor.ErrNodeClosed))
	// Output:
	// one
	// two
	// three
	// true
}

// add is a request for the sum of A and B.
type add struct{ A, B int }

// adder answers add requests.
func adder(c *actor.Context) {
	if m, ok := c.Message().(add); ok {
		c.Respond(m.A + m.B)
	}
}

func ExampleContext_Request() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	calc, err := node.SpawnFunc(adder)
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}
	out := make(chan string, 1)
	_, err = node.SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(actor.Started); !ok {
			return
		}
		// Request returns at once; this actor goes on handling messages.
		// The callback runs later, inside this actor's own turn, so it may
		// use the actor's state like Receive does.
		err := c.Request(calc, add{2, 3}, time.Second, func(reply any, err error) {
			if err != nil {
				out <- "error: " + err.Error()
				return
			}
			out <- fmt.Sprint("2 + 3 = ", reply)
		})
		if err != nil {
			out <- "request: " + err.Error()
		}
	})
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}
	fmt.Println(<-out)
	// Output:
	// 2 + 3 = 5
}

func ExampleNode_Call() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	calc, err := node.SpawnFunc(adder)
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}

	// Call blocks until the reply comes or ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sum, err := node.Call(ctx, calc, add{40, 2})
	if err != nil {
		fmt.Println("call:", err)
		return
	}
	fmt.Println(sum.(int))
	// Output:
	// 42
}

func ExampleContext_Respond() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	errNoFunds := errors.New("bank: insufficient funds")
	type withdraw struct{ Amount int }

	balance := 100
	bank, err := node.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(withdraw); ok {
			if m.Amount > balance {
				// An error value as the answer becomes the caller's error.
				c.Respond(fmt.Errorf("withdraw %d: %w", m.Amount, errNoFunds))
				return
			}
			balance -= m.Amount
			c.Respond(balance)
		}
	})
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	left, err := node.Call(ctx, bank, withdraw{30})
	fmt.Println(left, err)
	_, err = node.Call(ctx, bank, withdraw{100})
	fmt.Println(err)
	fmt.Println(errors.Is(err, errNoFunds))
	// Output:
	// 70 <nil>
	// withdraw 100: bank: insufficient funds
	// true
}

func ExampleNode_Register() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	calc, err := node.SpawnFunc(adder)
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}

	// Local names start with "." and are seen by this node only.
	ctx := context.Background()
	if err := node.Register(ctx, ".calc", calc); err != nil {
		fmt.Println("register:", err)
		return
	}
	other, _ := node.SpawnFunc(adder)
	err = node.Register(ctx, ".calc", other)
	fmt.Println("second register:", errors.Is(err, actor.ErrNameTaken))

	pid, err := node.Lookup(ctx, ".calc")
	if err != nil {
		fmt.Println("lookup:", err)
		return
	}
	fmt.Println("found the first actor:", pid == calc)
	// Output:
	// second register: true
	// found the first actor: true
}

func ExampleNode_Lookup() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	// WithName registers the name as part of the spawn: no window in which
	// the actor runs without its name.
	if _, err := node.SpawnFunc(adder, actor.WithName(".calc")); err != nil {
		fmt.Println("spawn:", err)
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	calc, err := node.Lookup(ctx, ".calc")
	if err != nil {
		fmt.Println("lookup:", err)
		return
	}
	sum, err := node.Call(ctx, calc, add{1, 2})
	fmt.Println(sum, err)

	_, err = node.Lookup(ctx, ".nobody")
	fmt.Println(errors.Is(err, actor.ErrNameNotFound))
	// Output:
	// 3 <nil>
	// true
}

func ExampleContext_After() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	type ring struct{}
	out := make(chan string, 1)
	_, err = node.SpawnFunc(func(c *actor.Context) {
		switch c.Message().(type) {
		case actor.Started:
			// The timer delivers ring{} into this actor's own mailbox.
			c.After(10*time.Millisecond, ring{})
		case ring:
			out <- fmt.Sprintf("ring (sent by self: %v)", c.Sender() == c.Self())
		}
	})
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}
	fmt.Println(<-out)
	// Output:
	// ring (sent by self: true)
}

func ExampleContext_Every() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	type tick struct{}
	out := make(chan string, 4)
	var ticker actor.TimerID
	ticks := 0
	_, err = node.SpawnFunc(func(c *actor.Context) {
		switch c.Message().(type) {
		case actor.Started:
			ticker = c.Every(5*time.Millisecond, tick{})
		case tick:
			ticks++
			out <- fmt.Sprint("tick ", ticks)
			if ticks == 3 {
				out <- fmt.Sprint("cancelled: ", c.CancelTimer(ticker))
			}
		}
	})
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}
	for range 4 {
		fmt.Println(<-out)
	}
	// Output:
	// tick 1
	// tick 2
	// tick 3
	// cancelled: true
}

// counter counts "incr" messages. A restart replaces it with a fresh
// counter, so the count starts again from zero.
type counter struct{ n int }

func (a *counter) Receive(c *actor.Context) {
	switch c.Message() {
	case "incr":
		a.n++
		c.Respond(a.n)
	case "crash":
		panic("a bug")
	}
}

func ExampleSupervisor() {
	node, err := actor.NewNode(actor.Config{
		Logger: slog.New(slog.DiscardHandler), // panics are logged here, with their stack
		// Top-level actors are restarted at most 3 times a minute; past that
		// they are stopped.
		Supervisor: actor.Supervisor{MaxRestarts: 3, Window: time.Minute},
	})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	pid, err := node.Spawn(func() actor.Actor { return &counter{} })
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, msg := range []string{"incr", "incr", "crash", "incr"} {
		reply, err := node.Call(ctx, pid, msg)
		if errors.Is(err, actor.ErrPanicked) {
			fmt.Println(msg, "-> panicked; the supervisor restarts the actor")
			continue
		}
		fmt.Println(msg, "->", reply)
	}
	// Output:
	// incr -> 1
	// incr -> 2
	// crash -> panicked; the supervisor restarts the actor
	// incr -> 1
}

func ExampleContext_Watch() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	worker, err := node.SpawnFunc(func(c *actor.Context) {
		if c.Message() == "quit" {
			c.Stop(c.Self())
		}
	})
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}
	out := make(chan string, 1)
	_, err = node.SpawnFunc(func(c *actor.Context) {
		switch m := c.Message().(type) {
		case actor.Started:
			c.Watch(worker)
			_ = c.Send(worker, "quit")
		case actor.Terminated:
			out <- fmt.Sprint("the worker stopped: ", m.PID == worker)
		}
	})
	if err != nil {
		fmt.Println("spawn:", err)
		return
	}
	fmt.Println(<-out)
	// Output:
	// the worker stopped: true
}

// ExampleNode_Watch watches an actor from outside any actor: the function
// runs once, when the actor stops, with why.
func ExampleNode_Watch() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	worker, _ := node.SpawnFunc(func(*actor.Context) {})
	done := make(chan actor.Terminated, 1)
	cancel, err := node.Watch(worker, func(t actor.Terminated) { done <- t })
	if err != nil {
		fmt.Println("watch:", err)
		return
	}
	defer cancel()
	_ = node.Stop(worker)
	t := <-done
	fmt.Println("stopped:", t.PID == worker, t.Reason)
	// Output:
	// stopped: true stopped
}

// ExampleNode_CallName calls an actor by its name. A local name (".clock")
// is resolved on this node; a global one on the node that holds it.
func ExampleNode_CallName() {
	node, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	_, _ = node.SpawnFunc(func(c *actor.Context) {
		if c.Message() == "what time is it?" {
			c.Respond("tea time")
		}
	}, actor.WithName(".clock"))
	reply, err := node.CallName(context.Background(), ".clock", "what time is it?")
	fmt.Println(reply, err)
	_, err = node.CallName(context.Background(), ".nobody", "hello?")
	fmt.Println(errors.Is(err, actor.ErrNameNotFound))
	// Output:
	// tea time <nil>
	// true
}
