package hollywood

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"

	"github.com/anthdm/hollywood/actor"

	"github.com/guildkit/guild/bench/internal/benchkit"
)

// Settings: Hollywood has no engine-level mailbox or dispatcher options in
// v1.0.5 (actor.EngineConfig only carries a remote), so the one knob is the
// per-actor inbox size. The inbox is a mutex-protected ring buffer that
// doubles when full (ringbuffer/ringbuffer.go), so the size is the initial
// capacity; the default is 1024 (actor/opts.go). We use 1024*8, the value
// Hollywood's own send benchmark uses
// (actor/engine_test.go: BenchmarkSendWithSenderMessageLocal, WithInboxSize(1024*8)),
// and which the README shows as the way to tune an actor
// (README "With custom configuration": actor.WithInboxSize(1024 * 2)).
// The scheduler throughput (300) is fixed in actor/inbox.go.
const inboxSize = 1024 * 8

// TestMain sends Hollywood's logging (it logs through the default log/slog
// logger) to a handler that drops everything below Error, so the benchmark
// output stays clean but real failures still show. The handler also drops
// everything while logMuted is set (see startRemote in remote_test.go).
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(muteHandler{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})}))
	os.Exit(m.Run())
}

// logMuted, while set, makes the default logger drop everything. The remote
// benchmarks set it while they tear their engines down: Hollywood's stream
// writers then log at Error level ("stream writer failed sending message"
// err="context canceled") as their connections close, and those lines would
// land in the middle of the benchmark's result line.
var logMuted atomic.Bool

// muteHandler is a slog.Handler that is disabled while logMuted is set.
type muteHandler struct{ slog.Handler }

func (h muteHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !logMuted.Load() && h.Handler.Enabled(ctx, l)
}

func (h muteHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return muteHandler{h.Handler.WithAttrs(as)}
}

func (h muteHandler) WithGroup(name string) slog.Handler {
	return muteHandler{h.Handler.WithGroup(name)}
}

func newEngine(b *testing.B) *actor.Engine {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		b.Fatal(err)
	}
	return e
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

// responder replies to every *benchkit.Ping with the same preallocated
// *benchkit.Pong.
type responder struct{ pong *benchkit.Pong }

func (r *responder) Receive(ctx *actor.Context) {
	if _, ok := ctx.Message().(*benchkit.Ping); ok {
		ctx.Respond(r.pong)
	}
}

// BenchmarkLocalSend: one sender goroutine (outside any actor, via
// Engine.Send) sends b.N messages to one actor; the clock stops when the
// actor has processed all of them, so ns/op is per message processed.
func BenchmarkLocalSend(b *testing.B) {
	b.Run("hollywood", func(b *testing.B) {
		e := newEngine(b)
		done := make(chan struct{})
		pid := e.Spawn(func() actor.Receiver {
			return &counter{target: b.N, done: done}
		}, "counter", actor.WithInboxSize(inboxSize))
		defer func() { <-e.Poison(pid).Done() }()
		msg := &benchkit.Ping{}

		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			e.Send(pid, msg)
		}
		<-done
		b.StopTimer()
	})
}

// BenchmarkLocalRequest: request/response round trips from outside any actor
// (Engine.Request(...).Result()), one in flight at a time. Besides ns/op it
// reports the p50 and p99 of the per-request latency.
func BenchmarkLocalRequest(b *testing.B) {
	b.Run("hollywood", func(b *testing.B) {
		e := newEngine(b)
		pong := &benchkit.Pong{}
		pid := e.Spawn(func() actor.Receiver {
			return &responder{pong: pong}
		}, "responder", actor.WithInboxSize(inboxSize))
		defer func() { <-e.Poison(pid).Done() }()
		msg := &benchkit.Ping{}
		benchkit.RunRequests(b, pong, func() (any, error) {
			return e.Request(pid, msg, benchkit.RequestTimeout).Result()
		})
	})
}
