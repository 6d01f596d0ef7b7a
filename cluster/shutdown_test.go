package cluster_test

// cluster.Node.Shutdown drains: every request that reached the node before
// it shut down gets its real answer; then the node leaves, and requests to
// it fail at once.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
)

// available reports whether node i's view says node j is available.
func available(c *clustertest.Cluster, i, j int) bool {
	for _, m := range c.Membership(i).Members() {
		if m.Addr == c.Addrs[j] {
			return m.Available
		}
	}
	return false
}

// slowCalls sends n Calls from node 0 to targets (one each, round robin)
// at once and returns their results, once every one of them has been
// answered or has failed.
func slowCalls(t *testing.T, c *clustertest.Cluster, targets []actor.PID, n int) <-chan []string {
	t.Helper()
	out := make(chan []string, 1)
	var wg sync.WaitGroup
	res := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := c.Node(0).Call(ctx, targets[i%len(targets)], wrapperspb.Int32(int32(i)))
			if err != nil {
				res[i] = "error: " + err.Error()
				return
			}
			res[i] = answer(r)
		}()
	}
	go func() {
		wg.Wait()
		out <- res
	}()
	return out
}

// shutdownWhileBusy runs the common part of the tests below: started counts
// the requests node 1's handlers have received; once all n have, node 1
// shuts down; once node 0 sees it unavailable, release is closed. It
// checks that every Call got its answer, that Shutdown succeeded and that
// node 1 left.
func shutdownWhileBusy(t *testing.T, c *clustertest.Cluster, targets []actor.PID, n int, started *atomic.Int64, release chan struct{}) {
	t.Helper()
	results := slowCalls(t, c, targets, n)
	waitFor(t, 20*time.Second, "every request to reach B", func() bool { return started.Load() == int64(n) })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- c.Nodes[1].Shutdown(ctx)
	}()
	waitFor(t, 10*time.Second, "B to be marked unavailable", func() bool { return !available(c, 0, 1) })
	close(release)
	var res []string
	select {
	case res = <-results:
	case <-time.After(30 * time.Second):
		t.Fatal("the Calls did not all end in 30s")
	}
	failed := 0
	for i, r := range res {
		if want := fmt.Sprintf("done:%d", i); r != want {
			if failed++; failed <= 5 {
				t.Errorf("Call %d: %q, want %q", i, r, want)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d Calls in flight when B shut down did not get their answer", failed, n)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return in 30s")
	}
	waitFor(t, 10*time.Second, "B to leave A's view", func() bool { return !sees(c.Membership(0), c.Addrs[1]) })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Node(0).Call(ctx, targets[0], wrapperspb.Int32(0)); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Call to a node that shut down: %v after %v, want a fast failure", err, time.Since(start))
	}
}

func TestShutdownDrains(t *testing.T) {
	// 200 Calls from A wait in slow handlers on B (one actor each, blocked
	// in Receive until released) when B shuts down.
	const calls = 200
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	release := make(chan struct{})
	var started atomic.Int64
	var targets []actor.PID
	for range calls {
		pid, err := c.Node(1).SpawnFunc(func(c *actor.Context) {
			if m, ok := c.Message().(*wrapperspb.Int32Value); ok {
				started.Add(1)
				<-release
				c.Respond(wrapperspb.String(fmt.Sprintf("done:%d", m.GetValue())))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, pid)
	}
	shutdownWhileBusy(t, c, targets, calls, &started, release)
}

func TestShutdownWaitsForResponders(t *testing.T) {
	// The same, with handlers that answer later, from other goroutines,
	// through the Responders they took: one actor takes all 200 requests
	// at once and answers none before it is released.
	const calls = 200
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	release := make(chan struct{})
	var started atomic.Int64
	var answers sync.WaitGroup
	t.Cleanup(answers.Wait)
	pid, err := c.Node(1).SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.Int32Value); ok {
			r := c.Responder()
			started.Add(1)
			answers.Add(1)
			go func() {
				defer answers.Done()
				<-release
				r.Respond(wrapperspb.String(fmt.Sprintf("done:%d", m.GetValue())))
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	shutdownWhileBusy(t, c, []actor.PID{pid}, calls, &started, release)
}
