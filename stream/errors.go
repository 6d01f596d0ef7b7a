package stream

import "errors"

// Sentinel errors. Match them with errors.Is: they are wrapped with the
// peer and the cause.
var (
	// ErrClosed: this node's Host is closed (or shutting down, for
	// OpenStream); its streams end with it.
	ErrClosed = errors.New("stream: host closed")
	// ErrPeerGone: the peer's node died, left the membership, or the
	// stream connection to it was lost (reset, keepalive timeout). Every
	// stream to or from it ends with this error, on both sides.
	ErrPeerGone = errors.New("stream: peer gone")
	// ErrNoPeer: the address is not a member, or its record publishes no
	// stream endpoint (its node runs no Host).
	ErrNoPeer = errors.New("stream: no such peer")
	// ErrTooManyStreams: the limit of open streams between this node and
	// the peer (Config.MaxStreamsPerPeer, checked by the opener and by the
	// acceptor, each with its own limit) is reached. Nothing was opened.
	ErrTooManyStreams = errors.New("stream: too many streams to the peer")
	// ErrNoService: the peer has no handler for the service asked for.
	ErrNoService = errors.New("stream: no such service on the peer")
	// ErrRefused: the peer refused the stream for another reason (it is
	// shutting down, or the open header did not decode).
	ErrRefused = errors.New("stream: refused by the peer")
	// ErrStreamClosed: Read or Write on a stream this side has closed
	// (Write after CloseWrite, too).
	ErrStreamClosed = errors.New("stream: stream closed")
	// ErrBadOption: an OpenStream option is invalid (a service name or
	// info too long).
	ErrBadOption = errors.New("stream: bad option")
	// ErrHandshake: the stream connection's handshake failed (TLS, the
	// hello, or the peer answered with another address than dialled).
	ErrHandshake = errors.New("stream: handshake failed")
)
