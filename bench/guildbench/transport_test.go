package guildbench

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	amqp091 "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/guildkit/guild/bench/internal/benchkit"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/amqp"
	"github.com/guildkit/guild/transport/nats"
	"github.com/guildkit/guild/transport/redis"
	"github.com/guildkit/guild/transport/tcp"
)

// The brokers of the transport benchmarks: the servers this machine runs
// on loopback (scripts/services.sh starts them). A benchmark whose broker
// does not answer is skipped.
const (
	natsURL      = "nats://127.0.0.1:4222"
	amqpURL      = "amqp://guest:guest@127.0.0.1:5672/"
	amqpHostPort = "127.0.0.1:5672"
	redisAddr    = "127.0.0.1:6379"
)

// TransportCallers is how many goroutines BenchmarkTransportRequestConcurrent
// calls from at once (the figure mqant's NATS RPC is known by).
const TransportCallers = 25

// brokerUp skips b unless something accepts connections on hostport.
func brokerUp(b *testing.B, name, hostport string) {
	b.Helper()
	c, err := net.DialTimeout("tcp", hostport, time.Second)
	if err != nil {
		b.Skipf("%s is not reachable on %s (%v): run `bash scripts/services.sh`", name, hostport, err)
	}
	_ = c.Close()
}

// uniquePrefix returns a subject, queue or key prefix no other run uses.
func uniquePrefix() string { return "bench" + strings.ToLower(rand.Text()[:10]) }

// guildTransports are the transports the guild benchmarks run on, by the
// name of their sub-benchmark; each returns the configuration of a fresh
// pair of nodes, or skips b.
var guildTransports = []struct {
	name string
	cfg  func(b *testing.B) transport.Config
}{
	{"tcp", func(*testing.B) transport.Config { return tcp.Config{} }},
	{"nats", func(b *testing.B) transport.Config {
		brokerUp(b, "NATS", strings.TrimPrefix(natsURL, "nats://"))
		return nats.Config{URL: natsURL, Prefix: uniquePrefix()}
	}},
	{"amqp", func(b *testing.B) transport.Config {
		brokerUp(b, "RabbitMQ", amqpHostPort)
		return amqp.Config{URL: amqpURL, Prefix: uniquePrefix()}
	}},
	{"redis", func(b *testing.B) transport.Config {
		brokerUp(b, "Redis", redisAddr)
		return redis.Config{Addr: redisAddr, Prefix: uniquePrefix()}
	}},
}

// redisBare returns a round trip with go-redis alone: RPUSH of a 64-byte
// body to a list that a second client BLPOPs and RPUSHes back to a reply
// list, which the caller BLPOPs: the anchor of guild over Redis.
func redisBare(b *testing.B) func() (any, error) {
	b.Helper()
	brokerUp(b, "Redis", redisAddr)
	prefix := uniquePrefix()
	reqKey, respKey := prefix+":req", prefix+":resp"
	ctx := context.Background()
	caller := goredis.NewClient(&goredis.Options{Addr: redisAddr, MaxRetries: -1})
	echo := goredis.NewClient(&goredis.Options{Addr: redisAddr, MaxRetries: -1})
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
	b.Cleanup(func() {
		_ = caller.RPush(ctx, reqKey, "stop").Err()
		<-done
		_ = caller.Del(ctx, reqKey, respKey).Err()
		_ = caller.Close()
		_ = echo.Close()
	})
	body := make([]byte, pingPongFrame)
	call := func() (any, error) {
		if err := caller.RPush(ctx, reqKey, body).Err(); err != nil {
			return nil, err
		}
		kv, err := caller.BLPop(ctx, 5*time.Second, respKey).Result()
		if err != nil {
			return nil, err
		}
		return len(kv[1]), nil
	}
	benchkit.WarmUp(b, call)
	return call
}

// amqpBare returns a round trip with amqp091-go alone: a publish of a
// 64-byte body to a queue whose consumer, on a second connection,
// publishes it back to a reply queue the caller consumes (a raw AMQP RPC,
// without publisher confirms), the anchor of guild over RabbitMQ.
func amqpBare(b *testing.B) func() (any, error) {
	b.Helper()
	brokerUp(b, "RabbitMQ", amqpHostPort)
	dial := func() *amqp091.Connection {
		c, err := amqp091.Dial(amqpURL)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	client, server := dial(), dial()
	b.Cleanup(func() { _ = client.Close() })
	prefix := uniquePrefix()
	reqQ, replyQ := prefix+".req", prefix+".reply"
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
			_ = sch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, amqp091.Publishing{Body: d.Body})
		}
	}()
	ctx := context.Background()
	body := make([]byte, pingPongFrame)
	call := func() (any, error) {
		if err := cch.PublishWithContext(ctx, "", reqQ, false, false, amqp091.Publishing{ReplyTo: replyQ, Body: body}); err != nil {
			return nil, err
		}
		select {
		case d := <-replies:
			return len(d.Body), nil
		case <-time.After(10 * time.Second):
			return nil, errors.New("no AMQP reply within 10s")
		}
	}
	benchkit.WarmUp(b, call)
	return call
}

// transportCaller starts a pair of nodes on tr and a responder on the
// second, and returns a warmed-up call from outside any actor on the
// first.
func transportCaller(b *testing.B, tr transport.Config) func() (any, error) {
	b.Helper()
	a, bn := startPairOn(b, tr)
	pid := spawnResponder(b, bn)
	msg := benchkit.NewRemotePing()
	ctx := context.Background()
	call := func() (any, error) { return a.Actor().Call(ctx, pid, msg) }
	benchkit.WarmUp(b, call)
	return call
}

// natsBare returns a round trip with nats.go alone: a request of a
// 64-byte body to a subscriber on a second connection, which answers it
// (nats.Conn.Request), the anchor of guild over NATS.
func natsBare(b *testing.B) func() (any, error) {
	b.Helper()
	brokerUp(b, "NATS", strings.TrimPrefix(natsURL, "nats://"))
	server, err := natsgo.Connect(natsURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(server.Close)
	client, err := natsgo.Connect(natsURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(client.Close)
	subject := uniquePrefix() + ".echo"
	if _, err := server.Subscribe(subject, func(m *natsgo.Msg) { _ = m.Respond(m.Data) }); err != nil {
		b.Fatal(err)
	}
	if err := server.Flush(); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, pingPongFrame)
	call := func() (any, error) {
		m, err := client.Request(subject, body, 5*time.Second)
		if err != nil {
			return nil, err
		}
		return len(m.Data), nil
	}
	benchkit.WarmUp(b, call)
	return call
}

// BenchmarkTransportRequest: sequential requests between two nodes on
// each transport (a Call from outside any actor to an actor on the other
// node, as BenchmarkRemoteRequest), and, in the same run, the same round
// trip with each broker's own client alone ("-bare"), the physical anchor
// of guild over that broker. p50-µs and p99-µs are per round trip.
func BenchmarkTransportRequest(b *testing.B) {
	for _, tr := range guildTransports {
		b.Run(tr.name, func(b *testing.B) {
			benchkit.RunRequestsCheck(b, benchkit.IsRemotePong, transportCaller(b, tr.cfg(b)))
		})
	}
	b.Run("nats-bare", func(b *testing.B) {
		benchkit.RunRequestsCheck(b, func(r any) bool { return r == pingPongFrame }, natsBare(b))
	})
	b.Run("amqp-bare", func(b *testing.B) {
		benchkit.RunRequestsCheck(b, func(r any) bool { return r == pingPongFrame }, amqpBare(b))
	})
	b.Run("redis-bare", func(b *testing.B) {
		benchkit.RunRequestsCheck(b, func(r any) bool { return r == pingPongFrame }, redisBare(b))
	})
}

// BenchmarkTransportRequestConcurrent: TransportCallers goroutines on one
// node call an actor on the other at once, on each transport, and the
// bare broker clients do the same; "rt/s" is round trips per second.
func BenchmarkTransportRequestConcurrent(b *testing.B) {
	for _, tr := range guildTransports {
		b.Run(tr.name, func(b *testing.B) {
			benchkit.RunConcurrent(b, TransportCallers, benchkit.IsRemotePong, transportCaller(b, tr.cfg(b)))
		})
	}
	b.Run("nats-bare", func(b *testing.B) {
		benchkit.RunConcurrent(b, TransportCallers, func(r any) bool { return r == pingPongFrame }, natsBare(b))
	})
}

// BenchmarkTransportSend: one goroutine on node A sends b.N one-way
// messages to an actor on node B, on each transport, as
// BenchmarkRemoteSend does on the TCP mesh: the clock stops when B's actor
// has received them all, so "msgs/s" counts messages handled. A send
// refused with transport.ErrPendingQueueFull is retried ("fullq/op").
func BenchmarkTransportSend(b *testing.B) {
	for _, tr := range guildTransports {
		b.Run(tr.name, func(b *testing.B) { runSends(b, tr.cfg(b)) })
	}
}
