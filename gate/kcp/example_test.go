package gatekcp_test

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	gatekcp "github.com/guildkit/guild/gate/kcp"
	"github.com/guildkit/guild/rpc"
)

// ExampleListen gives a gateway an encrypted KCP listener; a client with
// the same secret connects to it.
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

	// In a real game the secret comes from a file or the environment
	// (the cluster file's kcp_key_file), never from the source.
	secret := []byte("an example secret, 16 bytes or more")
	addr, err := gatekcp.Listen(g, "127.0.0.1:0", gatekcp.Options{Key: secret})
	if err != nil {
		fmt.Println(err)
		return
	}

	c, err := client.Dial(ctx, client.Config{Addr: "kcp://" + addr.String(), KCPKey: secret})
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
