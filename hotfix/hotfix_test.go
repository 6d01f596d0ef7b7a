package hotfix_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/hotfix"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// newNode starts an actor node, closed at the test's end.
func newNode(t *testing.T) *actor.Node {
	t.Helper()
	n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// replyText returns a counter's reply as "v1:3" (v1 answers a raw
// *hotfix.Message, v2 a *wrapperspb.StringValue).
func replyText(t *testing.T, r any) string {
	t.Helper()
	switch r := r.(type) {
	case *hotfix.Message:
		return string(r.Data)
	case *wrapperspb.StringValue:
		return r.GetValue()
	}
	t.Fatalf("reply %T %v", r, r)
	return ""
}

// TestSwapBetweenMessages replaces a counter's code while senders keep
// calling: actors, each with a sender that calls it without a pause, and
// a swap from counter1 (+1) to counter2 (+2) in the middle. Every reply
// comes from exactly one version, each actor switches once (v1 then v2,
// never back), the count carries over the swap (v2 goes on from v1's
// last count, by 2) and no message is lost or handled twice (the counts
// have no gap and no repeat, and the final state agrees).
func TestSwapBetweenMessages(t *testing.T) {
	e := newEngine(t, hotfix.Config{})
	h := hotfix.NewHandler("counter")
	v1 := load(t, e, h, "counter1")
	v2, err := e.Compile(context.Background(), "counter", fix(t, "counter2")) // checked before the senders start, swapped in among them
	if err != nil {
		t.Fatal(err)
	}
	node := newNode(t)

	const actors, each = 4, 100 // each sender's calls before the swap, at least, and after it
	var (
		counts  [actors]atomic.Int64 // each actor's replies
		swapped atomic.Int64         // 1 once the swap is done
		wg      sync.WaitGroup
		replies = make([][]string, actors)
		errs    = make(chan error, actors)
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var at [actors]atomic.Int64 // each actor's replies at the swap
	for i := range actors {
		pid, err := node.Spawn(func() actor.Actor { return hotfix.NewActor(h, nil) })
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for swapped.Load() == 0 || counts[i].Load() < at[i].Load()+each {
				if swapped.Load() == 0 && counts[i].Load() >= 2*each {
					time.Sleep(time.Millisecond) // ahead of the others: wait for them, still sending
				}
				r, err := node.Call(ctx, pid, &hotfix.Message{Type: "inc"})
				if err != nil {
					errs <- err
					return
				}
				switch r := r.(type) {
				case *hotfix.Message:
					replies[i] = append(replies[i], string(r.Data))
				case *wrapperspb.StringValue:
					replies[i] = append(replies[i], r.GetValue())
				default:
					errs <- fmt.Errorf("reply %T", r)
					return
				}
				counts[i].Add(1)
			}
		}()
	}
	for i := range actors { // every sender is well under way
		for counts[i].Load() < each && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
	}
	for i := range actors {
		at[i].Store(counts[i].Load())
	}
	h.Swap(v2)
	swapped.Store(1)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v1.Version() == v2.Version() || h.Version() != v2.Version() {
		t.Fatalf("versions: v1 %s, v2 %s, in service %s", v1.Version(), v2.Version(), h.Version())
	}
	total := 0
	for i, rs := range replies {
		total += len(rs)
		var last uint64
		ver := "v1"
		ones := 0
		for j, r := range rs {
			v, num, ok := strings.Cut(r, ":")
			n, err := strconv.ParseUint(num, 10, 64)
			if !ok || err != nil {
				t.Fatalf("actor %d, reply %d: %q", i, j, r)
			}
			if v == "v1" && ver == "v2" {
				t.Fatalf("actor %d, reply %d: %q after v2 (%q)", i, j, r, rs)
			}
			ver = v
			step := uint64(1)
			if v == "v2" {
				step = 2
			} else {
				ones++
			}
			if n != last+step {
				t.Fatalf("actor %d, reply %d: %q after the count %d: a message lost, repeated or handled by both", i, j, r, last)
			}
			last = n
		}
		if ver != "v2" || ones < each {
			t.Fatalf("actor %d: %d replies by v1, the last by %s: the swap was not in the middle", i, ones, ver)
		}
		if want := uint64(ones + 2*(len(rs)-ones)); last != want {
			t.Fatalf("actor %d: count %d, want %d", i, last, want)
		}
		t.Logf("actor %d: %d calls answered by v1, then %d by v2", i, ones, len(rs)-ones)
	}
	if _, err := v1.Call(ctx, nil, "inc", nil); !errors.Is(err, hotfix.ErrClosed) {
		t.Fatalf("the replaced module still answers: %v", err)
	}
}

// TestRejectedKeepsOld loads broken fixes over a working one: each is
// rejected with an error that says why, and the old version keeps
// serving, with its state.
func TestRejectedKeepsOld(t *testing.T) {
	e := newEngine(t, hotfix.Config{MemoryLimit: 64 << 20})
	h := hotfix.NewHandler("counter")
	v1 := load(t, e, h, "counter1")
	ctx := context.Background()
	state := []byte(nil)
	call := func() string {
		t.Helper()
		res, m, err := h.Call(ctx, state, "inc", nil)
		if err != nil {
			t.Fatal(err)
		}
		if m != v1 {
			t.Fatalf("answered by %s, want %s", m.Version(), v1.Version())
		}
		state = res.State
		return string(res.Reply)
	}
	if r := call(); r != "v1:1" {
		t.Fatalf("reply %q", r)
	}
	for _, c := range []struct {
		name string
		wasm func() []byte
		want []string
	}{
		{"not wasm", func() []byte { return []byte("#!/bin/sh\necho fixed\n") }, []string{"compile"}},
		{"empty", func() []byte { return nil }, []string{"compile"}},
		{"a command, not a reactor", func() []byte { return buildFix(t, "counter1", false) }, []string{"no export _initialize", "-buildmode=c-shared"}},
		{"trap in init", func() []byte { return fix(t, "badinit") }, []string{"initialize", "the tables do not parse"}},
		{"self-check fails", func() []byte { return fix(t, "badcheck") }, []string{"self-check", "price must be positive"}},
		{"memory limit", func() []byte { return fix(t, "greedy") }, []string{"self-check", "out of memory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := h.Load(ctx, e, c.wasm())
			if !errors.Is(err, hotfix.ErrRejected) || m != nil {
				t.Fatalf("Load: %v, %v; want ErrRejected", m, err)
			}
			contains(t, err, c.want...)
			if h.Module() != v1 {
				t.Fatalf("in service: %v, want v1", h.Module())
			}
		})
	}
	if r := call(); r != "v1:2" {
		t.Fatalf("after the rejections: %q, want v1:2", r)
	}
}

// TestTrapInTurn sends an actor messages that fail in every way: a
// handler's error and a recovered panic answer with a CallError (not a
// trap) and keep the instance; an exit of the instance and an out of
// memory answer with a trap. The actor lives on, its state as before
// each failed turn, and the node too.
func TestTrapInTurn(t *testing.T) {
	e := newEngine(t, hotfix.Config{MemoryLimit: 64 << 20, MaxIdle: 1})
	h := hotfix.NewHandler("faulty")
	load(t, e, h, "faulty")
	node := newNode(t)
	pid, err := node.Spawn(func() actor.Actor { return hotfix.NewActor(h, nil) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	count := 0
	inc := func() {
		t.Helper()
		count++
		r, err := node.Call(ctx, pid, &hotfix.Message{Type: "inc"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := replyText(t, r), "faulty:"+strconv.Itoa(count); got != want {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	inc()
	for _, c := range []struct {
		msg  string
		trap bool
		want []string
	}{
		{"error", false, []string{"faulty@", "error: no such item"}},
		{"panic", false, []string{"panic", "nil map"}},
		{"exit", true, []string{"trap", "exit_code(3)", "faulty: giving up"}},
		{"oom", true, []string{"trap", "out of memory"}},
	} {
		_, err := node.Call(ctx, pid, &hotfix.Message{Type: c.msg})
		var ce *hotfix.CallError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: %T %v, want a *hotfix.CallError", c.msg, err, err)
		}
		if ce.Trap != c.trap || errors.Is(err, hotfix.ErrTrap) != c.trap {
			t.Fatalf("%s: trap %v, want %v: %v", c.msg, ce.Trap, c.trap, err)
		}
		contains(t, err, c.want...)
		inc() // the state is the one before the failed turn
	}
}

// TestCallTimeout gives a fix with an endless loop a CallTimeout: the
// turn traps at the timeout and the actor answers the next message.
func TestCallTimeout(t *testing.T) {
	e := newEngine(t, hotfix.Config{CallTimeout: 300 * time.Millisecond})
	h := hotfix.NewHandler("faulty")
	load(t, e, h, "faulty")
	ctx := context.Background()
	start := time.Now()
	_, _, err := h.Call(ctx, nil, "spin", nil)
	if !errors.Is(err, hotfix.ErrTrap) {
		t.Fatalf("spin: %v, want a trap", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the trap took %v", d)
	}
	res, _, err := h.Call(ctx, nil, "inc", nil)
	if err != nil || string(res.Reply) != "faulty:1" {
		t.Fatalf("after the timeout: %q, %v", res.Reply, err)
	}
}

// TestNoModule calls a handler before any load.
func TestNoModule(t *testing.T) {
	h := hotfix.NewHandler("later")
	if _, _, err := h.Call(context.Background(), nil, "x", nil); !errors.Is(err, hotfix.ErrNoModule) {
		t.Fatalf("%v, want ErrNoModule", err)
	}
	node := newNode(t)
	pid, err := node.Spawn(func() actor.Actor { return hotfix.NewActor(h, nil) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := node.Call(ctx, pid, &hotfix.Message{Type: "x"}); err == nil || !strings.Contains(err.Error(), "no module") {
		t.Fatalf("%v, want no module", err)
	}
	if _, err := node.Call(ctx, pid, 42); err == nil || !strings.Contains(err.Error(), "a message of type int") {
		t.Fatalf("%v, want the type's error", err)
	}
}

// TestConfigValidate checks the errors of bad Configs.
func TestConfigValidate(t *testing.T) {
	for _, c := range []hotfix.Config{{MemoryLimit: -1}, {MemoryLimit: 5 << 30}, {CallTimeout: -1}, {MaxIdle: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid", c)
		}
		if _, err := hotfix.NewEngine(context.Background(), c); err == nil {
			t.Errorf("%+v: NewEngine accepted it", c)
		}
	}
}

// TestEngineClosed compiles on a closed Engine.
func TestEngineClosed(t *testing.T) {
	e := newEngine(t, hotfix.Config{})
	h := hotfix.NewHandler("counter")
	m := load(t, e, h, "counter1")
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Compile(context.Background(), "counter", fix(t, "counter1")); !errors.Is(err, hotfix.ErrClosed) {
		t.Fatalf("Compile: %v, want ErrClosed", err)
	}
	if _, err := m.Call(context.Background(), nil, "inc", nil); !errors.Is(err, hotfix.ErrClosed) {
		t.Fatalf("Call: %v, want ErrClosed", err)
	}
}

// TestTypedActor sends protobuf messages to an actor whose module uses
// guestpb: the message reaches it under its full name, the state is a
// protobuf message, and the reply comes back as the node's own Go type.
func TestTypedActor(t *testing.T) {
	e := newEngine(t, hotfix.Config{})
	h := hotfix.NewHandler("typed")
	load(t, e, h, "typed")
	node := newNode(t)
	pid, err := node.Spawn(func() actor.Actor { return hotfix.NewActor(h, nil) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, want := range []string{"total 3", "total 7"} {
		r, err := node.Call(ctx, pid, wrapperspb.Int64(int64(3+i)))
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := r.(*wrapperspb.StringValue); !ok || s.GetValue() != want {
			t.Fatalf("reply %T %v, want %q", r, r, want)
		}
	}
	if _, err := node.Call(ctx, pid, wrapperspb.String("x")); err == nil || !strings.Contains(err.Error(), "no route") {
		t.Fatalf("a type without a route: %v", err)
	}
}
