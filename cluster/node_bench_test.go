package cluster_test

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
	"github.com/guildkit/guild/transport"
)

// BenchmarkRemoteCall measures a Call round trip between two nodes of one
// process over loopback TCP. Run it with -benchtime 5000x.
func BenchmarkRemoteCall(b *testing.B) {
	a, n := startPair(b)
	pid, _ := spawnServer(b, n)
	msg := wrapperspb.String("ping")
	ctx := context.Background()
	// Warm up the connection.
	if _, err := a.Actor().Call(ctx, pid, msg); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := a.Actor().Call(ctx, pid, msg); err != nil {
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

// BenchmarkRemoteSend measures one-way sends from node A to an actor on
// node B over loopback TCP: ns per message received. A full pending queue
// is retried, so nothing is dropped.
func BenchmarkRemoteSend(b *testing.B) {
	a, n := startPair(b)
	var got atomic.Int64
	done := make(chan struct{})
	target := int64(b.N) + 1 // +1: the warm-up message
	pid, err := n.Actor().SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(*wrapperspb.Int64Value); ok && got.Add(1) == target {
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
			err := a.Actor().Send(pid, msg)
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
