package gatews_test

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
)

// ExampleListen gives a gateway a WebSocket listener; a client connects
// to it with a ws:// address.
func ExampleListen() {
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
	defer g.Close()

	addr, err := gatews.Listen(g, "127.0.0.1:0", gatews.DefaultPath, nil)
	if err != nil {
		fmt.Println(err)
		return
	}

	c, err := client.Dial(ctx, client.Config{Addr: "ws://" + addr.String() + gatews.DefaultPath})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	var reply wrapperspb.StringValue
	err = c.Request(ctx, "chat.Echo", wrapperspb.String("hi"), &reply)
	fmt.Println(reply.Value, err)
	// Output:
	// echo:hi <nil>
}
