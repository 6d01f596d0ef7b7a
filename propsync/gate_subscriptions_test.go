package propsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/testpb"
	"github.com/guildkit/guild/propsync/propsyncpb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/rpcpb"
)

// gateSubsSetup starts a node with the player grains of kind, a login
// service (login.As binds the session to another user) and a gateway
// with the routes "sync" (UserGrain) and "watch" (SyncGrain) and the
// limits lim, and dials it as u1; the client's deltas come on the
// channel returned.
func gateSubsSetup(t *testing.T, kind grain.Kind, lim gate.Limits) (context.Context, *grain.System, *client.Client, chan *propsyncpb.Delta) {
	t.Helper()
	node, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	sys, err := grain.Start(ctx, grain.Config{
		Node: node, Kinds: []grain.Kind{kind},
		Push: func(session, route string, msg proto.Message) error { return gate.Push(node, session, route, msg) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close(context.Background()) })
	login := gate.NewService("login")
	gate.Handle(login, "As", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Bind(req.GetValue())
		return req, nil
	})
	lpid, err := login.Serve(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{
		Node: node, Grains: sys,
		Routes: map[string]gate.Route{
			"sync":  gate.UserGrain("player", propsync.Service),
			"watch": gate.SyncGrain("player"),
			"login": gate.To(rpc.To(lpid)),
		},
		Auth:   func(_ context.Context, token string) (string, error) { return token, nil },
		Limits: lim,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	addr, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Config{Addr: "tcp://" + addr.String(), Token: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	deltas := make(chan *propsyncpb.Delta, 100)
	c.OnPush(propsync.DefaultRoute, func(body []byte) {
		d := new(propsyncpb.Delta)
		if err := proto.Unmarshal(body, d); err != nil {
			t.Errorf("a push: %v", err)
		}
		deltas <- d
	})
	return ctx, sys, c, deltas
}

// TestRebindEndsSubscriptions: a session bound to u1 subscribes to u1's
// own grain (which only u1 may watch); the game's login service binds the
// same session to u2 (Session.Bind replaces the user). The gateway ends
// the subscription: the client gets its end notice with the login's
// reply, and no delta of player/u1 after it, however u1's grain changes.
// u2 subscribes to its own grain as usual.
func TestRebindEndsSubscriptions(t *testing.T) {
	ctx, sys, c, deltas := gateSubsSetup(t, playerKind(), gate.Limits{})
	var snap propsyncpb.Delta
	if err := c.Request(ctx, "sync.Subscribe", &propsyncpb.Subscribe{}, &snap); err != nil || snap.GetEntity() != "player/u1" {
		t.Fatalf("u1's subscribe: %v, %v", &snap, err)
	}
	var as wrapperspb.StringValue
	if err := c.Request(ctx, "login.As", wrapperspb.String("u2"), &as); err != nil {
		t.Fatal(err)
	}
	// Pushes come before the reply that follows them.
	select {
	case d := <-deltas:
		if d.GetEntity() != "player/u1" || d.GetVersion() != 0 || d.GetIsSnapshot() || len(d.GetOps()) != 0 {
			t.Fatalf("after the re-bind the client got %v, want player/u1's end notice", d)
		}
	default:
		t.Fatal("the login's reply came without player/u1's end notice")
	}
	body, _ := proto.Marshal(&testpb.Stats{Hp: 3, Mp: 7})
	mutate := func(user string) {
		t.Helper()
		if _, err := sys.Call(ctx, grain.Identity{Kind: "player", Key: user}, &rpcpb.Call{Method: gameMutate, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	mutate("u1")
	// The grain answers this after the pushes of the turn above: once the
	// client has the answer, it has every push of player/u1 sent before.
	err := c.Request(ctx, "watch.Subscribe", &propsyncpb.Subscribe{Entity: "player/u1"}, nil)
	if rpc.CodeOf(err) != rpc.PermissionDenied {
		t.Fatalf("u2's subscribe of player/u1: %v, want PermissionDenied", err)
	}
	select {
	case d := <-deltas:
		t.Fatalf("the session, now u2's, got %v", d)
	default:
	}
	if err := c.Request(ctx, "sync.Subscribe", &propsyncpb.Subscribe{}, &snap); err != nil || snap.GetEntity() != "player/u2" {
		t.Fatalf("u2's subscribe: %v, %v", &snap, err)
	}
	mutate("u2")
	select {
	case d := <-deltas:
		if d.GetEntity() != "player/u2" || d.GetVersion() != 2 {
			t.Fatalf("got %v, want player/u2's version 2", d)
		}
	case <-ctx.Done():
		t.Fatal("no delta of u2's own grain")
	}
}

// TestOneSessionPinsFewGrains: with a kind that lets anyone watch any
// grain (SyncGrain), one session keeps at most Limits.MaxSubscriptions
// grains subscribed, so active: one more Subscribe gets
// ResourceExhausted, and activates nothing.
func TestOneSessionPinsFewGrains(t *testing.T) {
	kind := playerKind()
	opts := *kind.Sync
	opts.MaySubscribe = func(grain.Identity, string) bool { return true }
	kind.Sync = &opts
	const most = 8
	ctx, sys, c, _ := gateSubsSetup(t, kind, gate.Limits{MaxSubscriptions: most})
	for i := range most {
		if err := c.Request(ctx, "watch.Subscribe", &propsyncpb.Subscribe{Entity: fmt.Sprintf("player/nobody-%d", i)}, nil); err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
	}
	for i := most; i < 2*most; i++ {
		err := c.Request(ctx, "watch.Subscribe", &propsyncpb.Subscribe{Entity: fmt.Sprintf("player/nobody-%d", i)}, nil)
		if rpc.CodeOf(err) != rpc.ResourceExhausted {
			t.Fatalf("subscribe %d: %v, want ResourceExhausted", i, err)
		}
	}
	if active := sys.ActiveByKind()["player"]; active != most {
		t.Fatalf("%d grains active, want the %d subscribed", active, most)
	}
}
