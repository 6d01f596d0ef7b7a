package actor

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
)

// benchNode starts a node for a benchmark and closes it at the end.
func benchNode(b *testing.B) *Node {
	b.Helper()
	n, err := NewNode(Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close() })
	return n
}

// BenchmarkSend measures one-way messages into one actor, counted once the
// actor has handled them.
func BenchmarkSend(b *testing.B) {
	n := benchNode(b)
	var got atomic.Int64
	done := make(chan struct{})
	want := int64(b.N)
	pid, err := n.SpawnFunc(func(c *Context) {
		if _, ok := c.Message().(int); ok {
			if got.Add(1) == want {
				close(done)
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := n.Send(pid, 1); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}

// spawnResponder starts an actor that answers every int with 2.
func spawnResponder(b *testing.B, n *Node) PID {
	b.Helper()
	pid, err := n.SpawnFunc(func(c *Context) {
		if _, ok := c.Message().(int); ok {
			c.Respond(2)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	return pid
}

// BenchmarkCall measures request/response round trips between two actors:
// a client actor Calls a server actor b.N times.
func BenchmarkCall(b *testing.B) {
	n := benchNode(b)
	server := spawnResponder(b, n)
	done := make(chan error, 1)
	client, err := n.SpawnFunc(func(c *Context) {
		if _, ok := c.Message().(string); !ok {
			return
		}
		ctx := context.Background()
		for i := 0; i < b.N; i++ {
			if _, err := c.Call(ctx, server, 1); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := n.Send(client, "go"); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRequest measures Request round trips between two actors, the
// callback form: each reply triggers the next request.
func BenchmarkRequest(b *testing.B) {
	n := benchNode(b)
	server := spawnResponder(b, n)
	done := make(chan error, 1)
	left := b.N
	var next func(c *Context)
	next = func(c *Context) {
		err := c.Request(server, 1, 0, func(_ any, err error) {
			if err != nil {
				done <- err
				return
			}
			if left--; left == 0 {
				done <- nil
				return
			}
			next(c)
		})
		if err != nil {
			done <- err
		}
	}
	client, err := n.SpawnFunc(func(c *Context) {
		if _, ok := c.Message().(string); ok {
			next(c)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	_ = n.Send(client, "go")
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCallOutside measures Call from a plain goroutine into an actor.
func BenchmarkCallOutside(b *testing.B) {
	n := benchNode(b)
	server := spawnResponder(b, n)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := n.Call(ctx, server, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// idleActor does nothing; BenchmarkIdleActors spawns many of them.
type idleActor struct{}

func (idleActor) Receive(*Context) {}

func newIdleActor() Actor { return idleActor{} }

// BenchmarkIdleActors spawns b.N idle actors (at least 100,000) and reports
// the heap bytes each costs, registry entry included.
func BenchmarkIdleActors(b *testing.B) {
	count := max(b.N, 100_000)
	n := benchNode(b)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < count; i++ {
		if _, err := n.Spawn(newIdleActor); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for n.Stats().Actors != int64(count) || goroutinesBusy(n) {
		runtime.Gosched()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(count), "B/actor")
	b.ReportMetric(float64(count), "actors")
}

// goroutinesBusy reports whether any turn goroutine is still running.
func goroutinesBusy(n *Node) bool {
	var busy bool
	n.procs.each(func(p *process) {
		p.mb.mu.Lock()
		if p.mb.scheduled {
			busy = true
		}
		p.mb.mu.Unlock()
	})
	return busy
}
