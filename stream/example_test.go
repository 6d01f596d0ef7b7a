package stream_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/stream"
)

// ExampleHost_OpenStream runs two nodes in one process, each with a stream
// host. Node B serves the "upper" service; node A opens a stream to it,
// writes, closes its side and reads the answer.
func ExampleHost_OpenStream() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	store := cluster.NewMemory() // in production: cluster/etcd
	start := func(addr actor.Addr) (*cluster.Node, *stream.Host, func()) {
		ms := store.Membership(addr)
		n, err := cluster.Start(ctx, cluster.NodeConfig{
			Actor:      actor.Config{Addr: addr, Logger: quiet},
			Listen:     "127.0.0.1:0",
			Membership: ms,
			Logger:     quiet,
		})
		if err != nil {
			panic(err)
		}
		h, err := stream.Start(ctx, n, stream.Config{Logger: quiet})
		if err != nil {
			panic(err)
		}
		return n, h, func() { _ = h.Close(); _ = n.Close(); _ = ms.Close() }
	}
	_, a, stopA := start(actor.MustAddr(1, 1, 1))
	defer stopA()
	nodeB, b, stopB := start(actor.MustAddr(1, 2, 1))
	defer stopB()

	b.Handle("upper", func(_ context.Context, s *stream.Stream) {
		in, _ := io.ReadAll(s)
		fmt.Fprintf(s, "%s (for %v, %s)", strings.ToUpper(string(in)), s.Peer(), s.Info())
	})

	s, err := a.OpenStream(ctx, nodeB.Addr(), stream.WithService("upper"), stream.WithInfo("example"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	io.WriteString(s, "hello over a stream")
	s.CloseWrite() // the handler's ReadAll ends
	out, err := io.ReadAll(s)
	fmt.Println(string(out), err)

	_, err = a.OpenStream(ctx, nodeB.Addr(), stream.WithService("nope"))
	fmt.Println(err)
	// Output:
	// HELLO OVER A STREAM (for 1.1.1, example) <nil>
	// stream: no such service on the peer: "nope" on 1.2.1
}
