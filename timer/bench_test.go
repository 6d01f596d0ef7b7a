package timer

import (
	"math/rand/v2"
	"testing"
	"time"
)

const (
	benchPending = 1_000_000
	benchTable   = 1 << 16 // pre-generated delays, indexed with i&(benchTable-1)
)

// BenchmarkWheel measures one schedule plus one Stop on a wheel that already
// holds a million pending timers spread over levels 1..3.
func BenchmarkWheel(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := New()
	f := func() {}
	for range benchPending {
		w.After(1+rng.Uint64N(1<<24-1), f)
	}
	delays := make([]uint64, benchTable)
	for i := range delays {
		delays[i] = 1 + rng.Uint64N(1<<24-1)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		t := w.After(delays[i&(benchTable-1)], f)
		t.Stop()
	}
	if w.Len() != benchPending {
		b.Fatalf("Len() = %d, want %d", w.Len(), benchPending)
	}
}

// BenchmarkTimeAfterFunc is BenchmarkWheel's shape with the standard
// library: a million pending time.AfterFunc timers set hours out, then
// time.AfterFunc plus Stop per operation.
func BenchmarkTimeAfterFunc(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := func() {}
	randHours := func() time.Duration {
		return time.Hour + time.Duration(rng.Int64N(int64(24*time.Hour)))
	}
	pending := make([]*time.Timer, benchPending)
	for i := range pending {
		pending[i] = time.AfterFunc(randHours(), f)
	}
	delays := make([]time.Duration, benchTable)
	for i := range delays {
		delays[i] = randHours()
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		t := time.AfterFunc(delays[i&(benchTable-1)], f)
		t.Stop()
	}
	for _, t := range pending {
		t.Stop()
	}
}
