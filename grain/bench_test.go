package grain_test

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/grain"
)

// echoKind's grains answer every message with itself; they keep no state.
func echoKind(name string) grain.Kind {
	return grain.Kind{
		Name:        name,
		IdleTimeout: time.Hour,
		New: func(grain.Identity) grain.Actor {
			return grain.ActorFunc(func(c *grain.Context) {
				if c.IsRequest() {
					c.Respond(c.Message())
				}
			})
		},
	}
}

// BenchmarkGrainCall compares a Call to an active grain with a plain
// actor Call to an actor doing the same work, in the same run: on the
// caller's node ("local") and across TCP ("remote").
func BenchmarkGrainCall(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		s := localSystem(b, nil, 1, grain.Config{Kinds: []grain.Kind{echoKind("e")}})
		id := grain.Identity{Kind: "e", Key: "1"}
		ctx := context.Background()
		msg := wrapperspb.Int64(1)
		pid, err := s.ResolveGrain(ctx, id.Kind, id.Key)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("grain", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Call(ctx, id, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("actor", func(b *testing.B) {
			n := nodeOf(b, s, pid)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := n.Call(ctx, pid, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("remote", func(b *testing.B) {
		ms := cluster.NewMemory()
		cfg := grain.Config{Kinds: []grain.Kind{echoKind("e")}, Claims: grain.NewLocalClaimer()}
		sa := localSystem(b, ms, 1, cfg)
		sb := localSystem(b, ms, 2, cfg)
		waitFor(b, "both hosts", func() bool { return sa.Hosts("e") == 2 && sb.Hosts("e") == 2 })
		ctx := context.Background()
		var id grain.Identity
		for i := 0; ; i++ {
			id = grain.Identity{Kind: "e", Key: strconv.Itoa(i)}
			if _, err := sa.Call(ctx, id, wrapperspb.Int64(1)); err != nil {
				b.Fatal(err)
			}
			if sb.IsActive(id) {
				break
			}
		}
		pid, err := sb.ResolveGrain(ctx, id.Kind, id.Key)
		if err != nil {
			b.Fatal(err)
		}
		msg := wrapperspb.Int64(1)
		b.Run("grain", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sa.Call(ctx, id, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("actor", func(b *testing.B) {
			n := nodeOf(b, sa, actor.PID{})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := n.Call(ctx, pid, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkGrainActivate measures activations (claim, load from the
// store, spawn, first message) on one node with a LocalClaimer and a
// in-memory store.
func BenchmarkGrainActivate(b *testing.B) {
	k := seqKind("p", nil, time.Hour, time.Hour)
	s := localSystem(b, nil, 1, grain.Config{Kinds: []grain.Kind{k}, Claims: grain.NewLocalClaimer()})
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	msg := wrapperspb.Int64(1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := s.Send(grain.Identity{Kind: "p", Key: keys[i]}, msg); err != nil {
			b.Fatal(err)
		}
	}
	for s.Stats().Activations != uint64(b.N) {
		runtime.Gosched()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "activations/s")
}

// BenchmarkIdleGrains activates b.N grains (at least 100,000) that keep a
// small state, and reports the heap bytes each costs once idle: actor,
// activation, table entry, state and key.
func BenchmarkIdleGrains(b *testing.B) {
	count := max(b.N, 100_000)
	k := seqKind("p", nil, time.Hour, time.Hour)
	// Count the messages handled, to measure once every grain is idle
	// (not while messages are still queued).
	var handled atomic.Int64
	recv := grain.ActorFunc(func(c *grain.Context) {
		seqReceive(c)
		if _, ok := c.Message().(*wrapperspb.Int64Value); ok {
			handled.Add(1)
		}
	})
	k.New = func(grain.Identity) grain.Actor { return recv }
	// One node: the default SoleClaimer, which keeps no per-grain claim.
	s := localSystem(b, nil, 1, grain.Config{Kinds: []grain.Kind{k}})
	keys := make([]string, count)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	msg := wrapperspb.Int64(1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := range count {
		if err := s.Send(grain.Identity{Kind: "p", Key: keys[i]}, msg); err != nil {
			b.Fatal(err)
		}
	}
	for handled.Load() != int64(count) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	time.Sleep(50 * time.Millisecond) // the last turns end
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(count), "B/grain")
	b.ReportMetric(float64(count), "grains")
	if path := os.Getenv("GRAIN_IDLE_HEAPPROFILE"); path != "" {
		writeHeapProfile(b, path)
	}
	// Close here, with time enough to flush and stop every grain (a
	// million take longer than the Cleanup's deadline).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

// writeHeapProfile writes the live heap to path, for go tool pprof.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// nodeOf returns the actor node behind s, through a grain's Context.
func nodeOf(b *testing.B, s *grain.System, _ actor.PID) *actor.Node {
	return grain.NodeOf(s)
}
