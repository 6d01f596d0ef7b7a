package grain_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/guildkit/guild/examples/echo/echopb"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
)

// counted is a grain's state: how many echoes it answered.
type counted struct{ N int }

// echoGrain serves the generated Echo service from inside a grain: its
// Dispatcher answers rpc calls, with the grain's state at hand.
type echoGrain struct {
	id    grain.Identity
	state *counted
	rpc   *rpc.Dispatcher
}

func (g *echoGrain) Echo(_ *rpc.Context, req *echopb.EchoRequest) (*echopb.EchoReply, error) {
	g.state.N++
	return &echopb.EchoReply{Text: fmt.Sprintf("%s #%d from %s", req.GetText(), g.state.N, g.id)}, nil
}

func (g *echoGrain) Receive(c *grain.Context) {
	if g.state == nil {
		g.state = c.State().(*counted)
	}
	g.rpc.Handle(c.Actor())
}

// TestGrainServesGeneratedRPC: a generated client reaches a grain by its
// identity (rpc.Grain), the grain activates on the first call and keeps
// its state across calls.
func TestGrainServesGeneratedRPC(t *testing.T) {
	kind := grain.Kind{
		Name:  "echo",
		State: func() any { return &counted{} },
		New: func(id grain.Identity) grain.Actor {
			g := &echoGrain{id: id}
			g.rpc = rpc.NewDispatcher(echopb.EchoServiceDesc(), g)
			return g
		},
	}
	s := localSystem(t, nil, 1, grain.Config{Kinds: []grain.Kind{kind}, Claims: grain.NewLocalClaimer()})
	client := echopb.NewEchoClient(rpc.NewClient(s.Node(), rpc.WithGrains(s)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		reply, err := client.Echo(ctx, rpc.Grain("echo", "k1"), &echopb.EchoRequest{Text: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("hi #%d from echo/k1", i); reply.GetText() != want {
			t.Fatalf("reply %q, want %q", reply.GetText(), want)
		}
	}
	if st := s.Stats(); st.Activations != 1 {
		t.Fatalf("%d activations, want 1", st.Activations)
	}
}
