package gate_test

import (
	"context"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/echo/echopb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// rpcEcho is a generated-RPC handler that says who called it.
type rpcEcho struct{}

func (rpcEcho) Echo(ctx *rpc.Context, req *echopb.EchoRequest) (*echopb.EchoReply, error) {
	if req.GetText() == "" {
		return nil, rpc.Error(rpc.InvalidArgument, "nothing to echo")
	}
	return &echopb.EchoReply{Text: req.GetText(), Node: ctx.Caller().String()}, nil
}

// TestRouteToGeneratedRPC: a route can lead to a service generated from
// .proto; the client's body is the method's request, the reply its reply,
// and the handler knows the session by its caller.
func TestRouteToGeneratedRPC(t *testing.T) {
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	pid, err := echopb.RegisterEchoServer(ctx, n, rpcEcho{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"echo": gate.RPC(echopb.Echo_ServiceName, rpc.To(pid))},
		Public: []string{"echo.Echo", "echo.Nope"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	addr, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Config{Addr: "tcp://" + addr.String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	var reply echopb.EchoReply
	if err := c.Request(ctx, "echo.Echo", &echopb.EchoRequest{Text: "hi"}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.GetText() != "hi" || reply.GetNode() != c.SessionID() {
		t.Fatalf("reply %v, want text hi from caller %s (the session)", &reply, c.SessionID())
	}
	if err := c.Request(ctx, "echo.Echo", &echopb.EchoRequest{}, &reply); rpc.CodeOf(err) != rpc.InvalidArgument {
		t.Fatalf("empty text: %v, want InvalidArgument", err)
	}
	if err := c.Request(ctx, "echo.Nope", &echopb.EchoRequest{Text: "x"}, &reply); rpc.CodeOf(err) != rpc.Unimplemented {
		t.Fatalf("unknown method: %v, want Unimplemented", err)
	}
}
