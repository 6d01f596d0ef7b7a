package redis_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
	"github.com/guildkit/guild/transport/redis"
	"github.com/guildkit/guild/wire"
)

// funcHandler adapts a function to transport.Handler.
type funcHandler func(actor.Addr, *wire.Envelope)

func (f funcHandler) HandleEnvelope(p actor.Addr, e *wire.Envelope) { f(p, e) }
func (funcHandler) PeerLost(actor.Addr, error)                      {}
func (funcHandler) PeerUp(actor.Addr)                               {}

// benchRequest is the request both benchmarks send: 64 bytes of payload.
func benchRequest() *wire.Envelope {
	return &wire.Envelope{Kind: wire.KindRequest, Target: wire.PID{Node: uint32(actor.MustAddr(1, 1, 2)), Serial: 42}, Sender: wire.PID{Node: uint32(actor.MustAddr(1, 1, 1)), Serial: 7}, CorrelationID: 1, PayloadType: wire.RawBytesType, Payload: make([]byte, 64)}
}

// reportLatency reports the median and 99th percentile of lat, in µs.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*50/100].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkRequest: node A sends a request envelope (64-byte payload) to
// node B over Redis and waits for B's reply, one request in flight; ns/op
// is one round trip, and p50/p99 its latency.
func BenchmarkRequest(b *testing.B) {
	prefix := freshPrefix(b)
	o := bus.Options{HeartbeatInterval: time.Second, DeadAfter: 10 * time.Second}
	cfg := redis.Config{Addr: redisAddr, Prefix: prefix, Options: o}
	addrA, addrB := actor.MustAddr(1, 1, 1), actor.MustAddr(1, 1, 2)
	endpoints := map[actor.Addr]string{addrA: prefix + ":inbox:" + addrA.String(), addrB: prefix + ":inbox:" + addrB.String()}
	resolve := func(a actor.Addr) (string, error) {
		if e, ok := endpoints[a]; ok {
			return e, nil
		}
		return "", errors.New("not a member")
	}
	reply := make(chan struct{}, 1)
	resp := &wire.Envelope{Kind: wire.KindResponse, Target: wire.PID{Node: uint32(addrA), Serial: 7}, CorrelationID: 1, PayloadType: wire.RawBytesType, Payload: make([]byte, 64)}
	var tb transport.Transport
	ta, err := cfg.Start(transport.Setup{Self: addrA, Resolve: resolve, Handler: funcHandler(func(actor.Addr, *wire.Envelope) { reply <- struct{}{} })})
	if err != nil {
		b.Fatal(err)
	}
	defer ta.Close()
	tb, err = cfg.Start(transport.Setup{Self: addrB, Resolve: resolve, Handler: funcHandler(func(p actor.Addr, _ *wire.Envelope) {
		if err := tb.Send(p, resp); err != nil {
			panic(err)
		}
	})})
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	req := benchRequest()
	roundTrip := func() {
		if err := ta.Send(addrB, req); err != nil {
			b.Fatal(err)
		}
		select {
		case <-reply:
		case <-time.After(10 * time.Second):
			b.Fatal("no reply within 10s")
		}
	}
	roundTrip() // reach B, and B reach A
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		roundTrip()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkRawRedisRoundTrip is the physical anchor of BenchmarkRequest:
// the same round trip with bare go-redis. The caller RPUSHes a message of
// a request frame's size (header and envelope) to one list; an echo
// goroutine BLPOPs it and RPUSHes it to a second list, which the caller
// BLPOPs: four commands, as in BenchmarkRequest's round trip (a publish
// and a wake-up each way), without the transport's scripts, its cursor
// update after each delivery, or its goroutine hand-offs.
func BenchmarkRawRedisRoundTrip(b *testing.B) {
	prefix := freshPrefix(b)
	reqKey, respKey := prefix+":req", prefix+":resp"
	ctx := context.Background()
	caller := goredis.NewClient(&goredis.Options{Addr: redisAddr, MaxRetries: -1})
	defer caller.Close()
	echo := goredis.NewClient(&goredis.Options{Addr: redisAddr, MaxRetries: -1})
	defer echo.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			kv, err := echo.BLPop(ctx, 5*time.Second, reqKey).Result()
			if err != nil || kv[1] == "stop" {
				return
			}
			if err := echo.RPush(ctx, respKey, kv[1]).Err(); err != nil {
				return
			}
		}
	}()
	msg := make([]byte, 14+benchRequest().Size())
	roundTrip := func() {
		if err := caller.RPush(ctx, reqKey, msg).Err(); err != nil {
			b.Fatal(err)
		}
		if err := caller.BLPop(ctx, 5*time.Second, respKey).Err(); err != nil {
			b.Fatal(err)
		}
	}
	roundTrip()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		roundTrip()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
	_ = caller.RPush(ctx, reqKey, "stop").Err()
	<-done
}
