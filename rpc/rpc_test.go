package rpc_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/internal/echopb"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// newNode starts a lone actor node (no cluster), closed at cleanup.
func newNode(t *testing.T) *actor.Node {
	t.Helper()
	n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return n
}

// serve hosts a new echoServer on n.
func serve(t *testing.T, n *actor.Node, opts ...rpc.ServeOption) (actor.PID, *echoServer) {
	t.Helper()
	h := newEchoServer(t)
	pid, err := echopb.RegisterEchoServer(ctxTimeout(t, 5*time.Second), n, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return pid, h
}

// newEcho returns a generated client calling from n.
func newEcho(n *actor.Node, opts ...rpc.ClientOption) echopb.EchoClient {
	return echopb.NewEchoClient(rpc.NewClient(n, opts...))
}

// wantCode checks that err is a *rpc.Status with code, in every way a
// caller may ask.
func wantCode(t *testing.T, err error, code rpc.Code) *rpc.Status {
	t.Helper()
	var st *rpc.Status
	if !errors.As(err, &st) {
		t.Fatalf("err = %v (%T), want a *rpc.Status with code %v", err, err, code)
	}
	if st.Code != code {
		t.Fatalf("code = %v (%v), want %v", st.Code, err, code)
	}
	if !errors.Is(err, rpc.Error(code, "")) {
		t.Errorf("errors.Is(%v, rpc.Error(%v, \"\")) = false", err, code)
	}
	if got := rpc.CodeOf(err); got != code {
		t.Errorf("CodeOf(%v) = %v, want %v", err, got, code)
	}
	return st
}

func TestLocalCallDoesNotEncode(t *testing.T) {
	n := newNode(t)
	svc, h := serve(t, n)
	req := &echopb.SayRequest{Text: "hi"}
	reply, err := newEcho(n).Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(t, h.reqs); got != req {
		t.Errorf("the handler got request %p, want the caller's own %p", got, req)
	}
	if reply.GetText() != "echo:hi" || reply.GetNode() != n.Addr().String() {
		t.Errorf("reply = %v, want text echo:hi from node %v", reply, n.Addr())
	}
}

func TestLocalErrors(t *testing.T) {
	n := newNode(t)
	svc, h := serve(t, n)
	echo := newEcho(n)
	errNoGold := rpc.Error(1001, "other message")

	for _, tc := range []struct {
		name string
		req  *echopb.SayRequest
		code rpc.Code
		msg  string // the Status's message, when it is known exactly
	}{
		{"status NotFound", &echopb.SayRequest{Mode: "status", Code: 5, Text: "gone"}, rpc.NotFound, "status gone"},
		{"status application", &echopb.SayRequest{Mode: "status", Code: 1001, Text: "gold"}, 1001, "status gold"},
		{"status OK", &echopb.SayRequest{Mode: "status", Code: 0, Text: "ok?"}, rpc.Unknown, "status ok?"},
		{"plain", &echopb.SayRequest{Mode: "plain"}, rpc.Unknown, "plain failure"},
		{"panic", &echopb.SayRequest{Mode: "panic"}, rpc.Internal, ""},
		{"nil", &echopb.SayRequest{Mode: "nil"}, rpc.Internal, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := echo.Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), tc.req)
			if reply != nil {
				t.Errorf("reply = %v, want nil", reply)
			}
			st := wantCode(t, err, tc.code)
			if tc.msg != "" && st.Message != tc.msg {
				t.Errorf("message = %q, want %q", st.Message, tc.msg)
			}
			if tc.code == 1001 {
				if !errors.Is(err, errNoGold) {
					t.Errorf("errors.Is(%v, errNoGold) = false", err)
				}
				if errors.Is(err, rpc.Error(1002, "other message")) {
					t.Errorf("errors.Is(%v, code 1002) = true", err)
				}
			}
		})
	}

	t.Run("panic keeps serving", func(t *testing.T) {
		restarts := n.Stats().Restarts
		_, err := echo.Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Mode: "panic"})
		wantCode(t, err, rpc.Internal)
		reply, err := echo.Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Text: "after"})
		if err != nil || reply.GetText() != "echo:after" {
			t.Fatalf("after a panic: %v, %v", reply, err)
		}
		pid, err := n.Lookup(context.Background(), rpc.LocalServiceName(echopb.Echo_ServiceName))
		if err != nil || pid != svc {
			t.Errorf("service is %v (%v), want still %v", pid, err, svc)
		}
		if got := n.Stats().Restarts; got != restarts {
			t.Errorf("restarts went from %d to %d: the handler's panic reached the actor", restarts, got)
		}
	})

	t.Run("unknown method", func(t *testing.T) {
		_, err := rpc.NewClient(n).Call(ctxTimeout(t, 5*time.Second), rpc.To(svc), echopb.Echo_ServiceName,
			"/guild.test.echo.v1.Echo/Nope", &echopb.SayRequest{})
		wantCode(t, err, rpc.Unimplemented)
	})

	t.Run("request does not decode", func(t *testing.T) {
		for len(h.calls) > 0 {
			<-h.calls
		}
		reply, err := n.Call(ctxTimeout(t, 5*time.Second), svc,
			&rpcpb.Call{Method: echopb.Echo_Say_FullMethodName, Body: []byte{0xff, 0xff}})
		if err != nil {
			t.Fatal(err)
		}
		st, ok := reply.(*rpcpb.Status)
		if !ok {
			t.Fatalf("reply = %T %v, want *rpcpb.Status", reply, reply)
		}
		if rpc.Code(st.GetCode()) != rpc.InvalidArgument {
			t.Errorf("code = %v (%q), want InvalidArgument", rpc.Code(st.GetCode()), st.GetMessage())
		}
		if len(h.calls) != 0 {
			t.Error("the handler ran for a request that does not decode")
		}
	})

	t.Run("target not found", func(t *testing.T) {
		ctx := ctxTimeout(t, 5*time.Second)
		gone := actor.PID{Node: n.Addr(), Serial: svc.Serial + 1000}
		_, err := echo.Say(ctx, rpc.To(gone), &echopb.SayRequest{})
		wantCode(t, err, rpc.NotFound)
		if !errors.Is(err, actor.ErrActorNotFound) {
			t.Errorf("errors.Is(%v, actor.ErrActorNotFound) = false", err)
		}
		_, err = echo.Say(ctx, rpc.Named(".nope"), &echopb.SayRequest{})
		wantCode(t, err, rpc.NotFound)
		if !errors.Is(err, actor.ErrNameNotFound) {
			t.Errorf("errors.Is(%v, actor.ErrNameNotFound) = false", err)
		}
	})
}

func TestLocalDeadlineAndCancel(t *testing.T) {
	t.Run("deadline reaches the handler", func(t *testing.T) {
		n := newNode(t)
		svc, _ := serve(t, n)
		ctx := ctxTimeout(t, 2*time.Second)
		dl, _ := ctx.Deadline()
		reply, err := newEcho(n).Say(ctx, rpc.To(svc), &echopb.SayRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := reply.GetDeadlineUnixMs() - dl.UnixMilli(); diff < -2 || diff > 2 {
			t.Errorf("handler saw deadline %d, want %d (±2 ms)", reply.GetDeadlineUnixMs(), dl.UnixMilli())
		}
	})

	t.Run("cancel", func(t *testing.T) {
		n := newNode(t)
		svc, _ := serve(t, n)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := newEcho(n).Say(ctx, rpc.To(svc), &echopb.SayRequest{Mode: "sleep", Text: "1s"})
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Errorf("a cancelled call returned after %v", d)
		}
		wantCode(t, err, rpc.Canceled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled) = false", err)
		}
	})

	t.Run("deadline exceeded", func(t *testing.T) {
		n := newNode(t)
		svc, _ := serve(t, n)
		start := time.Now()
		_, err := newEcho(n).Say(ctxTimeout(t, 100*time.Millisecond), rpc.To(svc),
			&echopb.SayRequest{Mode: "sleep", Text: "1s"})
		if d := time.Since(start); d > 350*time.Millisecond {
			t.Errorf("a call past its deadline returned after %v", d)
		}
		wantCode(t, err, rpc.DeadlineExceeded)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
		}
	})
}

// asyncResult is what an async callback saw.
type asyncResult struct {
	reply *echopb.SayReply
	err   error
	self  actor.PID // Self of the Context captured by the Receive that made the call
	turns int       // the actor's turn counter when the callback ran
}

// spawnAsyncCaller starts an actor that, on a "call" message, calls Say
// with req at to with SayAsync and reports the callback on out. Every
// message and every callback bumps a counter that only the actor's turns
// touch, without locks: under -race, a callback outside the actor's turn
// would be reported.
func spawnAsyncCaller(t *testing.T, n *actor.Node, echo echopb.EchoClient, to rpc.Target, req *echopb.SayRequest) (actor.PID, <-chan asyncResult) {
	t.Helper()
	out := make(chan asyncResult, 4)
	turns := 0
	pid, err := n.SpawnFunc(func(c *actor.Context) {
		turns++
		if c.Message() != "call" {
			return
		}
		err := echo.SayAsync(c, to, req, 5*time.Second, func(reply *echopb.SayReply, err error) {
			turns++
			out <- asyncResult{reply: reply, err: err, self: c.Self(), turns: turns}
		})
		if err != nil {
			out <- asyncResult{err: err}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid, out
}

// pokeWhileWaiting sends pid messages until a result arrives on out, to
// have the actor's Receive run while the callback is due.
func pokeWhileWaiting(t *testing.T, n *actor.Node, pid actor.PID, out <-chan asyncResult) asyncResult {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r := <-out:
			return r
		case <-deadline:
			t.Fatal("no callback in 5s")
		default:
			_ = n.Send(pid, "poke")
			time.Sleep(100 * time.Microsecond)
		}
	}
}

func TestAsyncFromActor(t *testing.T) {
	n := newNode(t)
	svc, _ := serve(t, n)
	echo := newEcho(n)

	t.Run("reply", func(t *testing.T) {
		pid, out := spawnAsyncCaller(t, n, echo, rpc.To(svc), &echopb.SayRequest{Text: "async"})
		if err := n.Send(pid, "call"); err != nil {
			t.Fatal(err)
		}
		r := pokeWhileWaiting(t, n, pid, out)
		if r.err != nil || r.reply.GetText() != "echo:async" {
			t.Fatalf("callback got %v, %v", r.reply, r.err)
		}
		if r.self != pid {
			t.Errorf("in the callback Self = %v, want the caller %v", r.self, pid)
		}
		if r.turns < 2 {
			t.Errorf("turns = %d in the callback, want at least 2", r.turns)
		}
	})

	t.Run("status", func(t *testing.T) {
		pid, out := spawnAsyncCaller(t, n, echo, rpc.To(svc), &echopb.SayRequest{Mode: "status", Code: 1001, Text: "x"})
		if err := n.Send(pid, "call"); err != nil {
			t.Fatal(err)
		}
		r := pokeWhileWaiting(t, n, pid, out)
		st := wantCode(t, r.err, 1001)
		if st.Message != "status x" || r.reply != nil {
			t.Errorf("callback got %v, %v", r.reply, r.err)
		}
	})

	t.Run("name not found", func(t *testing.T) {
		pid, out := spawnAsyncCaller(t, n, echo, rpc.Named(".nope"), &echopb.SayRequest{})
		if err := n.Send(pid, "call"); err != nil {
			t.Fatal(err)
		}
		r := recv(t, out)
		wantCode(t, r.err, rpc.NotFound)
	})
}

func TestOneWay(t *testing.T) {
	n := newNode(t)
	svc, h := serve(t, n)
	echo := newEcho(n)
	if err := echo.NoteOneWay(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Text: "one-way"}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, h.notes); got != "one-way" {
		t.Errorf("noted %q, want one-way", got)
	}
	reply, err := echo.Note(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Text: "blocking"})
	if err != nil || reply == nil {
		t.Fatalf("Note = %v, %v", reply, err)
	}
	if got := recv(t, h.notes); got != "blocking" {
		t.Errorf("noted %q, want blocking", got)
	}
	err = echo.NoteOneWay(ctxTimeout(t, 5*time.Second), rpc.Named(".nope"), &echopb.SayRequest{})
	wantCode(t, err, rpc.NotFound)
}

// trace records the steps of interceptors, from any goroutine.
type trace struct {
	mu    sync.Mutex
	steps []string
}

func (tr *trace) add(s string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.steps = append(tr.steps, s)
}

func (tr *trace) get() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.steps)
}

// traced returns an interceptor that records name before and after next,
// and checks what it is told about the call.
func traced(t *testing.T, tr *trace, name string, server bool) rpc.Interceptor {
	return func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
		if info.Method != echopb.Echo_Say_FullMethodName || info.Server != server {
			t.Errorf("%s: info = %+v, want method %s, server %v", name, info, echopb.Echo_Say_FullMethodName, server)
		}
		tr.add(name + ">")
		reply, err := next(ctx, info, req)
		tr.add("<" + name)
		return reply, err
	}
}

func TestInterceptors(t *testing.T) {
	t.Run("order", func(t *testing.T) {
		n := newNode(t)
		tr := &trace{}
		var serverInfo, clientInfo rpc.CallInfo
		svc, _ := serve(t, n, rpc.WithServerInterceptors(
			traced(t, tr, "s1", true),
			traced(t, tr, "s2", true),
			func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
				serverInfo = *info
				return next(ctx, info, req)
			}))
		echo := newEcho(n, rpc.WithClientInterceptors(
			traced(t, tr, "c1", false),
			traced(t, tr, "c2", false),
			func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
				reply, err := next(ctx, info, req)
				clientInfo = *info
				return reply, err
			}))
		reply, err := echo.Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Text: "x"})
		if err != nil || reply.GetText() != "echo:x" {
			t.Fatalf("Say = %v, %v", reply, err)
		}
		want := []string{"c1>", "c2>", "s1>", "s2>", "<s2", "<s1", "<c2", "<c1"}
		if got := tr.get(); !slices.Equal(got, want) {
			t.Errorf("steps = %v, want %v", got, want)
		}
		if clientInfo.Peer != svc || clientInfo.Remote || clientInfo.OneWay || clientInfo.Target != rpc.To(svc) {
			t.Errorf("client info = %+v, want peer %v, local, two-way", clientInfo, svc)
		}
		if serverInfo.Peer.Node != n.Addr() || serverInfo.Peer.Serial != 0 || serverInfo.Remote || serverInfo.OneWay {
			t.Errorf("server info = %+v, want peer %v/0 (outside any actor), local, two-way", serverInfo, n.Addr())
		}
	})

	t.Run("one-way", func(t *testing.T) {
		n := newNode(t)
		infos := make(chan rpc.CallInfo, 4)
		keep := func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
			reply, err := next(ctx, info, req)
			infos <- *info
			return reply, err
		}
		svc, h := serve(t, n, rpc.WithServerInterceptors(keep))
		echo := newEcho(n, rpc.WithClientInterceptors(keep))
		if err := echo.NoteOneWay(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Text: "1w"}); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, h.notes); got != "1w" {
			t.Errorf("noted %q, want 1w", got)
		}
		for range 2 {
			info := recv(t, infos)
			if !info.OneWay || info.Method != echopb.Echo_Note_FullMethodName {
				t.Errorf("info = %+v, want a one-way %s", info, echopb.Echo_Note_FullMethodName)
			}
		}
	})

	t.Run("client short-circuit", func(t *testing.T) {
		n := newNode(t)
		svc, h := serve(t, n)
		deny := func(context.Context, *rpc.CallInfo, proto.Message, rpc.Handler) (proto.Message, error) {
			return nil, rpc.Error(rpc.PermissionDenied, "no")
		}
		_, err := newEcho(n, rpc.WithClientInterceptors(deny)).Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{})
		st := wantCode(t, err, rpc.PermissionDenied)
		if st.Message != "no" {
			t.Errorf("message = %q, want no", st.Message)
		}
		// A call that goes through comes after any the denied one made.
		if _, err := newEcho(n).Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{}); err != nil {
			t.Fatal(err)
		}
		if got := len(h.calls); got != 1 {
			t.Errorf("the handler ran %d times, want once (the denied call never reaches it)", got)
		}
	})

	t.Run("server short-circuit", func(t *testing.T) {
		n := newNode(t)
		deny := func(context.Context, *rpc.CallInfo, proto.Message, rpc.Handler) (proto.Message, error) {
			return nil, rpc.Error(rpc.Unauthenticated, "who")
		}
		svc, h := serve(t, n, rpc.WithServerInterceptors(deny))
		_, err := newEcho(n).Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{})
		wantCode(t, err, rpc.Unauthenticated)
		if got := len(h.calls); got != 0 {
			t.Errorf("the handler ran %d times, want never", got)
		}
	})

	t.Run("server interceptor panics", func(t *testing.T) {
		n := newNode(t)
		boom := func(context.Context, *rpc.CallInfo, proto.Message, rpc.Handler) (proto.Message, error) {
			panic("interceptor boom")
		}
		svc, _ := serve(t, n, rpc.WithServerInterceptors(boom))
		_, err := newEcho(n).Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{})
		wantCode(t, err, rpc.Internal)
		_, err = newEcho(n).Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{})
		wantCode(t, err, rpc.Internal) // the same actor answers again
	})

	t.Run("server interceptor shortens the deadline", func(t *testing.T) {
		n := newNode(t)
		short := time.Now().Add(time.Second).Truncate(time.Millisecond)
		shorten := func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
			ctx, cancel := context.WithDeadline(ctx, short)
			defer cancel()
			return next(ctx, info, req)
		}
		svc, _ := serve(t, n, rpc.WithServerInterceptors(shorten))
		reply, err := newEcho(n).Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Text: "d"})
		if err != nil {
			t.Fatal(err)
		}
		if reply.GetDeadlineUnixMs() != short.UnixMilli() {
			t.Errorf("the handler saw deadline %d, want the interceptor's %d", reply.GetDeadlineUnixMs(), short.UnixMilli())
		}
	})

	t.Run("client interceptor plain error", func(t *testing.T) {
		n := newNode(t)
		svc, _ := serve(t, n)
		fail := func(context.Context, *rpc.CallInfo, proto.Message, rpc.Handler) (proto.Message, error) {
			return nil, errors.New("not a status")
		}
		_, err := newEcho(n, rpc.WithClientInterceptors(fail)).Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{})
		wantCode(t, err, rpc.Unknown)
	})

	t.Run("server context value", func(t *testing.T) {
		n := newNode(t)
		withValue := func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
			return next(context.WithValue(ctx, ctxKey{}, "from-interceptor"), info, req)
		}
		svc, _ := serve(t, n, rpc.WithServerInterceptors(withValue))
		ctx := ctxTimeout(t, 5*time.Second)
		reply, err := newEcho(n).Say(ctx, rpc.To(svc), &echopb.SayRequest{Mode: "value"})
		if err != nil || reply.GetText() != "from-interceptor" {
			t.Fatalf("Say = %v, %v, want the interceptor's value", reply, err)
		}
		// The handler still sees the caller's deadline through the
		// interceptor's context.
		reply, err = newEcho(n).Say(ctx, rpc.To(svc), &echopb.SayRequest{})
		dl, _ := ctx.Deadline()
		if err != nil || reply.GetDeadlineUnixMs() != dl.UnixMilli() {
			t.Errorf("Say = %v, %v, want deadline %d", reply, err, dl.UnixMilli())
		}
	})
}

func TestNamedAndServiceNames(t *testing.T) {
	n := newNode(t)
	svc, _ := serve(t, n, rpc.WithName(".lobby"))
	echo := newEcho(n)
	ctx := ctxTimeout(t, 5*time.Second)

	for _, to := range []rpc.Target{
		rpc.Named(".lobby"),
		rpc.Named(rpc.LocalServiceName(echopb.Echo_ServiceName)),
	} {
		reply, err := echo.Say(ctx, to, &echopb.SayRequest{Text: "named"})
		if err != nil || reply.GetText() != "echo:named" {
			t.Errorf("Say at %v = %v, %v", to, reply, err)
		}
	}

	_, err := echo.Say(ctx, rpc.AnyOf(n.Addr().Type(), cluster.RoundRobin), &echopb.SayRequest{})
	st := wantCode(t, err, rpc.FailedPrecondition)
	if !strings.Contains(st.Message, "WithMembership") {
		t.Errorf("message = %q, want a hint at WithMembership", st.Message)
	}

	m := cluster.NewLocal(n.Addr())
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Join(ctx, cluster.Member{Addr: n.Addr(), Available: true}); err != nil {
		t.Fatal(err)
	}
	withMembers := newEcho(n, rpc.WithMembership(m))
	for _, to := range []rpc.Target{
		rpc.AnyOf(n.Addr().Type(), cluster.RoundRobin),
		rpc.AnyOf(n.Addr().Type(), cluster.Random),
		rpc.ByKey(n.Addr().Type(), "player-42"),
	} {
		reply, err := withMembers.Say(ctx, to, &echopb.SayRequest{Text: "typed"})
		if err != nil || reply.GetText() != "echo:typed" || reply.GetNode() != n.Addr().String() {
			t.Errorf("Say at %v = %v, %v", to, reply, err)
		}
	}
	_, err = withMembers.Say(ctx, rpc.AnyOf(n.Addr().Type()+1, cluster.Random), &echopb.SayRequest{})
	wantCode(t, err, rpc.Unavailable)
	if !errors.Is(err, cluster.ErrNoMember) {
		t.Errorf("errors.Is(%v, cluster.ErrNoMember) = false", err)
	}

	_, err = echo.Say(ctx, rpc.Target{}, &echopb.SayRequest{})
	wantCode(t, err, rpc.InvalidArgument)
	if pid, err := n.Lookup(ctx, ".lobby"); err != nil || pid != svc {
		t.Errorf("Lookup(.lobby) = %v, %v, want %v", pid, err, svc)
	}
}

// failures is an actor.Reporter that hands each failure to a channel.
type failures chan actor.Failure

func (f failures) Report(x actor.Failure) {
	select {
	case f <- x:
	default:
	}
}

func TestHandlerPanicIsReported(t *testing.T) {
	got := make(failures, 4)
	n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler), Reporter: got})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	svc, _ := serve(t, n)
	_, err = newEcho(n).Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Mode: "panic", Text: "secret"})
	wantCode(t, err, rpc.Internal)
	f := recv(t, (<-chan actor.Failure)(got))
	if f.Where != "rpc" || f.PID != svc || f.MessageType != "guild.test.echo.v1.SayRequest" || f.Reason != "boom" || len(f.Stack) == 0 {
		t.Errorf("failure %+v", f)
	}
	if len(f.Names) == 0 {
		t.Error("the service's name is missing")
	}
}
