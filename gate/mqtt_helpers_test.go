package gate_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The MQTT helpers of the tests that run every listener (shutdown,
// endings): package gate/mqtt's tests have their own.

// mqttMsg is a publish a test client received.
type mqttMsg struct {
	topic   string
	payload []byte
	qos     byte
	user    map[string]string // MQTT 5 user properties
}

// mqttInbox collects what a client receives.
type mqttInbox struct {
	mu   sync.Mutex
	msgs []mqttMsg
}

func (in *mqttInbox) add(m mqttMsg) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
}

// wait polls for a message on topic and takes it.
func (in *mqttInbox) wait(t *testing.T, topic string) mqttMsg {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		in.mu.Lock()
		for i, m := range in.msgs {
			if m.topic == topic {
				in.msgs = append(in.msgs[:i], in.msgs[i+1:]...)
				in.mu.Unlock()
				return m
			}
		}
		in.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	t.Fatalf("nothing received on %s (received: %v)", topic, in.msgs)
	return mqttMsg{}
}

func mqttStr(t *testing.T, s string) []byte {
	t.Helper()
	b, err := proto.Marshal(wrapperspb.String(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mqttUnstr(t *testing.T, b []byte) string {
	t.Helper()
	var v wrapperspb.StringValue
	if err := proto.Unmarshal(b, &v); err != nil {
		t.Fatalf("payload %q: %v", b, err)
	}
	return v.Value
}

func mqttWait(t *testing.T, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("no answer")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

// dial5 connects a paho.golang (MQTT 5) client.
func dial5(t *testing.T, addr, clientID, password string, keepalive uint16, in *mqttInbox, onDisconnect func(*paho.Disconnect)) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
			m := mqttMsg{topic: r.Packet.Topic, payload: bytes.Clone(r.Packet.Payload), qos: r.Packet.QoS, user: map[string]string{}}
			if p := r.Packet.Properties; p != nil {
				for _, u := range p.User {
					m.user[u.Key] = u.Value
				}
			}
			in.add(m)
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
