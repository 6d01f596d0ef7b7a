package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// exampleGateway starts a gateway whose "game.Where" answers its name,
// and returns its address and how to shut it down and stop it.
func exampleGateway(name string) (addr string, shutdown func(context.Context) error, stop func()) {
	node, _ := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	svc := gate.NewService("game")
	gate.Handle(svc, "Where", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(name), nil
	})
	pid, _ := svc.Serve(context.Background(), node)
	g, _ := gate.New(gate.Config{
		Node:   node,
		Routes: map[string]gate.Route{"game": gate.To(rpc.To(pid))},
		Public: []string{"game.Where"},
		Logger: slog.New(slog.DiscardHandler),
	})
	a, _ := g.ListenTCP("127.0.0.1:0", nil)
	return "tcp://" + a.String(), g.Shutdown, func() { g.Close(); node.Close() }
}

// Example_failover gives a client two gateways. When the first shuts
// down, the client moves to the second by itself, and the request made
// meanwhile is answered there.
func Example_failover() {
	a, shutdownA, stopA := exampleGateway("gateway A")
	defer stopA()
	b, _, stopB := exampleGateway("gateway B")
	defer stopB()

	ctx := context.Background()
	moved := make(chan client.Reconnection, 1)
	c, err := client.Dial(ctx, client.Config{
		Addrs:       []string{a, b},
		Reconnect:   true,
		OnReconnect: func(r client.Reconnection) { moved <- r },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	where := func() string {
		var reply wrapperspb.StringValue
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := c.Request(rctx, "game.Where", nil, &reply); err != nil {
			return err.Error()
		}
		return reply.Value
	}
	fmt.Println(where())

	_ = shutdownA(ctx) // what gateway A's main does on SIGTERM
	fmt.Println(where())
	r := <-moved
	fmt.Println(r.Addr == b, errors.Is(r.Cause, client.ErrGoingAway))
	// Output:
	// gateway A
	// gateway B
	// true true
}
