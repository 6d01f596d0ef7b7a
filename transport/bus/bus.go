// Package bus carries a node's envelopes over a message broker. It is the
// part that every broker transport shares (transport/nats, transport/amqp,
// transport/redis and the in-process transport/memory): each of those only
// connects to its broker and moves opaque messages to and from one inbox
// per node (a Broker); this package turns that into a transport.Transport
// that keeps the promises package transport states.
//
// # Inboxes and frames
//
// Every node reads one inbox (a NATS subject, an AMQP queue, a Redis list)
// whose name is its Endpoint, published in its member record; a node sends
// to a peer by publishing to the peer's inbox. Each message is one frame: a
// 14-byte header (the magic 0x67, the frame kind, the sender's address and
// the sender's incarnation, a random number drawn when its transport
// starts) and, for a data frame, one envelope encoded as package wire
// encodes it. docs/PROTOCOL-NODE.md gives the layout.
//
// # Reaching a peer, and losing it
//
// A broker accepts messages for an inbox nobody reads, so publishing alone
// says nothing about the peer. The first Send to a peer (or the first after
// it was lost) therefore holds the envelope, as the TCP mesh does while it
// dials, and sends a ping frame carrying this node's inbox; the peer
// answers with a pong, and any frame from the peer makes it up
// (Handler.PeerUp) and releases what was held, in order. Up to
// Options.PendingQueue envelopes wait per peer; beyond that Send fails
// with transport.ErrPendingQueueFull.
//
// The peer is lost (Handler.PeerLost, and what was held is dropped) when:
// it does not answer within Options.ReachTimeout; nothing came from it for
// Options.DeadAfter while up (both sides ping every HeartbeatInterval);
// its membership does not know it (Setup.Resolve fails); it said goodbye
// (a bye frame, sent by Close); it came back with another incarnation (it
// restarted: lost, then up again); the broker says nobody reads its inbox
// (a Broker that implements Prober, such as NATS's "no responders", is
// asked on every reach and every heartbeat, on a goroutine of its own so
// that data does not wait for the answer, and a killed peer is lost
// within one heartbeat); publishing to it failed; or the connection to the
// broker was lost (every peer at once). When the connection comes back the
// transport draws a new incarnation (unless its broker keeps the inbox
// meanwhile, see Keeping): its peers, which may not have noticed the
// outage but whose frames to it may have been lost meanwhile, lose it
// (failing their requests to it at once) and reach it again.
//
// A lost peer is reached again by itself: the ticker pings (and probes)
// it after a wait that starts at a quarter of HeartbeatInterval and
// doubles up to DeadAfter, jittered, until it answers (PeerUp), Forget is
// called, or the membership no longer knows it; while the broker is away
// it waits, and when the broker is back every such peer is reached at
// once. A failed retry is not reported again (the peer was reported lost,
// and nothing waited for it); a Send reaches a lost peer at once, and its
// failure is reported, even while a retry is reaching it (the retry's
// ping may have gone before the peer came back, and what the retry finds
// out is then ignored). The retrying matters because the cluster layer
// fails requests to a lost peer without a Send until PeerUp: after a
// broker outage, or a probe that raced the peer's own reconnection, a
// node that only makes requests would otherwise never reach it again.
//
// # What arrives
//
// A message that is not a frame, whose envelope does not decode, that
// claims to come from this node, or that is above MaxFrame is dropped and
// counted (logged at most once a second). A frame from a new address
// creates a peer only while the transport has fewer than MaxPeers, so
// whoever can publish to the broker cannot grow a node without bound.
// The Receiver's methods wait until Start has returned, so a broker may
// deliver as soon as it is connected.
//
// # Order and duplicates
//
// One writer goroutine per peer publishes that peer's frames in the order
// Send accepted them, and every broker used keeps the order of one
// publisher's messages to one inbox, so envelopes from one node to another
// arrive in order. Nothing is published twice, and an inbox is read by one
// node, so nothing is delivered twice: what was lost with a broker stays
// lost, and the requests waiting on it fail fast (PeerLost).
//
// # Goroutines
//
// A Transport started by Start owns: one writer per peer it has sent to or
// heard from, one ticker (heartbeats, timeouts), one notifier (it calls
// PeerLost and PeerUp in order, with no lock held), one goroutine per probe
// in flight, and whatever the Broker runs to deliver (its own goroutines,
// which call Deliver one at a time). Close ends them all.
package bus

import (
	"context"
	"errors"
	"time"

	"github.com/guildkit/guild/wire"
)

// ErrNoReader is what a Prober returns when nobody reads the inbox.
var ErrNoReader = errors.New("bus: nobody reads the inbox")

// ErrFull is what a Broker's Publish returns (wrapped) when the peer's
// inbox is at its bound and took none of the messages: the peer is slow,
// not lost. The transport keeps the frames, in order, and publishes them
// again after a short pause; meanwhile what waits for the peer (the
// refused frames included) grows to Options.PendingQueue and Send then
// fails with transport.ErrPendingQueueFull, as on a TCP connection the
// peer does not read fast enough. Nothing is lost. The pings and pongs
// of a refused batch are published again alone, at once, so that a peer
// whose inbox has room for them but not for the data still hears this
// node is alive.
var ErrFull = errors.New("bus: the peer's inbox is full")

// Broker is a connection to a message broker, as a broker transport
// implements it.
type Broker interface {
	// Publish hands msgs, in order, to the broker for the inbox named to.
	// It returns once the broker, or the client's own bounded buffer, has
	// them; an error means they may not have been published (the peer will
	// be reported lost). It may keep msgs: the caller does not reuse them.
	Publish(to string, msgs [][]byte) error
	// Close disconnects from the broker. Once it returns no Receiver
	// method is called.
	Close() error
}

// Prober is implemented by a Broker that can tell at once whether anyone
// reads an inbox (NATS's "no responders"). Probe returns ErrNoReader when
// nobody does, nil when someone does, and another error when it cannot
// tell (ctx ended, the broker is unreachable).
type Prober interface {
	Probe(ctx context.Context, to string) error
}

// Flusher is implemented by a Broker whose client buffers what Publish
// took: Flush returns once that has reached the broker, or ctx ends.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Buffered is implemented by a Broker whose Publish only appends to the
// client's own buffer, which the client writes out on its own goroutine
// (nats.go does): it never waits for the network. When Buffered returns
// true, a Send that finds nothing queued ahead of its frame for an up peer
// publishes it on its own goroutine instead of waking the peer's writer,
// which saves a goroutine hand-off on each side of a round trip; order is
// kept, since the writer waits while such a Send publishes. A Broker whose
// Publish is a round trip to the broker (Redis, AMQP with confirms) must
// not say so: Send would then wait for the network.
type Buffered interface {
	Buffered() bool
}

// Packing is implemented by a Broker whose cost is per message more than
// per byte (NATS, AMQP): when Packs returns true, a peer's writer packs
// the data frames it publishes together (what queued while its previous
// publish went out) into pack frames of many envelopes each, so that the
// broker routes, and its consumer acknowledges, one message for many. A
// Broker that bounds an inbox by its number of messages (Redis) must not
// say so, or the bound would no longer bound its bytes.
type Packing interface {
	Packs() bool
}

// Keeping is implemented by a Broker that keeps what is published to a
// node's inbox while the node's connection to it is down, and delivers it
// once the node is back (Redis's lists). When KeepsInbox returns true the
// transport keeps its incarnation across a broker outage: its peers, which
// lost nothing, need not fail their requests to it. Otherwise it draws a
// new one (see the package doc).
type Keeping interface {
	KeepsInbox() bool
}

// Receiver is what a Broker delivers to.
type Receiver interface {
	// Deliver is called for every message read from the inbox, one at a
	// time, in the order the broker delivers them. msg is valid only
	// during the call.
	Deliver(msg []byte)
	// Down is called when the connection to the broker is lost (the
	// client may be reconnecting).
	Down(err error)
	// Up is called when the connection is back and the inbox is read
	// again (not for the first connection).
	Up()
}

// Connect connects to a broker, starts reading the inbox named inbox into
// r and returns the connection. It is called once, by Start.
type Connect func(inbox string, r Receiver) (Broker, error)

// Defaults for the zero fields of Options.
const (
	DefaultPendingQueue      = 4096
	DefaultHeartbeatInterval = time.Second
	DefaultDeadAfter         = 3 * time.Second
	DefaultReachTimeout      = 2 * time.Second
)

// Options tunes a broker transport. Zero fields take the defaults.
type Options struct {
	// PendingQueue bounds the envelopes held per peer while it is being
	// reached, and queued for its writer: default DefaultPendingQueue.
	PendingQueue int
	// MaxFrame is the largest envelope sent or accepted, in bytes: default
	// wire.DefaultMaxFrame. Brokers have limits of their own (NATS's
	// max_payload is 1 MiB by default).
	MaxFrame int
	// HeartbeatInterval is how often an up peer is pinged: default 1s.
	HeartbeatInterval time.Duration
	// DeadAfter is how long an up peer may stay silent before it is lost;
	// longer than HeartbeatInterval: default 3s.
	DeadAfter time.Duration
	// ReachTimeout is how long a peer being reached has to answer:
	// default 2s.
	ReachTimeout time.Duration
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.PendingQueue == 0 {
		o.PendingQueue = DefaultPendingQueue
	}
	if o.MaxFrame == 0 {
		o.MaxFrame = wire.DefaultMaxFrame
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.DeadAfter == 0 {
		o.DeadAfter = DefaultDeadAfter
	}
	if o.ReachTimeout == 0 {
		o.ReachTimeout = DefaultReachTimeout
	}
	return o
}

// ErrBadOptions is returned by Validate and Start for invalid Options.
var ErrBadOptions = errors.New("bus: bad options")

// Validate reports whether o can be used, as an error matching
// ErrBadOptions that names the first bad field.
func (o Options) Validate() error {
	d := o.withDefaults()
	switch {
	case d.PendingQueue < 0 || d.MaxFrame < 0:
		return errors.Join(ErrBadOptions, errors.New("PendingQueue and MaxFrame may not be negative"))
	case d.HeartbeatInterval < 0 || d.DeadAfter < 0 || d.ReachTimeout < 0:
		return errors.Join(ErrBadOptions, errors.New("a duration is negative"))
	case d.DeadAfter <= d.HeartbeatInterval:
		return errors.Join(ErrBadOptions, errors.New("DeadAfter must be longer than HeartbeatInterval"))
	}
	return nil
}
