package clustertest_test

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
	"github.com/guildkit/guild/internal/await"
)

// atkHolder is an actor that holds every request it gets until the test
// releases it: held requests are answered "echo:"+payload.
type atkHolder struct {
	mu   sync.Mutex
	held map[string]actor.Responder
}

func (h *atkHolder) receive(c *actor.Context) {
	m, ok := c.Message().(*wrapperspb.StringValue)
	if !ok || !c.IsRequest() {
		return
	}
	h.mu.Lock()
	h.held[m.Value] = c.Responder()
	h.mu.Unlock()
}

func (h *atkHolder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

func (h *atkHolder) release(v string) bool {
	h.mu.Lock()
	r, ok := h.held[v]
	delete(h.held, v)
	h.mu.Unlock()
	if ok {
		r.Respond(wrapperspb.String("echo:" + v))
	}
	return ok
}

func spawnHolder(t *testing.T, n *actor.Node) (actor.PID, *atkHolder) {
	t.Helper()
	h := &atkHolder{held: make(map[string]actor.Responder)}
	pid, err := n.SpawnFunc(h.receive)
	if err != nil {
		t.Fatal(err)
	}
	return pid, h
}

// TestStaleReplyAfterRequesterRestart: "A reply answers the request
// it belongs to". Node 0 sends a request that node 2's actor holds; node 0
// crashes and is restarted at the same address; the new node 0 sends its
// own requests to node 2, which are held too. When the actor on node 2
// then answers the OLD request (it has no way to know its requester died),
// that answer must not be taken by any request of the new node 0.
func TestStaleReplyAfterRequesterRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second})
	pid, h := spawnHolder(t, c.Node(2))

	// The old incarnation of node 0 sends a few requests that are held.
	const oldN = 5
	for i := range oldN {
		v := fmt.Sprintf("old-%d", i)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_, _ = c.Node(0).Call(ctx, pid, wrapperspb.String(v))
		}()
	}
	await.True(t, 5*time.Second, "the old requests to be held", func() bool { return h.count() == oldN })

	c.Kill(0)
	c.Restart(t, 0)

	// The new incarnation sends its own requests, also held.
	const newN = 40
	type result struct {
		want, got string
		err       error
	}
	results := make(chan result, newN)
	for i := range newN {
		v := fmt.Sprintf("new-%d", i)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			r, err := c.Node(0).Call(ctx, pid, wrapperspb.String(v))
			res := result{want: "echo:" + v, err: err}
			if err == nil {
				res.got = r.(*wrapperspb.StringValue).GetValue()
			}
			results <- res
		}()
	}
	await.True(t, 5*time.Second, "the new requests to be held", func() bool { return h.count() == oldN+newN })

	// The actor answers the old incarnation's requests first, then the new.
	for i := range oldN {
		h.release(fmt.Sprintf("old-%d", i))
	}
	time.Sleep(200 * time.Millisecond) // let the stale answers land first (ordering only; not a wait for a condition)
	for i := range newN {
		h.release(fmt.Sprintf("new-%d", i))
	}
	var swapped, failed []string
	for range newN {
		r := recv(t, results)
		switch {
		case r.err != nil:
			failed = append(failed, fmt.Sprintf("%s: %v", r.want, r.err))
		case r.got != r.want:
			swapped = append(swapped, fmt.Sprintf("want %q got %q", r.want, r.got))
		}
	}
	if len(swapped) > 0 || len(failed) > 0 {
		t.Fatalf("after node 0 restarted, its new requests got answers of the old incarnation's requests: %d swapped %v; %d failed %v", len(swapped), swapped, len(failed), failed)
	}
}

// TestStaleReplyAfterForwarderRestart: the deterministic form of
// TestForwardUnderRestarts. Requests from node 0 go through a
// forwarder on node 1 to a holder on node 2, which holds them; node 1
// crashes and is restarted; node 0's new requests go through the new
// node 1 to the same holder. When the holder answers the requests the old
// node 1 forwarded, no request of node 0 may get another request's answer.
func TestStaleReplyAfterForwarderRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 2 * time.Second})
	pid, h := spawnHolder(t, c.Node(2))
	var to atomic.Pointer[actor.PID]
	to.Store(&pid)
	fwd, err := c.Node(1).SpawnFunc(atkForwarder(&to))
	if err != nil {
		t.Fatal(err)
	}
	const oldN, newN = 5, 40
	type result struct {
		want, got string
		err       error
	}
	call := func(v string, d time.Duration, fwd actor.PID, out chan<- result) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		r, err := c.Node(0).Call(ctx, fwd, wrapperspb.String(v))
		res := result{want: "echo:" + v, err: err}
		if err == nil {
			res.got = r.(*wrapperspb.StringValue).GetValue()
		}
		if out != nil {
			out <- res
		}
	}
	oldRes := make(chan result, oldN)
	for i := range oldN {
		go call(fmt.Sprintf("old-%d", i), 60*time.Second, fwd, oldRes)
	}
	await.True(t, 5*time.Second, "the old requests to be held", func() bool { return h.count() == oldN })
	c.Kill(1)
	for range oldN {
		if r := recv(t, oldRes); r.err == nil {
			t.Fatalf("an old request succeeded after its forwarder was killed: %+v", r)
		}
	}
	c.Restart(t, 1)
	fwd2, err := c.Node(1).SpawnFunc(atkForwarder(&to))
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan result, newN)
	for i := range newN {
		go call(fmt.Sprintf("new-%d", i), 8*time.Second, fwd2, results)
	}
	await.True(t, 5*time.Second, "the new requests to be held", func() bool { return h.count() == oldN+newN })
	for i := range oldN {
		h.release(fmt.Sprintf("old-%d", i))
	}
	time.Sleep(200 * time.Millisecond) // ordering only: the stale answers go first
	for i := range newN {
		h.release(fmt.Sprintf("new-%d", i))
	}
	var swapped, failed []string
	for range newN {
		r := recv(t, results)
		switch {
		case r.err != nil:
			failed = append(failed, fmt.Sprintf("%s: %v", r.want, r.err))
		case r.got != r.want:
			swapped = append(swapped, fmt.Sprintf("want %q got %q", r.want, r.got))
		}
	}
	if len(swapped) > 0 || len(failed) > 0 {
		t.Fatalf("after the forwarder's node restarted, node 0's requests got other requests' answers: %d swapped %v; %d failed %v", len(swapped), swapped, len(failed), failed)
	}
}
