package gate_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/echo/echopb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/store/memstore"
)

// flakyLoads is a store whose loads fail while down is set.
type flakyLoads struct {
	*memstore.Store
	down atomic.Bool
}

func (s *flakyLoads) Load(ctx context.Context, kind, key string) ([]byte, uint64, error) {
	if s.down.Load() {
		return nil, 0, errors.New("the store is down")
	}
	return s.Store.Load(ctx, kind, key)
}

// echoPlayer serves the generated Echo service from a grain.
type echoPlayer struct {
	id  grain.Identity
	n   int
	rpc *rpc.Dispatcher
}

func (p *echoPlayer) Echo(_ *rpc.Context, req *echopb.EchoRequest) (*echopb.EchoReply, error) {
	p.n++
	return &echopb.EchoReply{Text: fmt.Sprintf("%s #%d from %s", req.GetText(), p.n, p.id.Key)}, nil
}

func (p *echoPlayer) Receive(c *grain.Context) { p.rpc.Handle(c.Actor()) }

// TestUserGrainRefused: a grain that cannot activate refuses the messages
// queued for it (a grainpb.Refused reply); through a UserGrain route the
// client gets that refusal as an error with its code, never as a reply.
// (A request that reaches the failed activation only after it stopped is
// routed again, and meets the next one.) Once the grain can activate, the
// same route reaches it.
func TestUserGrainRefused(t *testing.T) {
	n := newNode(t)
	st := &flakyLoads{Store: memstore.New()}
	st.down.Store(true)
	sys, err := grain.Start(testCtx(t), grain.Config{
		Node: n,
		Kinds: []grain.Kind{{
			Name:  "player",
			State: func() any { return new(struct{}) },
			New: func(id grain.Identity) grain.Actor {
				p := &echoPlayer{id: id}
				p.rpc = rpc.NewDispatcher(echopb.EchoServiceDesc(), p)
				return p
			},
		}},
		Store: st,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close(context.Background()) })
	g := newGate(t, gate.Config{
		Node:   n,
		Grains: sys,
		Routes: map[string]gate.Route{"echo": gate.UserGrain("player", echopb.Echo_ServiceName)},
		Auth:   func(_ context.Context, token string) (string, error) { return token, nil },
	})
	url, _ := listenTCP(t, g)
	c := dial(t, client.Config{Addr: url, Token: "ana"})

	var reply echopb.EchoReply
	for range 5 {
		err = c.Request(testCtx(t), "echo.Echo", &echopb.EchoRequest{Text: "hi"}, &reply)
		if err == nil {
			t.Fatalf("a grain that could not load its state answered %v", &reply)
		}
		if code := rpc.CodeOf(err); code != rpc.Unavailable && code != rpc.NotFound {
			t.Fatalf("a grain that could not load its state: %v (code %v), want Unavailable (refused) or NotFound (routed again until the gateway gave up)", err, code)
		}
	}
	st.down.Store(false)
	if err := c.Request(testCtx(t), "echo.Echo", &echopb.EchoRequest{Text: "hi"}, &reply); err != nil || reply.GetText() != "hi #1 from ana" {
		t.Fatalf("once the store is back: %v, %v", &reply, err)
	}
}
