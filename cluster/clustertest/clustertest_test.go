package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/tcp"
)

// echo is the actor the tests put on a remote node.
type echo struct {
	held chan actor.Responder // requests it never answers
}

func (e *echo) receive(c *actor.Context) {
	m, ok := c.Message().(*wrapperspb.StringValue)
	if !ok {
		return
	}
	switch {
	case !c.IsRequest():
		// A one-way message: send a reply back to the sender, one-way too.
		if !c.Sender().IsZero() {
			_ = c.Send(c.Sender(), wrapperspb.String("echo:"+m.Value))
		}
	case m.Value == "stopped":
		c.Respond(fmt.Errorf("item gone: %w", actor.ErrActorStopped))
	case m.Value == "deadline":
		dl, ok := c.Deadline()
		c.Respond(wrapperspb.String(fmt.Sprint(ok, " ", dl.UnixNano())))
	case m.Value == "hold":
		e.held <- c.Responder()
	default:
		c.Respond(wrapperspb.String("echo:" + m.Value))
	}
}

func spawnEcho(t *testing.T, n *actor.Node) (actor.PID, *echo) {
	t.Helper()
	e := &echo{held: make(chan actor.Responder, 4)}
	pid, err := n.SpawnFunc(e.receive)
	if err != nil {
		t.Fatal(err)
	}
	return pid, e
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received in 5s")
	}
	var zero T
	return zero
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestThreeNodesEveryVerb(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	pid, _ := spawnEcho(t, c.Node(2))

	// Call from outside an actor.
	r, err := c.Node(0).Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("call"))
	if err != nil || r.(*wrapperspb.StringValue).GetValue() != "echo:call" {
		t.Fatalf("Call = %v, %v", r, err)
	}

	// Send, Request and Call from inside an actor on node 0.
	got := make(chan string, 4)
	client, err := c.Node(0).SpawnFunc(func(ctx *actor.Context) {
		switch m := ctx.Message().(type) {
		case string:
			switch m {
			case "send":
				if err := ctx.Send(pid, wrapperspb.String("send")); err != nil {
					got <- "send: " + err.Error()
				}
			case "request":
				err := ctx.Request(pid, wrapperspb.String("request"), 5*time.Second, func(reply any, err error) {
					got <- fmt.Sprint(reply.(*wrapperspb.StringValue).GetValue(), " ", err)
				})
				if err != nil {
					got <- "request: " + err.Error()
				}
			case "call":
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				reply, err := ctx.Call(cctx, pid, wrapperspb.String("inner-call"))
				if err != nil {
					got <- "call: " + err.Error()
					return
				}
				got <- reply.(*wrapperspb.StringValue).GetValue()
			}
		case *wrapperspb.StringValue: // the echo's one-way answer to "send"
			got <- fmt.Sprint("from ", ctx.Sender() == pid, " ", m.Value)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"send", "from true echo:send"},
		{"request", "echo:request <nil>"},
		{"call", "echo:inner-call"},
	} {
		if err := c.Node(0).Send(client, tc.cmd); err != nil {
			t.Fatal(err)
		}
		if g := recv(t, got); g != tc.want {
			t.Fatalf("%s: got %q, want %q", tc.cmd, g, tc.want)
		}
	}

	// An error value replied across nodes.
	_, err = c.Node(0).Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("stopped"))
	if !errors.Is(err, actor.ErrActorStopped) {
		t.Fatalf("error reply: %v, want one matching actor.ErrActorStopped", err)
	}
	// Node 1 reaches node 2 too.
	if r, err := c.Node(1).Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("n1")); err != nil || r.(*wrapperspb.StringValue).GetValue() != "echo:n1" {
		t.Fatalf("Call from node 1 = %v, %v", r, err)
	}
}

func TestGlobalNames(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	pids := make([]actor.PID, len(c.Nodes))
	for i := range c.Nodes {
		pids[i], _ = spawnEcho(t, c.Node(i))
	}

	// Every node races to register "world", 10 times each.
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		wins   = map[actor.PID]int{}
		others []error
	)
	for i := range c.Nodes {
		for range 10 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				err := c.Node(i).Register(ctx, "world", pids[i])
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins[pids[i]]++
				case !errors.Is(err, actor.ErrNameTaken):
					others = append(others, err)
				}
			})
		}
	}
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("Register failed with other errors: %v", others)
	}
	if len(wins) != 1 {
		t.Fatalf("winners %v, want exactly one PID", wins)
	}
	var winner actor.PID
	for p := range wins {
		winner = p
	}
	owner := -1
	for i, p := range pids {
		if p == winner {
			owner = i
		}
	}
	t.Logf("node %d won (registered %d times: re-registering the same pair succeeds)", owner, wins[winner])

	// Every node resolves the winner.
	for i := range c.Nodes {
		c.WaitFor(t, fmt.Sprintf("node %d to resolve world", i), func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			p, err := c.Node(i).Lookup(ctx, "world")
			return err == nil && p == winner
		})
	}

	// Another node reaches the owner through the name.
	other := (owner + 1) % len(c.Nodes)
	p, err := c.Node(other).Lookup(ctxTimeout(t, time.Second), "world")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	client, err := c.Node(other).SpawnFunc(func(ctx *actor.Context) {
		switch m := ctx.Message().(type) {
		case string:
			_ = ctx.Send(p, wrapperspb.String(m))
		case *wrapperspb.StringValue:
			got <- m.Value
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node(other).Send(client, "hello"); err != nil {
		t.Fatal(err)
	}
	if g := recv(t, got); g != "echo:hello" {
		t.Fatalf("send through the name: got %q", g)
	}

	// Closing the owner releases the name.
	closed := time.Now()
	if err := c.Nodes[owner].Close(); err != nil {
		t.Fatal(err)
	}
	deadline := c.TTL + 2*time.Second
	for i := range c.Nodes {
		if i == owner {
			continue
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := c.Node(i).Lookup(ctx, "world")
			cancel()
			if errors.Is(err, actor.ErrNameNotFound) {
				break
			}
			if time.Since(closed) > deadline {
				t.Fatalf("node %d: Lookup %v after the owner closed: %v", i, time.Since(closed), err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("name released %v after the owner closed", time.Since(closed))
	c.WaitMembers(t, len(c.Nodes)-1)

	// The name moves: another node takes it, and sends through it reach
	// the new owner, wherever it lives.
	next, last := (owner+1)%len(c.Nodes), (owner+2)%len(c.Nodes)
	if err := c.Node(next).Register(ctxTimeout(t, 5*time.Second), "world", pids[next]); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(t, fmt.Sprintf("node %d to resolve world on node %d", last, next), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p, err := c.Node(last).Lookup(ctx, "world")
		return err == nil && p == pids[next]
	})
	p, err = c.Node(last).Lookup(ctxTimeout(t, time.Second), "world")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := c.Node(last).Call(ctxTimeout(t, 5*time.Second), p, wrapperspb.String("moved"))
	if err != nil {
		t.Fatal(err)
	}
	if g := reply.(*wrapperspb.StringValue).GetValue(); g != "echo:moved" {
		t.Fatalf("call through the moved name: got %q", g)
	}
}

// TestPendingQueueBound: a member that accepts connections but never
// answers (a hung process) cannot make senders pile up memory. Sends queue
// up to the bound, then fail with ErrPendingQueueFull at once; a Call to it
// fails fast too; and the rest of the cluster is unaffected.
func TestPendingQueueBound(t *testing.T) {
	const bound = 32
	c := clustertest.Start(t, clustertest.Options{Nodes: 2, Transport: tcp.Config{PendingQueue: bound, DialTimeout: 5 * time.Second}})

	// The hung member: a listener that accepts and never reads.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns []net.Conn
	var connsMu sync.Mutex
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, nc)
			connsMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		connsMu.Lock()
		defer connsMu.Unlock()
		for _, nc := range conns {
			nc.Close()
		}
	})
	hung := actor.MustAddr(1, 1, 9)
	m, err := etcd.New(etcd.Config{Endpoints: c.Etcd.Endpoints(), TTL: c.TTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Join(ctxTimeout(t, 5*time.Second), cluster.Member{Addr: hung, Endpoint: ln.Addr().String(), Available: true}); err != nil {
		t.Fatal(err)
	}
	c.WaitMembers(t, 3)

	target := actor.PID{Node: hung, Serial: 1<<32 | 1}
	sent := 0
	var full error
	for range 10 * bound {
		if err := c.Node(0).Send(target, wrapperspb.String("x")); err != nil {
			full = err
			break
		}
		sent++
	}
	if !errors.Is(full, transport.ErrPendingQueueFull) {
		t.Fatalf("after %d sends: err = %v, want ErrPendingQueueFull", sent, full)
	}
	if sent != bound {
		t.Fatalf("%d sends were queued, want the bound %d", sent, bound)
	}
	start := time.Now()
	_, err = c.Node(0).Call(ctxTimeout(t, 10*time.Second), target, wrapperspb.String("x"))
	if !errors.Is(err, transport.ErrPendingQueueFull) || time.Since(start) > time.Second {
		t.Fatalf("Call to the hung member: %v after %v, want ErrPendingQueueFull at once", err, time.Since(start))
	}

	// The healthy pair still talks.
	pid, _ := spawnEcho(t, c.Node(1))
	reply, err := c.Node(0).Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("ok"))
	if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "echo:ok" {
		t.Fatalf("call to a healthy node: %v, %v", reply, err)
	}
}

func TestLookupByType(t *testing.T) {
	// Cluster 1: nodes of types 1, 2, 2. Cluster 2: two nodes of type 2,
	// one exported and one not. One etcd, so every node sees all five.
	c := clustertest.Start(t, clustertest.Options{
		Nodes:    5,
		Clusters: []int{1, 1, 1, 2, 2},
		Types:    []int{1, 2, 2, 2, 2},
		Export:   []bool{false, false, false, true, false},
	})
	view := c.Membership(0).Members()
	if len(view) != 5 {
		t.Fatalf("view %v", view)
	}
	self := c.Node(0).Addr()
	var sel cluster.Selector
	picked := map[actor.Addr]int{}
	for i := range 60 {
		m, err := sel.Pick(view, self, 2, cluster.Random, "")
		if err != nil {
			t.Fatal(err)
		}
		picked[m.Addr]++
		m, err = sel.Pick(view, self, 2, cluster.RoundRobin, "")
		if err != nil {
			t.Fatal(err)
		}
		picked[m.Addr]++
		m, err = sel.Pick(view, self, 2, cluster.ConsistentHash, fmt.Sprint("key", i))
		if err != nil {
			t.Fatal(err)
		}
		picked[m.Addr]++
	}
	want := map[actor.Addr]bool{c.Addrs[1]: true, c.Addrs[2]: true, c.Addrs[3]: true}
	for a, n := range picked {
		if !want[a] {
			t.Errorf("picked %v (%d times), which must not qualify", a, n)
		}
	}
	for a := range want {
		if picked[a] == 0 {
			t.Errorf("never picked %v", a)
		}
	}
	// Type 1 has only node 0; from cluster 2 it does not qualify (no Export).
	if m, err := sel.Pick(view, self, 1, cluster.RoundRobin, ""); err != nil || m.Addr != c.Addrs[0] {
		t.Fatalf("Pick type 1 = %v, %v", m.Addr, err)
	}
	if _, err := sel.Pick(c.Membership(3).Members(), c.Addrs[3], 1, cluster.Random, ""); !errors.Is(err, cluster.ErrNoMember) {
		t.Fatalf("Pick type 1 from cluster 2: %v, want cluster.ErrNoMember", err)
	}
	// From cluster 2, type 2: both of its own, and none of cluster 1 (not exported).
	from2 := map[actor.Addr]bool{}
	for range 10 {
		m, err := sel.Pick(c.Membership(4).Members(), c.Addrs[4], 2, cluster.RoundRobin, "")
		if err != nil {
			t.Fatal(err)
		}
		from2[m.Addr] = true
	}
	if len(from2) != 2 || !from2[c.Addrs[3]] || !from2[c.Addrs[4]] {
		t.Fatalf("cluster 2 picked %v, want %v and %v", from2, c.Addrs[3], c.Addrs[4])
	}
	// A picked member can be reached: call an actor on it from node 0.
	m, err := sel.Pick(view, self, 2, cluster.ConsistentHash, "route")
	if err != nil {
		t.Fatal(err)
	}
	k := -1
	for i, a := range c.Addrs {
		if a == m.Addr {
			k = i
		}
	}
	pid, _ := spawnEcho(t, c.Node(k))
	if r, err := c.Node(0).Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("picked")); err != nil || r.(*wrapperspb.StringValue).GetValue() != "echo:picked" {
		t.Fatalf("Call to the picked node %v = %v, %v", m.Addr, r, err)
	}
}

func TestDeadlineAcrossNodes(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	pid, _ := spawnEcho(t, c.Node(2))
	dl := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	r, err := c.Node(0).Call(ctx, pid, wrapperspb.String("deadline"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.(*wrapperspb.StringValue).GetValue(), fmt.Sprint(true, " ", dl.UnixNano()); got != want {
		t.Fatalf("deadline seen on node 2: %q, want %q", got, want)
	}
}

func TestPeerLostFailsFast(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	pid, e := spawnEcho(t, c.Node(2))
	type result struct {
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Node(0).Call(ctx, pid, wrapperspb.String("hold"))
		done <- result{err: err}
	}()
	recv(t, e.held) // node 2 has the request and never answers it
	closed := time.Now()
	if err := c.Nodes[2].Close(); err != nil {
		t.Fatal(err)
	}
	res := recv(t, done)
	res.elapsed = time.Since(closed)
	t.Logf("Call failed %v after node 2 closed: %v", res.elapsed, res.err)
	if !errors.Is(res.err, transport.ErrPeerLost) {
		t.Errorf("Call error %v, want one matching transport.ErrPeerLost", res.err)
	}
	if res.elapsed > 3*time.Second {
		t.Errorf("Call failed after %v, want under 3s", res.elapsed)
	}
	c.WaitMembers(t, 2)
}
