// Package tcp is guild's default node-to-node transport: a direct mesh of
// TCP connections, optionally with mutual TLS. It implements
// transport.Transport; the wire format of each frame is package wire's, and
// PROTOCOL.md beside this file specifies the connection set-up.
//
// # Connections
//
// There is at most one connection per pair of nodes, used in both
// directions. It is dialled lazily, by the first Send to a peer that has
// no connection; Config.Resolve turns the peer's actor.Addr into the
// endpoint to dial, before every attempt.
//
// Right after connecting (and after the TLS handshake, with Config.TLS),
// the dialler writes a hello frame: a fixed 12-byte body holding the magic
// "GUILD1", the protocol version (1), a flags byte and its address. The
// acceptor checks it and answers with its own hello. Only then may either
// side write envelopes.
//
// When two nodes dial each other at once, the connection dialled by the
// node with the lower address wins. The lower node refuses the higher
// node's connection while its own dial is in progress or installed: its
// answering hello carries the reject flag, and both sides close that
// connection. The higher node always accepts the lower node's connection.
// Because the decision is made in the handshake, before any envelope is
// written, the loser never carries an envelope: everything queued for the
// peer is written on the winner, in order. An incoming connection from a
// peer that already has one replaces it (the peer dials only when it has
// no connection, so the old one is stale, for example after a restart),
// except for that refusal rule.
//
// # Queues and writing
//
// Each peer has one bounded outbox (Config.PendingQueue envelopes) that
// outlives its connections. Send encodes the envelope as a frame at the end
// of the outbox's buffer and returns at once, or returns
// transport.ErrPendingQueueFull; it does not keep the envelope, so callers
// reuse theirs. The outbox holds frames while the connection is being
// dialled, while the peer is unreachable, and while the connection is
// slower than the senders. Finding the peer takes no lock (the peer map is
// copied on write), and a Send to a connected peer takes only the outbox's
// mutex.
//
// The connection's writer goroutine is woken when the outbox goes from
// empty to non-empty. It swaps the outbox's buffer for an empty one and
// writes every waiting frame with one system call, never waiting on a
// timer: a burst goes out in few system calls and a lone message goes out
// at once.
//
// Unless Config.QueuedWrites says otherwise (see there), a lone message
// need not wake the writer at all: a Send that finds the connection quiet
// (nothing being written, no write ended in the last 10 µs) writes its
// frames itself, on the caller's goroutine, with one non-blocking system
// call (plain TCP on Unix; not over TLS). That saves a goroutine hand-off on each side of
// a request's round trip. A stream of sends, closer together than that,
// is left to the writer and batched as above. What the socket does not
// take at once is left to the writer: whole frames at the front of the
// outbox, and the rest of a frame the socket took in part for that
// connection's writer only (another connection never starts inside a
// frame). Whoever writes holds the outbox's busy flag, so frames never
// interleave and leave in order. A direct write that fails closes the
// socket, and the connection's reader fails it, as for any lost
// connection.
//
// # Liveness
//
// A writer that has written nothing for Config.HeartbeatInterval writes a
// heartbeat: an empty frame, which the reader skips. The reader gives up
// when nothing at all arrived for Config.DeadAfter; a batch of writes that
// makes no progress for DeadAfter fails too. Either way, and on EOF, a
// write error or corrupt input, the connection is closed and
// Handler.PeerLost is called once for it. The peer is redialled at once
// when the connection had lived longer than ReconnectBackoffMax, otherwise
// after the current backoff, and Handler.PeerUp is called when a
// connection is back. The transport keeps redialling a peer it has talked
// to until Forget(peer) (the cluster calls it when the peer leaves the
// membership), which also drops what was queued for it.
//
// A failed dial is retried with exponential backoff between
// ReconnectBackoffMin and ReconnectBackoffMax (each wait jittered between
// half and all of it); Send keeps queueing up to the bound meanwhile. The
// cluster layer fails a request to a peer reported lost at once, without
// queueing it, until PeerUp. The first failure of a
// sequence of attempts calls Handler.PeerLost once, so requests waiting on
// the peer fail fast; the envelopes stay queued and are delivered if the
// peer comes back (a request that was failed may therefore still be
// handled by the peer; its answer finds no waiter). A refusal under the
// simultaneous-dial rule is not a failure and calls nothing.
//
// Envelopes already handed to a connection that is then lost may be lost
// with it: the transport does not acknowledge or replay. Order is kept per
// connection, and across a reconnect for envelopes that were still queued.
//
// # Bad input
//
// A frame larger than Config.MaxFrame, a stream that ends inside a frame,
// or an envelope that fails to decode (wire.ErrMalformed) closes that one
// connection, logged at Warn with the peer and the error; the transport and
// its other connections are unaffected. An envelope of a kind this version
// does not know is dropped (logged at Debug). A bad or missing hello, a
// hello from a wrong version, or a failed TLS handshake closes the
// connection before it is installed, logged at Warn.
//
// # Goroutines
//
// Every goroutine is started by the Transport, counted in its WaitGroup,
// and refused once Close has begun:
//
//   - one listener goroutine, accepting connections;
//   - one short-lived goroutine per accepted connection for its handshake;
//   - at most one dial goroutine per peer, alive while that peer has no
//     connection and has not been forgotten (it connects, handshakes, and
//     sleeps through the backoff);
//   - per installed connection, one reader goroutine (which calls the
//     Handler) and one writer goroutine. A replacement connection's writer
//     waits for the previous writer to end before taking from the queue.
//
// Close marks the transport closed, closes the listener, every connection
// and every handshake in progress, cancels dials, and waits for all of
// them. It does not call PeerLost. Handler methods are never called after
// Close returns.
//
// # Locking
//
// One mutex (Transport.mu) guards changes to the peer table (which Send
// reads without it: the table is copied on write), each peer's connection
// and dial state, and the set of handshaking connections. It is never held
// while calling the Handler, dialling, or reading; it is held while the
// acceptor writes its 16-byte hello, so that the hello precedes anything
// the new writer sends. Each peer's outbox has its own mutex, taken by
// Send and by the writer's swap, never together with Transport.mu, and
// never held during a write (a direct write holds the busy flag instead).
package tcp
