package gatemqtt_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/internal/mqtttest"
	gatemqtt "github.com/guildkit/guild/gate/mqtt"
	"github.com/guildkit/guild/rpc"
)

// mqttEnv is a one-node gateway with an MQTT listener. Its chat service
// answers chat.Echo (pushing chat.Pushed to the caller first) and
// chat.Push (pushing its body to user u1); auth.Login is public. Tokens:
// "good" is user u1, "good-<name>" is user <name>; any other is refused.
type mqttEnv struct {
	node   *actor.Node
	g      *gate.Gateway
	addr   string
	closed chan mqttClosed // OnClose, in order
}

type mqttClosed struct {
	info   gate.SessionInfo
	reason error
}

func startMQTTGateway(t *testing.T, lim gate.Limits) *mqttEnv {
	t.Helper()
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	chat := gate.NewService("chat")
	gate.Handle(chat, "Echo", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if err := s.Push("chat.Pushed", wrapperspb.String("push:"+req.Value)); err != nil {
			return nil, err
		}
		return wrapperspb.String("echo:" + req.Value), nil
	})
	gate.Handle(chat, "Push", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return wrapperspb.String("pushed"), gate.PushUser(ctx, n, "u1", "chat.Pushed", req)
	})
	chatPID, err := chat.Serve(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	auth := gate.NewService("auth")
	gate.Handle(auth, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Bind(req.Value)
		return wrapperspb.String("welcome " + req.Value), nil
	})
	authPID, err := auth.Serve(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	env := &mqttEnv{node: n, closed: make(chan mqttClosed, 64)}
	env.g, err = gate.New(gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"chat": gate.To(rpc.To(chatPID)), "auth": gate.To(rpc.To(authPID))},
		Public: []string{"auth.Login"},
		Auth: func(_ context.Context, token string) (string, error) {
			if token == "good" {
				return "u1", nil
			}
			if u, ok := strings.CutPrefix(token, "good-"); ok && u != "" {
				return u, nil
			}
			return "", errors.New("bad token")
		},
		OnClose: func(s *gate.SessionInfo, reason error) {
			select {
			case env.closed <- mqttClosed{*s, reason}:
			default:
			}
		},
		Limits: lim,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.g.Close() })
	addr, err := gatemqtt.Listen(env.g, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	env.addr = addr.String()
	return env
}

// waitClosed returns the next OnClose of a session of user uid.
func (e *mqttEnv) waitClosed(t *testing.T, uid string) mqttClosed {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case c := <-e.closed:
			if c.info.UserID == uid {
				return c
			}
		case <-timeout:
			t.Fatalf("no OnClose for user %q", uid)
		}
	}
}

// The MQTT client helpers, shared with package gate's tests.
type (
	mqttMsg   = mqtttest.Msg
	mqttInbox = mqtttest.Inbox
)

var (
	mqttStr   = mqtttest.Str
	mqttUnstr = mqtttest.Unstr
	mqttWait  = mqtttest.WaitToken
	dial5     = mqtttest.Dial5
)

// dial311 connects a paho.mqtt.golang (MQTT 3.1.1) client.
func dial311(t *testing.T, broker, clientID, password string, in *mqttInbox) (mqtt.Client, mqtt.Token) {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetProtocolVersion(4).SetKeepAlive(time.Second).SetPingTimeout(2 * time.Second).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			in.Add(mqttMsg{Topic: m.Topic(), Payload: bytes.Clone(m.Payload()), QoS: m.Qos()})
		})
	if password != "" {
		opts.SetUsername("x").SetPassword(password)
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("connect: no CONNACK")
	}
	return c, tok
}

func TestMQTT311(t *testing.T) {
	env := startMQTTGateway(t, gate.Limits{Heartbeat: time.Second})
	broker := "tcp://" + env.addr

	t.Run("refused", func(t *testing.T) {
		c, tok := dial311(t, broker, "bad", "wrong", &mqttInbox{})
		defer c.Disconnect(0)
		if tok.Error() == nil {
			t.Fatal("a bad token connected")
		}
		if rc := tok.(*mqtt.ConnectToken).ReturnCode(); rc != 5 {
			t.Fatalf("CONNACK return code %d, want 5 (not authorized)", rc)
		}
	})

	t.Run("session", func(t *testing.T) {
		in := &mqttInbox{}
		c, tok := dial311(t, broker, "app-1", "good", in)
		if err := tok.Error(); err != nil {
			t.Fatal(err)
		}
		if tok.(*mqtt.ConnectToken).SessionPresent() {
			t.Error("session present, want 0")
		}
		mqttWait(t, c.SubscribeMultiple(map[string]byte{"res/#": 1, "err/+": 1, "push/#": 0}, nil))

		// QoS 0 request: the push comes first, then the response.
		mqttWait(t, c.Publish("req/chat.Echo/1", 0, false, mqttStr(t, "a")))
		if got := mqttUnstr(t, in.Wait(t, "push/chat.Pushed").Payload); got != "push:a" {
			t.Errorf("push %q", got)
		}
		m := in.Wait(t, "res/1")
		if got := mqttUnstr(t, m.Payload); got != "echo:a" || m.QoS != 1 {
			t.Errorf("res/1: %q at QoS %d, want echo:a at QoS 1", got, m.QoS)
		}

		// QoS 1 request.
		mqttWait(t, c.Publish("req/chat.Echo/2", 1, false, mqttStr(t, "b")))
		if got := mqttUnstr(t, in.Wait(t, "res/2").Payload); got != "echo:b" {
			t.Errorf("res/2 %q", got)
		}
		in.Wait(t, "push/chat.Pushed")

		// An error: err/<id> with a JSON payload.
		mqttWait(t, c.Publish("req/nope.Missing/3", 1, false, []byte{}))
		var e struct {
			Code    rpc.Code `json:"code"`
			Message string   `json:"message"`
		}
		if err := json.Unmarshal(in.Wait(t, "err/3").Payload, &e); err != nil || e.Code != rpc.Unimplemented || e.Message == "" {
			t.Errorf("err/3: %+v %v, want Unimplemented", e, err)
		}

		// A topic that is not a request is acknowledged and dropped.
		mqttWait(t, c.Publish("chat/hello", 1, false, []byte("x")))

		// Keep alive: 1s pings keep the connection past the gateway's 3s
		// idle limit.
		time.Sleep(3500 * time.Millisecond)
		if !c.IsConnectionOpen() {
			t.Fatal("the connection did not survive on pings")
		}
		mqttWait(t, c.Publish("req/chat.Echo/4", 0, false, mqttStr(t, "c")))
		in.Wait(t, "res/4")
		in.Wait(t, "push/chat.Pushed")

		// Unsubscribed topics are not delivered.
		mqttWait(t, c.Unsubscribe("push/#"))
		mqttWait(t, c.Publish("req/chat.Echo/5", 0, false, mqttStr(t, "d")))
		in.Wait(t, "res/5")

		c.Disconnect(100)
		if cl := env.waitClosed(t, "u1"); cl.reason != nil || cl.info.Listener != "mqtt" {
			t.Errorf("OnClose: %v on %q, want a goodbye on mqtt", cl.reason, cl.info.Listener)
		}
		for _, m := range in.Messages() {
			if m.Topic == "push/chat.Pushed" {
				t.Errorf("a push after UNSUBSCRIBE: %v", m)
			}
		}
	})

	t.Run("anonymous", func(t *testing.T) {
		in := &mqttInbox{}
		c, tok := dial311(t, broker, "", "", in)
		if err := tok.Error(); err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(0)
		mqttWait(t, c.SubscribeMultiple(map[string]byte{"res/+": 0, "err/+": 0}, nil))
		mqttWait(t, c.Publish("req/chat.Echo/1", 0, false, mqttStr(t, "a")))
		var e struct {
			Code rpc.Code `json:"code"`
		}
		if err := json.Unmarshal(in.Wait(t, "err/1").Payload, &e); err != nil || e.Code != rpc.Unauthenticated {
			t.Errorf("before login: %+v %v", e, err)
		}
		mqttWait(t, c.Publish("req/auth.Login/2", 0, false, mqttStr(t, "ana")))
		if got := mqttUnstr(t, in.Wait(t, "res/2").Payload); got != "welcome ana" {
			t.Errorf("login: %q", got)
		}
		mqttWait(t, c.Publish("req/chat.Echo/3", 0, false, mqttStr(t, "a")))
		in.Wait(t, "res/3")
	})
}

func TestMQTT5(t *testing.T) {
	env := startMQTTGateway(t, gate.Limits{Heartbeat: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("refused", func(t *testing.T) {
		_, ca, err := dial5(t, env.addr, "bad", "wrong", 10, &mqttInbox{}, nil)
		if err == nil || ca == nil || ca.ReasonCode != 0x87 {
			t.Fatalf("CONNACK %+v, %v; want reason 0x87 (not authorized)", ca, err)
		}
		if ca.Properties == nil || !strings.Contains(ca.Properties.ReasonString, "bad token") {
			t.Errorf("CONNACK properties %+v, want the reason", ca.Properties)
		}
	})

	t.Run("session", func(t *testing.T) {
		in := &mqttInbox{}
		// Keep alive 0: the gateway imposes 2×Heartbeat.
		c, ca, err := dial5(t, env.addr, "", "good", 0, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := ca.Properties
		switch {
		case ca.SessionPresent:
			t.Error("session present, want 0")
		case p == nil || p.ServerKeepAlive == nil || *p.ServerKeepAlive != 2:
			t.Errorf("CONNACK properties %+v, want Server Keep Alive 2", p)
		case p.AssignedClientID == "" || p.MaximumQoS == nil || *p.MaximumQoS != 1:
			t.Errorf("CONNACK properties %+v, want an assigned client ID and Maximum QoS 1", p)
		}
		sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: "res/#", QoS: 2}, {Topic: "push/+", QoS: 0}, {Topic: "bad/#/x", QoS: 0},
		}})
		if sa == nil {
			t.Fatal(err)
		}
		if want := []byte{1, 0, 0x8F}; !bytes.Equal(sa.Reasons, want) {
			t.Errorf("SUBACK %x, want %x", sa.Reasons, want)
		}

		for i, qos := range []byte{0, 1} {
			id := []string{"1", "2"}[i]
			if _, err := c.Publish(ctx, &paho.Publish{Topic: "req/chat.Echo/" + id, QoS: qos, Payload: mqttStr(t, id)}); err != nil {
				t.Fatal(err)
			}
			if got := mqttUnstr(t, in.Wait(t, "push/chat.Pushed").Payload); got != "push:"+id {
				t.Errorf("push %q", got)
			}
			m := in.Wait(t, "res/"+id)
			if got := mqttUnstr(t, m.Payload); got != "echo:"+id || m.QoS != 1 {
				t.Errorf("res/%s: %q at QoS %d", id, got, m.QoS)
			}
		}

		// An error: user properties on res/<id>.
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "req/nope.Missing/3", QoS: 1}); err != nil {
			t.Fatal(err)
		}
		m := in.Wait(t, "res/3")
		if m.User["code"] != "12" || m.User["message"] == "" || len(m.Payload) != 0 {
			t.Errorf("res/3: %+v, want code 12 (Unimplemented) and a message", m)
		}

		// A topic that is not a request: PUBACK Topic name invalid.
		pr, _ := c.Publish(ctx, &paho.Publish{Topic: "chat/hello", QoS: 1, Payload: []byte("x")})
		if pr == nil || pr.ReasonCode != 0x90 {
			t.Errorf("PUBACK %+v, want 0x90", pr)
		}

		// Pings every 2s keep the connection past the 3s idle limit.
		time.Sleep(3500 * time.Millisecond)
		if _, err := c.Publish(ctx, &paho.Publish{Topic: "req/chat.Echo/4", QoS: 1, Payload: mqttStr(t, "4")}); err != nil {
			t.Fatal(err)
		}
		in.Wait(t, "res/4")

		if err := c.Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
			t.Fatal(err)
		}
		if cl := env.waitClosed(t, "u1"); cl.reason != nil {
			t.Errorf("OnClose: %v, want a goodbye", cl.reason)
		}
	})

	t.Run("taken over", func(t *testing.T) {
		kicked := make(chan *paho.Disconnect, 1)
		first, _, err := dial5(t, env.addr, "one", "good-ana", 10, &mqttInbox{}, func(d *paho.Disconnect) { kicked <- d })
		if err != nil {
			t.Fatal(err)
		}
		defer first.Disconnect(&paho.Disconnect{})
		second, _, err := dial5(t, env.addr, "two", "good-ana", 10, &mqttInbox{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer second.Disconnect(&paho.Disconnect{})
		select {
		case d := <-kicked:
			if d.ReasonCode != 0x8E || d.Properties == nil || d.Properties.ReasonString != "logged in elsewhere" {
				t.Errorf("DISCONNECT %#x %+v, want 0x8E (session taken over)", d.ReasonCode, d.Properties)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the first session was not taken over")
		}
	})
}

// rawMQTT is a bare MQTT 5 connection, for what a library would not send.
type rawMQTT struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawMQTT {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawMQTT{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawMQTT) send(encode func(*bytes.Buffer) error) {
	r.t.Helper()
	var b bytes.Buffer
	if err := encode(&b); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.nc.Write(b.Bytes()); err != nil {
		r.t.Fatal(err)
	}
}

// next reads a packet, or returns io.EOF when the gateway closed the
// connection.
func (r *rawMQTT) next() (packets.Packet, error) {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var pk packets.Packet
	b, err := r.br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		r.t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(r.br)
	if err != nil {
		r.t.Fatal(err)
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		r.t.Fatal(err)
	}
	pk.ProtocolVersion = 5
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return pk, nil
}

func (r *rawMQTT) connect(password string) packets.Packet {
	r.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5}
	pk.Connect = packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "raw",
		UsernameFlag: true, Username: []byte("x"), PasswordFlag: true, Password: []byte(password)}
	r.send(pk.ConnectEncode)
	ca, err := r.next()
	if err != nil || ca.FixedHeader.Type != packets.Connack {
		r.t.Fatalf("no CONNACK: %v %v", ca.FixedHeader, err)
	}
	return ca
}

func TestMQTTBadInput(t *testing.T) {
	env := startMQTTGateway(t, gate.Limits{MaxFrame: 1024})

	t.Run("too large", func(t *testing.T) {
		r := dialRaw(t, env.addr)
		ca := r.connect("good-big")
		if ca.ReasonCode != 0 || ca.Properties.MaximumPacketSize != 1024+1+2 {
			t.Fatalf("CONNACK %d, Maximum Packet Size %d", ca.ReasonCode, ca.Properties.MaximumPacketSize)
		}
		pub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5, TopicName: "req/chat.Echo/1", Payload: make([]byte, 2000)}
		r.send(pub.PublishEncode)
		d, err := r.next()
		if err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode != packets.ErrPacketTooLarge.Code {
			t.Fatalf("got %v %#x (%v), want DISCONNECT Packet too large", d.FixedHeader, d.ReasonCode, err)
		}
		if cl := env.waitClosed(t, "big"); cl.reason == nil {
			t.Error("OnClose without a reason")
		}
	})

	t.Run("malformed", func(t *testing.T) {
		r := dialRaw(t, env.addr)
		r.connect("good-bad")
		r.send(func(b *bytes.Buffer) error { _, err := b.Write([]byte{0x00, 0x00}); return err }) // type 0 is reserved
		d, err := r.next()
		if err != nil || d.FixedHeader.Type != packets.Disconnect || d.ReasonCode != packets.ErrProtocolViolation.Code {
			t.Fatalf("got %v %#x (%v), want DISCONNECT Protocol error", d.FixedHeader, d.ReasonCode, err)
		}
		if _, err := r.next(); !errors.Is(err, io.EOF) {
			t.Errorf("after DISCONNECT: %v, want EOF", err)
		}
		env.waitClosed(t, "bad")
	})

	t.Run("not MQTT", func(t *testing.T) {
		r := dialRaw(t, env.addr)
		if _, err := r.nc.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.next(); !errors.Is(err, io.EOF) {
			t.Errorf("got %v, want the connection closed", err)
		}
	})

	t.Run("auth method", func(t *testing.T) {
		r := dialRaw(t, env.addr)
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5}
		pk.Connect = packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: "raw"}
		pk.Properties.AuthenticationMethod = "SCRAM-SHA-1"
		r.send(pk.ConnectEncode)
		ca, err := r.next()
		if err != nil || ca.FixedHeader.Type != packets.Connack || ca.ReasonCode != packets.ErrBadAuthenticationMethod.Code {
			t.Fatalf("got %v %#x (%v), want CONNACK Bad authentication method", ca.FixedHeader, ca.ReasonCode, err)
		}
	})
}

func TestMQTTWebSocket(t *testing.T) {
	env := startMQTTGateway(t, gate.Limits{})
	mux := http.NewServeMux()
	mux.Handle("/mqtt", gatemqtt.WebSocketHandler(env.g))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer env.g.Close() // before the server: its handlers serve the connections
	in := &mqttInbox{}
	c, tok := dial311(t, "ws://"+strings.TrimPrefix(srv.URL, "http://")+"/mqtt", "web", "good", in)
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
	mqttWait(t, c.Subscribe("res/#", 1, nil))
	mqttWait(t, c.Publish("req/chat.Echo/7", 1, false, mqttStr(t, "w")))
	if got := mqttUnstr(t, in.Wait(t, "res/7").Payload); got != "echo:w" {
		t.Errorf("res/7 %q", got)
	}
	c.Disconnect(100)
	if cl := env.waitClosed(t, "u1"); cl.info.Listener != "mqtt-ws" {
		t.Errorf("listener %q, want mqtt-ws", cl.info.Listener)
	}
}

func TestMQTTFull(t *testing.T) {
	env := startMQTTGateway(t, gate.Limits{MaxConns: 1})
	first := dialRaw(t, env.addr)
	if ca := first.connect("good"); ca.ReasonCode != 0 {
		t.Fatalf("first CONNACK %#x", ca.ReasonCode)
	}
	second := dialRaw(t, env.addr)
	ca := second.connect("good-two")
	if ca.ReasonCode != packets.ErrServerUnavailable.Code || !strings.Contains(ca.Properties.ReasonString, "full") {
		t.Fatalf("second CONNACK %#x %q, want Server unavailable: full", ca.ReasonCode, ca.Properties.ReasonString)
	}
}
