package gate_test

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

// ExampleGateway_Shutdown stops a gateway gracefully, as a main does on
// SIGTERM: the client is told the gateway is going away, with code
// gate.GoingAway, after the answers it was owed.
func ExampleGateway_Shutdown() {
	node, _ := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	defer node.Close()
	svc := gate.NewService("chat")
	gate.Handle(svc, "Echo", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String("echo:" + req.Value), nil
	})
	ctx := context.Background()
	pid, _ := svc.Serve(ctx, node)
	g, _ := gate.New(gate.Config{
		Node:   node,
		Routes: map[string]gate.Route{"chat": gate.To(rpc.To(pid))},
		Public: []string{"chat.Echo"},
		Logger: slog.New(slog.DiscardHandler),
	})
	addr, _ := g.ListenTCP("127.0.0.1:0", nil)

	closed := make(chan error, 1)
	c, _ := client.Dial(ctx, client.Config{Addr: "tcp://" + addr.String(), OnClose: func(err error) { closed <- err }})
	defer c.Close()
	var reply wrapperspb.StringValue
	_ = c.Request(ctx, "chat.Echo", wrapperspb.String("hi"), &reply)
	fmt.Println(reply.Value)

	// Give the sessions 30 seconds to finish their requests; after that,
	// Shutdown closes them at once.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fmt.Println("shutdown:", g.Shutdown(sctx))
	err := <-closed
	fmt.Println("going away:", rpc.CodeOf(err) == gate.GoingAway, errors.Is(err, client.ErrGoingAway))
	// Output:
	// echo:hi
	// shutdown: <nil>
	// going away: true true
}
