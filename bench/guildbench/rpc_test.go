package guildbench

import (
	"context"
	"testing"

	"github.com/guildkit/guild/bench/internal/benchkit"
	"github.com/guildkit/guild/examples/echo/echopb"
	"github.com/guildkit/guild/rpc"
)

// echoServer answers with one preallocated reply, as the responders of the
// request benchmarks do.
type echoServer struct{ reply *echopb.EchoReply }

func (s echoServer) Echo(*rpc.Context, *echopb.EchoRequest) (*echopb.EchoReply, error) {
	return s.reply, nil
}

// BenchmarkRPCRemote is BenchmarkRemoteRequest/guild through generated RPC:
// the typed client on node A calls the echo service on node B, one call in
// flight, over the same two-node harness. Its p50 and p99 compare with
// RemoteRequest's (goal: within 1.2x).
func BenchmarkRPCRemote(b *testing.B) {
	a, bn := startPair(b)
	ctx := context.Background()
	pid, err := echopb.RegisterEchoServer(ctx, bn.Actor(), echoServer{reply: &echopb.EchoReply{Text: "pong"}})
	if err != nil {
		b.Fatal(err)
	}
	client := echopb.NewEchoClient(rpc.NewClient(a.Actor()))
	req := &echopb.EchoRequest{Text: "ping"}
	to := rpc.To(pid)
	call := func() (any, error) { return client.Echo(ctx, to, req) }
	for range benchkit.RemoteWarmup {
		if _, err := call(); err != nil {
			b.Fatal(err)
		}
	}
	benchkit.RunRequestsCheck(b, func(reply any) bool {
		r, ok := reply.(*echopb.EchoReply)
		return ok && r.GetText() == "pong"
	}, call)
}

// BenchmarkRPCLocal is the generated client calling a handler on its own
// node: no encoding, the request handed over as it is. Compare with
// BenchmarkLocalRequest/guild, the raw actor Call it rides on (goal: within
// 2x).
func BenchmarkRPCLocal(b *testing.B) {
	n := newNode(b)
	ctx := context.Background()
	reply := &echopb.EchoReply{Text: "pong"}
	pid, err := echopb.RegisterEchoServer(ctx, n, echoServer{reply: reply})
	if err != nil {
		b.Fatal(err)
	}
	client := echopb.NewEchoClient(rpc.NewClient(n))
	req := &echopb.EchoRequest{Text: "ping"}
	to := rpc.To(pid)
	call := func() (any, error) { return client.Echo(ctx, to, req) }
	if _, err := call(); err != nil {
		b.Fatal(err)
	}
	benchkit.RunRequests(b, reply, call)
}
