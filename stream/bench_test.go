package stream_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/stream"
)

// directHosts starts a Host on each node of a cluster started with
// Options.Direct (no fault proxies: a benchmark measures the stream, not
// a proxy's extra hop).
func directHosts(b *testing.B, c *clustertest.Cluster, cfg stream.Config) []*stream.Host {
	b.Helper()
	hosts := make([]*stream.Host, len(c.Nodes))
	cfg.Logger = slog.New(slog.DiscardHandler)
	for i, n := range c.Nodes {
		h, err := stream.Start(ctxFor(b, 10*time.Second), n, cfg)
		if err != nil {
			b.Fatal(err)
		}
		hosts[i] = h
		b.Cleanup(func() { _ = h.Close() })
	}
	awaitEndpoints(b, c, hosts)
	return hosts
}

// benchChunk is the size of each Write in the throughput benchmark.
const benchChunk = 64 << 10

// pump writes n chunks to w, then closes it with closeWrite, and returns
// how long it took until the reader (whose total arrives on got) had read
// them all.
func pump(b *testing.B, w io.Writer, closeWrite func() error, n int, got <-chan int64) time.Duration {
	b.Helper()
	buf := make([]byte, benchChunk)
	start := time.Now()
	for range n {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := closeWrite(); err != nil {
		b.Fatal(err)
	}
	if total := <-got; total != int64(n)*benchChunk {
		b.Fatalf("the reader read %d bytes, not %d", total, int64(n)*benchChunk)
	}
	return time.Since(start)
}

// BenchmarkStreamThroughput measures one stream's bulk throughput between
// two nodes over loopback, against a raw loopback TCP connection in the
// same run (the same bytes, the same 64 KiB writes, a reader that
// discards): "stream-MB/s", "tcp-MB/s" and "ratio-%" (goal ≥ 50%). Run it
// with -benchtime 2000x (128 MiB).
func BenchmarkStreamThroughput(b *testing.B) {
	c := clustertest.Start(b, clustertest.Options{Nodes: 2, Direct: true})
	hosts := directHosts(b, c, stream.Config{})
	got := make(chan int64, 1)
	hosts[1].Handle("", func(_ context.Context, s *stream.Stream) {
		n, _ := io.Copy(io.Discard, s)
		got <- n
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	tcpGot := make(chan int64, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		n, _ := io.Copy(io.Discard, conn)
		tcpGot <- n
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	s, err := hosts[0].OpenStream(ctxFor(b, 5*time.Second), c.Addrs[1])
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.SetBytes(benchChunk)
	b.ResetTimer()
	ds := pump(b, s, s.CloseWrite, b.N, got)
	b.StopTimer()
	dt := pump(b, conn, conn.(*net.TCPConn).CloseWrite, b.N, tcpGot)
	mb := float64(b.N) * benchChunk / 1e6
	b.ReportMetric(mb/ds.Seconds(), "stream-MB/s")
	b.ReportMetric(mb/dt.Seconds(), "tcp-MB/s")
	b.ReportMetric(100*dt.Seconds()/ds.Seconds(), "ratio-%")
}

// BenchmarkStreamActorLatency measures the latency of actor requests (a
// Call round trip) from node A to node B with the link idle, while a bulk
// stream from A to B runs flat out, and, for scale, while a bulk raw
// loopback TCP connection does: "idle-p99-µs", "bulk-p99-µs",
// "tcpbulk-p99-µs" and "p99-ratio" (bulk over idle; goal ≤ 2). The three
// phases alternate in five rounds, so that a load from outside the
// benchmark weighs on each alike. Streams ride their own connection, so
// actor messages and stream bytes share the CPUs and the loopback, not a
// socket or a queue. The sub-benchmarks run the bulk transfers flat out
// (as fast as the CPUs go: on loopback, every byte costs CPU that the
// actors then wait for) and capped at 100 MB/s (800 Mbit/s, a real
// network's rate between two machines). The stream's writer always writes
// flat out; its host paces it:
//   - default: Config.BusyRate's default, 100 MB/s while the calls run
//     (the goal's figure: a host as it comes);
//   - BusyRate=off: not at all (the raw TCP connection flat out too);
//   - MaxRate=100MB/s: at 100 MB/s always, BusyRate off.
//
// The raw TCP connection is paced by the benchmark to the stream's cap.
// Run it with -benchtime 5000x.
func BenchmarkStreamActorLatency(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchActorLatency(b, stream.Config{}, stream.DefaultBusyRate) })
	b.Run("BusyRate=off", func(b *testing.B) { benchActorLatency(b, stream.Config{BusyRate: -1}, 0) })
	b.Run("MaxRate=100MB/s", func(b *testing.B) { benchActorLatency(b, stream.Config{MaxRate: 100e6, BusyRate: -1}, 100e6) })
}

func benchActorLatency(b *testing.B, cfg stream.Config, rate float64) {
	c := clustertest.Start(b, clustertest.Options{Nodes: 2, Direct: true})
	hosts := directHosts(b, c, cfg)
	hosts[1].Handle("", func(_ context.Context, s *stream.Stream) { _, _ = io.Copy(io.Discard, s) })
	pid, err := c.Node(1).SpawnFunc(func(ctx *actor.Context) {
		if m, ok := ctx.Message().(*wrapperspb.StringValue); ok {
			ctx.Respond(m)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	msg := wrapperspb.String("ping")
	var idle, bulk, tcpBulk []time.Duration
	calls := func(lat *[]time.Duration, n int) {
		for range n {
			start := time.Now()
			if _, err := c.Node(0).Call(context.Background(), pid, msg); err != nil {
				b.Fatal(err)
			}
			*lat = append(*lat, time.Since(start))
		}
	}
	p := func(lat []time.Duration, q float64) float64 {
		slices.Sort(lat)
		return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	// running pumps w flat out until stop is called; the bytes written
	// count in sent.
	var sent atomic.Int64
	running := func(w io.Writer, rate float64) (stop func()) {
		var halt atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, benchChunk)
			start, mine := time.Now(), 0.0
			for !halt.Load() {
				n, err := w.Write(buf)
				sent.Add(int64(n))
				if err != nil {
					return
				}
				if mine += float64(n); rate > 0 { // pace: sleep off what is ahead of the rate
					if ahead := time.Duration(mine/rate*1e9) - time.Since(start); ahead > 0 {
						time.Sleep(ahead)
					}
				}
			}
		}()
		for s0 := sent.Load(); sent.Load() < s0+1<<20; { // under way
			runtime.Gosched()
		}
		return func() { halt.Store(true); <-done }
	}
	s, err := hosts[0].OpenStream(ctxFor(b, 5*time.Second), c.Addrs[1])
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, conn)
			_ = conn.Close()
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	calls(new([]time.Duration), 100) // warm up the connection
	const rounds = 5
	per := max(b.N/rounds, 1)
	var bulkTime time.Duration
	var bulkBytes int64
	b.ResetTimer()
	for range rounds {
		calls(&idle, per)
		stop := running(s, 0) // flat out: the host's MaxRate or BusyRate, if any, paces it
		t0, s0 := time.Now(), sent.Load()
		calls(&bulk, per)
		bulkTime += time.Since(t0)
		bulkBytes += sent.Load() - s0
		stop()
		stop = running(conn, rate)
		calls(&tcpBulk, per)
		stop()
	}
	b.StopTimer()
	b.ReportMetric(p(idle, 0.50), "idle-p50-µs")
	b.ReportMetric(p(idle, 0.99), "idle-p99-µs")
	b.ReportMetric(p(bulk, 0.50), "bulk-p50-µs")
	b.ReportMetric(p(bulk, 0.99), "bulk-p99-µs")
	b.ReportMetric(p(tcpBulk, 0.99), "tcpbulk-p99-µs")
	b.ReportMetric(p(bulk, 0.99)/p(idle, 0.99), "p99-ratio")
	b.ReportMetric(float64(bulkBytes)/1e6/bulkTime.Seconds(), "bulk-MB/s")
}
