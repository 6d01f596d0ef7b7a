package gate

import (
	"crypto/tls"
	"net"
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
	return g.listenHTTP("mqtt-ws", addr, path, g.MQTTWebSocketHandler(), tlsConfig)
}
