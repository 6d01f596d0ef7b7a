package tcp_test

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport/tcp"
	"github.com/guildkit/guild/wire"
)

// received is one envelope a node got, copied out of the read buffer.
type received struct {
	peer    actor.Addr
	kind    wire.Kind
	typ     string
	payload string
}

// chanHandler is a transport.Handler that pushes every envelope it receives
// into a channel.
type chanHandler struct{ ch chan received }

func (h chanHandler) HandleEnvelope(peer actor.Addr, env *wire.Envelope) {
	// env and its byte fields alias the read buffer: copy what we keep.
	r := received{peer: peer, kind: env.Kind, typ: env.PayloadType, payload: string(env.Payload)}
	select {
	case h.ch <- r:
	default: // never block the connection's reader
	}
}

func (h chanHandler) PeerLost(actor.Addr, error) {}
func (h chanHandler) PeerUp(actor.Addr)          {}

func ExampleNew() {
	node1, node2 := actor.MustAddr(1, 1, 1), actor.MustAddr(1, 1, 2)

	// The endpoints are known only once both transports listen, so the
	// resolver reads a map that is filled after creation.
	var mu sync.Mutex
	endpoints := map[actor.Addr]string{}
	resolve := func(a actor.Addr) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		ep, ok := endpoints[a]
		if !ok {
			return "", fmt.Errorf("unknown node %v", a)
		}
		return ep, nil
	}
	logger := slog.New(slog.DiscardHandler)

	in1, in2 := chanHandler{make(chan received, 16)}, chanHandler{make(chan received, 16)}
	t1, err := tcp.New(tcp.Config{Self: node1, Listen: "127.0.0.1:0", Resolve: resolve, Handler: in1, Logger: logger})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t1.Close()
	t2, err := tcp.New(tcp.Config{Self: node2, Listen: "127.0.0.1:0", Resolve: resolve, Handler: in2, Logger: logger})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t2.Close()

	mu.Lock()
	endpoints[node1] = t1.Addr().String()
	endpoints[node2] = t2.Addr().String()
	mu.Unlock()

	// Send returns at once; the connection is dialled lazily.
	env := &wire.Envelope{Kind: wire.KindSend, PayloadType: wire.RawBytesType, Payload: []byte("hello")}
	if err := t1.Send(node2, env); err != nil {
		fmt.Println(err)
		return
	}

	select {
	case r := <-in2.ch:
		fmt.Printf("node %v got a %v from %v: %s %q\n", node2, r.kind, r.peer, r.typ, r.payload)
	case <-time.After(10 * time.Second):
		fmt.Println("timed out")
	}

	// Close waits for every goroutine of the transport.
	fmt.Println(t1.Close(), t2.Close())
	// Output:
	// node 1.1.2 got a send from 1.1.1: guild.raw "hello"
	// <nil> <nil>
}
