package amqp_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/amqp"
	"github.com/guildkit/guild/wire"
)

// reportLatency reports the median and 99th percentile of lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[min(len(lat)*99/100, len(lat)-1)].Nanoseconds()), "p99-ns")
}

// benchNode is a Handler: node 2 answers every request with a reply, node
// 1 signals each reply it gets.
type benchNode struct {
	tr      atomic.Pointer[transport.Transport]
	replies chan uint64
}

func (n *benchNode) HandleEnvelope(peer actor.Addr, env *wire.Envelope) {
	switch env.Kind {
	case wire.KindRequest:
		reply := wire.Envelope{Kind: wire.KindResponse, Target: env.Sender, CorrelationID: env.CorrelationID, PayloadType: env.PayloadType, Payload: env.Payload}
		if tr := n.tr.Load(); tr != nil {
			_ = (*tr).Send(peer, &reply)
		}
	case wire.KindResponse:
		n.replies <- env.CorrelationID
	}
}
func (n *benchNode) PeerLost(actor.Addr, error) {}
func (n *benchNode) PeerUp(actor.Addr)          {}

// BenchmarkRequest measures a request and its reply between two nodes
// over the broker: each iteration sends a request envelope and waits for
// the reply.
func BenchmarkRequest(b *testing.B) {
	reachable(b)
	cfg := amqp.Config{URL: brokerURL, Prefix: "guildbench-" + rand.Text()}
	var mu sync.Mutex
	endpoints := map[actor.Addr]string{}
	resolve := func(a actor.Addr) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if e, ok := endpoints[a]; ok {
			return e, nil
		}
		return "", errors.New("not a member")
	}
	a1, a2 := actor.MustAddr(1, 1, 1), actor.MustAddr(1, 1, 2)
	n1, n2 := &benchNode{replies: make(chan uint64, 1)}, &benchNode{}
	for a, n := range map[actor.Addr]*benchNode{a1: n1, a2: n2} {
		tr, err := cfg.Start(transport.Setup{Self: a, Resolve: resolve, Handler: n})
		if err != nil {
			b.Fatalf("start %v: %v", a, err)
		}
		b.Cleanup(func() { _ = tr.Close() })
		n.tr.Store(&tr)
		mu.Lock()
		endpoints[a] = tr.Endpoint()
		mu.Unlock()
	}
	tr := *n1.tr.Load()
	req := wire.Envelope{Kind: wire.KindRequest, Sender: wire.PID{Node: uint32(a1), Serial: 1}, Target: wire.PID{Node: uint32(a2), Serial: 2}, PayloadType: "bench.Ping", Payload: make([]byte, 64)}
	roundTrip := func(id uint64) {
		req.CorrelationID = id
		if err := tr.Send(a2, &req); err != nil {
			b.Fatalf("send: %v", err)
		}
		select {
		case got := <-n1.replies:
			if got != id {
				b.Fatalf("reply %d to request %d", got, id)
			}
		case <-time.After(10 * time.Second):
			b.Fatal("no reply within 10s")
		}
	}
	roundTrip(1) // reaches node 2
	var lat []time.Duration
	id := uint64(1)
	for b.Loop() {
		id++
		start := time.Now()
		roundTrip(id)
		lat = append(lat, time.Since(start))
	}
	reportLatency(b, lat)
}

// BenchmarkRawAMQPRoundTrip is BenchmarkRequest's physical anchor: the
// same round trip with bare amqp091-go, two connections, two queues, no
// confirms, auto-ack consumers.
func BenchmarkRawAMQPRoundTrip(b *testing.B) {
	reachable(b)
	prefix := "guildbench-" + rand.Text()
	reqQ, replyQ := prefix+".req", prefix+".reply"
	client, server := rawConn(b), rawConn(b)
	cch, err := client.Channel()
	if err != nil {
		b.Fatal(err)
	}
	sch, err := server.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sch.QueueDeclare(reqQ, false, true, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := cch.QueueDeclare(replyQ, false, true, false, false, nil); err != nil {
		b.Fatal(err)
	}
	reqs, err := sch.Consume(reqQ, "", true, true, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	replies, err := cch.Consume(replyQ, "", true, true, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	b.Cleanup(func() {
		_ = server.Close() // ends the replier's loop
		<-done
	})
	go func() {
		defer close(done)
		for d := range reqs {
			_ = sch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, amqp091.Publishing{CorrelationId: d.CorrelationId, Body: d.Body})
		}
	}()
	ctx := context.Background()
	body := make([]byte, 64+14)
	roundTrip := func() {
		if err := cch.PublishWithContext(ctx, "", reqQ, false, false, amqp091.Publishing{ReplyTo: replyQ, Body: body}); err != nil {
			b.Fatalf("publish: %v", err)
		}
		select {
		case <-replies:
		case <-time.After(10 * time.Second):
			b.Fatal("no reply within 10s")
		}
	}
	roundTrip()
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		roundTrip()
		lat = append(lat, time.Since(start))
	}
	reportLatency(b, lat)
}
