package actor

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/internal/await"
)

// recorder is a Reporter that keeps what it is given.
type recorder struct {
	mu sync.Mutex
	fs []Failure
}

func (r *recorder) Report(f Failure) {
	r.mu.Lock()
	r.fs = append(r.fs, f)
	r.mu.Unlock()
}

func (r *recorder) all() []Failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.fs)
}

// await returns the first failure that matches, waiting for it.
func (r *recorder) await(t *testing.T, what string, match func(Failure) bool) Failure {
	t.Helper()
	var got Failure
	await.True(t, 5*time.Second, what, func() bool {
		for _, f := range r.all() {
			if match(f) {
				got = f
				return true
			}
		}
		return false
	})
	return got
}

type boomMsg struct{ Secret string }

func TestReporterGetsAPanicInReceive(t *testing.T) {
	rec := &recorder{}
	n, _ := newTestNode(t, Config{Addr: MustAddr(1, 3, 7), Reporter: rec})
	pid := mustSpawn(t, n, func(c *Context) {
		if m, ok := c.Message().(boomMsg); ok {
			panic("room failed on " + strings.Repeat("x", len(m.Secret)))
		}
	}, WithName(".room"))
	before := time.Now()
	if err := n.Send(pid, boomMsg{Secret: "hunter2"}); err != nil {
		t.Fatal(err)
	}
	f := rec.await(t, "the panic's report", func(f Failure) bool { return f.Kind == FailurePanic })
	if f.Node != MustAddr(1, 3, 7) || f.PID != pid || !slices.Equal(f.Names, []string{".room"}) {
		t.Errorf("node %v pid %v names %v, want 1.3.7 %v [.room]", f.Node, f.PID, f.Names, pid)
	}
	if f.Where != WhereReceive || f.MessageType != "actor.boomMsg" || f.Reason != "room failed on xxxxxxx" {
		t.Errorf("where %q type %q reason %q", f.Where, f.MessageType, f.Reason)
	}
	if !bytes.Contains(f.Stack, []byte("TestReporterGetsAPanicInReceive")) || len(f.Stack) > MaxFailureStack {
		t.Errorf("stack (%d bytes) lacks the panicking function:\n%s", len(f.Stack), f.Stack)
	}
	if f.Time.Before(before) || time.Since(f.Time) > time.Minute {
		t.Errorf("time %v, sent at %v", f.Time, before)
	}
	if strings.Contains(f.Reason+f.MessageType+string(f.Stack), "hunter2") {
		t.Error("the report carries the message's contents")
	}
}

func TestReporterGetsEscalations(t *testing.T) {
	rec := &recorder{}
	n, _ := newTestNode(t, Config{Reporter: rec})
	escalate := Supervisor{Decide: func(any) Directive { return Escalate }}
	kids := make(chan PID, 2)
	parent := mustSpawn(t, n, func(c *Context) {
		if _, ok := c.Message().(Started); ok {
			pid, err := c.SpawnFunc(func(c *Context) {
				if c.Message() == "panic" {
					panic("child failed")
				}
			})
			if errors.Is(err, ErrNodeClosed) {
				return // the parent's restart after the escalation raced the test's end
			}
			if err != nil {
				t.Error(err)
			}
			kids <- pid
		}
	}, WithSupervisor(escalate))
	child := recv(t, kids)
	_ = n.Send(child, "panic")
	f := rec.await(t, "the escalation", func(f Failure) bool { return f.Kind == FailureEscalation })
	if f.PID != child || f.Parent != parent || f.Reason != "child failed" || f.Where != WhereSupervisor {
		t.Errorf("escalation %+v, want child %v to parent %v", f, child, parent)
	}
	rec.await(t, "the panic itself", func(f Failure) bool { return f.Kind == FailurePanic && f.PID == child })
}

// TestReporterGetsSpentBudgets: an actor that keeps failing is restarted
// within its budget, then stopped; the Reporter gets each panic, and one
// FailureBudget that says why it is gone.
func TestReporterGetsSpentBudgets(t *testing.T) {
	rec := &recorder{}
	n, _ := newTestNode(t, Config{Reporter: rec})
	sup := Supervisor{MaxRestarts: 2, Window: time.Hour}
	kids := make(chan PID, 1)
	parent := mustSpawn(t, n, func(c *Context) {
		if _, ok := c.Message().(Started); ok {
			pid, err := c.SpawnFunc(func(c *Context) {
				if c.Message() == "panic" {
					panic("corrupt state")
				}
			})
			if err != nil {
				t.Error(err)
			}
			kids <- pid
		}
	}, WithSupervisor(sup))
	pid := recv(t, kids)
	for range 3 {
		_ = n.Send(pid, "panic")
	}
	f := rec.await(t, "the spent budget", func(f Failure) bool { return f.Kind == FailureBudget })
	if f.PID != pid || f.Parent != parent || f.Where != WhereSupervisor || !strings.Contains(f.Reason, "restart budget spent (2 restarts within 1h0m0s)") ||
		!strings.Contains(f.Reason, "corrupt state") || f.Kind.String() != "budget" {
		t.Errorf("budget failure %+v", f)
	}
	await.True(t, 5*time.Second, "three panics reported", func() bool {
		k := 0
		for _, f := range rec.all() {
			if f.Kind == FailurePanic && f.PID == pid {
				k++
			}
		}
		return k == 3
	})
	budgets := 0
	for _, f := range rec.all() {
		if f.Kind == FailureBudget {
			budgets++
		}
	}
	if budgets != 1 {
		t.Errorf("%d budget failures, want 1", budgets)
	}
}

func TestReporterGetsPanicsOutsideReceive(t *testing.T) {
	rec := &recorder{}
	n, _ := newTestNode(t, Config{Reporter: rec})
	// A Request callback inside an actor.
	echo := mustSpawn(t, n, func(c *Context) {
		if c.IsRequest() {
			c.Respond(c.Message())
		}
	})
	asker := mustSpawn(t, n, func(c *Context) {
		if c.Message() == "ask" {
			_ = c.Request(echo, 42, time.Second, func(any, error) { panic("callback failed") })
		}
	})
	_ = n.Send(asker, "ask")
	f := rec.await(t, "the callback's panic", func(f Failure) bool { return f.Where == WhereCallback })
	if f.PID != asker || f.MessageType != "int" || f.Reason != "callback failed" {
		t.Errorf("callback failure %+v", f)
	}
	// A Node.Request callback.
	if err := n.Request(echo, "x", time.Second, func(any, error) { panic("outside callback failed") }); err != nil {
		t.Fatal(err)
	}
	f = rec.await(t, "the outside callback's panic", func(f Failure) bool { return f.Where == WhereRequest })
	if f.PID != (PID{}) || f.MessageType != "string" || len(f.Stack) == 0 {
		t.Errorf("request failure %+v", f)
	}
	// A Producer on restart, and a Producer at spawn.
	calls := 0
	pid, err := n.Spawn(func() Actor {
		if calls++; calls > 1 {
			panic("producer failed")
		}
		return ReceiveFunc(func(c *Context) {
			if c.Message() == "panic" {
				panic("first")
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = n.Send(pid, "panic")
	f = rec.await(t, "the producer's panic on restart", func(f Failure) bool { return f.Where == WhereProducer })
	if f.PID != pid || f.Reason != "producer failed" {
		t.Errorf("producer failure %+v", f)
	}
	if _, err := n.Spawn(func() Actor { panic("spawn failed") }); err == nil {
		t.Fatal("a panicking Producer spawned")
	}
	rec.await(t, "the producer's panic at spawn", func(f Failure) bool { return f.Reason == "spawn failed" && f.PID == (PID{}) })
	// A Supervisor's Decide (the node's, for top-level actors).
	nd, _ := newTestNode(t, Config{Addr: MustAddr(1, 1, 2), Reporter: rec, Supervisor: Supervisor{Decide: func(any) Directive { panic("decide failed") }}})
	dpid := mustSpawn(t, nd, func(c *Context) {
		if c.Message() == "panic" {
			panic("decided")
		}
	})
	_ = nd.Send(dpid, "panic")
	f = rec.await(t, "Decide's panic", func(f Failure) bool { return f.Where == WhereDecide })
	if f.PID != dpid || f.Reason != "decide failed" || f.Node != MustAddr(1, 1, 2) {
		t.Errorf("decide failure %+v", f)
	}
	// A Watch function.
	target := mustSpawn(t, n, func(*Context) {})
	if _, err := n.Watch(target, func(Terminated) { panic("watch failed") }); err != nil {
		t.Fatal(err)
	}
	_ = n.Stop(target)
	f = rec.await(t, "the watch function's panic", func(f Failure) bool { return f.Where == WhereWatch })
	if f.MessageType != "actor.Terminated" || f.Reason != "watch failed" {
		t.Errorf("watch failure %+v", f)
	}
	// A dead-letter subscriber.
	stop := n.SubscribeDeadLetters(func(DeadLetter) { panic("subscriber failed") })
	defer stop()
	_ = n.Send(PID{Node: n.Addr(), Serial: 1 << 40}, boomMsg{})
	f = rec.await(t, "the subscriber's panic", func(f Failure) bool { return f.Where == WhereDeadLetter })
	if f.MessageType != "actor.boomMsg" {
		t.Errorf("dead-letter failure %+v", f)
	}
	// A lifecycle message other than Started: logged and reported.
	lpid := mustSpawn(t, n, func(c *Context) {
		if _, ok := c.Message().(Stopping); ok {
			panic("stopping failed")
		}
	})
	_ = n.Stop(lpid)
	f = rec.await(t, "the Stopping panic", func(f Failure) bool { return f.Reason == "stopping failed" })
	if f.PID != lpid || f.MessageType != "actor.Stopping" {
		t.Errorf("lifecycle failure %+v", f)
	}
}

// panicky is a Reporter that panics.
type panicky struct{}

func (*panicky) Report(Failure) { panic("the reporter failed") }

func TestPanickingReporterDoesNotHurtTheNode(t *testing.T) {
	n, logs := newTestNode(t, Config{Reporter: &panicky{}, Supervisor: Supervisor{Decide: func(any) Directive { return Resume }}})
	pid := mustSpawn(t, n, func(c *Context) {
		switch c.Message() {
		case "panic":
			panic("actor failed")
		case "get":
			c.Respond("ok")
		}
	})
	for range 100 {
		_ = n.Send(pid, "panic")
	}
	v, err := n.Call(ctxTimeout(t, 5*time.Second), pid, "get")
	if err != nil || v != "ok" {
		t.Fatalf("Call after the reporter panicked: %v, %v", v, err)
	}
	if !strings.Contains(logs.String(), "the Reporter panicked") {
		t.Errorf("the reporter's panic was not logged:\n%s", logs.String())
	}
}

func TestNodeReportFillsAndBounds(t *testing.T) {
	rec := &recorder{}
	n, _ := newTestNode(t, Config{Reporter: rec})
	pid := mustSpawn(t, n, func(*Context) {}, WithName(".svc"))
	n.Report(Failure{PID: pid, Where: "rpc", MessageType: "game.v1.Move", Reason: "x", Stack: bytes.Repeat([]byte("s"), 3*MaxFailureStack)})
	f := rec.all()[0]
	if f.Node != n.Addr() || f.Time.IsZero() || len(f.Stack) != MaxFailureStack || !slices.Equal(f.Names, []string{".svc"}) {
		t.Errorf("filled failure: node %v time %v stack %d names %v", f.Node, f.Time, len(f.Stack), f.Names)
	}
	// Without a Reporter, Report does nothing.
	n2, _ := newTestNode(t, Config{Addr: MustAddr(1, 1, 2)})
	n2.Report(Failure{Reason: "nobody listens"})
}

func TestReasonTextSurvivesAPanickingError(t *testing.T) {
	if s := reasonText(badError{}); !strings.Contains(s, "no message") {
		t.Errorf("reasonText = %q", s)
	}
	if s := reasonText(errors.New("plain")); s != "plain" {
		t.Errorf("reasonText = %q", s)
	}
	if FailurePanic.String() != "panic" || FailureEscalation.String() != "escalation" || FailureKind(9).String() != "FailureKind(9)" {
		t.Error("FailureKind names")
	}
}

type badError struct{}

func (badError) Error() string { panic("no message") }
