// Package gatemqtt is guild's MQTT adapter: iOS, Android and web clients
// reuse an MQTT library (3.1.1 or 5) instead of guild's own client. Listen
// (TCP), ListenWebSocket and WebSocketHandler (MQTT over WebSocket, carried
// by package gate/websocket) give a gateway of package gate MQTT
// listeners. An MQTT connection is one more
// gate.Conn: the adapter translates MQTT packets to gateway frames and
// back, so sessions, routing, auth, limits and pushes work unchanged. The
// packet codec is github.com/mochi-mqtt/server/v2/packets; docs/MQTT.md
// describes the scheme for client authors.
//
// It lives in a package of its own so that a game whose gateway does not
// speak MQTT does not link mochi-mqtt: import it (as gatemqtt) where a
// gateway listens on MQTT.
//
// The scheme:
//
//   - CONNECT is the handshake. The password, or the username when the
//     password is empty, is the token for Config.Auth; the client ID is the
//     client name. CONNACK answers it: 0 (accepted, session present 0), or
//     for a refused token Not authorized (MQTT 5 0x87, 3.1.1 return code 5)
//     with the gateway's message as the MQTT 5 reason string. MQTT 5
//     enhanced authentication (an Authentication Method, AUTH packets) is
//     refused: Bad authentication method (0x8C), or a protocol error after
//     CONNECT. Will messages are accepted and never published.
//   - PUBLISH to "req/<route>/<id>" (req/chat.Send/17) is a Request{id,
//     route, body=payload}. Its Response is a PUBLISH to "res/<id>" with the
//     body as payload. An error response goes, for MQTT 5, to "res/<id>"
//     with an empty payload and the user properties "code" (the rpc.Code, in
//     decimal) and "message"; for 3.1.1 to "err/<id>" with the payload
//     {"code":<n>,"message":"..."} (JSON).
//   - Push{route, body} is a PUBLISH to "push/<route>".
//   - PINGREQ is a Heartbeat, whose answer is PINGRESP. DISCONNECT is the
//     client's goodbye (Close). The gateway's ending of a session (a kick,
//     a broken limit, the gateway shutting down; see gate.Ending) is an MQTT 5
//     DISCONNECT with its reason code (0x8B Server shutting down for
//     GoingAway) and the reason as reason string; a 3.1.1 connection is
//     just closed, after its last responses (the TCP connection
//     half-closed first, see gate.Conn's Finish). Over WebSocket the connection then
//     ends with a close handshake: 1000 once MQTT said why.
//   - SUBSCRIBE and UNSUBSCRIBE are answered here: SUBACK grants QoS
//     min(requested, 1) for valid filters ("+" and "#" wildcards; shared
//     subscriptions are refused). The gateway is not a broker: it delivers
//     res/, err/ and push/ publishes to its own client only, and only when
//     one of the client's filters matches the topic (with the highest QoS
//     granted among the matching ones). Nothing is retained.
//   - QoS 0 and 1 both ways. A client's QoS 1 PUBLISH gets its PUBACK when
//     the gateway has read it (before the request is answered). Outgoing
//     QoS 1 publishes get packet IDs and their PUBACKs are accepted, but
//     nothing is redelivered: unacknowledged messages die with the
//     connection. A client that leaves more than its Receive Maximum
//     (MQTT 5) or 65535 (3.1.1) unacknowledged is cut off, like a slow
//     client. QoS 2 is not supported (MQTT 5 CONNACK says Maximum QoS 1; a
//     QoS 2 PUBLISH closes the connection).
//   - Sessions live as long as the connection: clean session / clean start
//     and session expiry are accepted, but nothing is kept after the
//     connection ends (CONNACK session present is always 0; an MQTT 5
//     client asking for a session expiry is told 0).
//   - Keep alive: with a keep alive K, the connection is closed after 1.5×K
//     without a packet (the MQTT rule), instead of the gateway's 3×Heartbeat
//     idle limit. An MQTT 5 client with no keep alive, or one longer than
//     2×Heartbeat, is given Server Keep Alive = 2×Heartbeat (in seconds), so
//     1.5×K matches the gateway's limit. A 3.1.1 client with keep alive 0
//     gets the gateway's limit: it must send something every 3×Heartbeat.
//   - Limits: a packet whose remaining length exceeds Limits.MaxFrame
//     closes the connection (MQTT 5: DISCONNECT Packet too large; CONNACK
//     announces the Maximum Packet Size). A malformed packet or a protocol
//     violation closes it with the reason logged (and sent in an MQTT 5
//     DISCONNECT). A keep alive timeout's DISCONNECT (0x8D) says the
//     deadline that passed. A PUBLISH to a topic that is not
//     req/<route>/<id> gets, at QoS 1, a PUBACK with Topic name invalid
//     (0x90; 3.1.1: a plain PUBACK) and is dropped; at QoS 0 it is
//     dropped.
//
// SessionInfo.Listener is "mqtt" for Listen and "mqtt-ws" for
// ListenWebSocket and WebSocketHandler.
package gatemqtt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/wire"
)

// Network names the MQTT listeners, as SessionInfo.Listener and in
// Stats: "mqtt" (Listen) and "mqtt-ws" (over WebSocket).
const (
	Network          = "mqtt"
	WebSocketNetwork = "mqtt-ws"
)

// DefaultWebSocketPath is the usual HTTP path of MQTT over WebSocket
// (MQTT.js and Paho's JavaScript client connect to ws://host:port/mqtt).
const DefaultWebSocketPath = "/mqtt"

// Listen accepts MQTT 3.1.1 and 5 clients of g on a TCP address
// ("127.0.0.1:0" for a random port; 1883 is MQTT's, 8883 with TLS), with
// TLS when tlsConfig is set, and returns the address it listens on. See
// docs/MQTT.md for the topics. It fails with gate.ErrClosed once g's
// Shutdown or Close has begun.
func Listen(g *gate.Gateway, addr string, tlsConfig *tls.Config) (net.Addr, error) {
	return g.ListenConns(Network, addr, tlsConfig, newConn)
}

// WebSocketHandler returns the http.Handler that serves MQTT over
// WebSocket for g (subprotocol "mqtt"; binary messages carry the MQTT
// packets, as a byte stream), to mount on a server of your own, at
// DefaultWebSocketPath for example (see gate.Gateway's HTTPServer and
// UpgradeHandler for the limits). Package gate/websocket carries it
// (gatews.ConnHandler).
func WebSocketHandler(g *gate.Gateway) http.Handler {
	return gatews.ConnHandler(g, WebSocketNetwork, "mqtt", newConn)
}

// ListenWebSocket accepts MQTT 3.1.1 and 5 clients of g over WebSocket on
// addr, at path (DefaultWebSocketPath, say), with TLS (wss) when
// tlsConfig is set, and returns the address it listens on. It serves
// WebSocketHandler on a server of its own, which g closes with its other
// listeners; to serve MQTT over WebSocket beside other HTTP handlers,
// mount WebSocketHandler on your own server instead.
func ListenWebSocket(g *gate.Gateway, addr, path string, tlsConfig *tls.Config) (net.Addr, error) {
	return gatews.ListenConns(g, WebSocketNetwork, addr, path, "mqtt", tlsConfig, newConn)
}

// writeTimeout bounds one write to a client: a client that takes no bytes
// for this long is cut off (the gateway's bound for every client).
const writeTimeout = 10 * time.Second

// MQTT protocol levels.
const (
	mqtt311 = 4
	mqtt5   = 5
)

// mqttMaxSubs bounds the subscriptions of one connection; more are
// refused in their SUBACK.
const mqttMaxSubs = 64

// errMQTT is the error of a connection closed for breaking the protocol.
var errMQTT = errors.New("gatemqtt: mqtt")

// mqttSub is one subscription of a connection.
type mqttSub struct {
	filter string
	qos    byte
}

// mqttConn is a client speaking MQTT: a gate.Conn. Read runs in the
// gateway's reader goroutine and answers SUBSCRIBE, UNSUBSCRIBE and QoS 1
// PUBLISH itself; WriteFrames runs in the writer goroutine. Both write to
// the connection, under mu.
type mqttConn struct {
	nc        net.Conn // the client's byte stream (gate.Stream)
	remote    string
	network   string
	log       *slog.Logger
	maxPacket int           // largest remaining length read (Limits.MaxFrame)
	heartbeat time.Duration // Limits.Heartbeat
	hsTimeout time.Duration // Limits.HandshakeTimeout

	// The reader's own.
	br        *bufio.Reader
	body      []byte // the packet being read
	frame     []byte // the frame read returns
	connected bool   // CONNECT read
	keepalive time.Duration

	mu              sync.Mutex // guards what follows, and writes to nc
	version         byte       // protocol level; 0 before CONNECT
	assignID        bool       // an MQTT 5 client with no client ID: CONNACK assigns one
	serverKeepAlive uint16     // > 0: CONNACK sets the client's keep alive (MQTT 5)
	noExpiry        bool       // the client asked for a session expiry: CONNACK says 0
	clientMax       uint32     // the client's Maximum Packet Size (MQTT 5), 0 for none
	receiveMax      int        // unacknowledged QoS 1 publishes allowed
	subs            []mqttSub
	inflight        map[uint16]struct{} // QoS 1 publishes waiting for a PUBACK
	nextID          uint16
	done            bool         // refused or disconnected: nothing more is written
	out             bytes.Buffer // packets to write
	notes           []mqttNote   // logs, written once mu is released
}

// mqttNote is a log line noted under mqttConn.mu and written after it:
// the log handler is user code.
type mqttNote struct {
	level slog.Level
	msg   string
	args  []any
}

// noteLocked notes a log line; c.mu is held.
func (c *mqttConn) noteLocked(level slog.Level, msg string, args ...any) {
	c.notes = append(c.notes, mqttNote{level, msg, args})
}

// unlock releases c.mu and writes the log lines noted under it.
func (c *mqttConn) unlock() {
	notes := c.notes
	c.notes = nil
	c.mu.Unlock()
	for _, n := range notes {
		c.log.Log(context.Background(), n.level, n.msg, n.args...)
	}
}

// newConn is the adapter's gate.NewConn.
func newConn(s gate.Stream) gate.Conn { return newMQTTConn(s) }

func newMQTTConn(s gate.Stream) *mqttConn {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &mqttConn{
		nc:        s.Conn,
		remote:    s.Remote,
		network:   s.Network,
		log:       log,
		maxPacket: s.Limits.MaxFrame,
		heartbeat: s.Limits.Heartbeat,
		hsTimeout: s.Limits.HandshakeTimeout,
		br:        bufio.NewReader(s.Conn),
		inflight:  make(map[uint16]struct{}),
	}
}

// Finish tells the client why the connection ends: a refusing CONNACK
// to a connection refused before its CONNECT, or an MQTT 5 DISCONNECT
// with e's reason code and reason string (not after the client's own
// DISCONNECT, nor after a refusing CONNACK). The gateway then half-closes
// a TCP connection, or closes a WebSocket: with 1000 (normal closure)
// once MQTT has said why (a DISCONNECT either way, a CONNACK), with its
// status and reason otherwise (MQTT 3.1.1, or no CONNECT yet).
func (c *mqttConn) Finish(e gate.Ending) bool {
	told := false
	if e.Refused && !c.connected && c.refuseUnread(connackCode(e), e.Reason) {
		told = true
	}
	c.mu.Lock()
	said := told || e.Told || e.Code == 0
	if c.version == mqtt5 && !c.done && !said {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: mqtt5, ReasonCode: disconnectCode(e).Code}
		pk.Properties.ReasonString = e.Reason
		pk.Mods.MaxSize = c.clientMax
		c.out.Reset()
		if err := pk.DisconnectEncode(&c.out); err == nil {
			told = c.flushLocked() == nil
		}
	}
	c.done = true // the reader answers nothing more
	c.unlock()
	return told
}

// disconnectCode maps the gateway's ending to an MQTT 5 DISCONNECT reason
// code: the adapter's own for a violation, otherwise by its cause and its
// code.
func disconnectCode(e gate.Ending) packets.Code {
	var v *mqttViolation
	if errors.As(e.Err, &v) {
		return v.code
	}
	switch e.Cause {
	case gate.CauseGatewayFull:
		return packets.ErrServerBusy
	case gate.CauseSlowClient, gate.CauseSourceConns:
		return packets.ErrQuotaExceeded
	case gate.CauseRateLimit:
		return packets.ErrMessageRateTooHigh
	case gate.CauseSourceRate:
		return packets.ErrConnectionRateExceeded
	}
	switch e.Code {
	case rpc.AlreadyExists:
		return packets.ErrSessionTakenOver // logged in elsewhere
	case rpc.PermissionDenied:
		return packets.ErrAdministrativeAction // kicked
	case rpc.DeadlineExceeded:
		return packets.ErrKeepAliveTimeout
	case rpc.ResourceExhausted:
		return packets.ErrPacketTooLarge
	case rpc.InvalidArgument:
		return packets.ErrProtocolViolation
	case rpc.Unavailable:
		return packets.ErrServerShuttingDown
	default:
		return packets.ErrUnspecifiedError
	}
}

// connackCode is the MQTT 5 CONNACK reason code of a connection refused
// before its CONNECT: the source's quota or rate, otherwise Server
// unavailable (0x88; the gateway full or shutting down).
func connackCode(e gate.Ending) packets.Code {
	switch e.Cause {
	case gate.CauseSourceConns:
		return packets.ErrQuotaExceeded
	case gate.CauseSourceRate:
		return packets.ErrConnectionRateExceeded
	}
	return packets.ErrServerUnavailable
}

// Read reads packets until one is a frame for the gateway.
func (c *mqttConn) Read(deadline time.Time) ([]byte, error) {
	idle := time.Until(deadline)
	for {
		limit := idle
		if c.keepalive > 0 {
			limit = c.keepalive * 3 / 2
		}
		if err := c.setReadDeadline(time.Now().Add(limit)); err != nil {
			return nil, err
		}
		fh, body, err := c.readPacket()
		if pe, ok := err.(*mqttPacketError); ok {
			return nil, c.violation(pe.code, pe.detail)
		}
		if err != nil {
			if c.keepalive > 0 && isTimeout(err) {
				reason := fmt.Sprintf("nothing received for %v (keep alive %v)", limit, c.keepalive)
				return nil, &gate.EndError{Code: rpc.DeadlineExceeded, Reason: reason, Err: &keepAliveError{reason: reason, err: err}}
			}
			return nil, err // a timeout without keep alive: the gateway's idle limit
		}
		f, err := c.handle(fh, body)
		if err != nil {
			return nil, err
		}
		if f == nil {
			continue
		}
		c.frame, err = proto.MarshalOptions{}.MarshalAppend(c.frame[:0], f)
		return c.frame, err
	}
}

// keepAliveError is a read that found nothing within 1.5 × the keep alive.
type keepAliveError struct {
	reason string
	err    error
}

func (e *keepAliveError) Error() string { return e.reason }
func (e *keepAliveError) Unwrap() error { return e.err }

// isTimeout reports whether a read failed on its deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// setReadDeadline sets the deadline of the reads (over WebSocket, the
// stream sets it on the connection under the WebSocket).
func (c *mqttConn) setReadDeadline(t time.Time) error {
	return c.nc.SetReadDeadline(t)
}

// mqttPacketError is a packet that readPacket cannot frame.
type mqttPacketError struct {
	code   packets.Code
	detail string
}

func (e *mqttPacketError) Error() string { return e.code.Reason + ": " + e.detail }

// readPacket reads one packet: its fixed header and its body, valid until
// the next call. A malformed header is an *mqttPacketError; a packet
// beyond maxPacket, wire.ErrFrameTooLarge.
func (c *mqttConn) readPacket() (packets.FixedHeader, []byte, error) {
	var fh packets.FixedHeader
	b, err := c.br.ReadByte()
	if err != nil {
		return fh, nil, err
	}
	if err := fh.Decode(b); err != nil {
		return fh, nil, &mqttPacketError{codeOf(err, packets.ErrMalformedFlags), fmt.Sprintf("fixed header 0x%02x", b)}
	}
	n, _, err := packets.DecodeLength(c.br)
	if err != nil {
		if errors.Is(err, packets.ErrMalformedVariableByteInteger) {
			return fh, nil, &mqttPacketError{packets.ErrMalformedVariableByteInteger, "remaining length"}
		}
		return fh, nil, err
	}
	if n > c.maxPacket {
		return fh, nil, fmt.Errorf("%w: an MQTT %s packet of %d bytes", wire.ErrFrameTooLarge, packets.PacketNames[fh.Type], n)
	}
	fh.Remaining = n
	if cap(c.body) < n {
		c.body = make([]byte, n)
	}
	c.body = c.body[:n]
	if _, err := io.ReadFull(c.br, c.body); err != nil {
		return fh, nil, err
	}
	return fh, c.body, nil
}

// handle answers or translates one packet: it returns the frame for the
// gateway, or nil when the packet was answered here.
func (c *mqttConn) handle(fh packets.FixedHeader, body []byte) (*gatepb.Frame, error) {
	if !c.connected {
		if fh.Type != packets.Connect {
			return nil, c.violation(packets.ErrProtocolViolationRequireFirstConnect, packets.PacketNames[fh.Type])
		}
		return c.connect(fh, body)
	}
	pk := packets.Packet{FixedHeader: fh, ProtocolVersion: c.version}
	switch fh.Type {
	case packets.Publish:
		if err := pk.PublishDecode(body); err != nil {
			return nil, c.violation(codeOf(err, packets.ErrMalformedPacket), err.Error())
		}
		return c.publish(&pk)
	case packets.Puback:
		if err := pk.PubackDecode(body); err != nil {
			return nil, c.violation(codeOf(err, packets.ErrMalformedPacket), err.Error())
		}
		c.mu.Lock()
		delete(c.inflight, pk.PacketID)
		c.mu.Unlock()
		return nil, nil
	case packets.Subscribe:
		if err := pk.SubscribeDecode(body); err != nil {
			return nil, c.violation(codeOf(err, packets.ErrMalformedPacket), err.Error())
		}
		if code := pk.SubscribeValidate(); code != packets.CodeSuccess {
			return nil, c.violation(code, "SUBSCRIBE")
		}
		return nil, c.subscribe(&pk)
	case packets.Unsubscribe:
		if err := pk.UnsubscribeDecode(body); err != nil {
			return nil, c.violation(codeOf(err, packets.ErrMalformedPacket), err.Error())
		}
		if code := pk.UnsubscribeValidate(); code != packets.CodeSuccess {
			return nil, c.violation(code, "UNSUBSCRIBE")
		}
		return nil, c.unsubscribe(&pk)
	case packets.Pingreq:
		return &gatepb.Frame{Body: &gatepb.Frame_Heartbeat{Heartbeat: &gatepb.Heartbeat{}}}, nil
	case packets.Disconnect:
		if err := pk.DisconnectDecode(body); err != nil {
			return nil, c.violation(codeOf(err, packets.ErrMalformedPacket), err.Error())
		}
		return &gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{Reason: "DISCONNECT"}}}, nil
	case packets.Connect:
		return nil, c.violation(packets.ErrProtocolViolationSecondConnect, "")
	case packets.Auth:
		return nil, c.violation(packets.ErrProtocolViolation, "AUTH (enhanced authentication is not supported)")
	default: // QoS 2 flow, and packets only a server sends
		return nil, c.violation(packets.ErrProtocolViolation, fmt.Sprintf("a client may not send %s here", packets.PacketNames[fh.Type]))
	}
}

// connect reads the CONNECT packet and returns the handshake it makes.
func (c *mqttConn) connect(fh packets.FixedHeader, body []byte) (*gatepb.Frame, error) {
	pk := packets.Packet{FixedHeader: fh}
	if err := pk.ConnectDecode(body); err != nil {
		return nil, c.refuseConnect(pk.ProtocolVersion, codeOf(err, packets.ErrMalformedPacket), err.Error())
	}
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		return nil, c.refuseConnect(pk.ProtocolVersion, code, code.Reason)
	}
	v := pk.ProtocolVersion
	if v != mqtt311 && v != mqtt5 {
		return nil, c.refuseConnect(v, packets.ErrUnsupportedProtocolVersion, fmt.Sprintf("protocol level %d (this gateway speaks MQTT 3.1.1 and 5)", v))
	}
	if v == mqtt311 && pk.Connect.ClientIdentifier == "" && !pk.Connect.Clean {
		return nil, c.refuseConnect(v, packets.ErrClientIdentifierNotValid, "an empty client ID needs clean session")
	}
	if v == mqtt5 && pk.Properties.AuthenticationMethod != "" {
		return nil, c.refuseConnect(v, packets.ErrBadAuthenticationMethod, fmt.Sprintf("authentication method %q (enhanced authentication is not supported: send the token as password)", pk.Properties.AuthenticationMethod))
	}
	token := string(pk.Connect.Password)
	if token == "" {
		token = string(pk.Connect.Username)
	}
	c.keepalive = time.Duration(pk.Connect.Keepalive) * time.Second
	c.mu.Lock()
	c.version = v
	c.receiveMax = math.MaxUint16
	if v == mqtt5 {
		c.assignID = pk.Connect.ClientIdentifier == ""
		c.noExpiry = pk.Properties.SessionExpiryInterval > 0
		c.clientMax = pk.Properties.MaximumPacketSize
		if rm := pk.Properties.ReceiveMaximum; rm > 0 {
			c.receiveMax = int(rm)
		}
		limit := min(max(2*c.heartbeat/time.Second, 1), math.MaxUint16) * time.Second
		if c.keepalive == 0 || c.keepalive > limit {
			c.keepalive = limit
			c.serverKeepAlive = uint16(limit / time.Second)
		}
	}
	c.mu.Unlock()
	c.connected = true
	return &gatepb.Frame{Body: &gatepb.Frame_Handshake{Handshake: &gatepb.Handshake{
		Version: gatepb.Version,
		Token:   token,
		Client:  pk.Connect.ClientIdentifier,
	}}}, nil
}

// refuseConnect answers a CONNECT with a refusing CONNACK and returns the
// error that closes the connection.
func (c *mqttConn) refuseConnect(version byte, code packets.Code, reason string) error {
	c.mu.Lock()
	c.writeConnackLocked(version, code, reason)
	c.done = true
	c.noteLocked(slog.LevelInfo, "gate: MQTT connection refused", "remote", c.remote, "listener", c.network, "code", code.Code, "reason", reason)
	c.unlock()
	return &gate.EndError{Code: rpc.InvalidArgument, Reason: reason, Told: true, Err: fmt.Errorf("%w: CONNECT refused: %s", errMQTT, reason)}
}

// writeConnackLocked writes a refusing CONNACK: MQTT 5 has the code and
// the reason string, the others a 3.1.1 return code.
func (c *mqttConn) writeConnackLocked(version byte, code packets.Code, reason string) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: version}
	if version == mqtt5 {
		pk.ReasonCode = code.Code
		pk.Properties.ReasonString = reason
	} else {
		pk.ProtocolVersion = mqtt311
		pk.ReasonCode = connackV3(code).Code
	}
	c.out.Reset()
	if err := pk.ConnackEncode(&c.out); err == nil {
		_ = c.flushLocked()
	}
}

// connackV3 maps an MQTT 5 CONNACK reason code to a 3.1.1 return code.
func connackV3(code packets.Code) packets.Code {
	switch code.Code {
	case packets.ErrUnsupportedProtocolVersion.Code:
		return packets.Err3UnsupportedProtocolVersion
	case packets.ErrClientIdentifierNotValid.Code:
		return packets.Err3ClientIdentifierNotValid
	case packets.ErrBadUsernameOrPassword.Code:
		return packets.ErrMalformedUsernameOrPassword
	case packets.ErrNotAuthorized.Code, packets.ErrBadAuthenticationMethod.Code:
		return packets.Err3NotAuthorized
	default:
		return packets.Err3ServerUnavailable
	}
}

// violation ends the connection for a malformed packet or a protocol
// error: it logs why and returns the error for the reader, a
// gate.EndError around an *mqttViolation, whose reason code the session's
// ending carries back to Finish (an MQTT 5 client gets it in a
// DISCONNECT).
func (c *mqttConn) violation(code packets.Code, detail string) error {
	reason := code.Reason
	if detail != "" {
		reason += ": " + detail
	}
	c.log.Info("gate: MQTT client broke the protocol", "remote", c.remote, "listener", c.network, "reason", reason)
	c.mu.Lock()
	c.done = c.done || c.version != mqtt5 // nothing more, but the DISCONNECT
	c.mu.Unlock()
	return &gate.EndError{Code: rpc.InvalidArgument, Reason: reason, Err: &mqttViolation{code: code, reason: reason}}
}

// mqttViolation is the error of a connection closed for breaking the
// protocol: a malformed packet (an MQTT 5 reason code 0x81) or a protocol
// error (0x82, or a more precise code).
type mqttViolation struct {
	code   packets.Code
	reason string
}

func (e *mqttViolation) Error() string { return fmt.Sprintf("%v: %s", errMQTT, e.reason) }
func (e *mqttViolation) Unwrap() error { return errMQTT }

// publish turns a client's PUBLISH into a request.
func (c *mqttConn) publish(pk *packets.Packet) (*gatepb.Frame, error) {
	if code := pk.PublishValidate(0); code != packets.CodeSuccess {
		return nil, c.violation(code, "PUBLISH to "+strconv.Quote(pk.TopicName))
	}
	if pk.FixedHeader.Qos > 1 {
		return nil, c.violation(packets.ErrQosNotSupported, "QoS 2 (this gateway takes QoS 0 and 1)")
	}
	route, id, ok := parseRequestTopic(pk.TopicName)
	if pk.FixedHeader.Qos == 1 {
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: c.version, PacketID: pk.PacketID}
		if !ok && c.version == mqtt5 {
			ack.ReasonCode = packets.ErrTopicNameInvalid.Code
		}
		if err := c.writePacket(ack.PubackEncode); err != nil {
			return nil, err
		}
	}
	if !ok {
		c.log.Debug("gate: MQTT publish to an unknown topic dropped", "remote", c.remote, "topic", pk.TopicName)
		return nil, nil
	}
	return &gatepb.Frame{Body: &gatepb.Frame_Request{Request: &gatepb.Request{Id: id, Route: route, Body: pk.Payload}}}, nil
}

// parseRequestTopic parses "req/<route>/<id>".
func parseRequestTopic(topic string) (route string, id uint64, ok bool) {
	rest, ok := strings.CutPrefix(topic, "req/")
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", 0, false
	}
	id, err := strconv.ParseUint(rest[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return rest[:i], id, true
}

// subscribe records a SUBSCRIBE's filters and answers its SUBACK.
func (c *mqttConn) subscribe(pk *packets.Packet) error {
	codes := make([]byte, len(pk.Filters))
	c.mu.Lock()
	for i, s := range pk.Filters {
		switch {
		case !validTopicFilter(s.Filter):
			codes[i] = c.failure(packets.ErrTopicFilterInvalid)
		case strings.HasPrefix(s.Filter, "$share/"):
			codes[i] = c.failure(packets.ErrSharedSubscriptionsNotSupported)
		default:
			q := min(s.Qos, 1)
			codes[i] = q
			j := 0
			for j < len(c.subs) && c.subs[j].filter != s.Filter {
				j++
			}
			switch {
			case j < len(c.subs):
				c.subs[j].qos = q
			case len(c.subs) < mqttMaxSubs:
				c.subs = append(c.subs, mqttSub{filter: strings.Clone(s.Filter), qos: q}) // the decoded filter aliases the read buffer
			default:
				codes[i] = c.failure(packets.ErrQuotaExceeded)
			}
		}
	}
	c.mu.Unlock()
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, ProtocolVersion: c.version, PacketID: pk.PacketID, ReasonCodes: codes}
	return c.writePacket(ack.SubackEncode)
}

// failure is a SUBACK's failure code: MQTT 5's reason, or 3.1.1's 0x80.
func (c *mqttConn) failure(code packets.Code) byte {
	if c.version == mqtt5 {
		return code.Code
	}
	return packets.ErrUnspecifiedError.Code
}

// unsubscribe removes an UNSUBSCRIBE's filters and answers its UNSUBACK.
func (c *mqttConn) unsubscribe(pk *packets.Packet) error {
	codes := make([]byte, len(pk.Filters))
	c.mu.Lock()
	for i, s := range pk.Filters {
		codes[i] = packets.CodeNoSubscriptionExisted.Code
		for j := range c.subs {
			if c.subs[j].filter == s.Filter {
				c.subs = append(c.subs[:j], c.subs[j+1:]...)
				codes[i] = packets.CodeSuccess.Code
				break
			}
		}
	}
	c.mu.Unlock()
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsuback}, ProtocolVersion: c.version, PacketID: pk.PacketID, ReasonCodes: codes}
	return c.writePacket(ack.UnsubackEncode)
}

// writePacket encodes one packet and writes it, unless the connection is
// done.
func (c *mqttConn) writePacket(encode func(*bytes.Buffer) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return nil
	}
	c.out.Reset()
	if err := encode(&c.out); err != nil {
		return err
	}
	return c.flushLocked()
}

func (c *mqttConn) flushLocked() error {
	if c.out.Len() == 0 {
		return nil
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(c.out.Bytes())
	c.out.Reset()
	return err
}

// WriteFrames translates the gateway's frames to packets and writes them
// at once.
func (c *mqttConn) WriteFrames(frames [][]byte) error {
	c.mu.Lock()
	defer c.unlock()
	c.out.Reset()
	var f gatepb.Frame
	for _, b := range frames {
		if c.done {
			break
		}
		if err := gatepb.Decode(b, &f); err != nil {
			return err
		}
		var err error
		switch m := f.Body.(type) {
		case *gatepb.Frame_HandshakeAck:
			err = c.connackLocked(m.HandshakeAck)
		case *gatepb.Frame_Heartbeat:
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}}
			err = pk.PingrespEncode(&c.out)
		case *gatepb.Frame_Response:
			err = c.responseLocked(m.Response)
		case *gatepb.Frame_Push:
			err = c.deliverLocked("push/"+m.Push.GetRoute(), m.Push.GetBody(), nil)
		}
		if errors.Is(err, errAckQuota) && c.version == mqtt5 {
			// Cut off: what was encoded, then why, as best it can (the
			// connection is closed at once, see frameQueue.run).
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: mqtt5, ReasonCode: packets.ErrReceiveMaximum.Code}
			pk.Properties.ReasonString = fmt.Sprintf("more than %d QoS 1 publishes unacknowledged", c.receiveMax)
			pk.Mods.MaxSize = c.clientMax
			if pk.DisconnectEncode(&c.out) == nil {
				_ = c.flushLocked()
			}
			c.done = true
		}
		if err != nil {
			return err
		}
	}
	return c.flushLocked()
}

// connackLocked answers the CONNECT with the gateway's HandshakeAck.
func (c *mqttConn) connackLocked(ack *gatepb.HandshakeAck) error {
	if ack.GetCode() != 0 {
		code := packets.ErrUnspecifiedError
		switch rpc.Code(ack.GetCode()) {
		case rpc.Unauthenticated, rpc.PermissionDenied:
			code = packets.ErrNotAuthorized
		case rpc.Unavailable:
			code = packets.ErrServerUnavailable
		case rpc.InvalidArgument, rpc.FailedPrecondition:
			code = packets.ErrProtocolViolation
		}
		c.noteLocked(slog.LevelDebug, "gate: MQTT connection refused", "remote", c.remote, "listener", c.network, "code", ack.GetCode(), "reason", ack.GetMessage())
		c.out.Reset()
		c.writeConnackLocked(c.version, code, ack.GetMessage())
		c.done = true
		return nil
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: c.version}
	if c.version == mqtt5 {
		p := &pk.Properties
		p.MaximumQos, p.MaximumQosFlag = 1, true
		p.RetainAvailable, p.RetainAvailableFlag = 0, true
		p.SharedSubAvailable, p.SharedSubAvailableFlag = 0, true
		p.SubIDAvailable, p.SubIDAvailableFlag = 0, true
		p.MaximumPacketSize = uint32(c.maxPacket + 1 + varintLen(c.maxPacket))
		if c.serverKeepAlive > 0 {
			p.ServerKeepAlive, p.ServerKeepAliveFlag = c.serverKeepAlive, true
		}
		if c.assignID {
			p.AssignedClientID = ack.GetSessionId()
		}
		if c.noExpiry {
			p.SessionExpiryInterval, p.SessionExpiryIntervalFlag = 0, true
		}
	}
	return pk.ConnackEncode(&c.out)
}

// varintLen is the size of n as an MQTT variable byte integer.
func varintLen(n int) int {
	l := 1
	for n >= 128 {
		n >>= 7
		l++
	}
	return l
}

// mqttError is the payload of an err/<id> publish (MQTT 3.1.1).
type mqttError struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

// responseLocked publishes a response on res/<id>, or an MQTT 3.1.1 error
// on err/<id>.
func (c *mqttConn) responseLocked(r *gatepb.Response) error {
	id := strconv.FormatUint(r.GetId(), 10)
	if r.GetCode() == 0 {
		return c.deliverLocked("res/"+id, r.GetBody(), nil)
	}
	if c.version == mqtt5 {
		return c.deliverLocked("res/"+id, nil, []packets.UserProperty{
			{Key: "code", Val: strconv.FormatUint(uint64(r.GetCode()), 10)},
			{Key: "message", Val: r.GetMessage()},
		})
	}
	payload, err := json.Marshal(mqttError{Code: r.GetCode(), Message: r.GetMessage()})
	if err != nil {
		return err
	}
	return c.deliverLocked("err/"+id, payload, nil)
}

// errAckQuota cuts off a client that leaves too many QoS 1 publishes
// unacknowledged.
var errAckQuota = fmt.Errorf("%w: the client leaves too many QoS 1 publishes unacknowledged", errMQTT)

// deliverLocked publishes payload on topic when one of the client's
// subscriptions matches it, at the highest QoS they grant.
func (c *mqttConn) deliverLocked(topic string, payload []byte, user []packets.UserProperty) error {
	qos, ok := byte(0), false
	for _, s := range c.subs {
		if matchTopic(s.filter, topic) {
			qos, ok = max(qos, s.qos), true
		}
	}
	if !ok {
		c.noteLocked(slog.LevelDebug, "gate: MQTT publish with no subscription dropped", "remote", c.remote, "topic", topic)
		return nil
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
		ProtocolVersion: c.version,
		TopicName:       topic,
		Payload:         payload,
	}
	pk.Properties.User = user
	if qos == 1 {
		if len(c.inflight) >= c.receiveMax {
			return errAckQuota
		}
		for {
			c.nextID++
			if _, used := c.inflight[c.nextID]; c.nextID != 0 && !used {
				break
			}
		}
		pk.PacketID = c.nextID
		c.inflight[pk.PacketID] = struct{}{}
	}
	start := c.out.Len()
	if err := pk.PublishEncode(&c.out); err != nil {
		return err
	}
	if c.clientMax > 0 && c.out.Len()-start > int(c.clientMax) {
		// MQTT 5: a packet beyond the client's maximum is not sent.
		c.out.Truncate(start)
		delete(c.inflight, pk.PacketID)
		c.noteLocked(slog.LevelWarn, "gate: MQTT publish larger than the client's Maximum Packet Size dropped", "remote", c.remote, "topic", topic, "max", c.clientMax)
	}
	return nil
}

// refuseUnread answers a connection that the gateway refuses before its
// CONNECT was read (admit, before any reader runs): it waits at most a
// second for the CONNECT and answers code with reason. It reports whether
// it answered.
func (c *mqttConn) refuseUnread(code packets.Code, reason string) bool {
	if err := c.setReadDeadline(time.Now().Add(min(c.hsTimeout, time.Second))); err != nil {
		return false
	}
	fh, body, err := c.readPacket()
	if err != nil || fh.Type != packets.Connect {
		return false
	}
	pk := packets.Packet{FixedHeader: fh}
	if pk.ConnectDecode(body) != nil {
		return false
	}
	c.mu.Lock()
	c.writeConnackLocked(pk.ProtocolVersion, code, reason)
	c.done = true
	c.unlock()
	return true
}

// codeOf returns the MQTT reason code that err carries, or def.
func codeOf(err error, def packets.Code) packets.Code {
	var code packets.Code
	if errors.As(err, &code) {
		return code
	}
	return def
}

// validTopicFilter reports whether f is a valid MQTT topic filter: "+"
// alone in its level, "#" alone in the last one.
func validTopicFilter(f string) bool {
	if f == "" || len(f) > math.MaxUint16 || strings.IndexByte(f, 0) >= 0 {
		return false
	}
	for {
		level, rest, more := strings.Cut(f, "/")
		if strings.ContainsAny(level, "+#") && level != "+" && level != "#" {
			return false
		}
		if level == "#" && more {
			return false
		}
		if !more {
			return true
		}
		f = rest
	}
}

// matchTopic reports whether the topic filter matches the topic name.
func matchTopic(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false // wildcards do not match $SYS-like topics
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			return frest == "#" // "a/#" matches "a"
		}
		filter, topic = frest, trest
	}
}
