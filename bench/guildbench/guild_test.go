package guildbench

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/bench/internal/benchkit"
)

func newNode(b *testing.B) *actor.Node {
	n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close() })
	return n
}

// counter counts *benchkit.Ping messages and closes done when it has seen
// target of them.
type counter struct {
	target int
	n      int
	done   chan struct{}
}

func (c *counter) Receive(ctx *actor.Context) {
	if _, ok := ctx.Message().(*benchkit.Ping); ok {
		c.n++
		if c.n == c.target {
			close(c.done)
		}
	}
}

// responder replies to every *benchkit.Ping with the same *benchkit.Pong.
type responder struct{ pong *benchkit.Pong }

func (r *responder) Receive(ctx *actor.Context) {
	if _, ok := ctx.Message().(*benchkit.Ping); ok {
		ctx.Respond(r.pong)
	}
}

// BenchmarkLocalSend: one sender goroutine (outside any actor, Node.Send)
// sends b.N messages to one actor with the default (unbounded) mailbox; the
// clock stops when the actor has handled all of them.
func BenchmarkLocalSend(b *testing.B) {
	b.Run("guild", func(b *testing.B) {
		n := newNode(b)
		done := make(chan struct{})
		pid, err := n.Spawn(func() actor.Actor { return &counter{target: b.N, done: done} })
		if err != nil {
			b.Fatal(err)
		}
		msg := &benchkit.Ping{}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := n.Send(pid, msg); err != nil {
				b.Fatal(err)
			}
		}
		<-done
		b.StopTimer()
	})
}

// BenchmarkLocalRequest: request/response round trips from outside any actor
// (Node.Call), one in flight at a time, with the node's default request
// timeout bounding each wait. It reports p50 and p99 besides ns/op.
func BenchmarkLocalRequest(b *testing.B) {
	b.Run("guild", func(b *testing.B) {
		n := newNode(b)
		pong := &benchkit.Pong{}
		pid, err := n.Spawn(func() actor.Actor { return &responder{pong: pong} })
		if err != nil {
			b.Fatal(err)
		}
		msg := &benchkit.Ping{}
		ctx := context.Background()
		benchkit.RunRequests(b, pong, func() (any, error) { return n.Call(ctx, pid, msg) })
	})
}

// BenchmarkLocalRequestDeadline is BenchmarkLocalRequest with a cancellable
// ctx carrying a deadline, which takes the path where the caller parks and a
// worker runs the target's turn (see actor.Node.Call).
func BenchmarkLocalRequestDeadline(b *testing.B) {
	b.Run("guild", func(b *testing.B) {
		n := newNode(b)
		pong := &benchkit.Pong{}
		pid, err := n.Spawn(func() actor.Actor { return &responder{pong: pong} })
		if err != nil {
			b.Fatal(err)
		}
		msg := &benchkit.Ping{}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		benchkit.RunRequests(b, pong, func() (any, error) { return n.Call(ctx, pid, msg) })
	})
}
