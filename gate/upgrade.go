package gate

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/guildkit/guild/gate/gatepb"
)

// Upgrades: a client that connects with an HTTP request the gateway
// upgrades to another protocol (WebSocket: package gate/websocket) is
// served through a Transport, which the upgrading package makes. The
// gateway owns the HTTP side (its servers and their limits, the Origin
// check, the per-source limits, MaxConns, closing the listener); the
// transport owns the bytes after the upgrade. Over it a client speaks the
// framed protocol (one frame a message) or an adapter's protocol (Conn,
// over the transport's byte stream). This file is the whole seam: the
// upgrading package uses nothing else of gate's internals, and gate links
// no upgrading library.

// Transport is one client connection that an Upgrader upgraded. The
// gateway serves the framed protocol over Read and WriteFrames, or an
// adapter's Conn over Stream, never both. Read is called by the
// connection's reader goroutine only, WriteFrames by its writer goroutine
// only, End once, by the writer (or by the goroutine that refuses a
// connection, when neither runs); Close from any goroutine, more than
// once.
type Transport interface {
	// Read returns the next frame, one message: an encoded gatepb.Frame,
	// valid until the next Read. It fails once deadline has passed with
	// nothing read (a timeout error, as net.Conn reads give), with a
	// *SlowFrameError when the deadline passed in the middle of a
	// message, with an error wrapping wire.ErrFrameTooLarge for a message
	// over Limits.MaxFrame, with an error wrapping io.EOF when the client
	// closed the connection, or with an *EndError for a message the
	// framed protocol cannot carry (a WebSocket text message).
	Read(deadline time.Time) ([]byte, error)
	// WriteFrames writes encoded frames, one message each, in order.
	WriteFrames(frames [][]byte) error
	// Stream returns the connection as a byte stream, for an adapter's
	// Conn (Stream.Conn): the bytes of its messages, in order. Its read
	// deadlines must not close the transport: End still has to say why.
	Stream() net.Conn
	// End ends the transport after the last frames: it tells the client
	// e, in the transport's terms (a WebSocket close status and reason;
	// Code 0 is a normal closure), and waits for the client to close its
	// side, bounded (the gateway bounds it too, by calling Close). The
	// framed protocol's Close frame, or the adapter's goodbye, was
	// written already.
	End(e Ending)
	// Close closes the connection at once, ending an End in progress.
	Close() error
}

// An Upgrader upgrades an HTTP request that the gateway admitted (its
// Origin allowed, its source under its limits) and returns the Transport
// of the connection, which the gateway serves from then on. It answers
// the request itself, taking its connection with the ResponseWriter's
// Hijack; on an error it has answered the request (as
// websocket.Accept does) and the connection stays net/http's. lim are the
// gateway's limits, with their defaults filled in: the transport enforces
// lim.MaxFrame.
type Upgrader func(w http.ResponseWriter, r *http.Request, lim Limits) (Transport, error)

// UpgradeHandler returns the http.Handler that upgrades requests with up
// to client connections of the gateway, to mount on a server of your own
// (beside the game's web page, say): HTTPServer makes one with the
// gateway's HTTP limits. The handler refuses a request whose Origin is
// not allowed (Config.Origins) with 403 before up runs. On another
// server than the gateway's own, it checks the source's limits
// (PerSourceConns, ConnRate) when a request arrives, and answers 429 over
// them; a request a trusted proxy forwards (Limits.TrustedProxies) counts
// as its client's, whom X-Forwarded-For names.
//
// With newConn nil the clients speak the framed protocol (one frame a
// message); otherwise each connection is served by the Conn newConn makes
// on the transport's Stream, as ListenConns serves an adapter's, and is
// not kept for resumption. network names the listener, as for
// ListenConns: "ws" for the framed protocol over WebSocket, "mqtt-ws" for
// MQTT over WebSocket. A bad name (empty, or another framing's: tcp or
// kcp, or mqtt and mqtt-ws for the framed protocol, ws for an adapter)
// makes a handler that answers every request 500 and logs why.
func (g *Gateway) UpgradeHandler(network string, up Upgrader, newConn NewConn) http.Handler {
	if err := upgradeNetwork(network, newConn != nil); err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			g.log.Error(err.Error())
			http.Error(w, err.Error(), http.StatusInternalServerError)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.allowOrigin(w, r) {
			return
		}
		src, remote, ok := g.httpSource(w, r)
		if !ok {
			return
		}
		t, err := up(w, r, g.lim)
		src = g.upgraded(src, err == nil, r)
		if err != nil {
			g.limits.close(src)
			return // up has answered the HTTP request
		}
		var c clientConn
		if newConn != nil {
			c = g.newAdapterConn(t.Stream(), t, remote, network, newConn)
		} else {
			c = &transportConn{t: t, remote: remote, network: network}
		}
		if !g.admit(c, src) {
			return
		}
		// The handler's goroutine serves the connection: net/http keeps
		// the hijacked connection while it runs.
		g.serve(c)
	})
}

// ListenHTTP accepts clients on addr, upgraded by up (see UpgradeHandler)
// at path (for example "/ws"), with TLS when tlsConfig is set, and
// returns the address it listens on. It serves UpgradeHandler on a server
// of the gateway's own (HTTPServer), which the gateway closes with its
// other listeners. To serve the upgrades beside other HTTP handlers (the
// game's page), mount UpgradeHandler on your own server instead.
func (g *Gateway) ListenHTTP(network, addr, path string, tlsConfig *tls.Config, up Upgrader, newConn NewConn) (net.Addr, error) {
	if err := upgradeNetwork(network, newConn != nil); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &listenError{kind: network, addr: addr, err: err}
	}
	mux := http.NewServeMux()
	mux.Handle(path, g.UpgradeHandler(network, up, newConn))
	srv := g.HTTPServer(mux)
	srv.TLSConfig = tlsConfig
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		ln.Close()
		return nil, ErrClosed
	}
	// Close closes the listener and the connections still in their HTTP
	// upgrade; hijacked ones (every session) are the gateway's.
	g.listeners = append(g.listeners, listener{close: srv.Close})
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		var err error
		if tlsConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("gate: "+network+" listener stopped", "err", err)
		}
	}()
	return ln.Addr(), nil
}

// upgradeNetwork checks the name of a listener of upgraded connections:
// an adapter's (see adapterNetwork), or, for the framed protocol, not
// empty nor one of the other framings' listeners.
func upgradeNetwork(network string, adapter bool) error {
	if adapter {
		return adapterNetwork(network)
	}
	switch network {
	case "", "tcp", "kcp", "mqtt", "mqtt-ws":
		return fmt.Errorf("gate: upgrade network %q: give a name of the transport's own, such as \"ws\", not empty nor tcp, kcp, mqtt or mqtt-ws", network)
	}
	return nil
}

// transportConn is a client of the framed protocol on a Transport: every
// frame is one message.
type transportConn struct {
	t       Transport
	remote  string
	network string
}

func (c *transportConn) read(deadline time.Time) ([]byte, error) { return c.t.Read(deadline) }
func (c *transportConn) writeFrames(frames [][]byte) error       { return c.t.WriteFrames(frames) }
func (c *transportConn) close() error                            { return c.t.Close() }
func (c *transportConn) remoteAddr() string                      { return c.remote }
func (c *transportConn) kind() string                            { return c.network }

// finish writes the Close frame, then ends the transport with e: over
// WebSocket, the close handshake, with e's status and reason, which waits
// for the client's close (the caller bounds the wait by closing the
// connection).
func (c *transportConn) finish(e ending) bool {
	sayClose(c.t.WriteFrames, e)
	c.t.End(e.public())
	return false
}

// sayClose writes e's Close frame with write, unless e is a clean end
// (no Close frame) or its client was told already.
func sayClose(write func([][]byte) error, e ending) {
	if e.code == 0 || e.told {
		return
	}
	if b, err := gatepb.Encode(closeFrame(uint32(e.code), e.reason)); err == nil {
		_ = write([][]byte{b})
	}
}
