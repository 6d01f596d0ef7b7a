package idgen

import (
	"testing"
	"time"
)

// The figures include the snowflake cap of 4096 IDs per millisecond per
// generator (244 ns per ID): past it, Next sleeps.

func BenchmarkSnowflake(b *testing.B) {
	g, err := New(1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}

func BenchmarkSnowflakeParallel(b *testing.B) {
	g, err := New(1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.Next(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}

// fastClock runs 100 times faster than time.Now, so the uncapped
// benchmarks measure Next's own cost rather than the 4096/ms cap.
func fastClock() func() time.Time {
	base := time.Now()
	return func() time.Time { return base.Add(time.Since(base) * 100) }
}

func BenchmarkSnowflakeUncapped(b *testing.B) {
	g, err := New(1, WithClock(fastClock()))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}

func BenchmarkSnowflakeUncappedParallel(b *testing.B) {
	g, err := New(1, WithClock(fastClock()))
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.Next(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}
