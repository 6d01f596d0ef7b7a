package cluster_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"
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
