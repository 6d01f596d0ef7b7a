package gate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	gatekcp "github.com/guildkit/guild/gate/kcp"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
)

func TestSmoke(t *testing.T) {
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc := gate.NewService("chat")
	gate.Handle(svc, "Echo", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if err := s.Push("chat.Pushed", wrapperspb.String("push:"+req.Value)); err != nil {
			return nil, err
		}
		return wrapperspb.String("echo:" + req.Value), nil
	})
	gate.Handle(svc, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Bind(req.Value)
		return wrapperspb.String("welcome " + req.Value), nil
	})
	svcPID, err := svc.Serve(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{Node: n, Routes: map[string]gate.Route{"chat": gate.To(rpc.To(svcPID))}, Public: []string{"chat.Login"}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	tcpAddr, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	wsAddr, err := gatews.Listen(g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	kcpAddr, err := gatekcp.Listen(g, "127.0.0.1:0", gatekcp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"tcp://" + tcpAddr.String(), "ws://" + wsAddr.String() + "/ws", "kcp://" + kcpAddr.String()} {
		t.Run(addr[:3], func(t *testing.T) {
			c, err := client.Dial(ctx, client.Config{Addr: addr})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			pushed := make(chan string, 1)
			c.OnPush("chat.Pushed", func(body []byte) { pushed <- string(body) })
			var reply wrapperspb.StringValue
			err = c.Request(ctx, "chat.Echo", wrapperspb.String("x"), &reply)
			if !errors.Is(err, rpc.Error(rpc.Unauthenticated, "")) {
				t.Fatalf("before login: %v, want Unauthenticated", err)
			}
			if err := c.Request(ctx, "chat.Login", wrapperspb.String("ana"), &reply); err != nil || reply.Value != "welcome ana" {
				t.Fatalf("login: %v %v", reply.Value, err)
			}
			if err := c.Request(ctx, "chat.Echo", wrapperspb.String("x"), &reply); err != nil || reply.Value != "echo:x" {
				t.Fatalf("echo: %v %v", reply.Value, err)
			}
			select {
			case <-pushed:
			case <-time.After(5 * time.Second):
				t.Fatal("no push")
			}
		})
	}
}
