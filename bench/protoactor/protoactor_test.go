package protoactor

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/guildkit/guild/bench/internal/benchkit"
)

// Settings: Proto.Actor's own defaults, spelled out.
//
//   - Mailbox: actor.Unbounded() is the default mailbox producer
//     (actor/props.go: defaultMailboxProducer = Unbounded()). The source says
//     the alternative UnboundedLockfree "has a slower throughput than the plain
//     Unbounded mailbox" (actor/unbounded_lock_free.go), and actor.Bounded
//     blocks the sender when full, which a one-way send benchmark with no flow
//     control must not do.
//   - Dispatcher: actor.NewDefaultDispatcher(300), the default
//     (actor/props.go: defaultDispatcher = NewDefaultDispatcher(300)); its
//     in-process benchmark example sweeps 300..900 and starts at 300.
const dispatcherThroughput = 300

func props(producer actor.Producer) *actor.Props {
	return actor.PropsFromProducer(producer,
		actor.WithMailbox(actor.Unbounded()),
		actor.WithDispatcher(actor.NewDefaultDispatcher(dispatcherThroughput)),
	)
}

// newSystem returns an actor system whose logger only reports errors (the
// default logs "actor system started" at Info level to stderr for every
// system, which would litter benchmark output).
func newSystem() *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
}

// counter counts *benchkit.Ping messages and closes done when it has seen
// target of them.
type counter struct {
	target int
	n      int
	done   chan struct{}
}

func (c *counter) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*benchkit.Ping); ok {
		c.n++
		if c.n == c.target {
			close(c.done)
		}
	}
}

// responder replies to every *benchkit.Ping with the same preallocated
// *benchkit.Pong.
type responder struct{ pong *benchkit.Pong }

func (r *responder) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*benchkit.Ping); ok {
		ctx.Respond(r.pong)
	}
}

// BenchmarkLocalSend: one sender goroutine (the root context, outside any
// actor) sends b.N messages to one actor; the clock stops when the actor has
// processed all of them, so ns/op is per message processed.
func BenchmarkLocalSend(b *testing.B) {
	b.Run("protoactor", func(b *testing.B) {
		system := newSystem()
		defer system.Shutdown()
		done := make(chan struct{})
		pid := system.Root.Spawn(props(func() actor.Actor {
			return &counter{target: b.N, done: done}
		}))
		defer func() { _ = system.Root.StopFuture(pid).Wait() }()
		msg := &benchkit.Ping{}

		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			system.Root.Send(pid, msg)
		}
		<-done
		b.StopTimer()
	})
}

// BenchmarkLocalRequest: request/response round trips from outside any actor,
// one in flight at a time. Besides ns/op it reports the p50 and p99 of the
// per-request latency.
func BenchmarkLocalRequest(b *testing.B) {
	b.Run("protoactor", func(b *testing.B) {
		system := newSystem()
		defer system.Shutdown()
		pong := &benchkit.Pong{}
		pid := system.Root.Spawn(props(func() actor.Actor {
			return &responder{pong: pong}
		}))
		defer func() { _ = system.Root.StopFuture(pid).Wait() }()
		msg := &benchkit.Ping{}
		benchkit.RunRequests(b, pong, func() (any, error) {
			return system.Root.RequestFuture(pid, msg, benchkit.RequestTimeout).Result()
		})
	})
}
