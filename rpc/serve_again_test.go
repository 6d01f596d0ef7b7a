package rpc_test

import (
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/internal/echopb"
)

// TestServeAgainAfterStop: a service whose actor stopped can be served
// again on the same node at once (its names, the per-node global one
// included, went with the old actor), and callers by node type and by
// name reach the new actor.
func TestServeAgainAfterStop(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2, Types: []int{1, 2}})
	n := c.Node(1)
	echo := newEcho(c.Node(0), rpc.WithMembership(c.Members[0]))
	for round := range 3 {
		svc, _ := serve(t, n, rpc.WithName("echo-again"))
		for _, target := range []rpc.Target{rpc.AnyOf(2, cluster.RoundRobin), rpc.Named("echo-again")} {
			reply, err := echo.Say(ctxTimeout(t, 5*time.Second), target, &echopb.SayRequest{Text: "again"})
			if err != nil {
				t.Fatalf("round %d: call %v: %v", round, target, err)
			}
			if reply.GetText() != "echo:again" || reply.GetNode() != c.Addrs[1].String() {
				t.Fatalf("round %d: call %v = %v", round, target, reply)
			}
		}
		// Stop the service actor and wait until it has stopped.
		stopped := make(chan actor.Terminated, 1)
		if _, err := n.Watch(svc, func(m actor.Terminated) { stopped <- m }); err != nil {
			t.Fatal(err)
		}
		if err := n.Stop(svc); err != nil {
			t.Fatal(err)
		}
		recv(t, stopped)
	}
}
