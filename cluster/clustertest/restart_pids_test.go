package clustertest_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
)

// TestStalePIDAfterTargetRestart: "PID identifies one actor
// incarnation anywhere in a cluster ... a serial that the node never
// reuses". A PID of an actor on node 2, kept by node 0, must not reach
// another actor once node 2 has crashed and been restarted at the same
// address: a call to it should fail with ErrActorNotFound.
func TestStalePIDAfterTargetRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second})
	oldPID, err := c.Node(2).SpawnFunc(func(ctx *actor.Context) {
		if m, ok := ctx.Message().(*wrapperspb.StringValue); ok && ctx.IsRequest() {
			ctx.Respond(wrapperspb.String("bank-account:" + m.Value))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := callEcho(c, 0, oldPID, "x", 5*time.Second); err != nil || got != "bank-account:x" {
		t.Fatalf("before: %q %v", got, err)
	}
	c.Kill(2)
	c.Restart(t, 2)
	// The restarted node starts an unrelated actor.
	newPID, err := c.Node(2).SpawnFunc(func(ctx *actor.Context) {
		if m, ok := ctx.Message().(*wrapperspb.StringValue); ok && ctx.IsRequest() {
			ctx.Respond(wrapperspb.String("chat-room:" + m.Value))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("old PID %v, new PID %v", oldPID, newPID)
	got, err := callEcho(c, 0, oldPID, "y", 5*time.Second)
	if !errors.Is(err, actor.ErrActorNotFound) {
		t.Fatalf("a call to the crashed incarnation's PID %v reached %q (err %v): want actor.ErrActorNotFound; the new actor has PID %v", oldPID, got, err, newPID)
	}
	// And a watch on the stale PID must end at once (not found).
	fired := make(chan actor.Terminated, 2)
	cancel, err := c.Node(0).Watch(oldPID, func(tm actor.Terminated) { fired <- tm })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	select {
	case tm := <-fired:
		t.Logf("watch of the stale PID: %v", tm.Reason)
	case <-time.After(3 * time.Second):
		t.Fatalf("a watch of the crashed incarnation's PID %v did not end: it watches the new actor", oldPID)
	}
}

// TestStaleStopAfterTargetRestart: the consequence of PID reuse
// across a restart for Stop: node 0 keeps the PID of a room actor on node 2
// and stops it "later" (say, a cleanup) after node 2 crashed and came
// back. The Stop must not stop an unrelated actor of the new node.
func TestStaleStopAfterTargetRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second})
	oldPID, err := c.Node(2).SpawnFunc(idle)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(2)
	c.Restart(t, 2)
	newPID, err := c.Node(2).SpawnFunc(idle)
	if err != nil {
		t.Fatal(err)
	}
	fired := make(chan actor.Terminated, 1)
	if _, err := c.Node(2).Watch(newPID, func(tm actor.Terminated) { fired <- tm }); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(0).Stop(oldPID); err != nil {
		t.Logf("Stop of the stale PID: %v", err)
	}
	select {
	case tm := <-fired:
		t.Fatalf("a Stop of the crashed incarnation's PID %v stopped the new node's unrelated actor %v (%v)", oldPID, newPID, tm.Reason)
	case <-time.After(2 * time.Second): // a window in which nothing may happen
	}
}
