package app_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/log"
	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/tokenauth"
)

// whoModule serves who.Am, which answers the session's user: a route
// that only an authenticated session may call.
type whoModule struct{}

func (whoModule) Start(ctx context.Context, env *app.Env) error {
	svc := gate.NewService("who")
	gate.Handle(svc, "Am", func(s *gate.Session, _ *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(s.UserID()), nil
	})
	_, err := svc.Serve(ctx, env.Actor)
	return err
}

func (whoModule) Stop(context.Context) error { return nil }

// mqttClusterFile is one gateway node with both MQTT listeners and the
// auth section auth.
func mqttClusterFile(auth string) string {
	return `
cluster:
  etcd: {ttl: 2s, prefix: /apptest-mqtt}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [who]
    gateway:
      mqtt: 127.0.0.1:0
      mqtt_ws: 127.0.0.1:0
      auth: ` + auth + `
      routes:
        who: {module: who}
`
}

// TestGatewayMQTTFromClusterFile starts a node from a cluster file with
// gateway.auth, mqtt and mqtt_ws, and connects to each listener: a good
// token is a session of its user, a bad one gets a refusing CONNACK
// (MQTT 5 0x87 Not authorized, 3.1.1 return code 5). The tokens come
// from a tokens_file, then from a jwt_secret set by a GUILD_ variable.
func TestGatewayMQTTFromClusterFile(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.txt")
	if err := os.WriteFile(tokens, []byte("# token user\ngood-ann ann\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := "a-secret-of-32-bytes-for-testing"
	j, err := tokenauth.NewJWT([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	jwtAnn, err := j.Mint("ann", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := tokenauth.NewJWT([]byte("not-the-secret-of-this-gateway!!"))
	forged, _ := other.Mint("ann", time.Hour)

	for _, tc := range []struct {
		name, auth string
		env        []string
		good, bad  string
	}{
		{"tokens_file", "{tokens_file: " + tokens + "}", nil, "good-ann", "good-bob"},
		{"jwt_secret", "{jwt_secret: placeholder-overridden-below}", []string{"GUILD_NODES_GATE1_GATEWAY_AUTH_JWT_SECRET=" + secret}, jwtAnn, forged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			reg := app.NewRegistry()
			reg.Register("who", func() app.Module { return whoModule{} })
			cfg, err := config.Load(writeFile(t, mqttClusterFile(tc.auth)), tc.env, reg.Names())
			if err != nil {
				t.Fatal(err)
			}
			n, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			defer n.Shutdown(context.Background())
			ready := n.Ready()
			tcpAddr, ok := strings.CutPrefix(ready.Gateway["mqtt"], "mqtt://")
			if !ok {
				t.Fatalf("ready %+v: no mqtt listener", ready.Gateway)
			}
			wsURL := ready.Gateway["mqtt-ws"]
			if !strings.HasPrefix(wsURL, "ws://127.0.0.1:") || !strings.HasSuffix(wsURL, "/mqtt") {
				t.Fatalf("ready %+v: mqtt-ws is not ws://127.0.0.1:PORT/mqtt", ready.Gateway)
			}
			dials := map[string]func(t *testing.T) net.Conn{
				"mqtt": func(t *testing.T) net.Conn {
					c, err := net.Dial("tcp", tcpAddr)
					if err != nil {
						t.Fatal(err)
					}
					return c
				},
				"mqtt-ws": func(t *testing.T) net.Conn {
					ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
					if err != nil {
						t.Fatal(err)
					}
					return websocket.NetConn(context.WithoutCancel(ctx), ws, websocket.MessageBinary)
				},
			}
			for _, listener := range []string{"mqtt", "mqtt-ws"} {
				dial := dials[listener]
				t.Run(listener, func(t *testing.T) {
					// A good token is a session of ann: who.Am says so.
					if got := whoAmI(t, ctx, dial(t), tc.good); got != "ann" {
						t.Errorf("who.Am answered %q, want ann", got)
					}
					// A bad one is refused, in either version.
					if code, reason := rawConnect(t, dial(t), 5, tc.bad); code != packets.ErrNotAuthorized.Code || !strings.Contains(reason, "tokenauth") {
						t.Errorf("MQTT 5 CONNACK 0x%02x %q, want 0x87 (not authorized) with the reason", code, reason)
					}
					if code, _ := rawConnect(t, dial(t), 4, tc.bad); code != packets.Err3NotAuthorized.Code {
						t.Errorf("MQTT 3.1.1 CONNACK return code %d, want 5 (not authorized)", code)
					}
					// No token: a session without a user, which who.Am refuses.
					if code, _ := rawConnect(t, dial(t), 4, ""); code != 0 {
						t.Errorf("MQTT 3.1.1 CONNACK without a token: %d, want 0 (accepted)", code)
					}
				})
			}
		})
	}
}

// quietPinger is a paho.Pinger that sends no PINGREQ (a test's client
// lives for less than its keep alive). paho.golang writes a packet as
// several Writes (fixed header, then the rest) and its pinger writes from
// a goroutine of its own: over websocket.NetConn, which sends each Write
// as a message, the pinger's PINGREQ (sent at once after CONNACK) can land
// between a SUBSCRIBE's header and its body, and the gateway rightly
// closes the connection as malformed (it did, one run in three). Over TCP
// one writev keeps each packet whole.
type quietPinger struct{}

func (quietPinger) Run(ctx context.Context, _ net.Conn, _ uint16) error {
	<-ctx.Done()
	return nil
}
func (quietPinger) PacketSent()         {}
func (quietPinger) PacketReceived()     {}
func (quietPinger) PingResp()           {}
func (quietPinger) SetDebug(log.Logger) {}

// whoAmI connects an MQTT 5 client over conn with token as its password,
// calls who.Am and returns the answer.
func whoAmI(t *testing.T, ctx context.Context, conn net.Conn, token string) string {
	t.Helper()
	got := make(chan *paho.Publish, 1)
	c := paho.NewClient(paho.ClientConfig{
		Conn:        conn,
		PingHandler: quietPinger{},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			select {
			case got <- r.Packet:
			default:
			}
			return true, nil
		}},
	})
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "who", CleanStart: true, KeepAlive: 30,
		Username: "ann", UsernameFlag: true, Password: []byte(token), PasswordFlag: true})
	if err != nil {
		t.Fatalf("CONNECT: %+v, %v", ca, err)
	}
	defer c.Disconnect(&paho.Disconnect{})
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "res/#", QoS: 1}}}); err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	body, _ := proto.Marshal(wrapperspb.String(""))
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "req/who.Am/1", QoS: 1, Payload: body}); err != nil {
		t.Fatalf("PUBLISH: %v", err)
	}
	select {
	case p := <-got:
		if p.Topic != "res/1" {
			t.Fatalf("got a publish on %q, want res/1", p.Topic)
		}
		if p.Properties != nil && len(p.Properties.User) > 0 {
			t.Fatalf("who.Am failed: %+v", p.Properties.User)
		}
		var s wrapperspb.StringValue
		if err := proto.Unmarshal(p.Payload, &s); err != nil {
			t.Fatal(err)
		}
		return s.GetValue()
	case <-ctx.Done():
		t.Fatal("no answer to who.Am")
	}
	return ""
}

// rawConnect sends a CONNECT of protocol level version (4: 3.1.1, 5) with
// token as its password over conn and returns the CONNACK's code and, for
// MQTT 5, its reason string. It closes conn.
func rawConnect(t *testing.T, conn net.Conn, version byte, token string) (code byte, reason string) {
	t.Helper()
	defer conn.Close()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version}
	pk.Connect = packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "raw"}
	if token != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte("x")
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(token)
	}
	var b bytes.Buffer
	if err := pk.ConnectEncode(&b); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	first, err := br.ReadByte()
	if err != nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	var fh packets.FixedHeader
	if err := fh.Decode(first); err != nil || fh.Type != packets.Connack {
		t.Fatalf("first packet 0x%02x, want a CONNACK", first)
	}
	n, _, err := packets.DecodeLength(br)
	if err != nil {
		t.Fatal(err)
	}
	fh.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	ack := packets.Packet{FixedHeader: fh, ProtocolVersion: version}
	if err := ack.ConnackDecode(body); err != nil {
		t.Fatal(err)
	}
	return ack.ReasonCode, ack.Properties.ReasonString
}

// TestStartChecksAuthFiles: Start reads the files of the node it starts
// before it starts anything: a missing token file is a problem of the
// cluster file (config.ErrInvalid) naming its key.
func TestStartChecksAuthFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "tokens.txt")
	reg := app.NewRegistry()
	reg.Register("who", func() app.Module { return whoModule{} })
	cfg, err := config.Load(writeFile(t, mqttClusterFile("{tokens_file: "+missing+"}")), nil, reg.Names())
	if err != nil {
		t.Fatalf("Load reads no token file, yet: %v", err)
	}
	n, err := app.Start(context.Background(), cfg, "gate1", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil {
		n.Shutdown(context.Background())
		t.Fatal("Start took a missing token file")
	}
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "nodes.gate1.gateway.auth.tokens_file: tokenauth: open "+missing) {
		t.Errorf("Start: %v, want ErrInvalid naming nodes.gate1.gateway.auth.tokens_file", err)
	}
}
