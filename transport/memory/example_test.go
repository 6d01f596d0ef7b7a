package memory_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/memory"
	"github.com/guildkit/guild/wire"
)

// printer prints every envelope it receives and signals got.
type printer struct{ got chan struct{} }

func (p printer) HandleEnvelope(peer actor.Addr, env *wire.Envelope) {
	fmt.Printf("from %v: %s\n", peer, bytes.Clone(env.Payload))
	p.got <- struct{}{}
}
func (printer) PeerLost(actor.Addr, error) {}
func (printer) PeerUp(actor.Addr)          {}

// Two nodes of one process exchange an envelope through an in-memory
// broker. A cluster node takes memory.Config as its NodeConfig.Transport;
// here the transports are started by hand, with a resolver of their own.
func Example() {
	network := memory.NewNetwork()
	cfg := memory.Config{Network: network}
	a, b := actor.MustAddr(1, 1, 1), actor.MustAddr(1, 1, 2)
	resolve := func(x actor.Addr) (string, error) { return "memory/" + x.String(), nil }
	got := make(chan struct{}, 1)
	ta, _ := cfg.Start(transport.Setup{Self: a, Resolve: resolve, Handler: printer{got}})
	defer ta.Close()
	tb, _ := cfg.Start(transport.Setup{Self: b, Resolve: resolve, Handler: printer{got}})
	defer tb.Close()

	_ = ta.Send(b, &wire.Envelope{Kind: wire.KindSend, Target: wire.PID{Node: uint32(b), Serial: 1}, PayloadType: wire.RawBytesType, Payload: []byte("hello")})
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		fmt.Println("nothing arrived")
	}
	// Output: from 1.1.1: hello
}
