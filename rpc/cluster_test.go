package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/internal/echopb"
	"github.com/guildkit/guild/transport"
)

func TestRemoteEveryKind(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	svc, h := serve(t, c.Node(2))
	echo := newEcho(c.Node(0))
	to := rpc.To(svc)

	t.Run("call", func(t *testing.T) {
		req := &echopb.SayRequest{Text: "far"}
		reply, err := echo.Say(ctxTimeout(t, 5*time.Second), to, req)
		if err != nil {
			t.Fatal(err)
		}
		if reply.GetText() != "echo:far" || reply.GetNode() != c.Addrs[2].String() {
			t.Errorf("reply = %v, want echo:far from %v", reply, c.Addrs[2])
		}
		got := recv(t, h.reqs)
		if got == req {
			t.Error("the handler on another node got the caller's own request pointer")
		}
		if got.GetText() != "far" {
			t.Errorf("the handler got %v, want text far", got)
		}
		reply, err = echo.Say(ctxTimeout(t, 5*time.Second), to, &echopb.SayRequest{Mode: "caller"})
		if want := (actor.PID{Node: c.Addrs[0]}).String(); err != nil || reply.GetText() != want {
			t.Errorf("Caller = %v, %v, want %s", reply, err, want)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			req  *echopb.SayRequest
			code rpc.Code
			msg  string
		}{
			{&echopb.SayRequest{Mode: "status", Code: 5, Text: "gone"}, rpc.NotFound, "status gone"},
			{&echopb.SayRequest{Mode: "status", Code: 1001, Text: "gold"}, 1001, "status gold"},
			{&echopb.SayRequest{Mode: "status", Code: 0, Text: "ok?"}, rpc.Unknown, "status ok?"},
			{&echopb.SayRequest{Mode: "plain"}, rpc.Unknown, "plain failure"},
			{&echopb.SayRequest{Mode: "panic"}, rpc.Internal, ""},
			{&echopb.SayRequest{Mode: "nil"}, rpc.Internal, ""},
		} {
			_, err := echo.Say(ctxTimeout(t, 5*time.Second), to, tc.req)
			st := wantCode(t, err, tc.code)
			if tc.msg != "" && st.Message != tc.msg {
				t.Errorf("mode %q: message = %q, want %q", tc.req.GetMode(), st.Message, tc.msg)
			}
		}
		// Node 2 still serves, with the same actor.
		reply, err := echo.Say(ctxTimeout(t, 5*time.Second), to, &echopb.SayRequest{Text: "after"})
		if err != nil || reply.GetText() != "echo:after" {
			t.Fatalf("after a panic: %v, %v", reply, err)
		}
		_, err = rpc.NewClient(c.Node(0)).Call(ctxTimeout(t, 5*time.Second), to, echopb.Echo_ServiceName,
			"/guild.test.echo.v1.Echo/Nope", &echopb.SayRequest{})
		wantCode(t, err, rpc.Unimplemented)
		_, err = echo.Say(ctxTimeout(t, 5*time.Second), rpc.To(actor.PID{Node: c.Addrs[2], Serial: svc.Serial + 1000}), &echopb.SayRequest{})
		wantCode(t, err, rpc.NotFound)
	})

	t.Run("deadline", func(t *testing.T) {
		ctx := ctxTimeout(t, 2*time.Second)
		dl, _ := ctx.Deadline()
		reply, err := echo.Say(ctx, to, &echopb.SayRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := reply.GetDeadlineUnixMs() - dl.UnixMilli(); diff < -5 || diff > 5 {
			t.Errorf("handler saw deadline %d, want %d (±5 ms)", reply.GetDeadlineUnixMs(), dl.UnixMilli())
		}
	})

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := echo.Say(ctx, to, &echopb.SayRequest{Mode: "sleep", Text: "1s"})
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Errorf("a cancelled call returned after %v", d)
		}
		wantCode(t, err, rpc.Canceled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled) = false", err)
		}
		// Let the service finish its sleep before the next test.
		if _, err := echo.Say(ctxTimeout(t, 5*time.Second), to, &echopb.SayRequest{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("one-way", func(t *testing.T) {
		if err := echo.NoteOneWay(ctxTimeout(t, 5*time.Second), to, &echopb.SayRequest{Text: "over there"}); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, h.notes); got != "over there" {
			t.Errorf("noted %q, want %q", got, "over there")
		}
		reply, err := echo.Note(ctxTimeout(t, 5*time.Second), to, &echopb.SayRequest{Text: "blocking"})
		if err != nil || reply == nil {
			t.Fatalf("Note = %v, %v", reply, err)
		}
		if got := recv(t, h.notes); got != "blocking" {
			t.Errorf("noted %q, want blocking", got)
		}
	})

	t.Run("async", func(t *testing.T) {
		pid, out := spawnAsyncCaller(t, c.Node(0), echo, to, &echopb.SayRequest{Text: "async"})
		if err := c.Node(0).Send(pid, "call"); err != nil {
			t.Fatal(err)
		}
		r := pokeWhileWaiting(t, c.Node(0), pid, out)
		if r.err != nil || r.reply.GetText() != "echo:async" || r.reply.GetNode() != c.Addrs[2].String() {
			t.Fatalf("callback got %v, %v", r.reply, r.err)
		}
		if r.self != pid {
			t.Errorf("in the callback Self = %v, want %v", r.self, pid)
		}

		pid, out = spawnAsyncCaller(t, c.Node(0), echo, to, &echopb.SayRequest{Mode: "status", Code: 1001, Text: "x"})
		if err := c.Node(0).Send(pid, "call"); err != nil {
			t.Fatal(err)
		}
		r = recv(t, out)
		if st := wantCode(t, r.err, 1001); st.Message != "status x" {
			t.Errorf("message = %q, want %q", st.Message, "status x")
		}
	})

	// Last: it closes node 2.
	t.Run("peer lost", func(t *testing.T) {
		for len(h.calls) > 0 {
			<-h.calls
		}
		type result struct {
			err error
			d   time.Duration
		}
		done := make(chan result, 1)
		go func() {
			start := time.Now()
			_, err := echo.Say(ctxTimeout(t, 10*time.Second), to, &echopb.SayRequest{Mode: "sleep", Text: "8s"})
			done <- result{err, time.Since(start)}
		}()
		recv(t, h.calls) // the handler sleeps
		closed := make(chan error, 1)
		go func() { closed <- c.Nodes[2].Close() }()
		r := recv(t, done)
		t.Logf("the call failed after %v: %v", r.d, r.err)
		h.wake()
		if err := recv(t, closed); err != nil {
			t.Errorf("close node 2: %v", err)
		}
		if r.d > 3*time.Second {
			t.Errorf("the call failed after %v, want well under its 10s deadline", r.d)
		}
		wantCode(t, r.err, rpc.Unavailable)
		if !errors.Is(r.err, transport.ErrPeerLost) && !errors.Is(r.err, actor.ErrNodeClosed) {
			t.Errorf("err = %v, want one matching transport.ErrPeerLost or actor.ErrNodeClosed", r.err)
		}
	})
}

func TestTypeTargets(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Types: []int{1, 2, 2}})
	serve(t, c.Node(1))
	serve(t, c.Node(2))
	echo := newEcho(c.Node(0), rpc.WithMembership(c.Members[0]))
	ctx := ctxTimeout(t, 10*time.Second)

	t.Run("round robin", func(t *testing.T) {
		count := map[string]int{}
		last := ""
		for i := range 20 {
			reply, err := echo.Say(ctx, rpc.AnyOf(2, cluster.RoundRobin), &echopb.SayRequest{})
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if reply.GetNode() == last {
				t.Errorf("call %d went to %s again", i, last)
			}
			last = reply.GetNode()
			count[last]++
		}
		if count[c.Addrs[1].String()] != 10 || count[c.Addrs[2].String()] != 10 {
			t.Errorf("calls per node = %v, want 10 on each of %v and %v", count, c.Addrs[1], c.Addrs[2])
		}
	})

	t.Run("by key", func(t *testing.T) {
		first := ""
		for i := range 10 {
			reply, err := echo.Say(ctx, rpc.ByKey(2, "player-42"), &echopb.SayRequest{})
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if first == "" {
				first = reply.GetNode()
			}
			if reply.GetNode() != first {
				t.Errorf("call %d went to %s, the first to %s", i, reply.GetNode(), first)
			}
		}
		if first != c.Addrs[1].String() && first != c.Addrs[2].String() {
			t.Errorf("player-42 went to %s, not a type-2 node", first)
		}
	})

	t.Run("from a member of the type", func(t *testing.T) {
		// Node 1 picks itself every other time: that call is local.
		echo1 := newEcho(c.Node(1), rpc.WithMembership(c.Members[1]))
		count := map[string]int{}
		for i := range 4 {
			reply, err := echo1.Say(ctx, rpc.AnyOf(2, cluster.RoundRobin), &echopb.SayRequest{})
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			count[reply.GetNode()]++
		}
		if count[c.Addrs[1].String()] != 2 || count[c.Addrs[2].String()] != 2 {
			t.Errorf("calls per node = %v, want 2 on each", count)
		}
	})

	t.Run("no member", func(t *testing.T) {
		_, err := echo.Say(ctx, rpc.AnyOf(3, cluster.Random), &echopb.SayRequest{})
		if got := rpc.CodeOf(err); got != rpc.Unavailable {
			t.Errorf("CodeOf(%v) = %v, want Unavailable", err, got)
		}
		if !errors.Is(err, cluster.ErrNoMember) {
			t.Errorf("errors.Is(%v, cluster.ErrNoMember) = false", err)
		}
	})
}

func TestNamedGlobal(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	serve(t, c.Node(1), rpc.WithName("echo-main"))
	for _, i := range []int{0, 2} {
		reply, err := newEcho(c.Node(i)).Say(ctxTimeout(t, 5*time.Second), rpc.Named("echo-main"), &echopb.SayRequest{Text: "main"})
		if err != nil {
			t.Fatalf("from node %d: %v", i, err)
		}
		if reply.GetText() != "echo:main" || reply.GetNode() != c.Addrs[1].String() {
			t.Errorf("from node %d: reply = %v, want echo:main from %v", i, reply, c.Addrs[1])
		}
	}
	_, err := newEcho(c.Node(0)).Say(ctxTimeout(t, 5*time.Second), rpc.Named("echo-none"), &echopb.SayRequest{})
	wantCode(t, err, rpc.NotFound)
}

// TestHarborRPC: a generated client calls a service of another cluster,
// each cluster with its own etcd, through the harbors; statuses and the
// deadline cross as within a cluster.
func TestHarborRPC(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{Nodes: 2, Harbors: 1})
	a, b := cs.Each[0], cs.Each[1]
	svc, _ := serve(t, b.Node(1))
	echo := newEcho(a.Node(0))
	reply, err := echo.Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Text: "realm"})
	if err != nil {
		t.Fatal(err)
	}
	if reply.GetText() != "echo:realm" || reply.GetNode() != b.Addrs[1].String() {
		t.Errorf("reply = %v, want echo:realm from %v", reply, b.Addrs[1])
	}
	_, err = echo.Say(ctxTimeout(t, 5*time.Second), rpc.To(svc), &echopb.SayRequest{Mode: "status", Code: 1001, Text: "gold"})
	if st := wantCode(t, err, 1001); st.Message != "status gold" {
		t.Errorf("message = %q", st.Message)
	}
}

// TestHarborAnyOf: with a node's View, rpc.AnyOf reaches the exported
// members of a node type in another cluster (clustergo's rule), never
// one that is not exported.
func TestHarborAnyOf(t *testing.T) {
	cs := clustertest.StartClusters(t, clustertest.ClustersOptions{
		Nodes: 3, Harbors: 1,
		Types:  [][]int{{1, 1, 1}, {1, 7, 7}},
		Export: [][]bool{{false, false, false}, {false, true, false}},
	})
	a, b := cs.Each[0], cs.Each[1]
	serve(t, b.Node(1))
	serve(t, b.Node(2))
	view := a.Nodes[0].View()
	a.WaitFor(t, "the exported 2.7.2 in cluster 1's view", func() bool {
		for _, m := range view.Members() {
			if m.Addr == b.Addrs[1] {
				return true
			}
		}
		return false
	})
	echo := newEcho(a.Node(0), rpc.WithMembership(view))
	for range 4 {
		reply, err := echo.Say(ctxTimeout(t, 5*time.Second), rpc.AnyOf(7, cluster.RoundRobin), &echopb.SayRequest{Text: "any"})
		if err != nil {
			t.Fatal(err)
		}
		if reply.GetNode() != b.Addrs[1].String() {
			t.Fatalf("AnyOf(7) answered from %s, want the exported %v", reply.GetNode(), b.Addrs[1])
		}
	}
}
