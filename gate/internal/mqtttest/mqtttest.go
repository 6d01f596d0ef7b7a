// Package mqtttest has the MQTT client helpers of the tests of package
// gate (its tests that run every listener) and of package gate/mqtt: an
// inbox of what a client received, protobuf string payloads, and an MQTT 5
// client. Tests only.
package mqtttest

import (
	"bytes"
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/internal/await"
)

// Msg is a publish a test client received.
type Msg struct {
	Topic   string
	Payload []byte
	QoS     byte
	User    map[string]string // MQTT 5 user properties
}

// Inbox collects what a client receives. Its zero value is ready.
type Inbox struct {
	mu   sync.Mutex
	msgs []Msg
}

// Add records m.
func (in *Inbox) Add(m Msg) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
}

// Messages returns a copy of what the inbox holds.
func (in *Inbox) Messages() []Msg {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.msgs)
}

// Wait waits up to 5 seconds for a message on topic and takes it.
func (in *Inbox) Wait(t testing.TB, topic string) Msg {
	t.Helper()
	var got Msg
	await.True(t, 5*time.Second, "a message on "+topic, func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		for i, m := range in.msgs {
			if m.Topic == topic {
				in.msgs = append(in.msgs[:i], in.msgs[i+1:]...)
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// Str encodes s as a protobuf StringValue payload.
func Str(t testing.TB, s string) []byte {
	t.Helper()
	b, err := proto.Marshal(wrapperspb.String(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Unstr decodes a protobuf StringValue payload.
func Unstr(t testing.TB, b []byte) string {
	t.Helper()
	var v wrapperspb.StringValue
	if err := proto.Unmarshal(b, &v); err != nil {
		t.Fatalf("payload %q: %v", b, err)
	}
	return v.Value
}

// WaitToken waits up to 5 seconds for a paho.mqtt.golang (MQTT 3.1.1)
// token and fails t on its error.
func WaitToken(t testing.TB, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("no answer")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

// Dial5 connects a paho.golang (MQTT 5) client to addr, whose publishes
// go to in; a password logs it in.
func Dial5(t testing.TB, addr, clientID, password string, keepalive uint16, in *Inbox, onDisconnect func(*paho.Disconnect)) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			m := Msg{Topic: r.Packet.Topic, Payload: bytes.Clone(r.Packet.Payload), QoS: r.Packet.QoS, User: map[string]string{}}
			if p := r.Packet.Properties; p != nil {
				for _, u := range p.User {
					m.User[u.Key] = u.Value
				}
			}
			in.Add(m)
			return true, nil
		}},
		OnServerDisconnect: onDisconnect,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: clientID, KeepAlive: keepalive, CleanStart: true}
	if password != "" {
		cp.Username, cp.UsernameFlag = "x", true
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	ca, err := c.Connect(ctx, cp)
	return c, ca, err
}
