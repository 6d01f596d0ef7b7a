package actor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memNet links nodes of one process through their Remote hooks, the way a
// cluster transport would, minus the bytes: requests get a network-wide
// correlation and their Responder is kept until the reply comes back.
type memNet struct {
	mu      sync.Mutex
	nodes   map[Addr]*Node
	pending map[uint64]Responder
	next    uint64
	sends   atomic.Int64
}

func newMemNet() *memNet {
	return &memNet{nodes: map[Addr]*Node{}, pending: map[uint64]Responder{}}
}

// remote is one node's view of the network.
type memRemote struct{ net *memNet }

func (r memRemote) Send(m *RemoteMessage) error {
	net := r.net
	net.sends.Add(1)
	net.mu.Lock()
	target := net.nodes[m.Target.Node]
	switch m.Kind {
	case RemoteReply:
		reply, ok := net.pending[m.Corr]
		delete(net.pending, m.Corr)
		net.mu.Unlock()
		if ok {
			reply.Respond(m.Message)
		}
		return nil
	case RemoteRequest:
		net.next++
		net.pending[net.next] = m.Reply
		in := *m
		in.Corr, in.Reply = net.next, Responder{}
		net.mu.Unlock()
		if target == nil {
			return fmt.Errorf("memnet: no node %v", m.Target.Node)
		}
		_ = target.ReceiveRemote(&in)
		return nil
	}
	net.mu.Unlock()
	if target == nil {
		return fmt.Errorf("memnet: no node %v", m.Target.Node)
	}
	in := *m
	return target.ReceiveRemote(&in)
}

func (net *memNet) node(t *testing.T, addr Addr) *Node {
	t.Helper()
	n, _ := newTestNode(t, Config{Addr: addr, Remote: memRemote{net}})
	net.mu.Lock()
	net.nodes[addr] = n
	net.mu.Unlock()
	return n
}

func TestRemoteVerbs(t *testing.T) {
	net := newMemNet()
	a := net.node(t, MustAddr(1, 1, 1))
	b := net.node(t, MustAddr(1, 1, 2))
	server := mustSpawn(t, b, func(c *Context) {
		switch m := c.Message().(type) {
		case string:
			dl, ok := c.Deadline()
			if m == "deadline" {
				c.Respond(fmt.Sprint(ok, dl.Round(time.Second).Unix()))
				return
			}
			c.Respond("echo:" + m)
		case int:
			c.Respond(fmt.Errorf("no item %d: %w", m, ErrActorStopped))
		}
	})

	if r, err := a.Call(context.Background(), server, "x"); err != nil || r != "echo:x" {
		t.Fatalf("remote Call = %v, %v", r, err)
	}
	dl := time.Now().Add(time.Hour)
	if r, err := a.Call(ctxDeadline(t, dl), server, "deadline"); err != nil || r != fmt.Sprint(true, dl.Round(time.Second).Unix()) {
		t.Fatalf("remote deadline: %v, %v", r, err)
	}
	if _, err := a.Call(context.Background(), server, 7); err == nil || err.Error() != "no item 7: actor: stopped before replying: actor: actor not found" {
		t.Fatalf("remote error reply: %v", err)
	}
	ghost := PID{Node: b.Addr(), Serial: 999}
	if _, err := a.Call(ctxTimeout(t, 2*time.Second), ghost, "x"); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("remote Call to a missing actor: %v", err)
	}

	got := make(chan string, 4)
	client := mustSpawn(t, a, func(c *Context) {
		switch m := c.Message().(type) {
		case string:
			if m == "go" {
				_ = c.Send(server, "one-way")
				_ = c.Request(server, "req", time.Second, func(reply any, err error) {
					got <- fmt.Sprintf("request: %v %v", reply, err)
				})
				return
			}
			got <- fmt.Sprintf("from %v: %s", c.Sender() == server, m)
		}
	})
	_ = a.Send(client, "go")
	want := map[string]bool{"from true: echo:one-way": true, "request: echo:req <nil>": true}
	for range want {
		s := recv(t, got)
		if !want[s] {
			t.Fatalf("unexpected %q", s)
		}
	}
}

func TestLocalTrafficNeverTouchesRemote(t *testing.T) {
	net := newMemNet()
	a := net.node(t, MustAddr(1, 1, 1))
	pid := mustSpawn(t, a, echo)
	for i := 0; i < 100; i++ {
		if _, err := a.Call(context.Background(), pid, "x"); err != nil {
			t.Fatal(err)
		}
		_ = a.Send(pid, "y")
	}
	if n := net.sends.Load(); n != 0 {
		t.Fatalf("local traffic went through Remote %d times", n)
	}
}

func TestRemoteNoReplyAndUnknownNode(t *testing.T) {
	net := newMemNet()
	a := net.node(t, MustAddr(1, 1, 1))
	b := net.node(t, MustAddr(1, 1, 2))
	silent := mustSpawn(t, b, func(*Context) {})
	if _, err := a.Call(context.Background(), silent, "x"); !errors.Is(err, ErrNoReply) {
		t.Fatalf("remote request handled without a reply: %v", err)
	}
	if err := a.Send(PID{Node: MustAddr(9, 9, 9), Serial: 1}, "x"); err == nil {
		t.Fatal("Send to an unknown node succeeded")
	}
	if err := b.ReceiveRemote(&RemoteMessage{Kind: RemoteSend, Target: PID{Node: a.Addr(), Serial: 1}}); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("ReceiveRemote for another node's actor: %v", err)
	}
}

func ctxDeadline(t *testing.T, dl time.Time) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	t.Cleanup(cancel)
	return ctx
}
