package prom_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/telemetry/prom"
)

// Telemetry's cost, in the same run: each benchmark has an "off"
// sub-benchmark (no Metrics at all) and an "on" one (the node's
// collectors registered, the RPC interceptors installed, and /metrics
// scraped over HTTP every scrapeEvery meanwhile, ten times a Prometheus
// default's rate).
//
//	go test -run '^$' -bench . -count 6 ./telemetry/prom/
//
// docs/PERFORMANCE.md ("Telemetry") has the figures.

const scrapeEvery = 100 * time.Millisecond

// scraper scrapes srv's /metrics every scrapeEvery until the benchmark
// ends.
func scraper(b *testing.B, srv *prom.Server) {
	b.Helper()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(scrapeEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				resp, err := http.Get(srv.URL() + "/metrics")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}()
	b.Cleanup(func() { close(quit); wg.Wait(); _ = srv.Close() })
}

// serveMetrics serves m on a free port and scrapes it during the benchmark.
func serveMetrics(b *testing.B, m *prom.Metrics) {
	b.Helper()
	srv, err := prom.Serve(prom.Config{Listen: "127.0.0.1:0", Metrics: m, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	scraper(b, srv)
}

func echoActor(c *actor.Context) {
	if m, ok := c.Message().(*wrapperspb.StringValue); ok {
		c.Respond(m)
	}
}

// BenchmarkLocalRequest: a Call from outside any actor to an actor of the
// same node (the round trip of README's table).
func BenchmarkLocalRequest(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(onOff(on), func(b *testing.B) {
			n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			if on {
				m := prom.New()
				if err := m.AddActor(n); err != nil {
					b.Fatal(err)
				}
				serveMetrics(b, m)
			}
			pid, err := n.SpawnFunc(echoActor)
			if err != nil {
				b.Fatal(err)
			}
			msg, ctx := wrapperspb.String("ping"), context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := n.Call(ctx, pid, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRemoteRequest: a Call between two nodes of one process over
// loopback TCP (an in-memory membership).
func BenchmarkRemoteRequest(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(onOff(on), func(b *testing.B) {
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
				if on {
					m := prom.New()
					if err := m.AddActor(n.Actor()); err != nil {
						b.Fatal(err)
					}
					if err := m.AddPeers(n); err != nil {
						b.Fatal(err)
					}
					serveMetrics(b, m)
				}
				return n
			}
			a, c := start(actor.MustAddr(1, 1, 1)), start(actor.MustAddr(1, 2, 1))
			pid, err := c.Actor().SpawnFunc(echoActor)
			if err != nil {
				b.Fatal(err)
			}
			msg, ctx := wrapperspb.String("ping"), context.Background()
			if _, err := a.Actor().Call(ctx, pid, msg); err != nil { // connect
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Actor().Call(ctx, pid, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLocalRPC: a typed RPC call to a service on the caller's node,
// with the client and server interceptors timing it when on.
func BenchmarkLocalRPC(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(onOff(on), func(b *testing.B) {
			n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			var sopts []rpc.ServeOption
			var copts []rpc.ClientOption
			if on {
				m := prom.New()
				if err := m.AddActor(n); err != nil {
					b.Fatal(err)
				}
				sopts = append(sopts, rpc.WithServerInterceptors(m.ServerInterceptor()))
				copts = append(copts, rpc.WithClientInterceptors(m.ClientInterceptor()))
				serveMetrics(b, m)
			}
			ctx := context.Background()
			svc, err := rpc.Serve(ctx, n, echoDesc, nil, sopts...)
			if err != nil {
				b.Fatal(err)
			}
			client := rpc.NewClient(n, copts...)
			req := wrapperspb.String("hi")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Call(ctx, rpc.To(svc), echoDesc.Name, "/test.Echo/Say", req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
