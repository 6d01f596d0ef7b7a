package gatemqtt_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/guildkit/guild/gate"
	gatemqtt "github.com/guildkit/guild/gate/mqtt"
)

// TestListenWebSocket serves MQTT over WebSocket on a listener of the
// gateway's own: a client on its path has a session; another path is not
// found; once the gateway is closed, the listener is too, and a new one is
// refused with ErrClosed.
func TestListenWebSocket(t *testing.T) {
	env := startMQTTGateway(t, gate.Limits{})
	addr, err := gatemqtt.ListenWebSocket(env.g, "127.0.0.1:0", gatemqtt.DefaultWebSocketPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := &mqttInbox{}
	c, tok := dial311(t, "ws://"+addr.String()+gatemqtt.DefaultWebSocketPath, "web", "good", in)
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
	mqttWait(t, c.Subscribe("res/#", 1, nil))
	mqttWait(t, c.Publish("req/chat.Echo/8", 1, false, mqttStr(t, "l")))
	if got := mqttUnstr(t, in.Wait(t, "res/8").Payload); got != "echo:l" {
		t.Errorf("res/8 %q", got)
	}
	c.Disconnect(100)
	if cl := env.waitClosed(t, "u1"); cl.info.Listener != "mqtt-ws" {
		t.Errorf("listener %q, want mqtt-ws", cl.info.Listener)
	}

	resp, err := http.Get("http://" + addr.String() + "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /elsewhere: %s, want 404", resp.Status)
	}

	if err := env.g.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get("http://" + addr.String() + gatemqtt.DefaultWebSocketPath); err == nil {
		resp.Body.Close()
		t.Errorf("the listener still answers after Close: %s", resp.Status)
	}
	if _, err := gatemqtt.ListenWebSocket(env.g, "127.0.0.1:0", "/mqtt", nil); !errors.Is(err, gate.ErrClosed) {
		t.Errorf("ListenWebSocket after Close: %v, want ErrClosed", err)
	}
}
