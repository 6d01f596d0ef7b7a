package gate

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/guildkit/guild/rpc"
)

// Adapters: a client that speaks a wire protocol other than the framed one
// of package gatepb (MQTT: package gate/mqtt) is served through an
// adapter, which translates its protocol to frames and back. The gateway
// owns the transport (the listener, the per-source and connection limits,
// PROXY protocol, TLS, closing the connection; over WebSocket, the upgrade
// through the seam of upgrade.go, with package gate/websocket); the
// adapter owns the bytes on it. Sessions, routing, auth, rate limits and
// pushes work unchanged. This file is the whole seam: an adapter package
// uses nothing else of gate's internals, and gate knows nothing of the
// protocols on the other side.

// Conn is one client connection of an adapter, made by its NewConn. Read
// is called by the connection's reader goroutine only, WriteFrames by its
// writer goroutine only, Finish once, by the writer (or by the goroutine
// that refuses a connection, when neither runs).
type Conn interface {
	// Read returns the next frame for the gateway, an encoded
	// gatepb.Frame, valid until the next Read: the first a Handshake, then
	// Requests, Heartbeats and a Close for the client's goodbye. It
	// answers whatever the protocol answers by itself. It fails once
	// deadline has passed with nothing read (a timeout error, as net.Conn
	// reads give), with an error wrapping wire.ErrFrameTooLarge for a
	// message over Stream.Limits.MaxFrame, or with an *EndError for an
	// ending of the adapter's own (a protocol violation, a refused
	// handshake, a keep alive of its own).
	Read(deadline time.Time) ([]byte, error)
	// WriteFrames translates the gateway's encoded frames (HandshakeAck,
	// Response, Push, Heartbeat) to the protocol and writes them, in
	// order.
	WriteFrames(frames [][]byte) error
	// Finish tells the client why the connection ends, in the protocol's
	// terms, after its last frames, and reports whether it did. It must
	// not close the stream: the gateway then ends the transport (a TCP
	// half close; a WebSocket close handshake, with status 1000 when the
	// client was told, or is leaving cleanly) and closes it.
	Finish(e Ending) (told bool)
}

// NewConn makes the Conn that serves the client on s.
type NewConn func(s Stream) Conn

// Stream is a client's connection as an adapter gets it.
type Stream struct {
	// Conn is the client's byte stream: over WebSocket, the bytes of its
	// binary messages, in order (a read deadline there does not close the
	// WebSocket). The adapter reads and writes it and sets its deadlines;
	// the gateway closes it.
	Conn net.Conn
	// Remote is the client's address (behind a trusted proxy, the one the
	// proxy gives); Network is the listener's name, SessionInfo.Listener.
	Remote, Network string
	// Limits are the gateway's, with their defaults filled in.
	Limits Limits
	// Logger is the gateway's logger.
	Logger *slog.Logger
}

// Ending is why the gateway ends a connection, as Conn.Finish and
// Transport.End get it.
type Ending struct {
	// Code is the code of the framed protocol's Close frame; 0 for a clean
	// end (the client's goodbye, or the client closed the connection).
	Code rpc.Code
	// Reason says why, for people.
	Reason string
	// Cause tells apart endings that share a Code, which a protocol may
	// name differently.
	Cause Cause
	// Told: the client was told already, in its protocol's terms (a
	// refusing answer to its handshake): Finish says nothing more.
	Told bool
	// Refused: the gateway refuses the connection before reading its
	// handshake (full, shutting down, or over its source's limits; Cause
	// says which). Finish may wait briefly for the client's handshake, to
	// answer it with the refusal.
	Refused bool
	// Err is the *EndError of the adapter's Read that ended the
	// connection, when one did; nil otherwise. An adapter finds its own
	// error in it with errors.As.
	Err error
}

// Cause is the cause of an Ending, where its Code alone does not say.
type Cause uint8

const (
	// CauseCode: the usual ending of its Code.
	CauseCode Cause = iota
	// CauseGatewayFull: refused, the gateway has Limits.MaxConns
	// connections (Code rpc.Unavailable).
	CauseGatewayFull
	// CauseSlowClient: the client does not read fast enough (Code
	// rpc.ResourceExhausted).
	CauseSlowClient
	// CauseRateLimit: too many requests refused by the rate limit
	// (Limits.MaxRefused; Code rpc.ResourceExhausted).
	CauseRateLimit
	// CauseSourceConns: refused, the client's address has
	// Limits.PerSourceConns connections (Code rpc.ResourceExhausted).
	CauseSourceConns
	// CauseSourceRate: refused, the client's address opens connections
	// faster than Limits.ConnRate (Code rpc.ResourceExhausted).
	CauseSourceRate
)

// An EndError, returned by Conn.Read (or Transport.Read), ends the
// connection with the adapter's Code and Reason (the Close frame's, for
// OnClose and the transport's ending, such as a WebSocket close status);
// Told says that the client was told already (a refused handshake).
// Err, when set, is the error OnClose gets; the Ending's Err is the
// EndError, so that Finish (or End) finds it again.
type EndError struct {
	Code   rpc.Code
	Reason string
	Told   bool
	Err    error
}

func (e *EndError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Reason
}

func (e *EndError) Unwrap() error { return e.Err }

// public returns the Ending an adapter gets for e.
func (e ending) public() Ending {
	return Ending{Code: e.code, Reason: e.reason, Cause: e.cause, Told: e.told, Refused: e.refuse, Err: e.err}
}

// ListenConns accepts an adapter's clients on a TCP address
// ("127.0.0.1:0" for a random port), with TLS when tlsConfig is set, as
// ListenTCP does (PROXY protocol, per-source limits, MaxConns), and
// returns the address it listens on. Each connection is served by the
// Conn newConn makes; network names the listener (SessionInfo.Listener,
// logs, Stats when it is one of ListenerKinds). An adapter's sessions are
// not kept for resumption (Limits.ResumeWindow): resume needs the framed
// protocol.
func (g *Gateway) ListenConns(network, addr string, tlsConfig *tls.Config, newConn NewConn) (net.Addr, error) {
	if err := adapterNetwork(network); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &listenError{kind: network, addr: addr, err: err}
	}
	ln = g.proxyListener(ln)
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln.Addr(), g.serveListener(ln, network, false, func(nc net.Conn) clientConn {
		return g.newAdapterConn(nc, nil, nc.RemoteAddr().String(), network, newConn)
	})
}

// adapterNetwork checks an adapter listener's name: not empty, nor one of
// the framed protocol's listeners.
func adapterNetwork(network string) error {
	switch network {
	case "", "tcp", "ws", "kcp":
		return fmt.Errorf("gate: adapter network %q: give a name of the protocol's own, such as \"mqtt\", not empty nor tcp, ws or kcp", network)
	}
	return nil
}

// adapterConn is a client of an adapter: the adapter's Conn over the
// gateway's transport.
type adapterConn struct {
	conn Conn
	nc   net.Conn
	// t: over an upgraded connection (UpgradeHandler: WebSocket), its
	// transport, whose Stream is nc; nil over TCP.
	t       Transport
	remote  string
	network string
}

func (g *Gateway) newAdapterConn(nc net.Conn, t Transport, remote, network string, newConn NewConn) *adapterConn {
	c := &adapterConn{nc: nc, t: t, remote: remote, network: network}
	c.conn = newConn(Stream{Conn: nc, Remote: remote, Network: network, Limits: g.lim, Logger: g.log})
	return c
}

func (c *adapterConn) read(deadline time.Time) ([]byte, error) { return c.conn.Read(deadline) }
func (c *adapterConn) writeFrames(frames [][]byte) error       { return c.conn.WriteFrames(frames) }
func (c *adapterConn) remoteAddr() string                      { return c.remote }
func (c *adapterConn) kind() string                            { return c.network }

// finish lets the adapter say why, then half-closes a TCP connection (see
// clientConn.finish), or ends its transport (Transport.End; a WebSocket's
// close handshake): cleanly (1000) once the client knows why, with e's
// status and reason otherwise.
func (c *adapterConn) finish(e ending) bool {
	said := c.conn.Finish(e.public()) || e.told || e.code == 0
	if c.t != nil {
		end := e.public()
		if said {
			// The client knows why: the transport ends cleanly (a
			// WebSocket's 1000), with the reason.
			end = Ending{Reason: e.reason}
		}
		c.t.End(end)
		return false
	}
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite() == nil
	}
	return false
}

// close closes the connection at once (over a transport, Transport.Close).
func (c *adapterConn) close() error {
	if c.t != nil {
		return c.t.Close()
	}
	return c.nc.Close()
}
