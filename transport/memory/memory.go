// Package memory is a node-to-node transport for nodes in one process: an
// in-memory broker (a Network) and the broker transport of package
// transport/bus over it. It keeps every promise package transport states,
// with no socket and no broker to run, which makes it the transport for
// fast tests of code built on guild, and it can fail on purpose: Outage
// makes the broker unreachable for every node until Restore, the way a
// broker restart looks to the nodes.
//
//	net := memory.NewNetwork()
//	n1, _ := cluster.Start(ctx, cluster.NodeConfig{..., Transport: memory.Config{Network: net}})
//	n2, _ := cluster.Start(ctx, cluster.NodeConfig{..., Transport: memory.Config{Network: net}})
//
// Like a real broker, the Network delivers a message for an inbox that
// nobody reads to nobody, keeps one publisher's messages to one inbox in
// order, and queues at most MaxQueued messages per inbox: past that it
// drops what arrives, as NATS drops messages for a slow consumer.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
)

// MaxQueued bounds the messages queued per inbox.
const MaxQueued = 1 << 16

// ErrOutage is what publishing returns while the Network is out.
var ErrOutage = errors.New("memory: the network is out")

// Network is an in-memory broker shared by the nodes of one process. Its
// methods are safe for concurrent use.
type Network struct {
	mu      sync.Mutex
	inboxes map[string]*inbox
	out     bool
}

// NewNetwork returns an empty Network.
func NewNetwork() *Network { return &Network{inboxes: map[string]*inbox{}} }

// Outage makes the Network unreachable: every connected node is told its
// broker connection is lost, messages queued for delivery are dropped,
// and publishing fails until Restore.
func (n *Network) Outage() {
	n.mu.Lock()
	if n.out {
		n.mu.Unlock()
		return
	}
	n.out = true
	var ins []*inbox
	for _, in := range n.inboxes {
		ins = append(ins, in)
	}
	n.mu.Unlock()
	for _, in := range ins {
		in.drop()
		in.r.Down(ErrOutage)
	}
}

// Restore ends an Outage: every node is told its broker connection is
// back.
func (n *Network) Restore() {
	n.mu.Lock()
	if !n.out {
		n.mu.Unlock()
		return
	}
	n.out = false
	var ins []*inbox
	for _, in := range n.inboxes {
		ins = append(ins, in)
	}
	n.mu.Unlock()
	for _, in := range ins {
		in.r.Up()
	}
}

// Inject publishes raw bytes to the inbox named to, as any client of the
// broker could (for tests of what a node does with bytes that are not
// frames).
func (n *Network) Inject(to string, msg []byte) error {
	return n.publish(to, [][]byte{append([]byte(nil), msg...)})
}

// Sink makes the inbox named name read by nobody in particular: what is
// published to it is taken and dropped, and nothing answers, as a node
// that hangs would look (for tests of what its peers do). It returns the
// inbox's name and a function that removes it.
func (n *Network) Sink(name string) (string, func()) {
	b, err := n.connect(name, sink{})
	if err != nil {
		return name, func() {}
	}
	return name, func() { _ = b.Close() }
}

// sink is a Receiver that drops everything.
type sink struct{}

func (sink) Deliver([]byte) {}
func (sink) Down(error)     {}
func (sink) Up()            {}

// publish queues msgs for the inbox named to; nobody reading it drops
// them.
func (n *Network) publish(to string, msgs [][]byte) error {
	n.mu.Lock()
	if n.out {
		n.mu.Unlock()
		return ErrOutage
	}
	in := n.inboxes[to]
	n.mu.Unlock()
	if in != nil {
		in.put(msgs)
	}
	return nil
}

// Config starts the memory transport on a Network; it implements
// transport.Config.
type Config struct {
	// Network is the broker. Required.
	Network *Network
	// Options tunes the transport (queues, heartbeats, timeouts).
	Options bus.Options
}

// Start implements transport.Config: the node reads the inbox named
// "memory/<address>".
func (c Config) Start(s transport.Setup) (transport.Transport, error) {
	if c.Network == nil {
		return nil, errors.New("memory: Config.Network is nil")
	}
	return bus.Start(s, "memory/"+s.Self.String(), c.Options, c.Network.connect)
}

// connect registers an inbox and starts delivering it.
func (n *Network) connect(name string, r bus.Receiver) (bus.Broker, error) {
	in := &inbox{net: n, name: name, r: r, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	n.mu.Lock()
	if n.inboxes[name] != nil {
		n.mu.Unlock()
		return nil, fmt.Errorf("memory: inbox %q is read by another node already", name)
	}
	n.inboxes[name] = in
	n.mu.Unlock()
	go in.deliver()
	return in, nil
}

// inbox is one node's connection: its queue and delivery goroutine.
type inbox struct {
	net  *Network
	name string
	r    bus.Receiver
	wake chan struct{}
	quit chan struct{}
	done chan struct{}

	mu     sync.Mutex
	queue  [][]byte
	closed bool
}

// put queues msgs, dropping what does not fit.
func (in *inbox) put(msgs [][]byte) {
	in.mu.Lock()
	if !in.closed {
		room := MaxQueued - len(in.queue)
		if len(msgs) > room {
			msgs = msgs[:max(room, 0)]
		}
		in.queue = append(in.queue, msgs...)
	}
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// drop empties the queue.
func (in *inbox) drop() {
	in.mu.Lock()
	in.queue = nil
	in.mu.Unlock()
}

// deliver hands queued messages to the receiver, one at a time.
func (in *inbox) deliver() {
	defer close(in.done)
	for {
		select {
		case <-in.quit:
			return
		case <-in.wake:
		}
		for {
			in.mu.Lock()
			batch := in.queue
			in.queue = nil
			in.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, m := range batch {
				select {
				case <-in.quit:
					return
				default:
				}
				in.r.Deliver(m)
			}
		}
	}
}

// Publish implements bus.Broker.
func (in *inbox) Publish(to string, msgs [][]byte) error { return in.net.publish(to, msgs) }

// Probe implements bus.Prober: whether a node reads the inbox.
func (in *inbox) Probe(_ context.Context, to string) error {
	in.net.mu.Lock()
	defer in.net.mu.Unlock()
	if in.net.out {
		return ErrOutage
	}
	if in.net.inboxes[to] == nil {
		return bus.ErrNoReader
	}
	return nil
}

// Close implements bus.Broker: the inbox is unregistered and its delivery
// ends.
func (in *inbox) Close() error {
	in.net.mu.Lock()
	if in.net.inboxes[in.name] == in {
		delete(in.net.inboxes, in.name)
	}
	in.net.mu.Unlock()
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	in.queue = nil
	in.mu.Unlock()
	close(in.quit)
	<-in.done
	return nil
}
