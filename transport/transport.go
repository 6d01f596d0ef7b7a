// Package transport defines how a guild node exchanges envelopes with other
// nodes: the Transport a node sends through, the Handler it receives with,
// and the Config a node starts its transport from. Implementations live in
// sub-packages: transport/tcp is the default direct TCP mesh,
// transport/nats, transport/amqp and transport/redis ride a message broker,
// and transport/memory connects nodes of one process without sockets (for
// tests). transport/transporttest checks any of them against the promises
// below.
//
// A Transport knows nodes only by their logical address (actor.Addr).
// Turning an address into a network endpoint is the caller's job
// (Setup.Resolve, which a cluster node answers from its membership).
//
// # The promises every Transport keeps
//
// The cluster layer (package cluster) builds requests, deadlines, watches
// and forwarding on these, and transporttest.Run checks each of them:
//
//   - Order: envelopes sent by one node to another arrive in the order
//     Send accepted them, or not at all; none arrives twice.
//   - Bounded queues: what waits for a peer (while it is being reached, or
//     is slower than its senders) is bounded per peer; beyond the bound
//     Send fails at once with an error matching ErrPendingQueueFull and
//     nothing is queued. Send never blocks on the network.
//   - Fail fast: when a peer cannot be reached, or the link to it is lost
//     (the peer died, the network or the broker went away), the Handler's
//     PeerLost is called within a bounded time (the transport's dead-peer
//     detection, seconds), so that requests waiting on it fail then, not
//     at their deadlines. A peer that the node's membership does not know
//     (Resolve fails) is reported lost at once.
//   - Recovery: a lost peer that comes back is reached again, at once by
//     the next Send and by the transport itself (retrying with backoff
//     until Forget), and PeerUp is called; nothing needs restarting. The
//     retrying is not optional: the cluster layer fails a request to a
//     lost peer at once, without a Send, until PeerUp, so a node that only
//     makes requests relies on it.
//   - Corrupt input closes only what it must: bytes that do not decode as
//     an envelope end the one link they came on (or are dropped, on a
//     broker) and never reach the Handler; other peers are untouched.
//   - Close ends every goroutine the transport started.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/wire"
)

// Sentinel errors. Match them with errors.Is: transports wrap them with the
// peer and the cause.
var (
	// ErrPendingQueueFull is returned by Send when the peer's bounded queue
	// of envelopes waiting to be written is full. The envelope was not
	// queued.
	ErrPendingQueueFull = errors.New("transport: pending queue full")
	// ErrClosed is returned by Send after Close.
	ErrClosed = errors.New("transport: closed")
	// ErrPeerLost is the error passed to Handler.PeerLost: the connection
	// to the peer was lost, or the peer could not be reached.
	ErrPeerLost = errors.New("transport: peer lost")
)

// Handler receives what a Transport reads from its peers.
type Handler interface {
	// HandleEnvelope is called for every envelope received from peer. env
	// and its byte fields are valid only during the call (they alias the
	// read buffer): copy what must outlive it.
	//
	// It is called from the connection's reader goroutine: one at a time
	// per peer, concurrently across peers. It must not block for long, since
	// the peer's traffic waits behind it. It may call Send.
	HandleEnvelope(peer actor.Addr, env *wire.Envelope)
	// PeerLost is called once each time an established connection to peer
	// is lost, and once when a sequence of attempts to reach a peer with
	// queued envelopes starts failing, so the node can fail every request
	// waiting on that peer at once. err matches ErrPeerLost and wraps the
	// cause. It is called without any transport lock held and may call
	// Send.
	PeerLost(peer actor.Addr, err error)
	// PeerUp is called each time a connection to peer is established,
	// after the connection it replaces, if any, was reported lost.
	// Together with PeerLost it tells whether peer is reachable. Envelopes
	// from the new connection may arrive before it. It is called without
	// any transport lock held and may call Send.
	PeerUp(peer actor.Addr)
}

// Setup is what a node hands the transport it starts: who it is, how to
// find its peers and where to deliver what arrives.
type Setup struct {
	// Self is this node's logical address.
	Self actor.Addr
	// Listen is the address a transport that accepts connections listens
	// on (transport/tcp), e.g. "127.0.0.1:0". Transports that ride a
	// broker ignore it.
	Listen string
	// Resolve returns the endpoint a peer published (its member record's
	// Endpoint, as returned by its Transport's Endpoint), or an error when
	// the peer is not known (not a member). A transport calls it before
	// reaching a peer, so it may change over time.
	Resolve func(actor.Addr) (string, error)
	// Handler receives envelopes and peer notices. Required.
	Handler Handler
	// TLS, optional, secures the transport's connections: between nodes
	// for transport/tcp, to the broker for the others.
	TLS *tls.Config
	// Logger receives the transport's logs. Never nil when set by a
	// cluster node.
	Logger *slog.Logger
}

// Config is a transport's configuration: what a cluster node is given to
// start its transport with (cluster.NodeConfig.Transport). tcp.Config,
// nats.Config, amqp.Config, redis.Config and memory.Network's Config
// implement it.
type Config interface {
	// Start starts a transport for the node that s describes.
	Start(s Setup) (Transport, error)
}

// Transport carries envelopes between this node and its peers.
//
// Its methods are safe for concurrent use.
type Transport interface {
	// Send queues env for peer and returns at once, without waiting for
	// the network. A connection is dialled lazily on the first message.
	// Send encodes env before it returns and does not keep it: the caller
	// may reuse env, and the slices it references, as soon as Send
	// returns.
	//
	// It returns an error matching ErrPendingQueueFull when the peer's
	// queue is full, and ErrClosed after Close.
	Send(peer actor.Addr, env *wire.Envelope) error
	// Forget drops everything queued for peer and stops trying to reach
	// it, as when it has left the membership for good; requests waiting
	// on it are failed through Handler.PeerLost, called before Forget
	// returns (when the transport knows the peer). A later Send to peer
	// starts afresh. The cluster layer calls it when a member leaves, and
	// takes the member back when it joins again: a PeerLost of the Forget
	// reported after that would fail the new incarnation's requests.
	Forget(peer actor.Addr)
	// Flush waits until every envelope queued for a reachable peer has
	// been handed to the network (or the broker), or ctx ends, returning
	// ctx's error (or the broker's, when it refused some). Envelopes for peers that cannot be reached are not
	// waited for. A node that shuts down calls it before Close, so that
	// its last replies leave.
	Flush(ctx context.Context) error
	// Endpoint is how other nodes reach this one: what the node publishes
	// in its member record and what their Setup.Resolve returns for it
	// ("host:port" for transport/tcp, the node's subject, queue or key on
	// a broker).
	Endpoint() string
	// Close stops the transport: it closes every connection and waits for
	// the transport's goroutines to end. Envelopes still queued are dropped.
	// Close is safe to call more than once.
	Close() error
}

// PeerStats is a snapshot of one peer's counters, for monitoring. The
// counters start when the transport first hears of the peer and survive
// its reconnects; a peer forgotten (Forget) and reached again starts
// afresh only if the transport dropped its state.
type PeerStats struct {
	// Peer is the peer's address.
	Peer actor.Addr
	// Up reports whether a connection to the peer is established now.
	Up bool
	// Queued is the number of envelopes waiting to be written to it.
	Queued int
	// FramesOut and BytesOut count the envelopes queued for it and their
	// framed bytes (heartbeats not included).
	FramesOut, BytesOut uint64
	// FramesIn and BytesIn count the envelopes read from it and their
	// bytes (heartbeats not included).
	FramesIn, BytesIn uint64
	// Connects counts the connections established with it; each one after
	// the first is a reconnect.
	Connects uint64
}

// StatsReporter is implemented by transports that keep per-peer counters
// (transport/tcp, and the broker transports through package bus, where
// Up means the peer answers and Connects counts the times it came up).
// It is optional: a monitoring tool checks for it with a type assertion
// (cluster.Node.PeerStats does).
type StatsReporter interface {
	// PeerStats returns a snapshot of every peer the transport knows, in
	// no particular order. It is safe to call concurrently with Send, and
	// cheap enough to call on every scrape.
	PeerStats() []PeerStats
}
