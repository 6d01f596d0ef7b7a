package gate

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// DefaultMQTTWebSocketPath is the usual HTTP path of MQTT over WebSocket
// (MQTT.js and Paho's JavaScript client connect to ws://host:port/mqtt).
const DefaultMQTTWebSocketPath = "/mqtt"

// ListenMQTTWebSocket accepts MQTT 3.1.1 and 5 clients over WebSocket on
// addr, at path (DefaultMQTTWebSocketPath, say), with TLS (wss) when
// tlsConfig is set, and returns the address it listens on. It serves
// MQTTWebSocketHandler on a server of its own, which the gateway closes
// with its other listeners; to serve MQTT over WebSocket beside other HTTP
// handlers, mount MQTTWebSocketHandler on your own server instead.
func (g *Gateway) ListenMQTTWebSocket(addr, path string, tlsConfig *tls.Config) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gate: listen mqtt over websocket %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(path, g.MQTTWebSocketHandler())
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
			g.log.Error("gate: mqtt over websocket listener stopped", "err", err)
		}
	}()
	return ln.Addr(), nil
}
