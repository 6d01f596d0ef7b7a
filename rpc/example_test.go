package rpc_test

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/internal/echopb"
)

// greeter implements the generated echopb.EchoServer.
type greeter struct{}

func (greeter) Say(ctx *rpc.Context, req *echopb.SayRequest) (*echopb.SayReply, error) {
	if req.GetText() == "" {
		return nil, rpc.Error(rpc.InvalidArgument, "say something")
	}
	return &echopb.SayReply{Text: "hello, " + req.GetText()}, nil
}

func (greeter) Note(*rpc.Context, *echopb.SayRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func Example() {
	node, err := actor.NewNode(actor.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Host the service, then call it through the generated client.
	pid, err := echopb.RegisterEchoServer(ctx, node, greeter{})
	if err != nil {
		fmt.Println(err)
		return
	}
	client := echopb.NewEchoClient(rpc.NewClient(node))
	reply, err := client.Say(ctx, rpc.To(pid), &echopb.SayRequest{Text: "ana"})
	fmt.Println(reply.GetText(), err)

	// Errors are *rpc.Status, with a code.
	_, err = client.Say(ctx, rpc.Named(rpc.LocalServiceName(echopb.Echo_ServiceName)), &echopb.SayRequest{})
	fmt.Println(rpc.CodeOf(err), err)
	// Output:
	// hello, ana <nil>
	// InvalidArgument rpc: InvalidArgument: say something
}
