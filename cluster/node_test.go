package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

var (
	addrA = actor.MustAddr(1, 1, 1)
	addrB = actor.MustAddr(1, 1, 2)
)

// quiet discards logs.
var quiet = slog.New(slog.DiscardHandler)

// startPair runs an embedded etcd and two cluster nodes, A and B, that
// see each other.
func startPair(tb testing.TB) (a, b *cluster.Node) {
	tb.Helper()
	return startPairTypes(tb, nil)
}

// startPairTypes is startPair with node B resolving payloads in typesB.
func startPairTypes(tb testing.TB, typesB *protoregistry.Types) (a, b *cluster.Node) {
	tb.Helper()
	e, err := etcd.StartEmbedded(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	var ms []cluster.Membership
	start := func(addr actor.Addr, types *protoregistry.Types) *cluster.Node {
		m, err := etcd.New(etcd.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second, Logger: quiet})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { m.Close() })
		n, err := cluster.Start(context.Background(), cluster.NodeConfig{
			Actor:      actor.Config{Addr: addr, Logger: quiet},
			Listen:     "127.0.0.1:0",
			Membership: m,
			Names:      m.Names(),
			Logger:     quiet,
			Types:      types,
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			if err := n.Close(); err != nil {
				tb.Errorf("Close %v: %v", addr, err)
			}
		})
		ms = append(ms, m)
		return n
	}
	a, b = start(addrA, nil), start(addrB, typesB)
	for _, m := range ms {
		waitFor(tb, 10*time.Second, "the members to see each other", func() bool { return sees(m, addrA) && sees(m, addrB) })
	}
	return a, b
}

// sees reports whether m's view holds addr.
func sees(m cluster.Membership, addr actor.Addr) bool {
	return slices.ContainsFunc(m.Members(), func(x cluster.Member) bool { return x.Addr == addr })
}

func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// server is the actor the tests put on node B.
type server struct {
	got  chan string          // one-way messages
	held chan actor.Responder // requests it never answers
}

func (s *server) receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case *wrapperspb.StringValue:
		switch {
		case !c.IsRequest():
			s.got <- m.Value
		case m.Value == "deadline":
			dl, ok := c.Deadline()
			c.Respond(wrapperspb.String(fmt.Sprint(ok, dl.Unix())))
		case m.Value == "stopped":
			c.Respond(fmt.Errorf("item gone: %w", actor.ErrActorStopped))
		case m.Value == "hold":
			s.held <- c.Responder()
		case m.Value == "badreply":
			c.Respond(struct{ X int }{1})
		default:
			c.Respond(wrapperspb.String("echo:" + m.Value))
		}
	case []byte:
		c.Respond(append([]byte("raw:"), m...))
	}
}

func spawnServer(t testing.TB, n *cluster.Node) (actor.PID, *server) {
	t.Helper()
	s := &server{got: make(chan string, 16), held: make(chan actor.Responder, 16)}
	pid, err := n.Actor().SpawnFunc(s.receive)
	if err != nil {
		t.Fatal(err)
	}
	return pid, s
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

func TestNodeRemoteVerbs(t *testing.T) {
	a, b := startPair(t)
	pid, srv := spawnServer(t, b)

	// Call with a protobuf payload and reply.
	r, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("hi"))
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if s, ok := r.(*wrapperspb.StringValue); !ok || s.Value != "echo:hi" {
		t.Fatalf("Call = %#v", r)
	}
	// Call without a ctx deadline (RequestTimeout applies).
	if r, err := a.Actor().Call(context.Background(), pid, wrapperspb.String("bg")); err != nil || r.(*wrapperspb.StringValue).Value != "echo:bg" {
		t.Fatalf("Call without deadline = %v, %v", r, err)
	}

	// One-way Send.
	if err := a.Actor().Send(pid, wrapperspb.String("one-way")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, srv.got); got != "one-way" {
		t.Fatalf("Send delivered %q", got)
	}

	// Request from inside an actor, answered through its callback.
	replies := make(chan string, 1)
	client, err := a.Actor().SpawnFunc(func(c *actor.Context) {
		if s, ok := c.Message().(string); ok && s == "go" {
			err := c.Request(pid, wrapperspb.String("req"), 5*time.Second, func(reply any, err error) {
				replies <- fmt.Sprint(reply.(*wrapperspb.StringValue).GetValue(), " ", err)
			})
			if err != nil {
				replies <- "request: " + err.Error()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Actor().Send(client, "go"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, replies); got != "echo:req <nil>" {
		t.Fatalf("Request callback got %q", got)
	}

	// Raw bytes.
	r, err = a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, []byte("bytes"))
	if err != nil || !bytes.Equal(r.([]byte), []byte("raw:bytes")) {
		t.Fatalf("raw Call = %v, %v", r, err)
	}

	if n := cluster.PendingRequests(a); n != 0 {
		t.Fatalf("%d pending requests left", n)
	}
}

func TestNodeRemoteErrors(t *testing.T) {
	a, b := startPair(t)
	pid, _ := spawnServer(t, b)

	// An error value replied by the remote actor.
	_, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("stopped"))
	if !errors.Is(err, actor.ErrActorStopped) || !errors.Is(err, actor.ErrActorNotFound) {
		t.Fatalf("error reply: %v", err)
	}
	if want := "item gone: actor: stopped before replying: actor: actor not found"; err.Error() != want {
		t.Fatalf("error reply message %q, want %q", err, want)
	}

	// A missing actor on B.
	ghost := actor.PID{Node: b.Actor().Addr(), Serial: 999999}
	if _, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), ghost, wrapperspb.String("x")); !errors.Is(err, actor.ErrActorNotFound) {
		t.Fatalf("Call to a missing actor: %v", err)
	}

	// A reply that cannot be encoded reaches the caller as an error.
	if _, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("badreply")); !errors.Is(err, wire.ErrNotEncodable) {
		t.Fatalf("non-encodable reply: %v", err)
	}

	// A message that cannot be encoded fails at the sender (protoactor-go#1010)...
	if _, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, struct{ X int }{1}); !errors.Is(err, wire.ErrNotEncodable) {
		t.Fatalf("non-encodable Call: %v", err)
	}
	if err := a.Actor().Send(pid, struct{ X int }{1}); !errors.Is(err, wire.ErrNotEncodable) {
		t.Fatalf("non-encodable Send: %v", err)
	}
	// ...and the connection still works.
	if r, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("after")); err != nil || r.(*wrapperspb.StringValue).Value != "echo:after" {
		t.Fatalf("Call after a non-encodable message = %v, %v", r, err)
	}
	if n := cluster.PendingRequests(a); n != 0 {
		t.Fatalf("%d pending requests left", n)
	}
}

func TestNodeFailFastOnPeerLost(t *testing.T) {
	a, b := startPair(t)
	pid, srv := spawnServer(t, b)

	type result struct {
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	var start time.Time
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start = time.Now()
		_, err := a.Actor().Call(ctx, pid, wrapperspb.String("hold"))
		done <- result{err, time.Since(start)}
	}()
	held := recv(t, srv.held) // B has the request and will never answer it
	defer held.Respond(wrapperspb.String("too late"))
	closed := time.Now()
	if err := cluster.CloseTransport(b); err != nil {
		t.Fatal(err)
	}
	res := recv(t, done)
	t.Logf("Call failed %v after the transport closed: %v", time.Since(closed), res.err)
	if !errors.Is(res.err, transport.ErrPeerLost) {
		t.Fatalf("Call error %v, want one matching transport.ErrPeerLost", res.err)
	}
	if res.elapsed > 3*time.Second {
		t.Fatalf("Call failed after %v, want fail fast", res.elapsed)
	}
	if n := cluster.PendingRequests(a); n != 0 {
		t.Fatalf("%d pending requests left", n)
	}
}

func TestNodeDeadlinePropagation(t *testing.T) {
	a, b := startPair(t)
	pid, _ := spawnServer(t, b)
	dl := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	r, err := a.Actor().Call(ctx, pid, wrapperspb.String("deadline"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.(*wrapperspb.StringValue).Value, fmt.Sprint(true, dl.Unix()); got != want {
		t.Fatalf("deadline seen on B: %q, want %q", got, want)
	}
}

func TestNodePendingSwept(t *testing.T) {
	a, b := startPair(t)
	pid, srv := spawnServer(t, b)
	_, err := a.Actor().Call(ctxTimeout(t, 200*time.Millisecond), pid, wrapperspb.String("hold"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call to a silent actor: %v", err)
	}
	held := recv(t, srv.held)
	if n := cluster.PendingRequests(a); n != 1 {
		t.Fatalf("%d pending requests right after the timeout, want 1", n)
	}
	waitFor(t, 3*time.Second, "the sweep", func() bool { return cluster.PendingRequests(a) == 0 })
	held.Respond(wrapperspb.String("too late")) // finds no waiter: dropped
}

func TestNodeCloseTwice(t *testing.T) {
	a, b := startPair(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if a.Endpoint() == "" {
		t.Fatal("no endpoint")
	}
}

func TestNodeFailFastOnNodeClose(t *testing.T) {
	a, b := startPair(t)
	pid, srv := spawnServer(t, b)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := a.Actor().Call(ctx, pid, wrapperspb.String("hold"))
		done <- err
	}()
	recv(t, srv.held) // never answered
	closed := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	err := recv(t, done)
	elapsed := time.Since(closed)
	t.Logf("Call failed %v after B closed: %v", elapsed, err)
	if !errors.Is(err, transport.ErrPeerLost) && !errors.Is(err, actor.ErrNodeClosed) {
		t.Fatalf("Call error %v, want transport.ErrPeerLost or actor.ErrNodeClosed", err)
	}
	if elapsed > 3*time.Second {
		t.Fatalf("Call failed after %v, want fail fast", elapsed)
	}
}

func TestNodeUnknownPayloadType(t *testing.T) {
	a, b := startPairTypes(t, new(protoregistry.Types)) // B knows no message type
	pid, srv := spawnServer(t, b)
	if _, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, wrapperspb.String("x")); !errors.Is(err, wire.ErrUnknownType) {
		t.Fatalf("Call with a type B does not know: %v", err)
	}
	// A one-way message of an unknown type is dropped at B; raw bytes still go.
	if err := a.Actor().Send(pid, wrapperspb.String("dropped")); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Actor().Call(ctxTimeout(t, 5*time.Second), pid, []byte("x")); err != nil || string(r.([]byte)) != "raw:x" {
		t.Fatalf("raw Call after an unknown type = %v, %v", r, err)
	}
	select {
	case got := <-srv.got:
		t.Fatalf("B received %q", got)
	default:
	}
}
