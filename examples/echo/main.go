// Command echo is clustergo's README scenario done the guild way: an echo
// service on one node, and a client on another node that calls it ten
// times. Both nodes run in this process, find each other through an
// embedded etcd, and talk over real TCP:
//
//	go run ./examples/echo
//
// The service is described in echopb/echo.proto; "make gen" (guild gen)
// writes echopb's Go code from it. The client reaches the service by node
// type, so adding more echo nodes spreads the calls over them, with no
// change to the client.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/examples/echo/echopb"
	"github.com/guildkit/guild/rpc"
)

// Node types of the example.
const (
	clientType = 1
	echoType   = 2
)

func main() {
	calls := flag.Int("calls", 10, "how many calls the client makes")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, *calls, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// echoServer implements echopb.EchoServer.
type echoServer struct{}

func (echoServer) Echo(ctx *rpc.Context, req *echopb.EchoRequest) (*echopb.EchoReply, error) {
	if req.GetText() == "" {
		return nil, rpc.Error(rpc.InvalidArgument, "nothing to echo")
	}
	return &echopb.EchoReply{Text: req.GetText(), Node: ctx.Actor().Self().Node.String()}, nil
}

// run starts the two nodes, makes the calls and prints what happened.
func run(ctx context.Context, calls int, out io.Writer) error {
	quiet := slog.New(slog.DiscardHandler)
	e, err := etcd.StartEmbedded("")
	if err != nil {
		return err
	}
	defer e.Close()

	start := func(addr actor.Addr) (*cluster.Node, *etcd.Membership, error) {
		m, err := etcd.New(etcd.Config{Endpoints: e.Endpoints(), TTL: 2 * time.Second, Logger: quiet})
		if err != nil {
			return nil, nil, err
		}
		n, err := cluster.Start(ctx, cluster.NodeConfig{
			Actor:      actor.Config{Addr: addr, Logger: quiet},
			Listen:     "127.0.0.1:0",
			Membership: m,
			Names:      m.Names(),
			Logger:     quiet,
		})
		if err != nil {
			m.Close()
			return nil, nil, err
		}
		return n, m, nil
	}

	// The echo node hosts the service.
	server, sm, err := start(actor.MustAddr(1, echoType, 1))
	if err != nil {
		return err
	}
	defer sm.Close()
	defer server.Close()
	if _, err := echopb.RegisterEchoServer(ctx, server.Actor(), echoServer{}); err != nil {
		return err
	}

	// The client node calls it by node type.
	client, cm, err := start(actor.MustAddr(1, clientType, 1))
	if err != nil {
		return err
	}
	defer cm.Close()
	defer client.Close()
	for !hasType(cm, echoType) { // the client's view of the members fills in
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	echo := echopb.NewEchoClient(rpc.NewClient(client.Actor(), rpc.WithMembership(cm)))
	fmt.Fprintf(out, "echo service on node %v, client on node %v\n", server.Actor().Addr(), client.Actor().Addr())
	for i := 1; i <= calls; i++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		start := time.Now()
		reply, err := echo.Echo(cctx, rpc.AnyOf(echoType, cluster.RoundRobin), &echopb.EchoRequest{Text: fmt.Sprintf("hello %d", i)})
		cancel()
		if err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		fmt.Fprintf(out, "call %2d: %q from node %s in %v\n", i, reply.GetText(), reply.GetNode(), time.Since(start).Round(time.Microsecond))
	}
	_, err = echo.Echo(ctx, rpc.AnyOf(echoType, cluster.RoundRobin), &echopb.EchoRequest{})
	fmt.Fprintf(out, "an empty request: %v (code %v)\n", err, rpc.CodeOf(err))
	return nil
}

// hasType reports whether the membership view holds a member of nodeType.
func hasType(m cluster.Membership, nodeType int) bool {
	for _, mb := range m.Members() {
		if mb.Addr.Type() == nodeType {
			return true
		}
	}
	return false
}
