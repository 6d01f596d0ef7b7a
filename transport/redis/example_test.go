package redis_test

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
	"github.com/guildkit/guild/transport/redis"
	"github.com/guildkit/guild/wire"
)

// printer is a transport.Handler that passes on the payload of every
// envelope it receives.
type printer struct{ got chan string }

func (p printer) HandleEnvelope(peer actor.Addr, env *wire.Envelope) {
	// env and its byte fields alias the read buffer: copy what is kept.
	p.got <- fmt.Sprintf("%v got %q from %v", actor.Addr(env.Target.Node), env.Payload, peer)
}
func (printer) PeerLost(actor.Addr, error) {}
func (printer) PeerUp(actor.Addr)          {}

// Two nodes exchange an envelope through the Redis server on
// 127.0.0.1:6379. In a cluster, cluster.NodeConfig.Transport takes the
// Config and the membership resolves the nodes' inboxes; here a map does.
func ExampleConfig() {
	cfg := redis.Config{
		Addr:   "127.0.0.1:6379",
		Prefix: "example", // keys: example:inbox:<node>, example:alive:<node>
		Options: bus.Options{
			HeartbeatInterval: time.Second,
			DeadAfter:         3 * time.Second,
		},
	}
	var mu sync.Mutex
	inboxes := map[actor.Addr]string{}
	resolve := func(a actor.Addr) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if in, ok := inboxes[a]; ok {
			return in, nil
		}
		return "", fmt.Errorf("%v is not a member", a)
	}
	node1, node2 := actor.MustAddr(1, 1, 1), actor.MustAddr(1, 1, 2)
	h := printer{got: make(chan string, 1)}
	logger := slog.New(slog.DiscardHandler)

	t1, err := cfg.Start(transport.Setup{Self: node1, Resolve: resolve, Handler: h, Logger: logger})
	if err != nil {
		fmt.Println(err) // Redis is not running
		return
	}
	defer t1.Close()
	t2, err := cfg.Start(transport.Setup{Self: node2, Resolve: resolve, Handler: h, Logger: logger})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t2.Close()
	mu.Lock()
	inboxes[node1], inboxes[node2] = t1.Endpoint(), t2.Endpoint()
	mu.Unlock()

	// Send returns at once: node 1 reaches node 2 (ping, pong), then
	// publishes the envelope to its inbox list.
	env := &wire.Envelope{Kind: wire.KindSend, Target: wire.PID{Node: uint32(node2), Serial: 1}, PayloadType: wire.RawBytesType, Payload: []byte("hello")}
	if err := t1.Send(node2, env); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case s := <-h.got:
		fmt.Println(s)
	case <-time.After(5 * time.Second):
		fmt.Println("timed out")
	}
}
