package tcp

import (
	"errors"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

// funcHandler adapts functions to transport.Handler.
type funcHandler struct {
	env  func(actor.Addr, *wire.Envelope)
	lost func(actor.Addr, error)
}

func (h funcHandler) HandleEnvelope(p actor.Addr, e *wire.Envelope) { h.env(p, e) }
func (h funcHandler) PeerLost(p actor.Addr, err error) {
	if h.lost != nil {
		h.lost(p, err)
	}
}
func (h funcHandler) PeerUp(actor.Addr) {}

func benchConfig(self actor.Addr, res *resolver, h transport.Handler) Config {
	c := fastConfig(self, res, nil)
	c.Handler = h
	c.HeartbeatInterval, c.DeadAfter = time.Second, 10*time.Second
	return c
}

func benchEnvelope() *wire.Envelope {
	return &wire.Envelope{
		Kind:        wire.KindSend,
		Target:      wire.PID{Node: uint32(addrB), Serial: 42},
		Sender:      wire.PID{Node: uint32(addrA), Serial: 7},
		PayloadType: wire.RawBytesType,
		Payload:     make([]byte, 64),
	}
}

// BenchmarkTCPSend: one-way envelopes from A to B over loopback; ns/op is
// per envelope received (64-byte payload), MB/s counts frame bytes.
func BenchmarkTCPSend(b *testing.B) {
	res := newResolver()
	var got atomic.Int64
	sink := funcHandler{env: func(actor.Addr, *wire.Envelope) { got.Add(1) }}
	ta := start(b, benchConfig(addrA, res, funcHandler{env: func(actor.Addr, *wire.Envelope) {}}), res)
	start(b, benchConfig(addrB, res, sink), res)
	env := benchEnvelope()
	b.SetBytes(int64(wire.FrameHeaderSize + env.Size()))
	// Warm up the connection.
	sendRetry(b, ta, addrB, env)
	waitFor(b, 5*time.Second, "warm-up", func() bool { return got.Load() == 1 })
	got.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for {
			err := ta.Send(addrB, env) // env is never modified: sharing it is allowed
			if err == nil {
				break
			}
			if !errors.Is(err, transport.ErrPendingQueueFull) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	for got.Load() < int64(b.N) {
		runtime.Gosched()
	}
}

// BenchmarkTCPRoundTrip: request/response ping-pong with one request in
// flight; reports p50 and p99 round-trip latency in µs.
func BenchmarkTCPRoundTrip(b *testing.B) {
	res := newResolver()
	reply := make(chan struct{}, 1)
	var tb *Transport
	resp := &wire.Envelope{Kind: wire.KindResponse, Target: wire.PID{Node: uint32(addrA), Serial: 7}, CorrelationID: 1, PayloadType: wire.RawBytesType, Payload: make([]byte, 64)}
	ta := start(b, benchConfig(addrA, res, funcHandler{env: func(actor.Addr, *wire.Envelope) { reply <- struct{}{} }}), res)
	tb = start(b, benchConfig(addrB, res, funcHandler{env: func(p actor.Addr, e *wire.Envelope) {
		if err := tb.Send(p, resp); err != nil {
			panic(err)
		}
	}}), res)
	req := benchEnvelope()
	req.Kind, req.CorrelationID = wire.KindRequest, 1
	lat := make([]time.Duration, 0, b.N)
	roundTrip := func() {
		if err := ta.Send(addrB, req); err != nil {
			b.Fatal(err)
		}
		<-reply
	}
	roundTrip() // connect
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		roundTrip()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*50/100].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}
