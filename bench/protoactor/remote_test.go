package protoactor

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/guildkit/guild/bench/internal/benchkit"
)

// The remote benchmarks run two actor systems, A and B, in this process,
// each with remoting (gRPC) listening on 127.0.0.1:0 (Proto.Actor takes the
// address it really got from the listener), and send from A to an actor on
// B over loopback. Remoting uses remote.Configure's defaults (endpoint
// writer batch size 1000, queue size 1,000,000). The systems' loggers
// discard everything (newSystem), which covers remoting too: it logs
// through the system's logger.

// startRemote returns an actor system with remoting started, and registers
// their shutdown with b.Cleanup.
func startRemote(b *testing.B) *actor.ActorSystem {
	b.Helper()
	system := newSystem()
	r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0))
	r.Start()
	b.Cleanup(func() {
		r.Shutdown(true)
		system.Shutdown()
	})
	return system
}

// spawnOn spawns props on system and returns the PID to reach it from
// another system. That must be a fresh PID: the one Spawn returns caches a
// pointer to the local process, and another system using it would deliver
// straight into the mailbox instead of going over the network.
func spawnOn(b *testing.B, system *actor.ActorSystem, props *actor.Props) *actor.PID {
	b.Helper()
	pid := system.Root.Spawn(props)
	b.Cleanup(func() { _ = system.Root.StopFuture(pid).Wait() })
	return actor.NewPID(pid.Address, pid.Id)
}

// remoteCounter counts RemotePing messages.
type remoteCounter struct{ c *benchkit.Counter }

func (r *remoteCounter) Receive(ctx actor.Context) {
	if benchkit.IsRemotePing(ctx.Message()) {
		r.c.Add()
	}
}

// remoteResponder replies to every RemotePing with one preallocated pong.
type remoteResponder struct{ pong any }

func (r *remoteResponder) Receive(ctx actor.Context) {
	if benchkit.IsRemotePing(ctx.Message()) {
		ctx.Respond(r.pong)
	}
}

// BenchmarkRemoteSend: one goroutine on system A (the root context, outside
// any actor) sends b.N one-way messages to an actor on system B. The clock
// stops when B's actor has received all of them, so ns/op is per message
// received. Proto.Actor's Send has no error to retry on (its endpoint queue
// holds 1,000,000 messages by default), so "fullq/op" is always 0; it is
// reported to keep the columns the same as guild's.
func BenchmarkRemoteSend(b *testing.B) {
	b.Run("protoactor", func(b *testing.B) {
		sa, sb := startRemote(b), startRemote(b)
		cnt := benchkit.NewCounter(benchkit.RemoteWarmup, b.N)
		pid := spawnOn(b, sb, props(func() actor.Actor { return &remoteCounter{c: cnt} }))
		msg := benchkit.NewRemotePing()
		for range benchkit.RemoteWarmup {
			sa.Root.Send(pid, msg)
		}
		benchkit.Wait(b, cnt.Warmed, "the warm-up messages")

		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			sa.Root.Send(pid, msg)
		}
		benchkit.Wait(b, cnt.Done, "the receiver to get every message")
		b.StopTimer()
		benchkit.ReportRate(b, "msgs/s")
		b.ReportMetric(0, "fullq/op")
	})
}

// BenchmarkRemoteRequest: request/response round trips from outside any
// actor on system A (RequestFuture(...).Result()) to a responder on system
// B, one in flight at a time. Besides ns/op it reports p50 and p99 in µs.
func BenchmarkRemoteRequest(b *testing.B) {
	b.Run("protoactor", func(b *testing.B) {
		benchkit.RunRequestsCheck(b, benchkit.IsRemotePong, remoteCaller(b))
	})
}

// BenchmarkRemoteRequestConcurrent: 64 goroutines on system A request the
// responder on system B at once (RequestFuture(...).Result(), each one
// request at a time). "rt/s" is round trips per second.
func BenchmarkRemoteRequestConcurrent(b *testing.B) {
	b.Run("protoactor", func(b *testing.B) {
		benchkit.RunConcurrent(b, benchkit.ConcurrentCallers, benchkit.IsRemotePong, remoteCaller(b))
	})
}

// remoteCaller starts two remote systems, A and B, and a responder on B,
// and returns a request from outside any actor on A to it, warmed up.
func remoteCaller(b *testing.B) func() (any, error) {
	b.Helper()
	sa, sb := startRemote(b), startRemote(b)
	pong := benchkit.NewRemotePong()
	pid := spawnOn(b, sb, props(func() actor.Actor { return &remoteResponder{pong: pong} }))
	msg := benchkit.NewRemotePing()
	call := func() (any, error) {
		return sa.Root.RequestFuture(pid, msg, benchkit.RequestTimeout).Result()
	}
	benchkit.WarmUp(b, call)
	return call
}
