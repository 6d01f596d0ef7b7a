package gate_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	gatekcp "github.com/guildkit/guild/gate/kcp"
	gatemqtt "github.com/guildkit/guild/gate/mqtt"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/wire"
)

// The endings of a connection, as its client sees them, on every
// listener: for each way a connection ends, the framed protocol's Close
// frame (TCP, WebSocket, KCP), the WebSocket close status, and the MQTT 5
// DISCONNECT reason code (over TCP and over WebSocket, where the
// WebSocket then closes with 1000).

// endEnv is a gateway listening on every listener, for one ending. Its
// users log in with the token "u:<name>"; chat.Kick kicks the caller.
type endEnv struct {
	n        *actor.Node
	g        *gate.Gateway
	tcp, kcp string // host:port
	ws, mqws string // ws:// URLs: the framed protocol, MQTT
	mqtt     string // host:port

	mu       sync.Mutex
	sessions map[string]string // user → session ID (OnOpen)
	reasons  map[string]error  // user → OnClose's reason
	closed   map[string]bool
}

func startEndEnv(t *testing.T, lim gate.Limits) *endEnv {
	t.Helper()
	n := newNode(t)
	pid := serve(t, n, chatService("chat"))
	env := &endEnv{n: n, sessions: map[string]string{}, reasons: map[string]error{}, closed: map[string]bool{}}
	env.g = newGate(t, gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"chat": gate.To(rpc.To(pid))},
		Auth: func(_ context.Context, token string) (string, error) {
			if u, ok := strings.CutPrefix(token, "u:"); ok && u != "" {
				return u, nil
			}
			return "", errors.New("bad token")
		},
		OnOpen: func(s *gate.SessionInfo) {
			env.mu.Lock()
			env.sessions[s.UserID] = s.ID
			env.mu.Unlock()
		},
		OnClose: func(s *gate.SessionInfo, reason error) {
			env.mu.Lock()
			env.reasons[s.UserID], env.closed[s.UserID] = reason, true
			env.mu.Unlock()
		},
		Limits: lim,
	})
	a, err := env.g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	env.tcp = a.String()
	if a, err = gatekcp.Listen(env.g, "127.0.0.1:0", gatekcp.Options{}); err != nil {
		t.Fatal(err)
	}
	env.kcp = a.String()
	if a, err = gatemqtt.Listen(env.g, "127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	env.mqtt = a.String()
	mux := http.NewServeMux()
	mux.Handle("/ws", gatews.Handler(env.g))
	mux.Handle("/mqtt", gatemqtt.WebSocketHandler(env.g))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = env.g.Close() }) // before the server: its handlers serve the connections
	host := strings.TrimPrefix(srv.URL, "http://")
	env.ws, env.mqws = "ws://"+host+"/ws", "ws://"+host+"/mqtt"
	return env
}

// session returns the session ID of user, once it is open.
func (env *endEnv) session(t *testing.T, user string) string {
	t.Helper()
	var id string
	await.True(t, waitTimeout, "the session of "+user, func() bool {
		env.mu.Lock()
		defer env.mu.Unlock()
		id = env.sessions[user]
		return id != ""
	})
	return id
}

// reason returns OnClose's reason for user's session, once it closed.
func (env *endEnv) reason(t *testing.T, user string) error {
	t.Helper()
	var err error
	await.True(t, waitTimeout, "OnClose of "+user, func() bool {
		env.mu.Lock()
		defer env.mu.Unlock()
		err = env.reasons[user]
		return env.closed[user]
	})
	return err
}

// ended is what a client saw at the end of its connection.
type ended struct {
	code     int    // the Close frame's code, or the DISCONNECT reason code; -1 for none
	reason   string // its reason (string)
	ws       websocket.StatusCode
	wsReason string
}

func (e ended) String() string {
	return fmt.Sprintf("code %d %q, WebSocket %d %q", e.code, e.reason, e.ws, e.wsReason)
}

// endClient is a client of one listener, logged in as a user.
type endClient interface {
	goodbye()
	tooLarge()
	protocolError()
	kickMe()
	subscribe() // to pushes (MQTT), so that they are delivered
	// end reads until the connection ends and returns what it saw.
	end() ended
}

// wsStream is a WebSocket's binary messages as a byte stream, keeping the
// close status that ended it.
type wsStream struct {
	ws  *websocket.Conn
	ctx context.Context // the test's: a message's reads use its Reader's
	r   io.Reader
	err error
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			_, r, err := s.ws.Reader(s.ctx)
			if err != nil {
				s.err = err
				return 0, err
			}
			s.r = r
		}
		n, err := s.r.Read(p)
		if errors.Is(err, io.EOF) {
			s.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (s *wsStream) Write(p []byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// wsEnd fills e's WebSocket status from the error that ended s.
func wsEnd(s *wsStream, e *ended) {
	var ce websocket.CloseError
	if errors.As(s.err, &ce) {
		e.ws, e.wsReason = ce.Code, ce.Reason
	} else {
		e.ws, e.wsReason = -1, fmt.Sprint(s.err)
	}
}

func dialWS(t *testing.T, url string, subprotocols ...string) *wsStream {
	t.Helper()
	ws, _, err := websocket.Dial(testCtx(t), url, &websocket.DialOptions{Subprotocols: subprotocols})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &wsStream{ws: ws, ctx: testCtx(t)}
}

// framedClient speaks the framed protocol on TCP, KCP or WebSocket.
type framedClient struct {
	t    *testing.T
	kind string
	nc   net.Conn // TCP, KCP
	fr   *wire.FrameReader
	ws   *wsStream // WebSocket
}

func dialFramed(t *testing.T, env *endEnv, kind, user string) *framedClient {
	t.Helper()
	c := &framedClient{t: t, kind: kind}
	switch kind {
	case "tcp":
		nc, err := net.DialTimeout("tcp", env.tcp, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		c.nc = nc
	case "kcp":
		s, err := gatekcp.Dial(testCtx(t), env.kcp, gatekcp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c.nc = s
	case "ws":
		c.ws = dialWS(t, env.ws)
	}
	if c.nc != nil {
		t.Cleanup(func() { _ = c.nc.Close() })
		c.fr = wire.NewFrameReader(c.nc, 16*gatepb.DefaultMaxFrame)
	}
	c.send(handshakeFrame("u:" + user))
	f, err := c.next()
	if ack := f.GetHandshakeAck(); err != nil || ack == nil || ack.GetCode() != 0 {
		t.Fatalf("%s handshake: %v, %v", kind, f, err)
	}
	return c
}

func (c *framedClient) send(f *gatepb.Frame) {
	c.t.Helper()
	if c.ws != nil {
		b, err := gatepb.Encode(f)
		if err != nil {
			c.t.Fatal(err)
		}
		c.write(b)
		return
	}
	b, err := gatepb.AppendStream(nil, f)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
}

// write writes b: raw bytes on a stream, one message on WebSocket.
func (c *framedClient) write(b []byte) {
	c.t.Helper()
	var err error
	if c.ws != nil {
		_, err = c.ws.Write(b)
	} else {
		_ = c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
		_, err = c.nc.Write(b)
	}
	if err != nil {
		c.t.Fatalf("%s write: %v", c.kind, err)
	}
}

func (c *framedClient) next() (*gatepb.Frame, error) {
	var b []byte
	var err error
	if c.ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		_, b, err = c.ws.ws.Read(ctx)
		cancel()
		if err != nil {
			c.ws.err = err
		}
	} else {
		_ = c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
		b, err = c.fr.Next()
	}
	if err != nil {
		return nil, err
	}
	var f gatepb.Frame
	return &f, gatepb.Decode(b, &f)
}

func (c *framedClient) goodbye() {
	c.send(&gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{}}})
}

func (c *framedClient) tooLarge() {
	if c.ws != nil {
		c.write(make([]byte, 2000))
		return
	}
	c.write(binary.BigEndian.AppendUint32(nil, 2000)) // the prefix is enough
}

func (c *framedClient) protocolError() {
	c.send(&gatepb.Frame{Body: &gatepb.Frame_Response{Response: &gatepb.Response{Id: 1}}})
}

func (c *framedClient) kickMe()    { c.send(requestFrame(1, "chat.Kick", "an operator kicked you")) }
func (c *framedClient) subscribe() {}

func (c *framedClient) end() ended {
	c.t.Helper()
	e := ended{code: -1}
	for {
		f, err := c.next()
		if err != nil {
			break
		}
		if cl := f.GetClose(); cl != nil {
			e.code, e.reason = int(cl.GetCode()), cl.GetReason()
			if c.kind == "kcp" {
				return e // KCP has no end of stream to wait for
			}
		}
	}
	if c.ws != nil {
		wsEnd(c.ws, &e)
	}
	return e
}

// mqttClient speaks MQTT 5 over TCP or WebSocket.
type mqttClient struct {
	t  *testing.T
	rw io.ReadWriter
	br *bufio.Reader
	nc net.Conn  // TCP
	ws *wsStream // WebSocket
	v3 bool      // MQTT 3.1.1
}

func dialMQTT(t *testing.T, env *endEnv, kind, user string, keepAlive uint16) *mqttClient {
	t.Helper()
	c := &mqttClient{t: t}
	if kind == "mqtt" {
		nc, err := net.DialTimeout("tcp", env.mqtt, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		c.nc, c.rw = nc, nc
	} else {
		c.ws = dialWS(t, env.mqws, "mqtt")
		c.rw = c.ws
	}
	c.br = bufio.NewReader(c.rw)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5}
	pk.Connect = packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepAlive, ClientIdentifier: user,
		PasswordFlag: true, Password: []byte("u:" + user)}
	c.send(pk.ConnectEncode)
	if ca, err := c.next(); err != nil || ca.FixedHeader.Type != packets.Connack || ca.ReasonCode != 0 {
		t.Fatalf("%s CONNECT: %v %#x, %v", kind, ca.FixedHeader, ca.ReasonCode, err)
	}
	return c
}

func (c *mqttClient) send(encode func(*bytes.Buffer) error) {
	c.t.Helper()
	var b bytes.Buffer
	if err := encode(&b); err != nil {
		c.t.Fatal(err)
	}
	c.write(b.Bytes())
}

func (c *mqttClient) write(b []byte) {
	c.t.Helper()
	if c.nc != nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	}
	if _, err := c.rw.Write(b); err != nil {
		c.t.Fatalf("mqtt write: %v", err)
	}
}

// next reads a packet; PUBLISH, CONNACK and DISCONNECT are decoded.
func (c *mqttClient) next() (packets.Packet, error) {
	if c.nc != nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	}
	pk := packets.Packet{ProtocolVersion: 5}
	if c.v3 {
		pk.ProtocolVersion = 4
	}
	b, err := c.br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.br)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	}
	return pk, err
}

func (c *mqttClient) goodbye() {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: 5}
	c.send(pk.DisconnectEncode)
}

func (c *mqttClient) tooLarge() {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5, TopicName: "req/chat.Echo/1", Payload: make([]byte, 2000)}
	c.send(pk.PublishEncode)
}

func (c *mqttClient) protocolError() { c.write([]byte{0x00, 0x00}) } // packet type 0 is reserved

func (c *mqttClient) kickMe() {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5, TopicName: "req/chat.Kick/1", Payload: mqttStr(c.t, "an operator kicked you")}
	c.send(pk.PublishEncode)
}

func (c *mqttClient) subscribe() {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "push/#"}}}
	c.send(pk.SubscribeEncode)
	if sa, err := c.next(); err != nil || sa.FixedHeader.Type != packets.Suback {
		c.t.Fatalf("SUBSCRIBE: %v, %v", sa.FixedHeader, err)
	}
}

func (c *mqttClient) end() ended {
	c.t.Helper()
	e := ended{code: -1}
	for {
		pk, err := c.next()
		if err != nil {
			break
		}
		if pk.FixedHeader.Type == packets.Disconnect {
			e.code, e.reason = int(pk.ReasonCode), pk.Properties.ReasonString
		}
	}
	if c.ws != nil {
		wsEnd(c.ws, &e)
	}
	return e
}

// TestEveryEndingSaysWhy: each way a connection ends, on each listener,
// as its client sees it.
func TestEveryEndingSaysWhy(t *testing.T) {
	type want struct {
		code       rpc.Code             // the Close frame's; 0: none
		ws         websocket.StatusCode // the framed protocol on WebSocket
		mqtt       byte                 // the DISCONNECT's; 0: none
		reason     string               // in the Close frame, the WebSocket close and the DISCONNECT
		mqttReason string               // in the DISCONNECT, when not reason
		why        string               // in OnClose's reason; "" for nil (a goodbye)
	}
	endings := []struct {
		name   string
		limits gate.Limits
		// run ends the connection of c, whose user is user, on env.
		run  func(t *testing.T, env *endEnv, c endClient, user string)
		want want
	}{
		{
			name: "goodbye",
			run:  func(t *testing.T, env *endEnv, c endClient, user string) { c.goodbye() },
			want: want{ws: websocket.StatusNormalClosure},
		},
		{
			name:   "idle",
			limits: gate.Limits{Heartbeat: 500 * time.Millisecond}, // 1.5 s; MQTT: 1.5 × the keep alive of 1 s
			run:    func(t *testing.T, env *endEnv, c endClient, user string) {},
			want: want{code: rpc.DeadlineExceeded, ws: 4004, mqtt: packets.ErrKeepAliveTimeout.Code,
				reason: "nothing received for 1.5s (heartbeat lost)", mqttReason: "nothing received for 1.5s (keep alive 1s)",
				why: "nothing received for "},
		},
		{
			name:   "too large",
			limits: gate.Limits{MaxFrame: 1024},
			run:    func(t *testing.T, env *endEnv, c endClient, user string) { c.tooLarge() },
			want: want{code: rpc.ResourceExhausted, ws: websocket.StatusMessageTooBig, mqtt: packets.ErrPacketTooLarge.Code,
				reason: "1024 bytes", why: "1024 bytes"},
		},
		{
			name: "protocol error",
			run:  func(t *testing.T, env *endEnv, c endClient, user string) { c.protocolError() },
			want: want{code: rpc.InvalidArgument, ws: websocket.StatusProtocolError, mqtt: packets.ErrProtocolViolation.Code,
				reason: "", why: ""},
		},
		{
			name: "kicked",
			run:  func(t *testing.T, env *endEnv, c endClient, user string) { c.kickMe() },
			want: want{code: rpc.PermissionDenied, ws: 4007, mqtt: packets.ErrAdministrativeAction.Code,
				reason: "an operator kicked you", why: "kicked"},
		},
		{
			name: "taken over",
			run: func(t *testing.T, env *endEnv, c endClient, user string) {
				r := rawDial(t, env.tcp)
				r.send(handshakeFrame("u:" + user))
				if ack := r.mustNext().GetHandshakeAck(); ack.GetCode() != 0 {
					t.Fatalf("second login: %v", ack)
				}
			},
			want: want{code: rpc.AlreadyExists, ws: 4006, mqtt: packets.ErrSessionTakenOver.Code,
				reason: "logged in elsewhere", why: "logged in elsewhere"},
		},
		{
			name:   "slow client",
			limits: gate.Limits{WriteQueue: 4},
			run: func(t *testing.T, env *endEnv, c endClient, user string) {
				c.subscribe()
				id := env.session(t, user)
				big := wrapperspb.Bytes(make([]byte, 32<<10))
				// The client reads nothing until its session is gone.
				await.True(t, waitTimeout, "the gateway to cut the slow client off", func() bool {
					for range 32 {
						if err := gate.Push(env.n, id, "flood", big); err != nil {
							return true
						}
					}
					return false
				})
			},
			want: want{code: rpc.ResourceExhausted, ws: websocket.StatusPolicyViolation, mqtt: packets.ErrQuotaExceeded.Code,
				reason: "write queue full", why: "write queue full"},
		},
	}
	for _, end := range endings {
		t.Run(end.name, func(t *testing.T) {
			t.Parallel()
			env := startEndEnv(t, end.limits)
			for _, kind := range endKinds {
				t.Run(kind, func(t *testing.T) {
					t.Parallel()
					user := strings.ReplaceAll(end.name, " ", "-") + "-" + kind
					var c endClient
					if strings.HasPrefix(kind, "mqtt") {
						var keepAlive uint16 // 0: the gateway's, 2 × Heartbeat
						if end.name == "idle" {
							keepAlive = 1
						}
						c = dialMQTT(t, env, kind, user, keepAlive)
					} else {
						c = dialFramed(t, env, kind, user)
					}
					env.session(t, user)
					end.run(t, env, c, user)
					if kind == "kcp" && end.want.code == 0 {
						// KCP has no end of stream to read up to: that the
						// gateway ended the session cleanly is OnClose's nil.
					} else {
						got := c.end()
						checkEnding(t, kind, got, end.want.code, end.want.ws, end.want.mqtt, end.want.reason, end.want.mqttReason)
					}
					why := env.reason(t, user)
					switch w := end.want.why; {
					case w == "" && end.name == "goodbye" && why != nil:
						t.Errorf("%s: OnClose reason %v, want nil for a goodbye", kind, why)
					case w != "" && !errContains(why, w):
						t.Errorf("%s: OnClose reason %v, want one saying %q", kind, why, w)
					}
				})
			}
		})
	}
}

// endKinds are the listeners, as TestEveryEndingSaysWhy names them.
var endKinds = []string{"tcp", "ws", "kcp", "mqtt", "mqtt-ws"}

// checkEnding fails t unless a client of listener kind saw the ending
// given by code (the framed protocol's Close; 0 for none), ws (the
// framed protocol's WebSocket close status), mqtt (the DISCONNECT reason
// code; 0 for none) and reason (said by each; mqttReason, when set, by the
// DISCONNECT). MQTT over WebSocket closes with 1000.
func checkEnding(t *testing.T, kind string, got ended, code rpc.Code, ws websocket.StatusCode, mqtt byte, reason, mqttReason string) {
	t.Helper()
	wantCode, wantWS := int(code), ws
	if strings.HasPrefix(kind, "mqtt") {
		wantCode, wantWS = int(mqtt), websocket.StatusNormalClosure // after a DISCONNECT, either way
		if mqttReason != "" {
			reason = mqttReason
		}
	}
	if wantCode == 0 {
		wantCode = -1
	}
	if got.code != wantCode || !strings.Contains(got.reason, reason) {
		t.Errorf("%s: got %v, want code %d with a reason saying %q", kind, got, wantCode, reason)
	}
	if strings.HasSuffix(kind, "ws") && (got.ws != wantWS || !strings.Contains(got.wsReason, reason)) {
		t.Errorf("%s: got %v, want WebSocket %d with a reason saying %q", kind, got, wantWS, reason)
	}
}

// TestEndingGoingAwayEveryListener: a gateway shutting down tells a
// client on each listener, at once.
func TestEndingGoingAwayEveryListener(t *testing.T) {
	env := startEndEnv(t, gate.Limits{})
	clients := make(map[string]endClient)
	for _, kind := range endKinds {
		user := "going-" + kind
		if strings.HasPrefix(kind, "mqtt") {
			clients[kind] = dialMQTT(t, env, kind, user, 0)
		} else {
			clients[kind] = dialFramed(t, env, kind, user)
		}
		env.session(t, user)
	}
	done := make(chan error, 1)
	go func() { done <- env.g.Shutdown(context.Background()) }()
	for _, kind := range endKinds {
		got := clients[kind].end()
		checkEnding(t, kind, got, gate.GoingAway, websocket.StatusGoingAway, packets.ErrServerShuttingDown.Code, gate.GoingAwayReason, "")
		if why := env.reason(t, "going-"+kind); !errors.Is(why, gate.ErrClosed) {
			t.Errorf("%s: OnClose reason %v, want gate.ErrClosed", kind, why)
		}
	}
	if err := recv(t, done, "Shutdown"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestListenAddrInUse: a listener on an address in use says so once,
// naming the listener and the address, and wraps EADDRINUSE.
func TestListenAddrInUse(t *testing.T) {
	f := startOneNode(t, gate.Config{})
	for _, l := range []struct {
		kind   string
		listen func(addr string) error
	}{
		{"tcp", func(a string) error { _, err := f.g.ListenTCP(a, nil); return err }},
		{"ws", func(a string) error { _, err := gatews.Listen(f.g, a, "/ws", nil); return err }},
		{"mqtt", func(a string) error { _, err := gatemqtt.Listen(f.g, a, nil); return err }},
	} {
		err := l.listen(f.addr) // the TCP listener's
		want := fmt.Sprintf("gate: %s listener: %s is in use", l.kind, f.addr)
		if err == nil || err.Error() != want || !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("%s on an address in use: %v, want %q wrapping EADDRINUSE", l.kind, err, want)
		}
	}
}

// connectEnd dials listener kind of env and, with hello, sends a
// handshake with token (a CONNECT, for MQTT 5), then reads until the
// connection ends. The code it returns is the HandshakeAck's (refused),
// the Close frame's, the CONNACK's (refused) or the DISCONNECT's.
func connectEnd(t *testing.T, env *endEnv, kind string, hello bool, token string) ended {
	t.Helper()
	e := ended{code: -1}
	var ws *wsStream
	if strings.HasPrefix(kind, "mqtt") {
		c := &mqttClient{t: t}
		if kind == "mqtt" {
			nc, err := net.DialTimeout("tcp", env.mqtt, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = nc.Close() })
			c.nc, c.rw = nc, nc
		} else {
			ws = dialWS(t, env.mqws, "mqtt")
			c.ws, c.rw = ws, ws
		}
		c.br = bufio.NewReader(c.rw)
		if hello {
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5}
			pk.Connect = packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: "x",
				PasswordFlag: true, Password: []byte(token)}
			c.send(pk.ConnectEncode)
		}
		for {
			pk, err := c.next()
			if err != nil {
				break
			}
			if t := pk.FixedHeader.Type; t == packets.Connack || t == packets.Disconnect {
				e.code, e.reason = int(pk.ReasonCode), pk.Properties.ReasonString
			}
		}
	} else {
		c := &framedClient{t: t, kind: kind}
		switch kind {
		case "tcp":
			nc, err := net.DialTimeout("tcp", env.tcp, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			c.nc = nc
		case "kcp":
			s, err := gatekcp.Dial(testCtx(t), env.kcp, gatekcp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			c.nc = s
		case "ws":
			ws = dialWS(t, env.ws)
			c.ws = ws
		}
		if c.nc != nil {
			t.Cleanup(func() { _ = c.nc.Close() })
			c.fr = wire.NewFrameReader(c.nc, 16*gatepb.DefaultMaxFrame)
		}
		if hello {
			c.send(handshakeFrame(token))
		}
		for {
			f, err := c.next()
			if err != nil {
				break
			}
			if ack := f.GetHandshakeAck(); ack != nil {
				e.code, e.reason = int(ack.GetCode()), ack.GetMessage()
			}
			if cl := f.GetClose(); cl != nil {
				e.code, e.reason = int(cl.GetCode()), cl.GetReason()
			}
			if e.code >= 0 && kind == "kcp" {
				break // KCP has no end of stream to wait for
			}
		}
	}
	if ws != nil {
		wsEnd(ws, &e)
	}
	return e
}

// TestEndingsAtConnect: the endings of a connection before its session,
// on each listener: no handshake in time, a refused token, a full
// gateway. A KCP client without a handshake sends nothing, so the
// gateway never hears of it: that case is TCP and WebSocket only.
func TestEndingsAtConnect(t *testing.T) {
	for _, c := range []struct {
		name   string
		limits gate.Limits
		hello  bool
		token  string
		full   bool
		code   rpc.Code // HandshakeAck's or Close's; 0: none
		ws     websocket.StatusCode
		mqtt   byte // CONNACK's or DISCONNECT's; 0: none
		reason string
	}{
		{name: "no handshake", limits: gate.Limits{HandshakeTimeout: 300 * time.Millisecond},
			code: rpc.DeadlineExceeded, ws: 4004, reason: "no handshake within 300ms"},
		{name: "bad token", hello: true, token: "nobody",
			code: rpc.Unauthenticated, ws: 4016, mqtt: packets.ErrNotAuthorized.Code, reason: "bad token"},
		{name: "gateway full", limits: gate.Limits{MaxConns: 1}, hello: true, token: "u:late", full: true,
			code: rpc.Unavailable, ws: websocket.StatusTryAgainLater, mqtt: packets.ErrServerUnavailable.Code, reason: "the gateway is full (1 connections)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := startEndEnv(t, c.limits)
			if c.full {
				dialFramed(t, env, "tcp", "first")
				env.session(t, "first")
			}
			for _, kind := range endKinds {
				if kind == "kcp" && !c.hello {
					continue
				}
				got := connectEnd(t, env, kind, c.hello, c.token)
				wantCode, wantWS, reason := int(c.code), c.ws, c.reason
				if strings.HasPrefix(kind, "mqtt") {
					wantCode = int(c.mqtt)
					if c.mqtt != 0 {
						wantWS = websocket.StatusNormalClosure // the CONNACK said why
					}
				}
				if wantCode == 0 {
					wantCode, reason = -1, ""
				}
				if got.code != wantCode || !strings.Contains(got.reason, reason) {
					t.Errorf("%s: got %v, want code %d with a reason saying %q", kind, got, wantCode, reason)
				}
				if strings.HasSuffix(kind, "ws") && (got.ws != wantWS || !strings.Contains(got.wsReason, c.reason)) {
					t.Errorf("%s: got %v, want WebSocket %d with a reason saying %q", kind, got, wantWS, c.reason)
				}
			}
		})
	}
}

// TestEndingsOtherForms: endings with a form of their own: a WebSocket
// text message (1003), a malformed MQTT packet (0x81), an MQTT 5 client
// that leaves more QoS 1 publishes unacknowledged than its Receive Maximum
// (0x93), and MQTT 3.1.1
// over WebSocket, which has no DISCONNECT: its close status says why.
func TestEndingsOtherForms(t *testing.T) {
	env := startEndEnv(t, gate.Limits{MaxFrame: 1024})
	t.Run("text message", func(t *testing.T) {
		c := dialFramed(t, env, "ws", "text")
		if err := c.ws.ws.Write(testCtx(t), websocket.MessageText, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		got := c.end()
		if got.code != int(rpc.InvalidArgument) || got.ws != websocket.StatusUnsupportedData || !strings.Contains(got.wsReason, "text message") {
			t.Errorf("got %v, want Close 3 and WebSocket 1003 saying it was a text message", got)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		c := dialMQTT(t, env, "mqtt", "malformed", 0)
		// A PUBLISH whose topic length runs past its end.
		c.write([]byte{0x30, 0x03, 0x00, 0x09, 'a'})
		if got := c.end(); got.code != int(packets.ErrMalformedPacket.Code) {
			t.Errorf("got %v, want DISCONNECT 0x81 Malformed packet", got)
		}
	})
	t.Run("receive maximum", func(t *testing.T) {
		nc, err := net.DialTimeout("tcp", env.mqtt, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		c := &mqttClient{t: t, nc: nc, rw: nc, br: bufio.NewReader(nc)}
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5}
		pk.Connect = packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: "quota",
			PasswordFlag: true, Password: []byte("u:quota")}
		pk.Properties.ReceiveMaximum = 2
		c.send(pk.ConnectEncode)
		if ca, err := c.next(); err != nil || ca.ReasonCode != 0 {
			t.Fatalf("CONNECT: %v %#x, %v", ca.FixedHeader, ca.ReasonCode, err)
		}
		sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: "push/#", Qos: 1}}}
		c.send(sub.SubscribeEncode)
		if sa, err := c.next(); err != nil || sa.FixedHeader.Type != packets.Suback {
			t.Fatalf("SUBSCRIBE: %v, %v", sa.FixedHeader, err)
		}
		id := env.session(t, "quota")
		for range 3 { // and no PUBACK
			if err := gate.Push(env.n, id, "p", wrapperspb.String("x")); err != nil {
				t.Fatal(err)
			}
		}
		if got := c.end(); got.code != int(packets.ErrReceiveMaximum.Code) || !strings.Contains(got.reason, "more than 2") {
			t.Errorf("got %v, want DISCONNECT 0x93 Receive Maximum exceeded", got)
		}
	})
	t.Run("MQTT 3.1.1 over WebSocket", func(t *testing.T) {
		ws := dialWS(t, env.mqws, "mqtt")
		c := &mqttClient{t: t, rw: ws, ws: ws, br: bufio.NewReader(ws), v3: true}
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4}
		pk.Connect = packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: "v3",
			PasswordFlag: true, UsernameFlag: true, Username: []byte("x"), Password: []byte("u:v3")}
		c.send(pk.ConnectEncode)
		if ca, err := c.next(); err != nil || ca.FixedHeader.Type != packets.Connack {
			t.Fatalf("CONNECT: %v, %v", ca.FixedHeader, err)
		}
		c.tooLarge()
		got := c.end()
		if got.code != -1 || got.ws != websocket.StatusMessageTooBig || !strings.Contains(got.wsReason, "1024 bytes") {
			t.Errorf("got %v, want no DISCONNECT and WebSocket 1009 saying the limit", got)
		}
	})
}
