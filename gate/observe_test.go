package gate_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
)

// TestObserve: Config.Observe sees each routed request once with the
// session's metadata, what it returns is what the service gets, and its
// function gets the answer's code; a panicking Observe costs the request
// nothing.
func TestObserve(t *testing.T) {
	n := newNode(t)
	var (
		mu     sync.Mutex
		routes []string
		codes  []rpc.Code
		seen   []string // the metadata key the service saw
	)
	svc := gate.NewService("chat")
	gate.Handle(svc, "Echo", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String("echo:" + req.Value), nil
	})
	gate.Handle(svc, "Fail", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return nil, rpc.Error(rpc.NotFound, "no")
	})
	pid := serve(t, n, svc)
	probe, err := n.SpawnFunc(func(c *actor.Context) {
		if c.IsRequest() {
			mu.Lock()
			seen = append(seen, c.Metadata().Get("added"))
			mu.Unlock()
			_ = c.Forward(pid)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(t, gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"chat": gate.To(rpc.To(probe))},
		Public: []string{"chat.Echo", "chat.Fail", "chat.Boom"},
		Observe: func(route string, md actor.Metadata) (actor.Metadata, func(rpc.Code)) {
			if route == "chat.Boom" {
				panic("observer bug")
			}
			mu.Lock()
			routes = append(routes, route+" "+md.Get(gate.MetadataSessionID))
			mu.Unlock()
			return md.With("added", "yes"), func(code rpc.Code) {
				mu.Lock()
				codes = append(codes, code)
				mu.Unlock()
			}
		},
	})
	addr, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: "tcp://" + addr.String()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	var out wrapperspb.StringValue
	if err := c.Request(ctx, "chat.Echo", wrapperspb.String("a"), &out); err != nil || out.Value != "echo:a" {
		t.Fatalf("Echo: %v %v", out.Value, err)
	}
	if err := c.Request(ctx, "chat.Fail", wrapperspb.String("b"), &out); rpc.CodeOf(err) != rpc.NotFound {
		t.Fatalf("Fail: %v", err)
	}
	// The panicking observer: the request goes on without it.
	if err := c.Request(ctx, "chat.Boom", wrapperspb.String("c"), &out); rpc.CodeOf(err) != rpc.Unimplemented {
		t.Fatalf("Boom: %v, want the service's Unimplemented", err)
	}
	await.True(t, 5*time.Second, "both observed requests to end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(codes) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	sid := c.SessionID()
	if len(routes) != 2 || routes[0] != "chat.Echo "+sid || routes[1] != "chat.Fail "+sid {
		t.Errorf("observed %q", routes)
	}
	if codes[0] != rpc.OK || codes[1] != rpc.NotFound {
		t.Errorf("codes %v, want OK then NotFound", codes)
	}
	if len(seen) != 3 || seen[0] != "yes" || seen[1] != "yes" || seen[2] != "" {
		t.Errorf("the service saw added=%q, want yes, yes and nothing after the panic", seen)
	}
}
