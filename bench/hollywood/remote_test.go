package hollywood

import (
	"fmt"
	"testing"

	"github.com/anthdm/hollywood/actor"
	"github.com/anthdm/hollywood/remote"

	"github.com/guildkit/guild/bench/internal/benchkit"
)

// The remote benchmarks run two engines, A and B, in this process, each with
// remoting (DRPC over TCP) on 127.0.0.1, and send from A to an actor on B
// over loopback. Hollywood's remote cannot listen on port 0: the engine's
// address (and so every PID it hands out) is the string given to
// remote.New, not the address the listener got. So each engine gets a port
// found free with benchkit.FreePort just before. Remoting uses
// remote.NewConfig()'s defaults. Hollywood's remote logs through the
// default slog logger, which TestMain limits to errors, and which is muted
// while the engines are torn down (see logMuted).

// startRemote returns an engine with remoting started, and registers the
// remote's shutdown with b.Cleanup.
func startRemote(b *testing.B) *actor.Engine {
	b.Helper()
	logMuted.Store(false) // a previous run's teardown may have left it set
	r := remote.New(fmt.Sprintf("127.0.0.1:%d", benchkit.FreePort(b)), remote.NewConfig())
	e, err := actor.NewEngine(actor.NewEngineConfig().WithRemote(r))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		logMuted.Store(true) // the teardown's connection errors are expected
		r.Stop().Wait()
	})
	return e
}

// spawnOn spawns p on e and registers its shutdown with b.Cleanup. The PID
// carries e's address, so another engine sending to it goes over the
// network.
func spawnOn(b *testing.B, e *actor.Engine, p actor.Producer, kind string) *actor.PID {
	b.Helper()
	pid := e.Spawn(p, kind, actor.WithInboxSize(inboxSize))
	b.Cleanup(func() { <-e.Poison(pid).Done() })
	return pid
}

// remoteCounter counts RemotePing messages.
type remoteCounter struct{ c *benchkit.Counter }

func (r *remoteCounter) Receive(ctx *actor.Context) {
	if benchkit.IsRemotePing(ctx.Message()) {
		r.c.Add()
	}
}

// remoteResponder replies to every RemotePing with one preallocated pong.
type remoteResponder struct{ pong any }

func (r *remoteResponder) Receive(ctx *actor.Context) {
	if benchkit.IsRemotePing(ctx.Message()) {
		ctx.Respond(r.pong)
	}
}

// BenchmarkRemoteSend: one goroutine on engine A (Engine.Send, outside any
// actor) sends b.N one-way messages to an actor on engine B. The clock
// stops when B's actor has received all of them, so ns/op is per message
// received. Hollywood's Send has no error to retry on (the remote's router
// inbox grows without bound), so "fullq/op" is always 0; it is reported to
// keep the columns the same as guild's.
func BenchmarkRemoteSend(b *testing.B) {
	b.Run("hollywood", func(b *testing.B) {
		ea, eb := startRemote(b), startRemote(b)
		cnt := benchkit.NewCounter(benchkit.RemoteWarmup, b.N)
		pid := spawnOn(b, eb, func() actor.Receiver { return &remoteCounter{c: cnt} }, "counter")
		msg := benchkit.NewRemotePing()
		for range benchkit.RemoteWarmup {
			ea.Send(pid, msg)
		}
		benchkit.Wait(b, cnt.Warmed, "the warm-up messages")

		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			ea.Send(pid, msg)
		}
		benchkit.Wait(b, cnt.Done, "the receiver to get every message")
		b.StopTimer()
		benchkit.ReportRate(b, "msgs/s")
		b.ReportMetric(0, "fullq/op")
	})
}

// BenchmarkRemoteRequest: request/response round trips from outside any
// actor on engine A (Engine.Request(...).Result()) to a responder on engine
// B, one in flight at a time. Besides ns/op it reports p50 and p99 in µs.
func BenchmarkRemoteRequest(b *testing.B) {
	b.Run("hollywood", func(b *testing.B) {
		benchkit.RunRequestsCheck(b, benchkit.IsRemotePong, remoteCaller(b))
	})
}

// BenchmarkRemoteRequestConcurrent: 64 goroutines on engine A request the
// responder on engine B at once (Engine.Request(...).Result(), each one
// request at a time). "rt/s" is round trips per second.
func BenchmarkRemoteRequestConcurrent(b *testing.B) {
	b.Run("hollywood", func(b *testing.B) {
		benchkit.RunConcurrent(b, benchkit.ConcurrentCallers, benchkit.IsRemotePong, remoteCaller(b))
	})
}

// remoteCaller starts two remote systems, A and B, and a responder on B,
// and returns a request from outside any actor on A to it, warmed up.
func remoteCaller(b *testing.B) func() (any, error) {
	b.Helper()
	ea, eb := startRemote(b), startRemote(b)
	pong := benchkit.NewRemotePong()
	pid := spawnOn(b, eb, func() actor.Receiver { return &remoteResponder{pong: pong} }, "responder")
	msg := benchkit.NewRemotePing()
	call := func() (any, error) {
		return ea.Request(pid, msg, benchkit.RequestTimeout).Result()
	}
	benchkit.WarmUp(b, call)
	return call
}
