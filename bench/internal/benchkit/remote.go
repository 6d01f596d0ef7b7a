package benchkit

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The remote benchmarks move protobuf messages, because Proto.Actor's and
// Hollywood's remoting only serialize protobuf. Every framework sends the
// same type, wrapperspb.Int64Value: one preallocated *RemotePing reused for
// every message, and one preallocated *RemotePong reused as every reply.

// RemotePingValue and RemotePongValue are the values the remote messages
// carry, so a reply can be told apart from a misrouted request.
const (
	RemotePingValue = 1
	RemotePongValue = 2
)

// NewRemotePing returns the message the remote benchmarks send.
func NewRemotePing() *wrapperspb.Int64Value { return wrapperspb.Int64(RemotePingValue) }

// NewRemotePong returns the reply the remote responders send.
func NewRemotePong() *wrapperspb.Int64Value { return wrapperspb.Int64(RemotePongValue) }

// IsRemotePing reports whether msg is the remote benchmarks' request or
// one-way message.
func IsRemotePing(msg any) bool {
	m, ok := msg.(*wrapperspb.Int64Value)
	return ok && m.GetValue() == RemotePingValue
}

// IsRemotePong reports whether reply is the remote responders' reply. A
// reply that crossed the network is a fresh value, so it is checked by
// content, not identity.
func IsRemotePong(reply any) bool {
	m, ok := reply.(*wrapperspb.Int64Value)
	return ok && m.GetValue() == RemotePongValue
}

// RemoteWarmup is how many messages (or requests) each remote benchmark
// exchanges before the timer starts, so that connection set-up and the first
// allocations of buffers and per-peer state are not measured.
const RemoteWarmup = 100

// RemoteDeadline bounds how long a remote benchmark waits for its receiver
// to see every message; past it the benchmark fails instead of hanging.
const RemoteDeadline = 60 * time.Second

// Counter is the state of a remote receiver: it counts RemotePing messages,
// closes Warmed after the first warm of them and Done after warm+n. Its
// Add is called from the receiving actor only, so it needs no locking.
type Counter struct {
	warm, total, n int
	Warmed, Done   chan struct{}
}

// NewCounter returns a Counter that expects warm warm-up messages followed by
// n measured ones.
func NewCounter(warm, n int) *Counter {
	return &Counter{warm: warm, total: warm + n, Warmed: make(chan struct{}), Done: make(chan struct{})}
}

// Add counts one received message.
func (c *Counter) Add() {
	c.n++
	if c.n == c.warm {
		close(c.Warmed)
	}
	if c.n == c.total {
		close(c.Done)
	}
}

// Wait blocks until ch is closed, failing b with what when RemoteDeadline
// passes first.
func Wait(b *testing.B, ch <-chan struct{}, what string) {
	b.Helper()
	t := time.NewTimer(RemoteDeadline)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		b.Fatalf("timed out after %v waiting for %s", RemoteDeadline, what)
	}
}

// ReportRate reports b.N operations per second of timed run as the metric
// unit (e.g. "msgs/s", "rt/s"). Call it after b.StopTimer.
func ReportRate(b *testing.B, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, unit)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// frameworks whose remoting cannot listen on port 0 and report the port it
// got. Another process may take it before the caller listens on it.
func FreePort(b *testing.B) int {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		b.Fatal(err)
	}
	return port
}

// WarmUp makes RemoteWarmup requests with call before a benchmark's timer
// starts, failing b on the first error.
func WarmUp(b *testing.B, call func() (any, error)) {
	b.Helper()
	for range RemoteWarmup {
		if _, err := call(); err != nil {
			b.Fatal(err)
		}
	}
}

// ConcurrentCallers is how many goroutines the RemoteRequestConcurrent
// benchmarks call from at once.
const ConcurrentCallers = 64

// RunConcurrent is the body of every BenchmarkRemoteRequestConcurrent: it
// resets the timer and makes b.N requests with call from callers
// goroutines at once (each makes its share, one at a time), checks each
// reply with ok, and reports round trips per second as "rt/s".
func RunConcurrent(b *testing.B, callers int, ok func(reply any) bool, call func() (any, error)) {
	var (
		wg     sync.WaitGroup
		failed atomic.Pointer[error]
	)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range callers {
		share := b.N / callers
		if i < b.N%callers {
			share++
		}
		wg.Go(func() {
			for range share {
				res, err := call()
				if err == nil && !ok(res) {
					err = fmt.Errorf("unexpected reply %#v", res)
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	ReportRate(b, "rt/s")
}
