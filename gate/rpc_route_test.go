package gate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

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
	if req.GetText() == "who" { // the metadata the gateway adds
		md := rpc.IncomingMetadata(ctx)
		return &echopb.EchoReply{Text: "session=" + md.Get(gate.MetadataSessionID) + " user=" + md.Get(gate.MetadataUserID), Node: ctx.Caller().String()}, nil
	}
	if req.GetText() == "state" { // the session's state, as the metadata carries it
		md := rpc.IncomingMetadata(ctx)
		st := gate.StateOf(md)
		return &echopb.EchoReply{Text: fmt.Sprintf("keys=%d team=%s partial=%s", len(st), st["team"], md.Get(gate.MetadataStatePartial))}, nil
	}
	return &echopb.EchoReply{Text: req.GetText(), Node: ctx.Caller().String()}, nil
}

// TestRouteToGeneratedRPC: a route can lead to a service generated from
// .proto; the client's body is the method's request, the reply its reply,
// and the handler knows the session by its caller and by the metadata the
// gateway adds (session ID, and user ID once logged in).
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
	chatPID := serve(t, n, chatService("chat"))
	g, err := gate.New(gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"echo": gate.RPC(echopb.Echo_ServiceName, rpc.To(pid)), "chat": gate.To(rpc.To(chatPID))},
		Public: []string{"echo.Echo", "echo.Nope", "chat.Login"},
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
	if err := c.Request(ctx, "echo.Echo", &echopb.EchoRequest{Text: "who"}, &reply); err != nil {
		t.Fatal(err)
	}
	if want := "session=" + c.SessionID() + " user="; reply.GetText() != want {
		t.Fatalf("before login the handler saw %q, want %q", reply.GetText(), want)
	}
	var who wrapperspb.StringValue
	if err := c.Request(ctx, "chat.Login", wrapperspb.String("alice"), &who); err != nil {
		t.Fatal(err)
	}
	if err := c.Request(ctx, "echo.Echo", &echopb.EchoRequest{Text: "who"}, &reply); err != nil {
		t.Fatal(err)
	}
	if want := "session=" + c.SessionID() + " user=alice"; reply.GetText() != want {
		t.Fatalf("after login the handler saw %q, want %q", reply.GetText(), want)
	}

	// The session's state reaches the RPC handler in the metadata, as
	// much of it as fits, and says when some did not.
	wantState := func(want string) {
		t.Helper()
		if err := c.Request(ctx, "echo.Echo", &echopb.EchoRequest{Text: "state"}, &reply); err != nil {
			t.Fatal(err)
		}
		if reply.GetText() != want {
			t.Fatalf("the handler saw state %q, want %q", reply.GetText(), want)
		}
	}
	wantState("keys=0 team= partial=")
	if err := c.Request(ctx, "chat.Set", wrapperspb.String("team=red"), &who); err != nil {
		t.Fatal(err)
	}
	wantState("keys=1 team=red partial=")
	for i := range gate.MaxMetadataState {
		if err := c.Request(ctx, "chat.Set", wrapperspb.String(fmt.Sprintf("k%02d=v", i)), &who); err != nil {
			t.Fatal(err)
		}
	}
	// 25 keys, sorted: k00..k23 fit, "team" does not.
	wantState(fmt.Sprintf("keys=%d team= partial=1", gate.MaxMetadataState))
}
