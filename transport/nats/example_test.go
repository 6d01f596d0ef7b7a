package nats_test

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/transport/nats"
	"github.com/guildkit/guild/transport/nats/natsembed"
)

// Two cluster nodes talk through NATS: here an embedded server (what a
// cluster file's nodes.<name>.nats starts); in production, the URL of
// your NATS. The membership is in memory for the example; a real cluster
// uses cluster/etcd.
func Example() {
	server, err := natsembed.Start("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer server.Close()
	ctx := context.Background()
	members := cluster.NewMemory()
	quiet := slog.New(slog.DiscardHandler)
	var ms []cluster.Membership
	defer func() {
		for _, m := range ms {
			_ = m.Close()
		}
	}()
	start := func(addr actor.Addr) *cluster.Node {
		m := members.Membership(addr)
		ms = append(ms, m)
		n, err := cluster.Start(ctx, cluster.NodeConfig{
			Actor:      actor.Config{Addr: addr, Logger: quiet},
			Membership: m,
			Transport:  nats.Config{URL: server.URL(), Prefix: "example"},
			Logger:     quiet,
		})
		if err != nil {
			panic(err)
		}
		return n
	}
	world, lobby := start(actor.MustAddr(1, 2, 1)), start(actor.MustAddr(1, 1, 1))
	defer world.Close()
	defer lobby.Close()

	pid, _ := world.Actor().SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("world got " + m.GetValue()))
		}
	})
	reply, err := lobby.Actor().Call(ctx, pid, wrapperspb.String("hello"))
	fmt.Println(reply.(*wrapperspb.StringValue).GetValue(), err)
	fmt.Println("the world node's endpoint:", world.Endpoint())
	// Output:
	// world got hello <nil>
	// the world node's endpoint: example.node.1.2.1
}
