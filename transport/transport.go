// Package transport defines how a guild node exchanges envelopes with other
// nodes: the Transport a node sends through, and the Handler it receives
// with. Implementations live in sub-packages; transport/tcp is the default
// direct TCP mesh.
//
// A Transport knows nodes only by their logical address (actor.Addr).
// Turning an address into a network endpoint is the caller's job (a
// resolver in the transport's configuration, later the cluster's membership).
package transport

import (
	"errors"

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
	// Close stops the transport: it closes every connection and waits for
	// the transport's goroutines to end. Envelopes still queued are dropped.
	// Close is safe to call more than once.
	Close() error
}
