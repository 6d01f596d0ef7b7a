package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/tcp"
)

// pong answers every string request with "pong".
func pong(ctx *actor.Context) {
	if _, ok := ctx.Message().(*wrapperspb.StringValue); ok && ctx.IsRequest() {
		ctx.Respond(wrapperspb.String("pong"))
	}
}

// A partition between node 0 and node 1: calls across it fail once the
// transport's heartbeats declare the peer lost, and work again after Heal.
// This is the body of a test function (it needs the test's t and etcd, so
// it is not run as an example).
func ExampleCluster_Partition() {
	var t *testing.T // the test's: func TestSplit(t *testing.T) { ... }
	c := clustertest.Start(t, clustertest.Options{
		Nodes: 3,
		// Notice a silent peer within a second.
		Transport: tcp.Config{HeartbeatInterval: 200 * time.Millisecond, DeadAfter: time.Second},
	})
	pid, _ := c.Node(1).SpawnFunc(pong)
	call := func(from int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.Node(from).Call(ctx, pid, wrapperspb.String("ping"))
		return err
	}

	c.Partition([]int{0, 2}, []int{1}) // node 1 alone on its side
	err := call(0)
	fmt.Println(errors.Is(err, transport.ErrPeerLost) || errors.Is(err, context.DeadlineExceeded))

	c.Heal()
	c.WaitFor(t, "node 0 to reach node 1 again", func() bool { return call(0) == nil })
}

// A paused node: its lease expires, so the others drop it from their
// views; after Resume it joins again and answers. This is the body of a
// test function.
func ExampleCluster_Pause() {
	var t *testing.T // the test's: func TestStall(t *testing.T) { ... }
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second})
	pid, _ := c.Node(2).SpawnFunc(pong)

	c.Pause(2)
	c.WaitMembers(t, 2) // nodes 0 and 1 see node 2 go within the TTL

	c.Resume(2)
	c.WaitMembers(t, 3) // node 2 joined again with a new lease
	c.WaitFor(t, "node 0 to reach node 2 again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Node(0).Call(ctx, pid, wrapperspb.String("ping"))
		return err == nil
	})
}

// A crash and a restart: the others see the killed node leave only when
// its lease expires; Restart brings up a new node at the same address.
// This is the body of a test function.
func ExampleCluster_Kill() {
	var t *testing.T // the test's: func TestCrash(t *testing.T) { ... }
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second})

	c.Kill(2)
	c.WaitMembers(t, 2) // within the TTL, not at once
	c.Restart(t, 2)     // same address, same endpoint, a fresh node
	pid, _ := c.Node(2).SpawnFunc(pong)
	_ = pid
}
