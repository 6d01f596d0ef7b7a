package guildbench

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/bench/internal/benchkit"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/transport"
)

// The remote benchmarks run two cluster nodes, A and B, in this process,
// each with its TCP transport listening on 127.0.0.1:0, and send from A to
// an actor on B over loopback. Everything else is guild's defaults (the
// transport's tcp.Config defaults, e.g. a per-peer pending queue of
// tcp.DefaultPendingQueue envelopes).

var (
	addrA = actor.MustAddr(1, 1, 1)
	addrB = actor.MustAddr(1, 1, 2)
)

// startPair starts nodes A and B, which see each other, and registers their
// shutdown with b.Cleanup.
func startPair(b *testing.B) (a, bn *cluster.Node) {
	b.Helper()
	return startPairOn(b, nil)
}

// startPairOn is startPair on the transport tr (nil: the TCP mesh).
func startPairOn(b *testing.B, tr transport.Config) (a, bn *cluster.Node) {
	b.Helper()
	quiet := slog.New(slog.DiscardHandler)
	store := cluster.NewMemory() // an in-process membership: no etcd
	start := func(addr actor.Addr) *cluster.Node {
		m := store.Membership(addr)
		n, err := cluster.Start(context.Background(), cluster.NodeConfig{
			Actor:      actor.Config{Addr: addr, Logger: quiet},
			Listen:     "127.0.0.1:0",
			Membership: m,
			Names:      store.Names(),
			Logger:     quiet,
			Transport:  tr,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := n.Close(); err != nil {
				b.Errorf("close node %v: %v", addr, err)
			}
			m.Close()
		})
		return n
	}
	return start(addrA), start(addrB)
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

func spawnResponder(b *testing.B, n *cluster.Node) actor.PID {
	b.Helper()
	pong := benchkit.NewRemotePong()
	pid, err := n.Actor().Spawn(func() actor.Actor { return &remoteResponder{pong: pong} })
	if err != nil {
		b.Fatal(err)
	}
	return pid
}

// remoteCaller starts nodes A and B and a responder on B, and returns a
// call from outside any actor on A to it with ctx, warmed up.
func remoteCaller(b *testing.B, ctx context.Context) func() (any, error) {
	b.Helper()
	a, bn := startPair(b)
	pid := spawnResponder(b, bn)
	msg := benchkit.NewRemotePing()
	call := func() (any, error) { return a.Actor().Call(ctx, pid, msg) }
	benchkit.WarmUp(b, call)
	return call
}

// sendRetry sends msg from outside any actor, retrying after
// runtime.Gosched while the transport's per-peer queue is full. It returns
// how many times it had to retry.
func sendRetry(b *testing.B, n *actor.Node, to actor.PID, msg any) int {
	retries := 0
	for {
		err := n.Send(to, msg)
		if err == nil {
			return retries
		}
		if !errors.Is(err, transport.ErrPendingQueueFull) {
			b.Fatal(err)
		}
		retries++
		runtime.Gosched()
	}
}

// BenchmarkRemoteSend: one goroutine on node A (outside any actor,
// Node.Send) sends b.N one-way messages to an actor on node B. The clock
// stops when B's actor has received all of them, so ns/op is per message
// received. A send refused with transport.ErrPendingQueueFull is retried
// after runtime.Gosched (nothing is dropped); "fullq/op" is the number of
// such refusals per message.
func BenchmarkRemoteSend(b *testing.B) {
	b.Run("guild", func(b *testing.B) { runSends(b, nil) })
}

// runSends is the body of BenchmarkRemoteSend and BenchmarkTransportSend:
// a pair of nodes on tr (nil: the TCP mesh), b.N one-way messages from A
// to a counting actor on B, the clock stopped when B has them all.
func runSends(b *testing.B, tr transport.Config) {
	a, bn := startPairOn(b, tr)
	cnt := benchkit.NewCounter(benchkit.RemoteWarmup, b.N)
	pid, err := bn.Actor().Spawn(func() actor.Actor { return &remoteCounter{c: cnt} })
	if err != nil {
		b.Fatal(err)
	}
	msg := benchkit.NewRemotePing()
	for range benchkit.RemoteWarmup {
		sendRetry(b, a.Actor(), pid, msg)
	}
	benchkit.Wait(b, cnt.Warmed, "the warm-up messages")

	retries := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		retries += sendRetry(b, a.Actor(), pid, msg)
	}
	benchkit.Wait(b, cnt.Done, "the receiver to get every message")
	b.StopTimer()
	benchkit.ReportRate(b, "msgs/s")
	b.ReportMetric(float64(retries)/float64(b.N), "fullq/op")
}

// BenchmarkRemoteRequest: request/response round trips from outside any
// actor on node A (Node.Call with context.Background(), so the node's
// default request timeout bounds each wait) to a responder on node B, one
// in flight at a time. Besides ns/op it reports p50 and p99 in µs.
func BenchmarkRemoteRequest(b *testing.B) {
	b.Run("guild", func(b *testing.B) {
		benchkit.RunRequestsCheck(b, benchkit.IsRemotePong, remoteCaller(b, context.Background()))
	})
}

// pipelineInFlight is how many requests BenchmarkRemoteRequestPipelined
// keeps in flight.
const pipelineInFlight = 1000

// startPipeline is the message that starts a driver.
type startPipeline struct{}

// driver issues n requests to target with at most inFlight outstanding:
// on startPipeline it issues the first inFlight, then one more from each
// reply callback, and closes done when n replies have arrived. The first
// error (a failed Request or an error reply) is stored in err and ends the
// run early.
type driver struct {
	target          actor.PID
	msg             any
	n, inFlight     int
	issued, replied int
	done            chan struct{}
	err             error
	onReply         actor.ReplyFunc
	ctx             *actor.Context
}

func (d *driver) Receive(ctx *actor.Context) {
	if _, ok := ctx.Message().(startPipeline); ok {
		d.ctx = ctx
		for d.issued < d.inFlight && d.issued < d.n {
			if !d.issue(ctx) {
				return
			}
		}
	}
}

func (d *driver) issue(ctx *actor.Context) bool {
	d.issued++
	if err := ctx.Request(d.target, d.msg, benchkit.RequestTimeout, d.onReply); err != nil {
		d.fail(err)
		return false
	}
	return true
}

func (d *driver) fail(err error) {
	if d.err == nil {
		d.err = err
		close(d.done)
	}
}

func (d *driver) reply(reply any, err error) {
	if d.err != nil {
		return
	}
	if err != nil {
		d.fail(err)
		return
	}
	if !benchkit.IsRemotePong(reply) {
		d.fail(errors.New("unexpected reply"))
		return
	}
	d.replied++
	if d.replied == d.n {
		close(d.done)
		return
	}
	if d.issued < d.n {
		d.issue(d.ctx)
	}
}

// BenchmarkRemoteRequestPipelined: round trips with 1,000 requests in
// flight. A driver actor on node A issues asynchronous requests
// (Context.Request with a callback) to a responder on node B, issuing a new
// one from each reply callback until b.N replies have arrived. ns/op is per
// round trip; "rt/s" is round trips per second.
func BenchmarkRemoteRequestPipelined(b *testing.B) {
	b.Run("guild", func(b *testing.B) {
		a, bn := startPair(b)
		pid := spawnResponder(b, bn)
		msg := benchkit.NewRemotePing()
		for range benchkit.RemoteWarmup {
			if _, err := a.Actor().Call(context.Background(), pid, msg); err != nil {
				b.Fatal(err)
			}
		}
		d := &driver{target: pid, msg: msg, n: b.N, inFlight: pipelineInFlight, done: make(chan struct{})}
		d.onReply = d.reply
		drv, err := a.Actor().Spawn(func() actor.Actor { return d })
		if err != nil {
			b.Fatal(err)
		}

		b.ReportAllocs()
		b.ResetTimer()
		if err := a.Actor().Send(drv, startPipeline{}); err != nil {
			b.Fatal(err)
		}
		benchkit.Wait(b, d.done, "the pipelined replies")
		b.StopTimer()
		// d.err was written by the driver before it closed done.
		if d.err != nil {
			b.Fatalf("after %d of %d replies: %v", d.replied, b.N, d.err)
		}
		benchkit.ReportRate(b, "rt/s")
	})
}

// BenchmarkRemoteRequestDeadline is BenchmarkRemoteRequest with the ctx a
// server passes: one from context.WithTimeout (an hour, so it never ends).
// Its p50 is to stay within 1.1× of BenchmarkRemoteRequest's.
func BenchmarkRemoteRequestDeadline(b *testing.B) {
	b.Run("guild", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		benchkit.RunRequestsCheck(b, benchkit.IsRemotePong, remoteCaller(b, ctx))
	})
}

// BenchmarkRemoteRequestConcurrent: 64 goroutines on node A call the
// responder on node B at once (Node.Call with context.Background(), each
// one request at a time). "rt/s" is round trips per second.
func BenchmarkRemoteRequestConcurrent(b *testing.B) {
	b.Run("guild", func(b *testing.B) {
		benchkit.RunConcurrent(b, benchkit.ConcurrentCallers, benchkit.IsRemotePong, remoteCaller(b, context.Background()))
	})
}
