package clustertest_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/transport"
)

// BenchmarkClusterCall measures a Call round trip from node 0 to an actor
// on node 1 of a clustertest cluster, through the fault proxies (what a
// test built on clustertest pays per remote call) and without them
// (Options.Direct).
func BenchmarkClusterCall(b *testing.B) {
	b.Run("proxied", func(b *testing.B) { benchCall(b, false) })
	b.Run("direct", func(b *testing.B) { benchCall(b, true) })
}

func benchCall(b *testing.B, direct bool) {
	c := clustertest.Start(b, clustertest.Options{Nodes: 2, Direct: direct})
	pid, err := c.Node(1).SpawnFunc(func(ctx *actor.Context) {
		if m, ok := ctx.Message().(*wrapperspb.StringValue); ok {
			ctx.Respond(m)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	msg := wrapperspb.String("ping")
	ctx := context.Background()
	if _, err := c.Node(0).Call(ctx, pid, msg); err != nil { // warm up the connection
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := c.Node(0).Call(ctx, pid, msg); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkClusterSend measures one-way sends from node 0 to an actor on
// node 1 of a clustertest cluster, through the fault proxies and without
// them: ns per message received. A full pending queue is retried, so
// nothing is dropped.
func BenchmarkClusterSend(b *testing.B) {
	b.Run("proxied", func(b *testing.B) { benchSend(b, false) })
	b.Run("direct", func(b *testing.B) { benchSend(b, true) })
}

func benchSend(b *testing.B, direct bool) {
	c := clustertest.Start(b, clustertest.Options{Nodes: 2, Direct: direct})
	var got atomic.Int64
	done := make(chan struct{})
	target := int64(b.N) + 1 // +1: the warm-up message
	pid, err := c.Node(1).SpawnFunc(func(ctx *actor.Context) {
		if _, ok := ctx.Message().(*wrapperspb.Int64Value); ok && got.Add(1) == target {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	msg := wrapperspb.Int64(42)
	send := func() int {
		retries := 0
		for {
			err := c.Node(0).Send(pid, msg)
			if err == nil {
				return retries
			}
			if !errors.Is(err, transport.ErrPendingQueueFull) {
				b.Fatal(err)
			}
			retries++
			runtime.Gosched()
		}
	}
	send()
	b.ReportAllocs()
	b.ResetTimer()
	retries := 0
	for range b.N {
		retries += send()
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("received %d of %d", got.Load(), target)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(retries)/float64(b.N), "fullq/op")
}

// BenchmarkHarborRequest compares a Call round trip between two clusters
// (node → harbor of its cluster → harbor of the target's cluster →
// target, and back) with one within a cluster, in the same run: each
// iteration makes one of each, from node 0 of cluster 1, to echoes on
// node 1 of cluster 1 and node 1 of cluster 2, without fault proxies
// (Options.Direct). It reports both medians and their ratio (the goal:
// the cross-cluster p50 at most 3× the intra-cluster p50).
func BenchmarkHarborRequest(b *testing.B) {
	cs := clustertest.StartClusters(b, clustertest.ClustersOptions{Nodes: 2, Harbors: 1, Options: clustertest.Options{Direct: true}})
	echo := func(ctx *actor.Context) {
		if m, ok := ctx.Message().(*wrapperspb.StringValue); ok {
			ctx.Respond(m)
		}
	}
	near, err := cs.Each[0].Node(1).SpawnFunc(echo)
	if err != nil {
		b.Fatal(err)
	}
	far, err := cs.Each[1].Node(1).SpawnFunc(echo)
	if err != nil {
		b.Fatal(err)
	}
	from := cs.Each[0].Node(0)
	msg := wrapperspb.String("ping")
	ctx := context.Background()
	for _, pid := range []actor.PID{near, far} { // warm up every connection on the way
		if _, err := from.Call(ctx, pid, msg); err != nil {
			b.Fatal(err)
		}
	}
	intra := make([]time.Duration, 0, 1024)
	cross := make([]time.Duration, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := from.Call(ctx, near, msg); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if _, err := from.Call(ctx, far, msg); err != nil {
			b.Fatal(err)
		}
		intra = append(intra, mid.Sub(start))
		cross = append(cross, time.Since(mid))
	}
	b.StopTimer()
	p50 := func(lat []time.Duration) float64 {
		slices.Sort(lat)
		return float64(lat[(len(lat)-1)/2].Nanoseconds()) / 1e3
	}
	pi, pc := p50(intra), p50(cross)
	b.ReportMetric(pi, "intra-p50-µs")
	b.ReportMetric(pc, "cross-p50-µs")
	b.ReportMetric(pc/pi, "cross/intra")
}
