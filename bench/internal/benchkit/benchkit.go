// Package benchkit holds the pieces shared by every framework's benchmarks:
// the message types (so every framework moves exactly the same values) and
// the latency-percentile reporting used by the request benchmarks, and the
// helpers of the remote benchmarks (remote.go).
//
// It deliberately imports no actor framework, so any bench/<framework>
// package (including guild's bench/guildbench) can use it without pulling in
// another framework's protobuf registrations.
package benchkit

import (
	"slices"
	"testing"
	"time"
)

// Ping is the message sent to the actor under test. Benchmarks send one
// preallocated *Ping for every message so that message allocation is not part
// of what is measured.
type Ping struct{ N int }

// Pong is the reply to a request. Responders reply with one preallocated
// *Pong.
type Pong struct{ N int }

// RequestTimeout is the per-request timeout given to every framework's
// request API. It is generous: it is only there so a lost reply fails the
// benchmark instead of hanging it.
const RequestTimeout = 5 * time.Second

// RunRequests is the body of every BenchmarkLocalRequest: it resets the
// timer, makes b.N requests one at a time with request, checks that each
// reply is want, and reports ns/op plus the p50 and p99 latencies. One clock
// read per request: each latency is the time since the previous request
// finished, which is the request plus a negligible amount of loop
// bookkeeping.
func RunRequests(b *testing.B, want any, request func() (any, error)) {
	RunRequestsCheck(b, func(res any) bool { return res == want }, request)
}

// RunRequestsCheck is RunRequests with the reply checked by ok instead of
// by identity, for replies that crossed the network and so are fresh values
// (the remote benchmarks pass IsRemotePong).
func RunRequestsCheck(b *testing.B, ok func(reply any) bool, request func() (any, error)) {
	lat := NewLatencies(b)
	b.ReportAllocs()
	b.ResetTimer()
	prev := time.Now()
	for i := range b.N {
		res, err := request()
		now := time.Now()
		lat[i] = now.Sub(prev)
		prev = now
		if err != nil {
			b.Fatal(err)
		}
		if !ok(res) {
			b.Fatalf("unexpected reply %#v", res)
		}
	}
	b.StopTimer()
	ReportLatency(b, lat)
}

// NewLatencies returns a slice to hold one duration per operation. Call it
// before b.ResetTimer so the allocation is not attributed to the benchmark.
func NewLatencies(b *testing.B) []time.Duration {
	return make([]time.Duration, b.N)
}

// ReportLatency sorts lat in place and reports its 50th and 99th percentiles
// as the custom metrics "p50-µs" and "p99-µs". Call it after b.StopTimer.
func ReportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(micros(percentile(lat, 50)), "p50-µs")
	b.ReportMetric(micros(percentile(lat, 99)), "p99-µs")
}

// percentile returns the nearest-rank p-th percentile of the sorted slice s.
func percentile(s []time.Duration, p int) time.Duration {
	// nearest rank: ceil(p/100 * n), 1-based.
	rank := (p*len(s) + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return s[rank-1]
}

func micros(d time.Duration) float64 {
	return float64(d) / float64(time.Microsecond)
}
