package rpc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/rpc/internal/echopb"
)

// TestMetadata: what a caller puts in its context with rpc.WithMetadata,
// or a client interceptor adds, reaches the handler (IncomingMetadata) and
// the server interceptors, on the caller's node and on another; a call
// without metadata finds none.
func TestMetadata(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	local, _ := serve(t, c.Node(0))
	var seenByServer []string
	remote, _ := serve(t, c.Node(1), rpc.WithServerInterceptors(func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
		seenByServer = append(seenByServer, rpc.IncomingMetadata(ctx).Get("k"))
		return next(ctx, info, req)
	}))
	addOne := func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
		return next(rpc.WithMetadata(ctx, rpc.OutgoingMetadata(ctx).With("added", "by-interceptor")), info, req)
	}
	plain := newEcho(c.Node(0))
	intercepted := newEcho(c.Node(0), rpc.WithClientInterceptors(addOne))
	for _, tc := range []struct {
		name string
		svc  actor.PID
	}{{"local", local}, {"remote", remote}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := rpc.WithMetadata(ctxTimeout(t, 5*time.Second), actor.NewMetadata("k", "v", "guild-user-id", "u1"))
			reply, err := plain.Say(ctx, rpc.To(tc.svc), &echopb.SayRequest{Mode: "metadata", Text: "k"})
			if err != nil || reply.GetText() != "k=v n=2" {
				t.Fatalf("with metadata: %v, %v; want k=v n=2", reply.GetText(), err)
			}
			reply, err = plain.Say(ctxTimeout(t, 5*time.Second), rpc.To(tc.svc), &echopb.SayRequest{Mode: "metadata", Text: "k"})
			if err != nil || reply.GetText() != "k= n=0" {
				t.Fatalf("without metadata: %v, %v; want k= n=0", reply.GetText(), err)
			}
			reply, err = intercepted.Say(ctx, rpc.To(tc.svc), &echopb.SayRequest{Mode: "metadata", Text: "added"})
			if err != nil || reply.GetText() != "added=by-interceptor n=3" {
				t.Fatalf("added by a client interceptor: %v, %v", reply.GetText(), err)
			}
		})
	}
	if len(seenByServer) != 3 || seenByServer[0] != "v" || seenByServer[1] != "" || seenByServer[2] != "v" {
		t.Errorf("the server interceptor saw %q, want v, empty, v", seenByServer)
	}
}

// TestMetadataCallAsync: a client interceptor of CallAsync finds, as
// IncomingMetadata, the metadata of the message the calling actor is
// handling, and may pass it on to the call.
func TestMetadataCallAsync(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	svc, _ := serve(t, c.Node(1))
	passOn := func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
		return next(rpc.WithMetadata(ctx, rpc.IncomingMetadata(ctx)), info, req)
	}
	echo := newEcho(c.Node(0), rpc.WithClientInterceptors(passOn))
	out := make(chan string, 1)
	caller, err := c.Node(0).SpawnFunc(func(ac *actor.Context) {
		if _, ok := ac.Message().(string); !ok {
			return
		}
		err := echo.SayAsync(ac, rpc.To(svc), &echopb.SayRequest{Mode: "metadata", Text: "traceparent"}, 5*time.Second, func(r *echopb.SayReply, err error) {
			if err != nil {
				out <- err.Error()
				return
			}
			out <- r.GetText()
		})
		if err != nil {
			out <- err.Error()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node(0).Send(caller, actor.WithMetadata("go", actor.NewMetadata("traceparent", "tp1"))); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-out:
		if got != "traceparent=tp1 n=1" {
			t.Fatalf("the handler saw %q, want traceparent=tp1 n=1", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply")
	}
}

func TestSplitMethodName(t *testing.T) {
	for _, c := range []struct {
		full, service, method string
		ok                    bool
	}{
		{rpc.FullMethodName("game.v1.Arena", "Join"), "game.v1.Arena", "Join", true},
		{"pkg.Svc/M", "pkg.Svc", "M", true},
		{"/nomethod", "nomethod", "", false},
	} {
		s, m, ok := rpc.SplitMethodName(c.full)
		if s != c.service || m != c.method || ok != c.ok {
			t.Errorf("SplitMethodName(%q) = %q, %q, %v", c.full, s, m, ok)
		}
	}
}
