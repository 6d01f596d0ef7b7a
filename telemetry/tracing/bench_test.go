package tracing_test

import (
	"context"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/examples/echo/echopb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/telemetry/tracing"
)

// Tracing's cost, in the same run: each benchmark calls an echo service
// with no tracing ("off"), with the interceptors and a tracer that samples
// nothing ("unsampled": the trace context still travels, as it does for
// most requests of a production cluster that samples a few percent), and
// with every call recorded into an in-memory span processor ("sampled").
//
//	go test -run '^$' -bench . -count 6 ./telemetry/tracing/
//
// docs/PERFORMANCE.md ("Telemetry") has the figures.

var modes = []string{"off", "unsampled", "sampled"}

// interceptors returns the options that trace calls in mode.
func interceptors(b *testing.B, mode string) ([]rpc.ServeOption, []rpc.ClientOption) {
	if mode == "off" {
		return nil, nil
	}
	sampler := sdktrace.NeverSample()
	if mode == "sampled" {
		sampler = sdktrace.AlwaysSample()
	}
	provider := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	b.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	tr := tracing.New(tracing.Config{Provider: provider})
	return []rpc.ServeOption{rpc.WithServerInterceptors(tr.ServerInterceptor())}, []rpc.ClientOption{rpc.WithClientInterceptors(tr.ClientInterceptor())}
}

// BenchmarkLocalRPC: a typed call to a service on the caller's node.
func BenchmarkLocalRPC(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			sopts, copts := interceptors(b, mode)
			n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			ctx := context.Background()
			svc, err := echopb.RegisterEchoServer(ctx, n, echoServer{}, sopts...)
			if err != nil {
				b.Fatal(err)
			}
			client := echopb.NewEchoClient(rpc.NewClient(n, copts...))
			req := &echopb.EchoRequest{Text: "hi"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Echo(ctx, rpc.To(svc), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRemoteRPC: the same call between two nodes of one process over
// loopback TCP.
func BenchmarkRemoteRPC(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			sopts, copts := interceptors(b, mode)
			ms := cluster.NewMemory()
			quiet := slog.New(slog.DiscardHandler)
			start := func(addr actor.Addr) *cluster.Node {
				mem := ms.Membership(addr)
				b.Cleanup(func() { _ = mem.Close() })
				n, err := cluster.Start(context.Background(), cluster.NodeConfig{
					Actor: actor.Config{Addr: addr, Logger: quiet}, Listen: "127.0.0.1:0",
					Membership: mem, Names: ms.Names(), Logger: quiet,
				})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = n.Close() })
				return n
			}
			a, c := start(actor.MustAddr(1, 1, 1)), start(actor.MustAddr(1, 2, 1))
			ctx := context.Background()
			svc, err := echopb.RegisterEchoServer(ctx, c.Actor(), echoServer{}, sopts...)
			if err != nil {
				b.Fatal(err)
			}
			client := echopb.NewEchoClient(rpc.NewClient(a.Actor(), copts...))
			req := &echopb.EchoRequest{Text: "hi"}
			if _, err := client.Echo(ctx, rpc.To(svc), req); err != nil { // connect
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Echo(ctx, rpc.To(svc), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
