// Package gatews is guild's WebSocket transport
// (github.com/coder/websocket): Listen and Handler give a gateway of
// package gate WebSocket clients of the framed protocol, every frame one
// binary message (docs/PROTOCOL.md); ListenConns and ConnHandler carry an
// adapter's protocol over WebSocket instead (package gate/mqtt uses them
// for MQTT over WebSocket). Package client dials WebSocket on its own.
//
// It lives in a package of its own so that a game whose gateway uses only
// TCP or KCP does not link a WebSocket library: import it (as gatews)
// where a gateway listens on WebSocket. The gateway keeps the HTTP side
// (gate.Gateway.UpgradeHandler and ListenHTTP): its servers' limits
// (gate.Gateway.HTTPServer), the Origin check (gate.Config.Origins,
// package gate/origin), the per-source limits and MaxConns, PROXY
// protocol and TLS. This package upgrades the request and carries the
// session's bytes.
//
// # Close status
//
// Every ending the gateway chooses ends the WebSocket with a close status
// and the reason (cut to the 123 bytes a close frame holds), after the
// framed protocol's Close frame: 1000 (normal closure) for a clean end,
// 1001 (going away) for rpc.Unavailable, the gateway shutting down, 1002
// (protocol error) for rpc.InvalidArgument, 1003 (unsupported data) for a
// text message, 1009 (message too big) for rpc.ResourceExhausted, 1013
// (try again later) for a connection refused because the gateway is full
// or its source is over its limits, 1008 (policy violation) for a client
// too slow to read or refused too often by the rate limit, 4000 plus the
// code for other codes below 1000 (4004 heartbeat lost, 4006 logged in
// elsewhere, 4007 kicked, 4016 unauthenticated), and 1008 for a game's
// code from 1000 up. Over an adapter, once the adapter's protocol has
// said why (an MQTT 5 DISCONNECT), the status is 1000.
package gatews

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/wire"
)

// Network is the name of the framed protocol's WebSocket listeners in
// sessions (gate.SessionInfo.Listener), stats and logs.
const Network = "ws"

// DefaultPath is the usual HTTP path of the framed protocol over
// WebSocket (a cluster file's gateway.ws_path).
const DefaultPath = "/ws"

// Listen accepts clients of g over WebSocket on addr ("127.0.0.1:0" for a
// random port), at path (DefaultPath, say), with TLS (wss) when tlsConfig
// is set, and returns the address it listens on. It serves Handler on a
// server of g's own (g.HTTPServer's limits), which g closes with its
// other listeners. To serve WebSocket beside other HTTP handlers (the
// game's page), mount Handler on your own server instead.
//
// Listen fails with gate.ErrClosed once g's Shutdown or Close has begun,
// and, when the address cannot be used, with an error that names it
// ("gate: ws listener: 127.0.0.1:7002 is in use") and wraps the system's
// (errors.Is(err, syscall.EADDRINUSE)).
func Listen(g *gate.Gateway, addr, path string, tlsConfig *tls.Config) (net.Addr, error) {
	return g.ListenHTTP(Network, addr, path, tlsConfig, upgrader(""), nil)
}

// Handler returns the http.Handler that upgrades requests to WebSocket
// sessions of g, to mount on a server of your own (beside the game's web
// page, say); g.HTTPServer makes one with the gateway's HTTP limits. See
// gate.Gateway.UpgradeHandler for the checks it makes before the upgrade.
func Handler(g *gate.Gateway) http.Handler {
	return g.UpgradeHandler(Network, upgrader(""), nil)
}

// ConnHandler returns the http.Handler that serves an adapter's clients
// of g over WebSocket (see gate.Conn), to mount on a server of your own:
// it accepts the WebSocket subprotocol subprotocol, and gives newConn the
// bytes of the binary messages as a stream. network names the listener,
// as for g.ListenConns ("mqtt-ws"); a bad name (empty, tcp, ws or kcp)
// makes a handler that answers every request 500 and logs why; a nil
// newConn, one that answers 500.
func ConnHandler(g *gate.Gateway, network, subprotocol string, newConn gate.NewConn) http.Handler {
	if newConn == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, errNoNewConn.Error(), http.StatusInternalServerError)
		})
	}
	return g.UpgradeHandler(network, upgrader(subprotocol), newConn)
}

// ListenConns serves ConnHandler at path on a server of g's own on addr,
// with TLS (wss) when tlsConfig is set, which g closes with its other
// listeners, and returns the address it listens on. It fails as Listen
// does, for a bad network name and for a nil newConn.
func ListenConns(g *gate.Gateway, network, addr, path, subprotocol string, tlsConfig *tls.Config, newConn gate.NewConn) (net.Addr, error) {
	if newConn == nil {
		return nil, errNoNewConn
	}
	return g.ListenHTTP(network, addr, path, tlsConfig, upgrader(subprotocol), newConn)
}

// errNoNewConn: ListenConns and ConnHandler serve an adapter, which
// newConn makes.
var errNoNewConn = errors.New("gatews: an adapter's newConn is nil")

// writeTimeout bounds one write to a client: a client that takes no bytes
// for this long is cut off (the gateway's own bound for every transport).
const writeTimeout = 10 * time.Second

// closeTimeout bounds the close handshake's wait for the client's close
// (the gateway's linger after a session's last frames).
const closeTimeout = 2 * time.Second

// upgrader returns the gate.Upgrader that accepts a WebSocket with
// subprotocol ("" for none: the framed protocol).
func upgrader(subprotocol string) gate.Upgrader {
	var opts websocket.AcceptOptions
	if subprotocol != "" {
		opts.Subprotocols = []string{subprotocol}
	}
	// The gateway checks the Origin (gate.Config.Origins) before the
	// upgrade.
	opts.InsecureSkipVerify = true
	return func(w http.ResponseWriter, r *http.Request, lim gate.Limits) (gate.Transport, error) {
		hw := &hijackConn{ResponseWriter: w}
		ws, err := websocket.Accept(hw, r, &opts)
		if err != nil {
			return nil, err // Accept has answered the HTTP request
		}
		// conn.Read enforces MaxFrame; this limit, above it, is a
		// backstop. A stream (NetConn) lifts it: the adapter enforces
		// MaxFrame.
		ws.SetReadLimit(int64(lim.MaxFrame) + 1)
		return &conn{ws: ws, raw: hw.conn, max: lim.MaxFrame}, nil
	}
}

// conn is one client's WebSocket: a gate.Transport.
type conn struct {
	ws *websocket.Conn
	// raw is the connection under ws (see hijackConn), where reads get
	// their deadline: a read whose context ends closes the WebSocket at
	// once, leaving no way to tell the client why. nil when the handler
	// could not see it: reads then take a context deadline.
	raw net.Conn
	max int // Limits.MaxFrame
}

// Read reads the next binary message, the next frame.
func (c *conn) Read(deadline time.Time) ([]byte, error) {
	ctx := context.Background()
	if c.raw != nil {
		if err := c.raw.SetReadDeadline(deadline); err != nil {
			return nil, err
		}
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, readError(err)
	}
	if typ != websocket.MessageBinary {
		return nil, &gate.EndError{Code: rpc.InvalidArgument, Reason: "a WebSocket text message (frames are binary messages)", Err: errTextMessage}
	}
	// One byte more than the limit tells a message too large, which is
	// left unread (the close handshake skips it); the WebSocket's own
	// limit, just above, would close the connection without a word.
	b, err := io.ReadAll(io.LimitReader(r, int64(c.max)+1))
	if err != nil {
		if isTimeout(err) {
			return nil, &gate.SlowFrameError{Got: len(b), Err: err}
		}
		return nil, readError(err)
	}
	if len(b) > c.max {
		return nil, fmt.Errorf("%w: a WebSocket message of more than %d bytes", wire.ErrFrameTooLarge, c.max)
	}
	return b, nil
}

// errTextMessage: the protocol is binary.
var errTextMessage = errors.New("gatews: a WebSocket text message (frames are binary messages)")

// readError returns a failed read's error as the gateway reads it:
// WebSocket's read limit ("message too big") wraps wire.ErrFrameTooLarge,
// and a close from the client wraps io.EOF.
func readError(err error) error {
	var ce websocket.CloseError
	switch {
	case websocket.CloseStatus(err) == websocket.StatusMessageTooBig || strings.Contains(err.Error(), "read limited at"):
		return fmt.Errorf("%w: %w", wire.ErrFrameTooLarge, err)
	case errors.As(err, &ce):
		return &closedError{err: ce}
	}
	return err
}

// closedError is a read that found the client's close frame: the client
// closed the connection.
type closedError struct{ err websocket.CloseError }

func (e *closedError) Error() string {
	return fmt.Sprintf("the client closed the WebSocket: %v", e.err)
}

// Is reports that the client closed the connection: io.EOF.
func (e *closedError) Is(target error) bool { return target == io.EOF }

func (e *closedError) Unwrap() error { return e.err }

// isTimeout reports whether a read failed on its deadline: on the socket
// (os.ErrDeadlineExceeded, a net.Error) or on its context.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// WriteFrames writes each frame as one binary message.
func (c *conn) WriteFrames(frames [][]byte) error {
	// Not bounded by the gateway's end: the gateway cuts off a slow
	// client by closing the connection, after the last frames had their
	// chance (and a refusal's Close frame goes out even after Close).
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	for _, f := range frames {
		if err := c.ws.Write(ctx, websocket.MessageBinary, f); err != nil {
			return err
		}
	}
	return nil
}

// Stream returns the WebSocket's binary messages as a byte stream
// (websocket.NetConn), whose read deadlines go to the connection under
// it. NetConn lifts the read limit: the adapter enforces MaxFrame. Its
// context is not the gateway's: End closes the WebSocket itself, after
// its last frames had their chance.
func (c *conn) Stream() net.Conn {
	return stream{Conn: websocket.NetConn(context.Background(), c.ws, websocket.MessageBinary), raw: c.raw}
}

// End closes the WebSocket with a close handshake: e's status (see
// closeStatus) and reason, then the client's close, read under a fresh
// deadline (a reader that timed out left one in the past), bounded by
// closeTimeout.
func (c *conn) End(e gate.Ending) {
	if c.raw != nil {
		_ = c.raw.SetReadDeadline(time.Now().Add(closeTimeout))
	}
	_ = c.ws.Close(closeStatus(e), closeReason(e.Reason))
}

// Close closes the connection at once: the socket first, which ends a
// close handshake in progress (ws.CloseNow would wait for it).
func (c *conn) Close() error {
	if c.raw != nil {
		_ = c.raw.Close()
	}
	return c.ws.CloseNow()
}

// stream is a WebSocket's byte stream (websocket.NetConn) whose read
// deadlines go to the connection under it, raw, when there is one: a
// read deadline on the NetConn would close the WebSocket with no word.
type stream struct {
	net.Conn
	raw net.Conn
}

// Read reads the bytes of the binary messages; a close from the client
// wraps io.EOF.
func (s stream) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if err != nil && err != io.EOF {
		err = readError(err)
	}
	return n, err
}

// SetReadDeadline sets the deadline of the reads on the connection under
// the WebSocket.
func (s stream) SetReadDeadline(t time.Time) error {
	if s.raw != nil {
		return s.raw.SetReadDeadline(t)
	}
	return s.Conn.SetReadDeadline(t)
}

// SetDeadline sets the read and write deadlines (see SetReadDeadline).
func (s stream) SetDeadline(t time.Time) error {
	return errors.Join(s.SetReadDeadline(t), s.Conn.SetWriteDeadline(t))
}

// closeStatus is the WebSocket close status of an ending (see the
// package doc): the protocol's own status where one fits, otherwise 4000
// plus the code, and 1008 (policy violation) for a game's code from 1000
// up, which does not fit in the private range.
func closeStatus(e gate.Ending) websocket.StatusCode {
	switch e.Cause {
	case gate.CauseGatewayFull, gate.CauseSourceConns, gate.CauseSourceRate:
		return websocket.StatusTryAgainLater
	case gate.CauseSlowClient, gate.CauseRateLimit:
		return websocket.StatusPolicyViolation
	}
	if errors.Is(e.Err, errTextMessage) {
		return websocket.StatusUnsupportedData
	}
	switch e.Code {
	case rpc.OK:
		return websocket.StatusNormalClosure
	case rpc.Unavailable:
		return websocket.StatusGoingAway
	case rpc.InvalidArgument:
		return websocket.StatusProtocolError
	case rpc.ResourceExhausted:
		return websocket.StatusMessageTooBig
	}
	if e.Code < 1000 {
		return websocket.StatusCode(4000 + int(e.Code))
	}
	return websocket.StatusPolicyViolation
}

// closeReason returns reason cut to fit a WebSocket close frame (123
// bytes), on a UTF-8 boundary.
func closeReason(reason string) string {
	const max = 123
	if len(reason) <= max {
		return reason
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

// hijackConn is an http.ResponseWriter that keeps the connection
// websocket.Accept hijacks, so that reads can take their deadlines on it
// (see conn.raw).
type hijackConn struct {
	http.ResponseWriter
	conn net.Conn
}

// Hijack implements http.Hijacker.
func (h *hijackConn) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if nc != nil {
		// The server's read and write deadlines (ReadTimeout,
		// WriteTimeout) are not the session's: it sets its own.
		_ = nc.SetDeadline(time.Time{})
	}
	h.conn = nc
	return nc, brw, err
}

// Unwrap returns the ResponseWriter it wraps (see http.ResponseController).
func (h *hijackConn) Unwrap() http.ResponseWriter { return h.ResponseWriter }
