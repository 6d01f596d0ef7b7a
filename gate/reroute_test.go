package gate_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/examples/echo/echopb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// TestRerouteWhenTheServiceIsGone: a request whose route resolves to a
// service that is gone (its name released, its actor stopped), while the
// gateway's view still shows its node available, certainly did not reach
// it, so the gateway routes it again, to another node. A handler's own
// error is the service's answer, never routed again; a service gone from
// every node fails the request once the gateway has tried long enough.
func TestRerouteWhenTheServiceIsGone(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Types: []int{1, 2, 2}})
	ctx := testCtx(t)

	var flaky atomic.Int64
	where := func() *gate.Service {
		svc := gate.NewService("where")
		gate.Handle(svc, "Am", func(s *gate.Session, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			return wrapperspb.String(s.Actor().Node().Addr().String()), nil
		})
		gate.Handle(svc, "Flaky", func(*gate.Session, *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			flaky.Add(1)
			return nil, rpc.Error(rpc.Unavailable, "the handler says no")
		})
		return svc
	}
	svcPIDs := make(map[int]actor.PID)
	echoPIDs := make(map[int]actor.PID)
	for _, i := range []int{1, 2} {
		svcPIDs[i] = serve(t, c.Node(i), where())
		pid, err := echopb.RegisterEchoServer(ctx, c.Node(i), rpcEcho{})
		if err != nil {
			t.Fatal(err)
		}
		echoPIDs[i] = pid
	}
	g := newGate(t, gate.Config{
		Node:    c.Node(0),
		Members: c.Members[0],
		Routes: map[string]gate.Route{
			"where": gate.To(rpc.AnyOf(2, cluster.RoundRobin)),
			"echo":  gate.RPC(echopb.Echo_ServiceName, rpc.AnyOf(2, cluster.RoundRobin)),
			"ghost": gate.To(rpc.AnyOf(2, cluster.RoundRobin)),
		},
		Public: []string{"where.Am", "where.Flaky", "echo.Echo", "ghost.Boo"},
	})
	url, _ := listenTCP(t, g)
	cl := dial(t, client.Config{Addr: url})

	// Both nodes answer while both serve.
	seen := map[string]bool{}
	for range 4 {
		got, err := call(t, cl, "where.Am", "")
		if err != nil {
			t.Fatal(err)
		}
		seen[got] = true
	}
	if len(seen) != 2 {
		t.Fatalf("answers came from %v, want both backends", seen)
	}

	// The services stop on node 1, which stays an available member.
	n1 := c.Node(1)
	for _, pid := range []actor.PID{svcPIDs[1], echoPIDs[1]} {
		if err := n1.Stop(pid); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "node 0 to see node 1's service names released", func() bool {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err1 := c.Node(0).Lookup(lctx, rpc.NodeServiceName(gate.ServiceName("where"), n1.Addr()))
		_, err2 := c.Node(0).Lookup(lctx, rpc.NodeServiceName(echopb.Echo_ServiceName, n1.Addr()))
		return errors.Is(err1, actor.ErrNameNotFound) && errors.Is(err2, actor.ErrNameNotFound)
	})
	for i := range 6 {
		got, err := call(t, cl, "where.Am", "")
		if err != nil || got != c.Node(2).Addr().String() {
			t.Fatalf("request %d after node 1's service stopped: %q, %v; want an answer from %v", i, got, err, c.Node(2).Addr())
		}
		var reply echopb.EchoReply
		if err := cl.Request(ctx, "echo.Echo", &echopb.EchoRequest{Text: "hi"}, &reply); err != nil || reply.GetText() != "hi" {
			t.Fatalf("rpc request %d after node 1's service stopped: %v, %v", i, &reply, err)
		}
	}

	// A handler's error is its answer: the request ran once.
	_, err := call(t, cl, "where.Flaky", "")
	wantCode(t, "a handler's Unavailable", err, rpc.Unavailable)
	if n := flaky.Load(); n != 1 {
		t.Fatalf("the failing handler ran %d times, want 1", n)
	}

	// Served nowhere: the gateway gives up within its bounded retries.
	start := time.Now()
	_, err = call(t, cl, "ghost.Boo", "")
	wantCode(t, "a service served nowhere", err, rpc.NotFound)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a request to a service served nowhere took %v to fail", took)
	}
}
